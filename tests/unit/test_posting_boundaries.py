"""Boundaries of the posting rules that the model test does not pin (each found by mutmut).

``apply_batch`` is called directly on hand-made account states, so every test names the
exact edge: a counter that ends exactly at its limit, a retry that differs in one field,
the pending status an expiry leaves behind, the default of ``system``.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from citywallet.ledger.posting import apply_batch, same_fields, validate_static
from citywallet.ledger.types import (
    MAX_AMOUNT,
    MAX_ID_LENGTH,
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
PENDING = TransferFlags.PENDING
POST = TransferFlags.POST_PENDING
VOID = TransferFlags.VOID_PENDING
EXPIRED = TransferFlags.EXPIRED
LINKED = TransferFlags.LINKED
SECOND = 1_000_000
T0 = 1_750_000_000 * SECOND


def account(
    aid: int, flags: int = 0, *, debits_posted: int = 0, credits_posted: int = 0
) -> AccountState:
    """A CNY account with the given posted counters."""
    return AccountState(
        aid, "CNY", int(flags), debits_posted=debits_posted, credits_posted=credits_posted
    )


def post_one(
    spec: TransferSpec, *accounts: AccountState, **kwargs: bool
) -> tuple[Result, dict[int, AccountState]]:
    """Apply one spec to ``accounts``; its result and the accounts afterwards."""
    states = {a.id: a for a in accounts}
    outcome = apply_batch([spec], states, {}, {}, now=T0, **kwargs)
    return outcome.results[0], states


# --- balance limits at exactly the boundary ---------------------------------------------------


def test_a_debit_may_use_exactly_the_credits() -> None:
    spec = TransferSpec("t", 1, 2, 10, "CNY", 1)
    result, states = post_one(spec, account(1, NO_OVERDRAFT, credits_posted=10), account(2))
    assert result is Result.OK
    assert states[1].debits_posted == 10
    result, _ = post_one(spec, account(1, NO_OVERDRAFT, credits_posted=9), account(2))
    assert result is Result.EXCEEDS_CREDITS


def test_a_credit_may_use_exactly_the_debits() -> None:
    """``credits_must_not_exceed_debits``: credits may reach the debits, not pass them."""
    spec = TransferSpec("t", 1, 2, 10, "CNY", 1)
    result, states = post_one(spec, account(1), account(2, DRAWN_DOWN, debits_posted=10))
    assert result is Result.OK
    assert states[2].credits_posted == 10
    result, states = post_one(spec, account(1), account(2, DRAWN_DOWN, debits_posted=9))
    assert result is Result.EXCEEDS_DEBITS
    assert states[2].credits_posted == 0


def test_pending_credits_count_against_the_debits() -> None:
    hold = TransferSpec("h", 1, 2, 6, "CNY", 1, flags=PENDING)
    more = TransferSpec("m", 1, 2, 5, "CNY", 1)
    states = {1: account(1), 2: account(2, DRAWN_DOWN, debits_posted=10)}
    outcome = apply_batch([hold, more], states, {}, {}, now=T0)
    assert outcome.results == [Result.OK, Result.EXCEEDS_DEBITS]
    assert (states[2].credits_pending, states[2].credits_posted) == (6, 0)


@pytest.mark.parametrize("side", ["debit", "credit"])
def test_counters_may_reach_max_amount_but_not_pass_it(side: str) -> None:
    """Both the debit and the credit side's posted totals are guarded against overflow."""
    spec = TransferSpec("t", 1, 2, 1, "CNY", 1)
    for posted, result in ((MAX_AMOUNT - 1, Result.OK), (MAX_AMOUNT, Result.OVERFLOWS)):
        if side == "debit":
            debit, credit = account(1, debits_posted=posted), account(2)
        else:
            debit, credit = account(1), account(2, credits_posted=posted)
        got, states = post_one(spec, debit, credit)
        assert got is result
        full = states[1].debits_posted if side == "debit" else states[2].credits_posted
        assert full == (MAX_AMOUNT if result is Result.OK else posted)


def test_pending_debits_count_toward_overflow() -> None:
    debit = AccountState(1, "CNY", 0, debits_pending=MAX_AMOUNT)
    result, _ = post_one(TransferSpec("t", 1, 2, 1, "CNY", 1), debit, account(2))
    assert result is Result.OVERFLOWS


# --- retries: same id, other fields ---------------------------------------------------------

HOLD = Transfer(
    id="h",
    debit_account_id=1,
    credit_account_id=2,
    amount=10,
    ledger="CNY",
    code=7,
    flags=int(PENDING),
    pending_id=None,
    timeout=60,
    reference="order-1",
    timestamp=T0,
)
HOLD_SPEC = TransferSpec("h", 1, 2, 10, "CNY", 7, flags=PENDING, timeout=60, reference="order-1")
CAPTURE = Transfer(
    id="c",
    debit_account_id=1,
    credit_account_id=2,
    amount=4,
    ledger="CNY",
    code=7,
    flags=int(POST),
    pending_id="h",
    timeout=0,
    reference="order-1",
    timestamp=T0,
)
CAPTURE_SPEC = TransferSpec("c", amount=4, flags=POST, pending_id="h")


def test_the_same_spec_is_the_same_transfer() -> None:
    assert same_fields(HOLD_SPEC, HOLD)
    assert same_fields(CAPTURE_SPEC, CAPTURE)


@pytest.mark.parametrize(
    "change",
    [
        {"flags": PENDING | LINKED},
        {"flags": 0, "timeout": 0},
        {"pending_id": "other"},
        {"timeout": 61},
        {"timeout": 0},
        {"debit_account_id": 3},
        {"credit_account_id": 3},
        {"ledger": "HKD"},
        {"code": 8},
        {"amount": 11},
        {"amount": 0},
        {"reference": "order-2"},
        {"reference": None},
    ],
)
def test_a_retry_that_differs_in_any_field_is_another_transfer(change: dict[str, object]) -> None:
    spec = replace(HOLD_SPEC, **change)
    assert not same_fields(spec, HOLD)


def test_a_post_may_omit_or_restate_what_it_inherits() -> None:
    omitted = replace(CAPTURE_SPEC, amount=None)
    restated = replace(CAPTURE_SPEC, debit_account_id=1, credit_account_id=2, ledger="CNY", code=7)
    for spec in (omitted, replace(CAPTURE_SPEC, amount=0), restated):
        assert same_fields(spec, CAPTURE)
    assert same_fields(replace(CAPTURE_SPEC, reference="order-1"), CAPTURE)


@pytest.mark.parametrize(
    "change",
    [
        {"flags": VOID},
        {"flags": POST | LINKED},
        {"pending_id": "h2"},
        {"debit_account_id": 3},
        {"credit_account_id": 3},
        {"ledger": "HKD"},
        {"code": 8},
        {"amount": 3},
        {"reference": "order-2"},
    ],
)
def test_a_post_restating_another_value_is_another_transfer(change: dict[str, object]) -> None:
    spec = replace(CAPTURE_SPEC, **change)
    assert not same_fields(spec, CAPTURE)


@pytest.mark.parametrize(
    "change", [{"flags": 0, "timeout": 0}, {"timeout": 30}, {"reference": "order-2"}]
)
def test_apply_batch_answers_exists_with_different_fields(change: dict[str, object]) -> None:
    """Within the batch that recorded it and in a later one."""
    states = {1: account(1), 2: account(2)}
    retry = replace(HOLD_SPEC, **change)
    outcome = apply_batch([HOLD_SPEC, retry], states, {}, {}, now=T0)
    assert outcome.results == [Result.OK, Result.EXISTS_WITH_DIFFERENT_FIELDS]
    assert [t.id for t in outcome.created] == ["h"]
    assert (states[1].debits_pending, states[1].debits_posted) == (10, 0)
    outcome = apply_batch([retry, HOLD_SPEC], states, {"h": outcome.created[0]}, {}, now=T0)
    assert outcome.results == [Result.EXISTS_WITH_DIFFERENT_FIELDS, Result.EXISTS]
    assert outcome.created == []


def test_a_retried_post_with_another_pending_id_is_refused() -> None:
    states = {1: account(1), 2: account(2)}
    pendings = {
        "h": PendingState(HOLD, PendingStatus.POSTED),
        "h2": PendingState(replace(HOLD, id="h2")),
    }
    retry = replace(CAPTURE_SPEC, pending_id="h2")
    outcome = apply_batch([retry], states, {"c": CAPTURE}, pendings, now=T0)
    assert outcome.results == [Result.EXISTS_WITH_DIFFERENT_FIELDS]
    assert pendings["h2"].status is PendingStatus.PENDING
    assert outcome.created == []


# --- expiry -----------------------------------------------------------------------------------


def test_an_expiry_leaves_the_pending_transfer_expired_not_voided() -> None:
    states = {1: account(1), 2: account(2)}
    pendings = {"h": PendingState(HOLD)}
    due = T0 + 60 * SECOND
    expire = TransferSpec("x", flags=VOID | EXPIRED, pending_id="h", amount=None)
    late = TransferSpec("late", flags=POST, pending_id="h", amount=None)
    outcome = apply_batch([expire, late], states, {}, pendings, now=due, system=True)
    assert outcome.results == [Result.OK, Result.PENDING_TRANSFER_EXPIRED]
    assert pendings["h"].status is PendingStatus.EXPIRED
    assert outcome.created[0].flags == VOID | EXPIRED
    assert outcome.resolved_pending_ids == {"h"}


def test_a_void_leaves_the_pending_transfer_voided() -> None:
    pendings = {"h": PendingState(HOLD)}
    void = TransferSpec("v", flags=VOID, pending_id="h")
    late = TransferSpec("late", flags=POST, pending_id="h")
    outcome = apply_batch(
        [void, late], {1: account(1), 2: account(2)}, {}, pendings, now=T0, system=True
    )
    assert outcome.results == [Result.OK, Result.PENDING_TRANSFER_ALREADY_VOIDED]
    assert pendings["h"].status is PendingStatus.VOIDED


def test_only_system_batches_may_expire_and_system_is_off_by_default() -> None:
    expire = TransferSpec("x", flags=VOID | EXPIRED, pending_id="h", amount=None)
    assert validate_static(expire) is Result.FLAGS_RESERVED
    assert validate_static(expire, system=True) is Result.OK
    pendings = {"h": PendingState(HOLD)}
    due = T0 + 60 * SECOND
    outcome = apply_batch([expire], {1: account(1), 2: account(2)}, {}, pendings, now=due)
    assert outcome.results == [Result.FLAGS_RESERVED]
    assert pendings["h"].status is PendingStatus.PENDING


# --- static checks at their edges ---------------------------------------------------------------

PLAIN = TransferSpec("t", 1, 2, 1, "CNY", 1)


@pytest.mark.parametrize(
    ("change", "result"),
    [
        ({"id": "x" * MAX_ID_LENGTH}, Result.OK),
        ({"id": "x" * (MAX_ID_LENGTH + 1)}, Result.ID_TOO_LONG),
        ({"id": ""}, Result.ID_MUST_NOT_BE_EMPTY),
        ({"amount": MAX_AMOUNT}, Result.OK),
        ({"amount": MAX_AMOUNT + 1}, Result.AMOUNT_TOO_LARGE),
        ({"amount": 0}, Result.AMOUNT_MUST_BE_POSITIVE),
        ({"amount": -1}, Result.AMOUNT_MUST_BE_POSITIVE),
        ({"amount": None}, Result.AMOUNT_MUST_BE_POSITIVE),
        ({"timeout": -1}, Result.TIMEOUT_MUST_NOT_BE_NEGATIVE),
        ({"timeout": 1}, Result.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER),
        ({"flags": PENDING, "timeout": 1}, Result.OK),
        ({"flags": PENDING, "timeout": -1}, Result.TIMEOUT_MUST_NOT_BE_NEGATIVE),
        ({"flags": PENDING | POST}, Result.FLAGS_ARE_MUTUALLY_EXCLUSIVE),
        ({"flags": POST | VOID, "pending_id": "h"}, Result.FLAGS_ARE_MUTUALLY_EXCLUSIVE),
        ({"flags": PENDING | VOID}, Result.FLAGS_ARE_MUTUALLY_EXCLUSIVE),
        ({"flags": LINKED | PENDING}, Result.OK),
        ({"pending_id": "h"}, Result.PENDING_ID_MUST_BE_EMPTY),
        ({"credit_account_id": 1}, Result.ACCOUNTS_MUST_BE_DIFFERENT),
        ({"code": 0}, Result.CODE_MUST_NOT_BE_ZERO),
        ({"flags": POST}, Result.PENDING_ID_REQUIRED),
        ({"flags": VOID, "pending_id": ""}, Result.PENDING_ID_REQUIRED),
        ({"flags": POST, "pending_id": "h", "amount": -1}, Result.AMOUNT_MUST_BE_POSITIVE),
        ({"flags": POST, "pending_id": "h", "amount": 0}, Result.OK),
        ({"flags": POST, "pending_id": "h", "amount": None, "code": 0}, Result.OK),
        ({"flags": POST, "pending_id": "h", "amount": MAX_AMOUNT + 1}, Result.AMOUNT_TOO_LARGE),
    ],
)
def test_validate_static_edges(change: dict[str, object], result: Result) -> None:
    assert validate_static(replace(PLAIN, **change)) is result


@pytest.mark.parametrize("system", [False, True])
def test_expired_needs_void(system: bool) -> None:
    for flags in (EXPIRED, EXPIRED | POST, EXPIRED | PENDING):
        spec = TransferSpec("x", 1, 2, 1, "CNY", 1, flags=flags, pending_id="h")
        expected = Result.FLAGS_ARE_MUTUALLY_EXCLUSIVE if system else Result.FLAGS_RESERVED
        assert validate_static(spec, system=system) is expected


# --- resolving a pending transfer ---------------------------------------------------------------


def _resolve(
    spec: TransferSpec, now: int = T0
) -> tuple[Result, Transfer | None, dict[int, AccountState], PendingState]:
    """Apply ``spec`` to HOLD (10 fen from account 1 to 2, pending); what came of it."""
    states = {
        1: AccountState(1, "CNY", int(NO_OVERDRAFT), debits_pending=10, credits_posted=10),
        2: AccountState(2, "CNY", 0, credits_pending=10),
    }
    pendings = {"h": PendingState(HOLD)}
    outcome = apply_batch([spec], states, {}, pendings, now=now)
    created = outcome.created[0] if outcome.created else None
    return outcome.results[0], created, states, pendings["h"]


def test_posting_exactly_the_pending_amount_and_no_more() -> None:
    result, created, states, state = _resolve(
        TransferSpec("p", flags=POST, pending_id="h", amount=10)
    )
    assert result is Result.OK
    assert created is not None
    assert created.amount == 10
    assert (states[1].debits_pending, states[1].debits_posted) == (0, 10)
    assert (states[2].credits_pending, states[2].credits_posted) == (0, 10)
    assert state.status is PendingStatus.POSTED
    result, created, states, state = _resolve(
        TransferSpec("p", flags=POST, pending_id="h", amount=11)
    )
    assert (result, created, state.status) == (
        Result.EXCEEDS_PENDING_TRANSFER_AMOUNT,
        None,
        PendingStatus.PENDING,
    )
    assert (states[1].debits_pending, states[1].debits_posted) == (10, 0)


def test_a_partial_post_releases_the_rest() -> None:
    result, created, states, _ = _resolve(TransferSpec("p", flags=POST, pending_id="h", amount=4))
    assert result is Result.OK
    assert created == Transfer(
        id="p",
        debit_account_id=1,
        credit_account_id=2,
        amount=4,
        ledger="CNY",
        code=7,
        flags=int(POST),
        pending_id="h",
        timeout=0,
        reference="order-1",
        timestamp=T0,
    )
    assert (states[1].debits_pending, states[1].debits_posted) == (0, 4)
    assert (states[2].credits_pending, states[2].credits_posted) == (0, 4)


@pytest.mark.parametrize(
    ("amount", "ok"), [(None, True), (0, True), (10, True), (9, False), (11, False)]
)
def test_a_void_may_restate_only_the_whole_amount(amount: int | None, ok: bool) -> None:
    result, created, states, state = _resolve(
        TransferSpec("v", flags=VOID, pending_id="h", amount=amount, reference="undo")
    )
    if not ok:
        assert (result, state.status) == (
            Result.EXCEEDS_PENDING_TRANSFER_AMOUNT,
            PendingStatus.PENDING,
        )
        return
    assert result is Result.OK
    assert created is not None
    assert (created.amount, created.reference, created.timeout) == (10, "undo", 0)
    assert (states[1].debits_pending, states[1].debits_posted) == (0, 0)
    assert (states[2].credits_pending, states[2].credits_posted) == (0, 0)
    assert state.status is PendingStatus.VOIDED


@pytest.mark.parametrize(
    ("change", "result"),
    [
        ({"debit_account_id": 3}, Result.PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT),
        ({"credit_account_id": 3}, Result.PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT),
        ({"ledger": "HKD"}, Result.PENDING_TRANSFER_HAS_DIFFERENT_LEDGER),
        ({"code": 8}, Result.PENDING_TRANSFER_HAS_DIFFERENT_CODE),
        ({"debit_account_id": 1, "credit_account_id": 2, "ledger": "CNY", "code": 7}, Result.OK),
    ],
)
def test_a_post_may_restate_but_not_change_the_pending_fields(
    change: dict[str, object], result: Result
) -> None:
    spec = replace(TransferSpec("p", flags=POST, pending_id="h"), **change)
    assert _resolve(spec)[0] is result


def test_a_pending_transfer_expires_at_exactly_its_timeout() -> None:
    post = TransferSpec("p", flags=POST, pending_id="h")
    assert _resolve(post, now=T0 + 60 * SECOND - 1)[0] is Result.OK
    assert _resolve(post, now=T0 + 60 * SECOND)[0] is Result.PENDING_TRANSFER_EXPIRED


def test_a_failed_chain_gives_the_pending_transfer_its_status_back() -> None:
    states = {1: account(1), 2: account(2), 3: account(3, NO_OVERDRAFT)}
    states[1].debits_pending = states[2].credits_pending = 10
    pendings = {"h": PendingState(HOLD)}
    chain = [
        TransferSpec("p", flags=POST | LINKED, pending_id="h"),
        TransferSpec("overdraw", 3, 2, 1, "CNY", 1),  # account 3 holds nothing
    ]
    outcome = apply_batch(chain, states, {}, pendings, now=T0)
    assert outcome.results == [Result.LINKED_EVENT_FAILED, Result.EXCEEDS_CREDITS]
    assert pendings["h"].status is PendingStatus.PENDING
    assert (states[1].debits_pending, states[1].debits_posted) == (10, 0)
    assert outcome.resolved_pending_ids == set()
