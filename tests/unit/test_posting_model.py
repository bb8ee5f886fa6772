"""The posting rules (``apply_batch``) against a plain, independently written reference model.

The reference keeps a dict of balances, a dict of recorded transfers and a dict of pending
statuses, processes transfers one at a time and makes a linked chain all-or-nothing by
copying its whole state before the chain and restoring the copy on failure. A stateful
hypothesis machine drives both with random batches across many steps, feeding
``apply_batch`` exactly what the SQL engine would load for each batch (``service.post``),
and compares every result code, every created transfer and every counter.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from citywallet.ledger.posting import apply_batch
from citywallet.ledger.types import (
    MAX_AMOUNT,
    AccountFlags,
    AccountState,
    PendingState,
    PendingStatus,
    Result,
    Transfer,
    TransferFlags,
    TransferSpec,
)

NO_OVERDRAFT = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
DRAWN_DOWN = AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS
LINKED = TransferFlags.LINKED
PENDING = TransferFlags.PENDING
POST = TransferFlags.POST_PENDING
VOID = TransferFlags.VOID_PENDING
EXPIRED = TransferFlags.EXPIRED
SECOND = 1_000_000
T0 = 1_750_000_000 * SECOND

# id -> (ledger, flags)
ACCOUNTS: dict[int, tuple[str, int]] = {
    1: ("CNY", int(AccountFlags.NONE)),  # bank settlement: may go either way
    2: ("CNY", int(NO_OVERDRAFT)),  # customer
    3: ("CNY", int(NO_OVERDRAFT)),  # customer
    4: ("CNY", int(DRAWN_DOWN)),  # a funding source that must stay drawn down
    5: ("CNY", int(AccountFlags.NONE)),  # fee revenue
    6: ("HKD", int(AccountFlags.NONE)),  # another ledger
    7: ("HKD", int(NO_OVERDRAFT)),
}
MISSING_ACCOUNT = 99
LEDGER_OF = {aid: ledger for aid, (ledger, _) in ACCOUNTS.items()}


# --- the reference model --------------------------------------------------------------------


@dataclass
class RefAccount:
    ledger: str
    flags: int
    debits_pending: int = 0
    debits_posted: int = 0
    credits_pending: int = 0
    credits_posted: int = 0


class Reference:
    """The ledger's rules, written out plainly, one transfer at a time."""

    def __init__(self) -> None:
        self.accounts = {
            aid: RefAccount(ledger, flags) for aid, (ledger, flags) in ACCOUNTS.items()
        }
        self.transfers: dict[str, Transfer] = {}
        self.order: list[str] = []  # ids in the order they were recorded
        self.status: dict[str, str] = {}  # pending id -> "pending" | "posted" | "voided"

    # A batch -------------------------------------------------------------------------------

    def post(
        self, specs: list[TransferSpec], now: int, system: bool
    ) -> tuple[list[Result | set[Result]], list[Transfer]]:
        """Results (a set where any of several static errors is acceptable) and new rows."""
        first_new = len(self.order)
        results: list[Result | set[Result]] = [Result.OK] * len(specs)
        start = 0
        while start < len(specs):
            stop = start
            while stop < len(specs) - 1 and specs[stop].flags & LINKED:
                stop += 1
            chain_is_open = bool(specs[stop].flags & LINKED)  # linked up to the batch's end
            saved = (
                copy.deepcopy(self.accounts),
                dict(self.transfers),
                list(self.order),
                dict(self.status),
            )
            failed_at = None
            for i in range(start, stop + 1):
                if chain_is_open and i == stop:
                    outcome: Result | set[Result] = Result.LINKED_EVENT_CHAIN_OPEN
                else:
                    outcome = self.one(specs[i], now, system)
                results[i] = outcome
                if outcome not in (Result.OK, Result.EXISTS):
                    failed_at = i
                    break
            if failed_at is not None:
                self.accounts, self.transfers, self.order, self.status = saved
                for i in range(start, stop + 1):
                    if i != failed_at:
                        results[i] = Result.LINKED_EVENT_FAILED
                if chain_is_open:
                    results[stop] = Result.LINKED_EVENT_CHAIN_OPEN
            start = stop + 1
        return results, [self.transfers[i] for i in self.order[first_new:]]

    # One transfer --------------------------------------------------------------------------

    def one(self, spec: TransferSpec, now: int, system: bool) -> Result | set[Result]:
        errors = self.static_errors(spec, system)
        if errors:
            return errors
        if spec.id in self.transfers:
            if self.same_as_recorded(spec, self.transfers[spec.id]):
                return Result.EXISTS
            return Result.EXISTS_WITH_DIFFERENT_FIELDS
        if spec.flags & (POST | VOID):
            return self.resolve(spec, now)
        return self.create(spec, now)

    @staticmethod
    def static_errors(spec: TransferSpec, system: bool) -> set[Result]:
        """Every rule the transfer breaks on its own (the engine may report any one)."""
        errors: set[Result] = set()
        if spec.id == "":
            errors.add(Result.ID_MUST_NOT_BE_EMPTY)
        if len(spec.id) > 64:
            errors.add(Result.ID_TOO_LONG)
        allowed = {LINKED, PENDING, POST, VOID} | ({EXPIRED} if system else set())
        if any(spec.flags & (1 << bit) and (1 << bit) not in allowed for bit in range(63)):
            errors.add(Result.FLAGS_RESERVED)
        phases = [f for f in (PENDING, POST, VOID) if spec.flags & f]
        if len(phases) > 1 or (spec.flags & EXPIRED and not spec.flags & VOID):
            errors.add(Result.FLAGS_ARE_MUTUALLY_EXCLUSIVE)
        if spec.timeout < 0:
            errors.add(Result.TIMEOUT_MUST_NOT_BE_NEGATIVE)
        if spec.timeout > 0 and not spec.flags & PENDING:
            errors.add(Result.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER)
        if spec.amount is not None and spec.amount > MAX_AMOUNT:
            errors.add(Result.AMOUNT_TOO_LARGE)
        if spec.flags & (POST | VOID):
            if not spec.pending_id:
                errors.add(Result.PENDING_ID_REQUIRED)
            if spec.amount is not None and spec.amount < 0:
                errors.add(Result.AMOUNT_MUST_BE_POSITIVE)
        else:
            if spec.pending_id:
                errors.add(Result.PENDING_ID_MUST_BE_EMPTY)
            if spec.amount is None or spec.amount <= 0:
                errors.add(Result.AMOUNT_MUST_BE_POSITIVE)
            if spec.debit_account_id == spec.credit_account_id:
                errors.add(Result.ACCOUNTS_MUST_BE_DIFFERENT)
            if spec.code == 0:
                errors.add(Result.CODE_MUST_NOT_BE_ZERO)
        return errors

    @staticmethod
    def same_as_recorded(spec: TransferSpec, rec: Transfer) -> bool:
        """A retry must ask for the same transfer; a post/void may leave inherited fields out."""
        if spec.flags != rec.flags or spec.pending_id != rec.pending_id:
            return False
        if spec.timeout != rec.timeout:
            return False
        if not spec.flags & (POST | VOID):
            return (
                spec.debit_account_id == rec.debit_account_id
                and spec.credit_account_id == rec.credit_account_id
                and spec.amount == rec.amount
                and spec.ledger == rec.ledger
                and spec.code == rec.code
                and spec.reference == rec.reference
            )
        given: list[tuple[Any, Any]] = []
        if spec.debit_account_id != 0:
            given.append((spec.debit_account_id, rec.debit_account_id))
        if spec.credit_account_id != 0:
            given.append((spec.credit_account_id, rec.credit_account_id))
        if spec.ledger != "":
            given.append((spec.ledger, rec.ledger))
        if spec.code != 0:
            given.append((spec.code, rec.code))
        if spec.amount is not None and spec.amount != 0:
            given.append((spec.amount, rec.amount))
        if spec.reference is not None:
            given.append((spec.reference, rec.reference))
        return all(mine == theirs for mine, theirs in given)

    def record(self, transfer: Transfer) -> None:
        self.transfers[transfer.id] = transfer
        self.order.append(transfer.id)

    def create(self, spec: TransferSpec, now: int) -> Result:
        debit = self.accounts.get(spec.debit_account_id)
        credit = self.accounts.get(spec.credit_account_id)
        if debit is None:
            return Result.DEBIT_ACCOUNT_NOT_FOUND
        if credit is None:
            return Result.CREDIT_ACCOUNT_NOT_FOUND
        if debit.ledger != credit.ledger:
            return Result.ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER
        if spec.ledger != debit.ledger:
            return Result.TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS
        amount = spec.amount
        assert amount is not None
        debit_total = debit.debits_posted + debit.debits_pending + amount
        if debit.flags & NO_OVERDRAFT and debit_total > debit.credits_posted:
            return Result.EXCEEDS_CREDITS
        credit_total = credit.credits_posted + credit.credits_pending + amount
        if credit.flags & DRAWN_DOWN and credit_total > credit.debits_posted:
            return Result.EXCEEDS_DEBITS
        if spec.flags & PENDING:
            debit.debits_pending += amount
            credit.credits_pending += amount
            self.status[spec.id] = "pending"
        else:
            debit.debits_posted += amount
            credit.credits_posted += amount
        self.record(
            Transfer(
                spec.id,
                spec.debit_account_id,
                spec.credit_account_id,
                amount,
                spec.ledger,
                spec.code,
                spec.flags,
                None,
                spec.timeout,
                spec.reference,
                now,
            )
        )
        return Result.OK

    def resolve(self, spec: TransferSpec, now: int) -> Result:
        assert spec.pending_id is not None
        pending = self.transfers.get(spec.pending_id)
        if pending is None:
            return Result.PENDING_TRANSFER_NOT_FOUND
        if not pending.flags & PENDING:
            return Result.PENDING_TRANSFER_NOT_PENDING
        if spec.debit_account_id not in (0, pending.debit_account_id):
            return Result.PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT
        if spec.credit_account_id not in (0, pending.credit_account_id):
            return Result.PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT
        if spec.ledger not in ("", pending.ledger):
            return Result.PENDING_TRANSFER_HAS_DIFFERENT_LEDGER
        if spec.code not in (0, pending.code):
            return Result.PENDING_TRANSFER_HAS_DIFFERENT_CODE
        if self.status[pending.id] == "posted":
            return Result.PENDING_TRANSFER_ALREADY_POSTED
        if self.status[pending.id] == "voided":
            return Result.PENDING_TRANSFER_ALREADY_VOIDED
        has_expired = pending.timeout > 0 and now >= pending.timestamp + pending.timeout * SECOND
        if spec.flags & EXPIRED and not has_expired:
            return Result.PENDING_TRANSFER_NOT_EXPIRED
        if not spec.flags & EXPIRED and has_expired:
            return Result.PENDING_TRANSFER_EXPIRED
        if spec.flags & POST:
            amount = pending.amount if spec.amount in (None, 0) else spec.amount
        else:
            if spec.amount not in (None, 0, pending.amount):
                return Result.EXCEEDS_PENDING_TRANSFER_AMOUNT
            amount = pending.amount
        assert amount is not None
        if amount > pending.amount:
            return Result.EXCEEDS_PENDING_TRANSFER_AMOUNT
        debit = self.accounts[pending.debit_account_id]
        credit = self.accounts[pending.credit_account_id]
        debit.debits_pending -= pending.amount
        credit.credits_pending -= pending.amount
        if spec.flags & POST:
            debit.debits_posted += amount
            credit.credits_posted += amount
            self.status[pending.id] = "posted"
        else:
            self.status[pending.id] = "voided"
        self.record(
            Transfer(
                spec.id,
                pending.debit_account_id,
                pending.credit_account_id,
                amount,
                pending.ledger,
                pending.code,
                spec.flags,
                pending.id,
                0,
                pending.reference if spec.reference is None else spec.reference,
                now,
            )
        )
        return Result.OK


# --- what the SQL engine would load and write (service.post), kept in memory -----------------


class Store:
    """The database: account rows and transfer rows, written only from BatchOutcome."""

    def __init__(self) -> None:
        self.accounts = {
            aid: AccountState(aid, ledger, flags) for aid, (ledger, flags) in ACCOUNTS.items()
        }
        self.transfers: dict[str, Transfer] = {}
        self.order: list[str] = []

    def status_of(self, pending_id: str) -> PendingStatus:
        for t in self.transfers.values():
            if t.pending_id == pending_id:
                return PendingStatus.POSTED if t.flags & POST else PendingStatus.VOIDED
        return PendingStatus.PENDING

    def post(self, specs: list[TransferSpec], now: int, system: bool) -> Any:
        existing = {s.id: self.transfers[s.id] for s in specs if s.id in self.transfers}
        pendings = {
            s.pending_id: PendingState(self.transfers[s.pending_id], self.status_of(s.pending_id))
            for s in specs
            if s.pending_id and s.pending_id in self.transfers
        }
        wanted = {s.debit_account_id for s in specs} | {s.credit_account_id for s in specs}
        for state in pendings.values():
            wanted |= {state.transfer.debit_account_id, state.transfer.credit_account_id}
        loaded = {i: self.accounts[i].copy() for i in sorted(wanted) if i in self.accounts}
        before = {i: a.copy() for i, a in loaded.items()}
        outcome = apply_batch(specs, loaded, existing, pendings, now=now, system=system)
        # Only what the outcome says is written back, as the SQL engine does.
        for transfer in outcome.created:
            assert transfer.id not in self.transfers, f"{transfer.id} recorded twice"
            self.transfers[transfer.id] = transfer
            self.order.append(transfer.id)
        for aid in outcome.touched_accounts:
            self.accounts[aid] = loaded[aid].copy()
        for aid, account in loaded.items():
            if aid not in outcome.touched_accounts:
                assert account == before[aid], f"account {aid} changed but is not in touched"
        return outcome


def _counters(a: AccountState | RefAccount) -> tuple[int, int, int, int]:
    return (a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted)


def _check_outcome(
    specs: list[TransferSpec],
    outcome: Any,
    expected: list[Result | set[Result]],
    expected_created: list[Transfer],
    now: int,
) -> None:
    assert len(outcome.results) == len(specs)
    for i, (got, want) in enumerate(zip(outcome.results, expected, strict=True)):
        if isinstance(want, set):
            assert got in want, f"transfer {i} ({specs[i]}): {got}, expected one of {want}"
        else:
            assert got == want, f"transfer {i} ({specs[i]}): {got}, expected {want}"
    assert outcome.created == expected_created
    ok_ids = [s.id for s, r in zip(specs, outcome.results, strict=True) if r is Result.OK]
    assert [t.id for t in outcome.created] == ok_ids
    for t in outcome.created:
        assert t.timestamp == now
        assert t.amount > 0
        assert t.debit_account_id != t.credit_account_id
        assert t.ledger == LEDGER_OF[t.debit_account_id] == LEDGER_OF[t.credit_account_id]
    touched = {t.debit_account_id for t in outcome.created}
    touched |= {t.credit_account_id for t in outcome.created}
    assert outcome.touched_accounts == touched
    resolved = {t.pending_id for t in outcome.created if t.pending_id}
    assert outcome.resolved_pending_ids == resolved


def _check_books(accounts: dict[int, AccountState], transfers: dict[str, Transfer]) -> None:
    """The invariants `citywallet ledger verify` checks, on the in-memory books."""
    for ledger in {ledger for ledger, _ in ACCOUNTS.values()}:
        mine = [a for a in accounts.values() if a.ledger == ledger]
        assert sum(a.debits_posted for a in mine) == sum(a.credits_posted for a in mine)
        assert sum(a.debits_pending for a in mine) == sum(a.credits_pending for a in mine)
    for a in accounts.values():
        assert min(_counters(a)) >= 0
        if a.flags & NO_OVERDRAFT:
            assert a.debits_posted + a.debits_pending <= a.credits_posted, a
        if a.flags & DRAWN_DOWN:
            assert a.credits_posted + a.credits_pending <= a.debits_posted, a
    # Every counter equals its recomputation from the transfer rows.
    resolved = {t.pending_id: t for t in transfers.values() if t.pending_id}
    recomputed = {aid: [0, 0, 0, 0] for aid in accounts}
    for t in transfers.values():
        if t.flags & PENDING:
            if t.id not in resolved:
                recomputed[t.debit_account_id][0] += t.amount
                recomputed[t.credit_account_id][2] += t.amount
            else:
                resolution = resolved[t.id]
                assert resolution.amount <= t.amount
                assert (resolution.debit_account_id, resolution.credit_account_id) == (
                    t.debit_account_id,
                    t.credit_account_id,
                )
        elif t.flags & VOID:
            pass
        else:  # plain, or the posting of a pending one
            recomputed[t.debit_account_id][1] += t.amount
            recomputed[t.credit_account_id][3] += t.amount
    for aid, a in accounts.items():
        assert list(_counters(a)) == recomputed[aid], f"account {aid}"


# --- random batches -------------------------------------------------------------------------

ACCOUNT_IDS = [*ACCOUNTS, MISSING_ACCOUNT]
CNY_IDS = [aid for aid, (ledger, _) in ACCOUNTS.items() if ledger == "CNY"]


class LedgerMachine(RuleBasedStateMachine):
    """Random batches posted to the engine and to the reference, step after step."""

    def __init__(self) -> None:
        super().__init__()
        self.ref = Reference()
        self.store = Store()
        self.now = T0
        self.sent: list[TransferSpec] = []  # every spec ever sent, for retries
        self.next_id = 0

    def fresh_id(self) -> str:
        self.next_id += 1
        return f"t{self.next_id}"

    def draw_accounts(self, data: st.DataObject) -> tuple[int, int]:
        shape = data.draw(st.integers(0, 9), label="shape")
        if shape < 3:
            # Money in from the bank, so that customers can spend something.
            return 1, data.draw(st.sampled_from([2, 3, 5]), label="funded")
        if shape < 6:
            # A customer pays: the no-overdraft rule at work.
            payer = data.draw(st.sampled_from([2, 3]), label="payer")
            return payer, data.draw(st.sampled_from([5, 5 - payer, 4]), label="payee")
        pool = (
            st.sampled_from(CNY_IDS) if data.draw(st.booleans()) else st.sampled_from(ACCOUNT_IDS)
        )
        return data.draw(pool, label="debit"), data.draw(pool, label="credit")

    def draw_spec(self, data: st.DataObject, batch: list[TransferSpec]) -> TransferSpec:
        kind = data.draw(
            st.sampled_from(
                [
                    *("plain", "plain", "pending", "pending", "post", "post", "void"),
                    *("retry", "retry_changed", "invalid"),
                ]
            ),
            label="kind",
        )
        linked = int(LINKED) if data.draw(st.integers(0, 9), label="linked") < 2 else 0
        earlier = self.sent + batch
        if kind in ("retry", "retry_changed") and earlier:
            spec = data.draw(st.sampled_from(earlier), label="retried")
            if kind == "retry_changed":
                change = data.draw(st.sampled_from(["amount", "reference", "code", "credit"]))
                if change == "amount":
                    spec = replace(spec, amount=(spec.amount or 0) + 1)
                elif change == "reference":
                    spec = replace(spec, reference=f"{spec.reference}-changed")
                elif change == "code":
                    spec = replace(spec, code=spec.code + 1)
                else:
                    spec = replace(spec, credit_account_id=spec.credit_account_id % 7 + 1)
            return spec
        if kind in ("post", "void"):
            # Mostly pending transfers still open (recorded, or earlier in this batch).
            resolved = {t.pending_id for t in self.store.transfers.values() if t.pending_id}
            open_ids = [
                t.id
                for t in self.store.transfers.values()
                if t.flags & PENDING and t.id not in resolved
            ] + [s.id for s in batch if s.flags & PENDING]
            known = [s.id for s in earlier if s.id] + ["never-posted"]
            use_open = open_ids and data.draw(st.integers(0, 4), label="open") > 0
            pending_id = data.draw(st.sampled_from(open_ids if use_open else known), label="pid")
            amount = data.draw(
                st.sampled_from([None, None, None, 0, 1, 5, 20, 60]), label="resolve_amount"
            )
            debit, credit, code, ledger = 0, 0, 0, ""
            pending = self.store.transfers.get(pending_id)
            restate = data.draw(st.integers(0, 5), label="restate")
            if restate == 0:  # restate the pending transfer's own fields
                if pending is not None:
                    debit, credit = pending.debit_account_id, pending.credit_account_id
                    code, ledger = pending.code, pending.ledger
            elif restate == 1:  # restate something, most likely not what the pending has
                debit, credit = self.draw_accounts(data)
                code = data.draw(st.integers(1, 2), label="restated_code")
                ledger = data.draw(st.sampled_from(["", "CNY", "HKD"]), label="ledger")
            return TransferSpec(
                id=self.fresh_id(),
                debit_account_id=debit,
                credit_account_id=credit,
                amount=amount,
                ledger=ledger,
                code=code,
                flags=(POST if kind == "post" else VOID) | linked,
                pending_id=pending_id,
                reference=data.draw(st.sampled_from([None, "r-resolve"]), label="reference"),
            )
        debit, credit = self.draw_accounts(data)
        ledger = LEDGER_OF.get(debit, "CNY")
        if data.draw(st.integers(0, 9), label="wrong_ledger") == 0:
            ledger = "HKD" if ledger == "CNY" else "CNY"
        spec = TransferSpec(
            id=self.fresh_id(),
            debit_account_id=debit,
            credit_account_id=credit,
            amount=data.draw(st.integers(1, 50), label="amount"),
            ledger=ledger,
            code=data.draw(st.integers(1, 2), label="code"),
            flags=linked,
            reference=data.draw(st.sampled_from([None, "r1", "r2"]), label="reference"),
        )
        if kind == "pending":
            timeout = data.draw(st.sampled_from([0, 0, 1, 2, 5]), label="timeout")
            return replace(spec, flags=spec.flags | PENDING, timeout=timeout)
        if kind == "invalid":
            broken: dict[str, Any] = data.draw(
                st.sampled_from(
                    [
                        {"id": ""},
                        {"id": "x" * 65},
                        {"amount": 0},
                        {"amount": -3},
                        {"amount": None},
                        {"amount": MAX_AMOUNT + 1},
                        {"code": 0},
                        {"credit_account_id": debit},
                        {"timeout": 3},
                        {"timeout": -1, "flags": spec.flags | PENDING},
                        {"pending_id": "t1"},
                        {"flags": spec.flags | PENDING | POST, "pending_id": "t1"},
                        {"flags": spec.flags | EXPIRED},
                        {"flags": spec.flags | 64},
                        {"flags": spec.flags | POST},  # no pending id
                    ]
                ),
                label="broken",
            )
            return replace(spec, **broken)
        return spec

    def run_batch(self, specs: list[TransferSpec], system: bool) -> None:
        expected, expected_created = self.ref.post(specs, self.now, system)
        outcome = self.store.post(specs, self.now, system)
        _check_outcome(specs, outcome, expected, expected_created, self.now)
        self.sent.extend(s for s in specs if s.id)

    @rule(data=st.data(), size=st.integers(1, 8))
    def client_batch(self, data: st.DataObject, size: int) -> None:
        self.now += data.draw(st.sampled_from([0, 0, 1, 2]), label="wait") * SECOND
        batch: list[TransferSpec] = []
        for _ in range(size):
            batch.append(self.draw_spec(data, batch))
        self.run_batch(batch, system=False)

    @rule(seconds=st.sampled_from([1, 2, 3, 6]), micros=st.integers(-1, 1))
    def time_passes(self, seconds: int, micros: int) -> None:
        self.now += max(0, seconds * SECOND + micros)

    @rule(data=st.data())
    def expiry_job(self, data: st.DataObject) -> None:
        """The ledger's own job: void pending transfers with EXPIRED (some not yet due)."""
        pendings = [t for t in self.store.transfers.values() if t.flags & PENDING]
        if not pendings:
            return
        self.now += data.draw(st.sampled_from([0, 1, 2, 5]), label="wait") * SECOND
        resolved = {t.pending_id for t in self.store.transfers.values() if t.pending_id}
        timed = [t for t in pendings if t.timeout and t.id not in resolved]
        pool = timed if timed and data.draw(st.integers(0, 3), label="timed") > 0 else pendings
        chosen = data.draw(st.lists(st.sampled_from(pool), max_size=4), label="expire")
        specs = [
            TransferSpec(
                id=f"exp-{t.id}",
                pending_id=t.id,
                flags=VOID | EXPIRED,
                amount=None,
            )
            for t in chosen
        ]
        if specs:
            self.run_batch(specs, system=True)

    @invariant()
    def counters_match_the_reference(self) -> None:
        for aid, account in self.store.accounts.items():
            assert _counters(account) == _counters(self.ref.accounts[aid]), f"account {aid}"
        assert self.store.order == self.ref.order
        assert self.store.transfers == self.ref.transfers

    @invariant()
    def books_balance(self) -> None:
        _check_books(self.store.accounts, self.store.transfers)


LedgerMachine.TestCase.settings = settings(
    max_examples=300,
    stateful_step_count=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestLedgerModel = LedgerMachine.TestCase


# --- scenarios the machine must reach, spelled out ------------------------------------------


def _fresh_store() -> Store:
    return Store()


def _both(
    store: Store, ref: Reference, specs: list[TransferSpec], now: int = T0, system: bool = False
) -> list[Result]:
    expected, created = ref.post(specs, now, system)
    outcome = store.post(specs, now, system)
    _check_outcome(specs, outcome, expected, created, now)
    _check_books(store.accounts, store.transfers)
    results: list[Result] = outcome.results
    return results


def _fund(store: Store, ref: Reference, account: int, amount: int) -> None:
    spec = TransferSpec(f"fund-{account}-{amount}", 1, account, amount, "CNY", 1)
    assert _both(store, ref, [spec]) == [Result.OK]


def test_post_pending_created_earlier_in_the_same_batch() -> None:
    store, ref = _fresh_store(), Reference()
    _fund(store, ref, 2, 100)
    batch = [
        TransferSpec("hold", 2, 3, 40, "CNY", 5, flags=PENDING),
        TransferSpec("capture", amount=25, flags=POST, pending_id="hold"),
        TransferSpec("again", amount=None, flags=VOID, pending_id="hold"),
    ]
    assert _both(store, ref, batch) == [
        Result.OK,
        Result.OK,
        Result.PENDING_TRANSFER_ALREADY_POSTED,
    ]
    assert _counters(store.accounts[2]) == (0, 25, 0, 100)
    assert _counters(store.accounts[3]) == (0, 0, 0, 25)
    assert store.transfers["capture"].amount == 25
    assert store.transfers["capture"].code == 5


def test_full_post_with_amount_none_and_void_release_the_hold() -> None:
    store, ref = _fresh_store(), Reference()
    _fund(store, ref, 2, 100)
    batch = [
        TransferSpec("h1", 2, 3, 30, "CNY", 5, flags=PENDING),
        TransferSpec("h2", 2, 3, 70, "CNY", 5, flags=PENDING),
        TransferSpec("h3", 2, 3, 1, "CNY", 5, flags=PENDING),
    ]
    assert _both(store, ref, batch) == [Result.OK, Result.OK, Result.EXCEEDS_CREDITS]
    assert store.accounts[2].available == 0
    batch = [
        TransferSpec("p1", amount=None, flags=POST, pending_id="h1"),
        TransferSpec("v2", amount=None, flags=VOID, pending_id="h2"),
        TransferSpec("p1-too-much", amount=71, flags=POST, pending_id="h2"),
    ]
    assert _both(store, ref, batch) == [
        Result.OK,
        Result.OK,
        Result.PENDING_TRANSFER_ALREADY_VOIDED,
    ]
    assert store.transfers["p1"].amount == 30
    assert _counters(store.accounts[2]) == (0, 30, 0, 100)
    assert store.accounts[2].available == 70


def test_failed_chain_leaves_no_trace_and_open_chain_fails() -> None:
    store, ref = _fresh_store(), Reference()
    _fund(store, ref, 2, 10)
    chain = [
        TransferSpec("a", 2, 3, 5, "CNY", 4, flags=LINKED | PENDING),
        TransferSpec("b", amount=None, flags=LINKED | POST, pending_id="a"),
        TransferSpec("c", 2, 5, 6, "CNY", 3),  # only 5 left: the chain fails
        TransferSpec("d", 2, 5, 6, "CNY", 3),  # on its own: fine
        TransferSpec("e", 2, 5, 1, "CNY", 3, flags=LINKED),
        TransferSpec("f", 2, 5, 1, "CNY", 3, flags=LINKED),  # linked to nothing
    ]
    assert _both(store, ref, chain) == [
        Result.LINKED_EVENT_FAILED,
        Result.LINKED_EVENT_FAILED,
        Result.EXCEEDS_CREDITS,
        Result.OK,
        Result.LINKED_EVENT_FAILED,
        Result.LINKED_EVENT_CHAIN_OPEN,
    ]
    assert set(store.transfers) == {"fund-2-10", "d"}
    assert _counters(store.accounts[2]) == (0, 6, 0, 10)
    # The ids of the failed chain are still free.
    assert _both(store, ref, [TransferSpec("a", 2, 3, 1, "CNY", 4)]) == [Result.OK]
    # A pending transfer resolved inside a failed chain is open again for the rest of the batch.
    assert _both(store, ref, [TransferSpec("hold", 2, 3, 2, "CNY", 4, flags=PENDING)]) == [
        Result.OK
    ]
    batch = [
        TransferSpec("v", amount=None, flags=LINKED | VOID, pending_id="hold"),
        TransferSpec("too-much", 2, 5, 1000, "CNY", 3),
        TransferSpec("p", amount=None, flags=POST, pending_id="hold"),
    ]
    assert _both(store, ref, batch) == [
        Result.LINKED_EVENT_FAILED,
        Result.EXCEEDS_CREDITS,
        Result.OK,
    ]
    assert store.transfers["p"].amount == 2
    assert "v" not in store.transfers


def test_duplicate_ids() -> None:
    store, ref = _fresh_store(), Reference()
    _fund(store, ref, 2, 10)
    first = TransferSpec("p2p", 2, 3, 4, "CNY", 4, reference="order-1")
    batch = [first, first, replace(first, amount=5), replace(first, reference=None)]
    assert _both(store, ref, batch) == [
        Result.OK,
        Result.EXISTS,
        Result.EXISTS_WITH_DIFFERENT_FIELDS,
        Result.EXISTS_WITH_DIFFERENT_FIELDS,
    ]
    assert _both(store, ref, [first, replace(first, code=5)]) == [
        Result.EXISTS,
        Result.EXISTS_WITH_DIFFERENT_FIELDS,
    ]
    assert _counters(store.accounts[2]) == (0, 4, 0, 10)
    # A post retried with inherited fields omitted or restated is the same transfer.
    hold = TransferSpec("hold", 2, 3, 6, "CNY", 4, flags=PENDING)
    post = TransferSpec("post", amount=None, flags=POST, pending_id="hold")
    assert _both(store, ref, [hold, post]) == [Result.OK, Result.OK]
    restated = replace(post, debit_account_id=2, credit_account_id=3, ledger="CNY", amount=6)
    assert _both(store, ref, [post, restated, replace(post, amount=5)]) == [
        Result.EXISTS,
        Result.EXISTS,
        Result.EXISTS_WITH_DIFFERENT_FIELDS,
    ]


def test_expiry() -> None:
    store, ref = _fresh_store(), Reference()
    _fund(store, ref, 2, 100)
    holds = [
        TransferSpec("h1", 2, 3, 10, "CNY", 5, flags=PENDING, timeout=2),
        TransferSpec("h2", 2, 3, 10, "CNY", 5, flags=PENDING, timeout=2),
        TransferSpec("h3", 2, 3, 10, "CNY", 5, flags=PENDING),  # never expires
    ]
    assert _both(store, ref, holds) == [Result.OK] * 3
    expire_h1 = TransferSpec("x1", pending_id="h1", flags=VOID | EXPIRED, amount=None)
    early = T0 + 2 * SECOND - 1
    assert _both(store, ref, [expire_h1], now=early, system=True) == [
        Result.PENDING_TRANSFER_NOT_EXPIRED
    ]
    assert _both(
        store, ref, [TransferSpec("ok-early", flags=POST, pending_id="h2")], now=early
    ) == [Result.OK]
    due = T0 + 2 * SECOND
    batch = [
        TransferSpec("late-post", amount=None, flags=POST, pending_id="h1"),
        TransferSpec("late-void", amount=None, flags=VOID, pending_id="h1"),
        TransferSpec("late-h3", amount=5, flags=POST, pending_id="h3"),
    ]
    assert _both(store, ref, batch, now=due) == [
        Result.PENDING_TRANSFER_EXPIRED,
        Result.PENDING_TRANSFER_EXPIRED,
        Result.OK,
    ]
    # Only the ledger itself may set EXPIRED.
    assert _both(store, ref, [expire_h1], now=due) == [Result.FLAGS_RESERVED]
    never = TransferSpec("x3", pending_id="h3", flags=VOID | EXPIRED, amount=None)
    assert _both(store, ref, [expire_h1, never], now=due, system=True) == [
        Result.OK,
        Result.PENDING_TRANSFER_ALREADY_POSTED,
    ]
    assert store.transfers["x1"].amount == 10
    assert store.transfers["x1"].flags == VOID | EXPIRED
    assert _counters(store.accounts[2]) == (0, 15, 0, 100)


def test_overflow_and_amount_limits() -> None:
    store, ref = _fresh_store(), Reference()
    big = TransferSpec("big", 1, 5, MAX_AMOUNT, "CNY", 1)
    assert _both(store, ref, [big]) == [Result.OK]
    more = TransferSpec("more", 1, 5, 1, "CNY", 1)
    outcome = store.post([more], T0, False)
    assert outcome.results == [Result.OVERFLOWS]
    assert store.post([replace(more, id="huge", amount=MAX_AMOUNT + 1)], T0, False).results == [
        Result.AMOUNT_TOO_LARGE
    ]
    assert _counters(store.accounts[5]) == (0, 0, 0, MAX_AMOUNT)


@pytest.mark.parametrize(
    ("spec", "result"),
    [
        (TransferSpec("x", 1, 99, 1, "CNY", 1), Result.CREDIT_ACCOUNT_NOT_FOUND),
        (TransferSpec("x", 99, 1, 1, "CNY", 1), Result.DEBIT_ACCOUNT_NOT_FOUND),
        (TransferSpec("x", 1, 6, 1, "CNY", 1), Result.ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER),
        (
            TransferSpec("x", 1, 5, 1, "HKD", 1),
            Result.TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS,
        ),
        (TransferSpec("x", 4, 1, 1, "CNY", 1), Result.OK),
        (TransferSpec("x", 1, 4, 1, "CNY", 1), Result.EXCEEDS_DEBITS),
        (TransferSpec("x", 7, 6, 1, "HKD", 1), Result.EXCEEDS_CREDITS),
        (TransferSpec("x", 6, 7, 1, "HKD", 1), Result.OK),
        (TransferSpec("x", flags=POST, pending_id="nope"), Result.PENDING_TRANSFER_NOT_FOUND),
    ],
)
def test_single_transfer_results(spec: TransferSpec, result: Result) -> None:
    store, ref = _fresh_store(), Reference()
    assert _both(store, ref, [spec]) == [result]


def test_resolving_a_transfer_that_is_not_pending() -> None:
    """The same answer whether the plain transfer was posted earlier or in this batch."""
    store, ref = _fresh_store(), Reference()
    plain = TransferSpec("plain", 1, 2, 5, "CNY", 1)
    void = TransferSpec("void-plain", flags=VOID, pending_id="plain")
    assert _both(store, ref, [plain, void]) == [Result.OK, Result.PENDING_TRANSFER_NOT_PENDING]
    assert _both(store, ref, [replace(void, id="void-plain-2")]) == [
        Result.PENDING_TRANSFER_NOT_PENDING
    ]


@pytest.mark.parametrize("system", [False, True])
@pytest.mark.parametrize("unknown_bit", [32, 64, 1 << 20])
def test_unknown_flag_bits_are_reserved_for_everyone(system: bool, unknown_bit: int) -> None:
    """Even the ledger's own (system) batches cannot record flags nobody defined."""
    store, ref = _fresh_store(), Reference()
    hold = TransferSpec("hold", 1, 2, 5, "CNY", 1, flags=PENDING, timeout=1)
    assert _both(store, ref, [hold]) == [Result.OK]
    later = T0 + 5 * SECOND
    specs = [
        TransferSpec("plain", 1, 2, 5, "CNY", 1, flags=unknown_bit),
        TransferSpec("void", pending_id="hold", flags=VOID | EXPIRED | unknown_bit),
    ]
    outcome = store.post(specs, later, system)
    assert outcome.results == [Result.FLAGS_RESERVED, Result.FLAGS_RESERVED]
    assert outcome.created == []
