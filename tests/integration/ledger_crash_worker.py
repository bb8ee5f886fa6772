"""A concurrent ledger workload, run in threads by the tests or as a process that gets killed.

Each worker thread posts random batches through ``Database.transact`` and
``citywallet.ledger.service.post`` among a set of no-overdraft customer accounts: single
transfers, "drains" of an account's whole (possibly stale) balance, small batches, linked
chains, pending transfers (some expiring, some of those abandoned to expiry) and posts/voids
of open pendings picked by any thread (so resolvers race), and resubmissions of
acknowledged transfers. A maintenance
thread seals blocks and expires pendings beside posting, as the worker does in production.

What every thread saw goes to a :class:`Journal`: the batch before it is posted ("try"),
and its results after ``transact`` returned, i.e. after the commit ("done", fsynced). A
transfer is *acknowledged* when a committed result put it on the books (OK or EXISTS).

As a script (``python -m tests.integration.ledger_crash_worker URL JOURNAL ...``) it first
re-posts, as a client retrying after a crash would, every batch an earlier journal tried
but never saw answered (``--replay``), then runs the workload for ``--seconds`` and exits 1
if anything unexpected happened. The crash test SIGKILLs one such process mid-run.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import random
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from citywallet.ledger import service as ledger
from citywallet.ledger.blocks import load_signer, seal_block
from citywallet.ledger.types import AccountCode, AccountFlags, Result, TransferFlags, TransferSpec
from citywallet.platform.db import Database, UnitOfWork
from tests.ledger_checks import test_encryptor

LEDGER = "CNY"
NO_OVERDRAFT = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
FUNDING_PER_ACCOUNT = 10_000
MAX_AMOUNT = 4_000  # large against the funding, so overdraft attempts are common
P2P = 4  # TransferCode.P2P
TOPUP = 1  # TransferCode.TOPUP

# Which results each kind of operation may legitimately get; anything else is a failure.
ALLOWED: dict[str, frozenset[Result]] = {
    "single": frozenset({Result.OK, Result.EXCEEDS_CREDITS}),
    "drain": frozenset({Result.OK, Result.EXCEEDS_CREDITS}),
    "linked": frozenset({Result.OK, Result.EXCEEDS_CREDITS, Result.LINKED_EVENT_FAILED}),
    "pending": frozenset({Result.OK, Result.EXCEEDS_CREDITS}),
    "resolve": frozenset(
        {
            Result.OK,
            Result.PENDING_TRANSFER_ALREADY_POSTED,
            Result.PENDING_TRANSFER_ALREADY_VOIDED,
            Result.PENDING_TRANSFER_EXPIRED,
        }
    ),
    "resubmit": frozenset({Result.EXISTS}),
}
KINDS = ("single", "drain", "batch", "linked", "pending", "resolve", "resubmit")
WEIGHTS = (20, 8, 14, 14, 16, 20, 8)
BATCHABLE = ("single", "linked", "pending", "resolve", "resubmit")


# --- journal ------------------------------------------------------------------------------


def spec_to_json(spec: TransferSpec) -> dict[str, Any]:
    """A transfer spec as plain JSON values."""
    data = dataclasses.asdict(spec)
    data["flags"] = int(spec.flags)
    data["code"] = int(spec.code)
    return data


def spec_from_json(data: dict[str, Any]) -> TransferSpec:
    """The inverse of :func:`spec_to_json`."""
    return TransferSpec(**data)


@dataclass
class Journal:
    """What the workload tried and what came back, in memory and optionally in a file.

    The file is append-only JSON lines; a "done" line is written (and fsynced) only after the
    batch's transaction committed, so it survives a SIGKILL that comes after the commit.
    """

    path: Path | None = None
    tried: dict[str, TransferSpec] = field(default_factory=dict)  # transfer id -> spec
    tried_batches: dict[str, list[TransferSpec]] = field(default_factory=dict)
    done_batches: set[str] = field(default_factory=set)
    acknowledged: set[str] = field(default_factory=set)  # on the books after a commit
    rejected: set[str] = field(default_factory=set)  # a committed result kept them off
    ok_count: Counter[str] = field(default_factory=Counter)  # how often each id got OK
    results: Counter[Result] = field(default_factory=Counter)
    replayed: list[tuple[str, Result]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    ended: bool = False

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._fd: int | None = None
        if self.path is not None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def _write(self, record: dict[str, Any], *, sync: bool) -> None:
        if self._fd is None:
            return
        os.write(self._fd, (json.dumps(record, separators=(",", ":")) + "\n").encode())
        if sync:
            os.fsync(self._fd)

    def close(self) -> None:
        """Close the file (the in-memory record stays)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def try_batch(self, key: str, batch: Sequence[TransferSpec], *, replay: bool = False) -> None:
        """Record a batch about to be posted (before its transaction starts)."""
        with self._lock:
            self._note_try(key, batch)
            record = {"t": "try", "key": key, "replay": replay}
            self._write(record | {"batch": [spec_to_json(s) for s in batch]}, sync=False)

    def done(
        self,
        key: str,
        batch: Sequence[TransferSpec],
        results: Sequence[Result],
        *,
        replay: bool = False,
    ) -> None:
        """Record a batch's results; call only after ``transact`` returned (committed)."""
        with self._lock:
            self._note_done(key, batch, results, replay=replay)
            record = {"t": "done", "key": key, "replay": replay}
            self._write(record | {"results": [r.value for r in results]}, sync=True)

    def error(self, message: str) -> None:
        """Record something that must not happen."""
        with self._lock:
            self.errors.append(message)
            self._write({"t": "error", "message": message}, sync=True)

    def end(self) -> None:
        """Record a normal end of the run."""
        with self._lock:
            self.ended = True
            self._write({"t": "end"}, sync=True)

    def _note_try(self, key: str, batch: Sequence[TransferSpec]) -> None:
        self.tried_batches[key] = list(batch)
        for spec in batch:
            self.tried[spec.id] = spec

    def _note_done(
        self,
        key: str,
        batch: Sequence[TransferSpec],
        results: Sequence[Result],
        *,
        replay: bool,
    ) -> None:
        self.done_batches.add(key)
        for spec, result in zip(batch, results, strict=True):
            self.results[result] += 1
            if result is Result.OK:
                self.ok_count[spec.id] += 1
            (self.acknowledged if result.on_books else self.rejected).add(spec.id)
            if replay:
                self.replayed.append((spec.id, result))

    def unanswered(self) -> list[tuple[str, list[TransferSpec]]]:
        """Batches tried but never seen committed (in flight at a kill, or failed)."""
        return [(k, b) for k, b in self.tried_batches.items() if k not in self.done_batches]

    @classmethod
    def read(cls, path: Path) -> Journal:
        """Load a journal file; a line cut short by a kill at its very end is ignored."""
        journal = cls()
        lines = path.read_bytes().split(b"\n")
        for number, line in enumerate(lines):
            if not line:
                continue
            try:
                record = json.loads(line)
            except ValueError:
                if number == len(lines) - 1:  # the torn last line of a killed writer
                    continue
                raise
            if record["t"] == "try":
                batch = [spec_from_json(s) for s in record["batch"]]
                journal._note_try(record["key"], batch)
            elif record["t"] == "done":
                batch = journal.tried_batches[record["key"]]
                results = [Result(r) for r in record["results"]]
                journal._note_done(record["key"], batch, results, replay=record["replay"])
            elif record["t"] == "error":
                journal.errors.append(record["message"])
            elif record["t"] == "end":
                journal.ended = True
        return journal


# --- the books ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Books:
    """A bank settlement account and the customers it funded."""

    bank: int
    customers: list[int]
    funding_ids: list[str]

    @property
    def funding(self) -> int:
        """The total funding of the customers."""
        return FUNDING_PER_ACCOUNT * len(self.customers)


def open_books(db: Database, customers: int = 16) -> Books:
    """Open a bank account and ``customers`` no-overdraft wallets, funded in one batch."""
    specs = [ledger.AccountSpec(LEDGER, AccountCode.BANK_SETTLEMENT)] + [
        ledger.AccountSpec(LEDGER, AccountCode.CUSTOMER_WALLET, NO_OVERDRAFT, f"c{i}")
        for i in range(customers)
    ]
    ids = db.transact(lambda uow: ledger.create_accounts(uow, accounts=specs))
    bank, wallets = ids[0], ids[1:]
    funding = [
        TransferSpec(f"fund-{c}", bank, c, FUNDING_PER_ACCOUNT, LEDGER, TOPUP) for c in wallets
    ]
    results = db.transact(lambda uow: ledger.post(uow, transfers=funding))
    assert results == [Result.OK] * len(funding), results
    return Books(bank, wallets, [s.id for s in funding])


# --- the workload -------------------------------------------------------------------------


@dataclass
class Item:
    """One operation inside a batch: its kind and its specs (a chain for ``linked``)."""

    kind: str
    specs: list[TransferSpec]
    amount: int = 0  # the amount of a pending transfer this item creates
    abandoned: bool = False  # a hold no one resolves: the ledger must expire it


class Workload:
    """Random transfers among ``customers`` from many threads, reported to ``journal``."""

    def __init__(
        self,
        db: Database,
        customers: Sequence[int],
        journal: Journal,
        *,
        tag: str,
        seed: int,
        expiring: bool = True,
    ) -> None:
        self.db = db
        self.customers = list(customers)
        self.journal = journal
        self.tag = tag
        self.seed = seed
        self.expiring = expiring
        self._lock = threading.Lock()
        self._open: dict[str, int] = {}  # open pending id -> amount, shared by all threads
        self._recent: list[TransferSpec] = []  # acknowledged specs, for resubmission
        self.signer = db.transact(lambda uow: load_signer(uow, test_encryptor()))

    # threads

    def run(self, threads: int, *, ops: int | None = None, seconds: float | None = None) -> None:
        """Run ``threads`` workers (``ops`` operations each, or for ``seconds``) and the
        maintenance thread; return when the workers are done."""
        deadline = None if seconds is None else time.monotonic() + seconds
        stop = threading.Event()
        maintenance = threading.Thread(target=self._maintain, args=(stop,), daemon=True)
        workers = [
            threading.Thread(target=self._work, args=(i, ops, deadline), daemon=True)
            for i in range(threads)
        ]
        maintenance.start()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        stop.set()
        maintenance.join()

    def _work(self, index: int, ops: int | None, deadline: float | None) -> None:
        rng = random.Random(f"{self.seed}-{index}")
        done = 0
        while (ops is None or done < ops) and (deadline is None or time.monotonic() < deadline):
            done += 1
            key = f"{self.tag}-{index:02d}-{done:05d}"
            try:
                self._operation(rng, key)
            except Exception as exc:  # any exception is a finding
                self.journal.error(f"{key}: {_describe(exc)}")

    def _maintain(self, stop: threading.Event) -> None:
        """Seal blocks and expire pendings beside posting, like the production worker."""
        while not stop.is_set():
            try:
                self.db.transact(lambda uow: seal_block(uow, self.signer, max_transfers=500))
                self.db.transact(lambda uow: ledger.expire_pending(uow))
            except Exception as exc:  # any exception is a finding
                self.journal.error(f"maintenance: {_describe(exc)}")
            stop.wait(0.02)

    # operations

    def _operation(self, rng: random.Random, key: str) -> None:
        kind = rng.choices(KINDS, WEIGHTS)[0]
        if kind == "batch":
            count = rng.randint(2, 4)
            kinds = [rng.choice(BATCHABLE) for _ in range(count)]
            items = [self._item(rng, f"{key}-{n}", k) for n, k in enumerate(kinds)]
        else:
            items = [self._item(rng, key, kind)]
        present = [item for item in items if item is not None]
        if present:
            self.post_items(key, present)

    def post_items(self, key: str, items: list[Item]) -> list[Result]:
        """Post the items as one batch, journal it, check and settle the results."""
        batch = [spec for item in items for spec in item.specs]
        self.journal.try_batch(key, batch)
        results = self.db.transact(lambda uow: ledger.post(uow, transfers=batch))
        self.journal.done(key, batch, results)  # after the commit: acknowledged
        offset = 0
        for item in items:
            self._settle(key, item, results[offset : offset + len(item.specs)])
            offset += len(item.specs)
        return results

    def replay(self, batches: list[tuple[str, list[TransferSpec]]]) -> None:
        """Re-post batches whose answer was lost, as a client retrying after a crash."""
        for key, batch in batches:
            replay_key = f"{self.tag}-replay-{key}"
            self.journal.try_batch(replay_key, batch, replay=True)
            try:
                results = self.db.transact(functools.partial(_post, batch))
            except Exception as exc:  # any exception is a finding
                self.journal.error(f"{replay_key}: {_describe(exc)}")
                continue
            self.journal.done(replay_key, batch, results, replay=True)

    def _item(self, rng: random.Random, key: str, kind: str) -> Item | None:
        a, b, c = rng.sample(self.customers, 3)
        if kind == "single":
            return Item(kind, [_transfer(key, a, b, rng.randint(1, MAX_AMOUNT))])
        if kind == "drain":
            # The whole balance as read a moment ago: concurrent drains must not all succeed.
            with self.db.uow(readonly=True) as uow:
                view = ledger.get_account(uow, account_id=a)
            assert view is not None
            return Item(kind, [_transfer(key, a, b, max(view.available, 1))])
        if kind == "linked":
            # A payment and its fee from the same payer: both or neither.
            first = _transfer(f"{key}-pay", a, b, rng.randint(1, MAX_AMOUNT), TransferFlags.LINKED)
            return Item(kind, [first, _transfer(f"{key}-fee", a, c, rng.randint(1, 300))])
        if kind == "pending":
            amount = rng.randint(1, MAX_AMOUNT)
            timeout = 1 if self.expiring and rng.random() < 0.3 else 0
            spec = _transfer(key, a, b, amount, TransferFlags.PENDING, timeout=timeout)
            return Item(kind, [spec], amount, abandoned=timeout > 0 and rng.random() < 0.5)
        if kind == "resolve":
            with self._lock:
                if not self._open:
                    return None
                # Among the newest few, so that threads often race for the same pending.
                pending_id, amount = rng.choice(list(self._open.items())[-4:])
            choice = rng.random()
            if choice < 0.4:
                spec = TransferSpec(
                    key, pending_id=pending_id, flags=TransferFlags.POST_PENDING, amount=None
                )
            elif choice < 0.7:
                spec = TransferSpec(
                    key,
                    pending_id=pending_id,
                    flags=TransferFlags.POST_PENDING,
                    amount=rng.randint(1, amount),
                )
            else:
                spec = TransferSpec(
                    key, pending_id=pending_id, flags=TransferFlags.VOID_PENDING, amount=None
                )
            return Item(kind, [spec])
        if kind == "resubmit":
            with self._lock:
                if not self._recent:
                    return None
                return Item(kind, [rng.choice(self._recent)])
        raise AssertionError(kind)

    def _settle(self, key: str, item: Item, results: Sequence[Result]) -> None:
        """Check an item's results and update the shared pools."""
        for spec, result in zip(item.specs, results, strict=True):
            if result not in ALLOWED[item.kind]:
                self.journal.error(f"{key}: {item.kind} {spec.id} got {result.value}")
        if len({r.on_books for r in results}) > 1:
            self.journal.error(f"{key}: linked chain split: {[r.value for r in results]}")
        with self._lock:
            for spec, result in zip(item.specs, results, strict=True):
                if result.on_books and not spec.flags & TransferFlags.LINKED:
                    self._recent.append(spec)
            del self._recent[:-200]
            if item.kind == "pending" and results[0] is Result.OK and not item.abandoned:
                self._open[item.specs[0].id] = item.amount
            if item.kind == "resolve" and results[0] in ALLOWED["resolve"]:
                self._open.pop(item.specs[0].pending_id or "", None)

    def adopt_open_pendings(self) -> None:
        """Make the pending transfers still open in the database resolvable by this run."""

        def load(uow: UnitOfWork) -> list[tuple[str, int]]:
            rows = uow.session.connection().exec_driver_sql(
                "SELECT p.id, p.amount FROM ledger_transfers p "
                "LEFT JOIN ledger_transfers r ON r.pending_id = p.id "
                "WHERE p.flags & 2 = 2 AND r.id IS NULL ORDER BY p.seq"
            )
            return [(str(r[0]), int(r[1])) for r in rows]

        adopted = self.db.transact(load, readonly=True)
        with self._lock:  # oldest first: the picks favour the newest, so some still expire
            self._open = dict(adopted) | self._open


def _post(batch: list[TransferSpec], uow: UnitOfWork) -> list[Result]:
    return ledger.post(uow, transfers=batch)


def _transfer(
    key: str, debit: int, credit: int, amount: int, flags: int = 0, *, timeout: int = 0
) -> TransferSpec:
    return TransferSpec(key, debit, credit, amount, LEDGER, P2P, int(flags), timeout=timeout)


def _describe(exc: BaseException) -> str:
    last = traceback.extract_tb(exc.__traceback__)[-1:]
    where = f" at {last[0].filename}:{last[0].lineno}" if last else ""
    return f"{type(exc).__name__}: {str(exc)[:600]}{where}"


# --- the process --------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the workload in this process; exit 1 if anything unexpected happened."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("journal", type=Path)
    parser.add_argument("--customers", required=True, help="comma-separated account ids")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tag", default="p")
    parser.add_argument("--replay", type=Path, help="a journal whose unanswered batches to retry")
    args = parser.parse_args(argv)
    db = Database(args.url, pool_size=args.threads + 4)
    journal = Journal(args.journal)
    customers = [int(i) for i in args.customers.split(",")]
    workload = Workload(db, customers, journal, tag=args.tag, seed=args.seed)
    if args.replay is not None:
        workload.replay(Journal.read(args.replay).unanswered())
    workload.adopt_open_pendings()
    workload.run(args.threads, seconds=args.seconds)
    journal.end()
    journal.close()
    db.dispose()
    for message in journal.errors:
        print(message, file=sys.stderr)
    return 1 if journal.errors else 0


if __name__ == "__main__":
    sys.exit(main())
