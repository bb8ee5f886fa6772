"""The posting engine under real concurrency, on SQLite and on PostgreSQL.

Real threads and real processes, no mocks: many threads post random batches through
``Database.transact`` and ``ledger.service.post`` (see ``ledger_crash_worker``); a worker
process is SIGKILLed mid-run and a second one carries on. Afterwards the books must show
that no money was created or lost, no no-overdraft account went below zero, every
acknowledged transfer (OK or EXISTS after its commit) is recorded exactly once and nothing
is recorded that nobody asked for, and ``ledger verify`` passes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

from citywallet.ledger import service as ledger
from citywallet.ledger.types import Result, TransferFlags, TransferSpec
from citywallet.platform.db import Database
from tests.integration.ledger_crash_worker import (
    FUNDING_PER_ACCOUNT,
    LEDGER,
    P2P,
    Books,
    Journal,
    Workload,
    open_books,
)
from tests.ledger_checks import assert_ledger_clean

REPO = Path(__file__).resolve().parents[2]
THREADS = 32
OPS_PER_THREAD = 30


# --- what the books must show afterwards --------------------------------------------------


def recorded_ids(db: Database) -> tuple[Counter[str], set[str]]:
    """How often each transfer id is recorded, and the ids of the ledger's expiry voids."""
    with db.uow(readonly=True) as uow:
        conn = uow.session.connection()
        counts = Counter(
            {
                str(i): int(n)
                for i, n in conn.exec_driver_sql(
                    "SELECT id, COUNT(*) FROM ledger_transfers GROUP BY id"
                )
            }
        )
        expiries = {
            str(r[0])
            for r in conn.exec_driver_sql(
                f"SELECT id FROM ledger_transfers WHERE flags & {int(TransferFlags.EXPIRED)} <> 0"
            )
        }
    return counts, expiries


def assert_money_conserved_and_never_negative(db: Database, books: Books) -> None:
    with db.uow(readonly=True) as uow:
        views = ledger.get_accounts(uow, ids=[books.bank, *books.customers])
    customers = [views[c] for c in books.customers]
    total = sum(v.balance for v in customers)
    assert total == books.funding, (
        f"money not conserved: the customers hold {total}, but {books.funding} was funded"
    )
    assert views[books.bank].balance == -books.funding, "the bank account moved after funding"
    held = sum(v.debits_pending for v in customers)
    reserved = sum(v.credits_pending for v in customers)
    assert held == reserved, f"pending debits {held} != pending credits {reserved}"
    negative = {v.id: (v.balance, v.available) for v in customers if v.available < 0}
    assert not negative, f"no-overdraft accounts overdrawn (balance, available): {negative}"


def assert_acknowledged_recorded_exactly_once(
    db: Database, books: Books, journals: Iterable[Journal]
) -> Counter[str]:
    """Every acknowledged id once; nothing recorded that no one tried; no id OK twice."""
    journals = list(journals)
    acknowledged = set().union(*(j.acknowledged for j in journals))
    tried = set().union(*(j.tried for j in journals))
    counts, expiries = recorded_ids(db)
    missing = sorted(acknowledged - set(counts))
    assert not missing, f"{len(missing)} acknowledged transfers are lost: {missing[:10]}"
    twice = {i: n for i, n in counts.items() if n != 1}
    assert not twice, f"transfers recorded more than once: {twice}"
    unasked = sorted(set(counts) - tried - expiries - set(books.funding_ids))
    assert not unasked, f"transfers recorded that no one posted: {unasked[:10]}"
    rejected = set().union(*(j.rejected for j in journals)) - acknowledged
    rejected_but_recorded = sorted(rejected & set(counts))
    assert not rejected_but_recorded, f"rejected yet recorded: {rejected_but_recorded[:10]}"
    ok_twice = {i: n for i, n in sum((j.ok_count for j in journals), Counter()).items() if n > 1}
    assert not ok_twice, f"transfer ids applied (OK) more than once: {ok_twice}"
    return counts


def assert_no_errors(journals: Iterable[Journal]) -> None:
    errors = [e for j in journals for e in j.errors]
    assert not errors, f"{len(errors)} unexpected outcomes, first ones:\n" + "\n".join(errors[:15])


# --- threads ------------------------------------------------------------------------------


def test_concurrent_threads_conserve_money_and_record_each_acknowledged_transfer_once(
    db: Database,
) -> None:
    books = open_books(db)
    journal = Journal()
    workload = Workload(db, books.customers, journal, tag=uuid.uuid4().hex[:6], seed=1)
    started = time.monotonic()
    workload.run(THREADS, ops=OPS_PER_THREAD)
    elapsed = time.monotonic() - started

    assert_no_errors([journal])
    counts = assert_acknowledged_recorded_exactly_once(db, books, [journal])
    # Without a crash, every batch was answered: the books hold exactly what was acknowledged.
    assert not journal.unanswered()
    unacknowledged = sorted(set(counts) - journal.acknowledged - set(books.funding_ids))
    assert all(i.startswith("exp_") for i in unacknowledged), unacknowledged[:10]
    assert_money_conserved_and_never_negative(db, books)
    assert journal.results[Result.EXCEEDS_CREDITS] > 0, (
        "no overdraft was ever refused: the workload does not test the no-overdraft limit"
    )
    assert journal.results[Result.OK] > THREADS * OPS_PER_THREAD / 4, journal.results
    assert_ledger_clean(db)
    print(
        f"\n{db.dialect}: {THREADS}x{OPS_PER_THREAD} ops in {elapsed:.2f}s {dict(journal.results)}"
    )


# --- focused races ------------------------------------------------------------------------


def race(threads: int, fn: Callable[[int], Result]) -> list[Result | BaseException]:
    """Run ``fn(i)`` in ``threads`` threads released at the same instant."""
    barrier = threading.Barrier(threads)
    outcomes: list[Result | BaseException] = [RuntimeError("did not run")] * threads

    def run(i: int) -> None:
        barrier.wait()
        try:
            outcomes[i] = fn(i)
        except BaseException as exc:  # reported by the caller
            outcomes[i] = exc

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return outcomes


def post_one(db: Database, spec: TransferSpec) -> Result:
    return db.transact(lambda uow: ledger.post(uow, transfers=[spec]))[0]


def test_racing_drains_of_one_account_never_overdraw_it(db: Database) -> None:
    books = open_books(db, customers=9)
    payer, payees = books.customers[0], books.customers[1:]
    for round_ in range(5):
        with db.uow(readonly=True) as uow:
            view = ledger.get_account(uow, account_id=payer)
        assert view is not None
        amount = view.available  # each thread tries to take it all

        def drain(i: int, round_: int = round_, amount: int = amount) -> Result:
            return post_one(
                db, TransferSpec(f"drain-{round_}-{i}", payer, payees[i], amount, LEDGER, P2P)
            )

        outcomes = race(len(payees), drain)
        assert sorted(map(str, outcomes)) == sorted(
            [Result.OK.value] + [Result.EXCEEDS_CREDITS.value] * (len(payees) - 1)
        ), f"round {round_}: racing drains of {amount}: {outcomes}"
        # Refill the payer from whoever got the money.
        winner = next(p for i, p in enumerate(payees) if outcomes[i] is Result.OK)
        post_one(db, TransferSpec(f"refill-{round_}", winner, payer, amount, LEDGER, P2P))
    assert_money_conserved_and_never_negative(db, books)
    assert_ledger_clean(db)


def test_racing_resolutions_of_one_pending_transfer_settle_it_exactly_once(db: Database) -> None:
    books = open_books(db, customers=2)
    payer, payee = books.customers
    resolvers = 8
    for round_ in range(10):
        pending_id = f"hold-{round_}"
        spec = TransferSpec(pending_id, payer, payee, 100, LEDGER, P2P, TransferFlags.PENDING)
        assert post_one(db, spec) is Result.OK

        def resolve(i: int, pending_id: str = pending_id) -> Result:
            flag = TransferFlags.POST_PENDING if i % 2 else TransferFlags.VOID_PENDING
            return post_one(
                db,
                TransferSpec(f"{pending_id}-r{i}", pending_id=pending_id, flags=flag, amount=None),
            )

        outcomes = race(resolvers, resolve)
        losers = {Result.PENDING_TRANSFER_ALREADY_POSTED, Result.PENDING_TRANSFER_ALREADY_VOIDED}
        ok = [o for o in outcomes if o is Result.OK]
        bad = [o for o in outcomes if o is not Result.OK and o not in losers]
        message = (
            f"{pending_id}: {resolvers} racing posts/voids must give one OK and "
            f"already_posted/already_voided for the rest, got {outcomes}"
        )
        assert len(ok) == 1, message
        assert not bad, message
    assert_money_conserved_and_never_negative(db, books)
    assert_ledger_clean(db)


def test_racing_duplicate_submissions_record_the_transfer_once(db: Database) -> None:
    books = open_books(db, customers=2)
    payer, payee = books.customers
    submitters = 8
    for round_ in range(10):
        spec = TransferSpec(f"dup-{round_}", payer, payee, 10, LEDGER, P2P)

        def submit(_i: int, spec: TransferSpec = spec) -> Result:
            return post_one(db, spec)

        outcomes = race(submitters, submit)
        assert sorted(map(str, outcomes)) == sorted(
            [Result.OK.value] + [Result.EXISTS.value] * (submitters - 1)
        ), f"{spec.id}: {submitters} identical racing submissions: {outcomes}"
    counts, _ = recorded_ids(db)
    assert all(n == 1 for n in counts.values()), counts
    with db.uow(readonly=True) as uow:
        view = ledger.get_account(uow, account_id=payer)
    assert view is not None
    assert view.balance == FUNDING_PER_ACCOUNT - 10 * 10
    assert_ledger_clean(db)


# --- a process killed mid-run -------------------------------------------------------------


def start_worker(
    db: Database, books: Books, journal: Path, *, tag: str, seconds: float, replay: Path | None
) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "tests.integration.ledger_crash_worker",
        db.url,
        str(journal),
        "--customers",
        ",".join(map(str, books.customers)),
        "--threads",
        "8",
        "--seconds",
        str(seconds),
        "--tag",
        tag,
        "--seed",
        str(sum(map(ord, tag))),
    ]
    if replay is not None:
        command += ["--replay", str(replay)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "src")])}
    with journal.with_suffix(".stderr").open("wb") as stderr:
        return subprocess.Popen(command, cwd=REPO, env=env, stderr=stderr)


def stderr_of(journal: Path) -> str:
    path = journal.with_suffix(".stderr")
    return path.read_text(errors="replace")[-4000:] if path.exists() else ""


def answered(journal: Path) -> int:
    """How many batches the worker has seen committed so far."""
    if not journal.exists():
        return 0
    return journal.read_bytes().count(b'"t":"done"')


def test_killed_process_loses_no_acknowledged_transfer_and_leaves_the_books_balanced(
    db: Database, tmp_path: Path
) -> None:
    books = open_books(db)
    db.dispose()  # hold no connection while the workers run
    first_log, second_log = tmp_path / "first.jsonl", tmp_path / "second.jsonl"

    # 1. Run a worker until it has committed a good number of batches, then SIGKILL it.
    started = time.monotonic()
    first = start_worker(db, books, first_log, tag="k1", seconds=120, replay=None)
    try:
        while answered(first_log) < 150 and first.poll() is None:
            assert time.monotonic() - started < 60, "the first worker never got going"
            time.sleep(0.05)
        time.sleep(0.5)  # well into its run
        assert first.poll() is None, "the first worker stopped by itself:\n" + stderr_of(first_log)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == -signal.SIGKILL
    killed = Journal.read(first_log)
    assert not killed.ended, "the first worker was meant to be killed mid-run"
    assert_no_errors([killed])

    # What survived the kill: every batch it saw committed, and nothing it never tried.
    assert_acknowledged_recorded_exactly_once(db, books, [killed])
    assert_money_conserved_and_never_negative(db, books)
    present_after_kill, _ = recorded_ids(db)
    in_flight = killed.unanswered()

    # 2. A second worker retries what the first never saw answered, then works and exits.
    second = start_worker(db, books, second_log, tag="k2", seconds=1.5, replay=first_log)
    second.wait(timeout=120)
    assert second.returncode == 0, "the second worker failed:\n" + stderr_of(second_log)
    survivor = Journal.read(second_log)
    assert survivor.ended
    assert_no_errors([survivor])
    elapsed = time.monotonic() - started

    # A retried transfer that had committed before the kill is reported as existing.
    stale = [(i, r) for i, r in survivor.replayed if i in present_after_kill and r != Result.EXISTS]
    assert not stale, f"retries of transfers committed before the kill were not EXISTS: {stale}"
    assert_acknowledged_recorded_exactly_once(db, books, [killed, survivor])
    assert_money_conserved_and_never_negative(db, books)
    results = killed.results + survivor.results
    assert results[Result.EXCEEDS_CREDITS] > 0, "no overdraft was ever refused"
    _, expiries = recorded_ids(db)
    assert expiries, "no pending transfer expired: the workload does not test expiry"
    assert_ledger_clean(db)
    print(
        f"\n{db.dialect}: killed after {len(killed.done_batches)} batches "
        f"({len(in_flight)} in flight), survivor {len(survivor.done_batches)} batches, "
        f"{len(expiries)} expired pendings, {elapsed:.2f}s"
    )
