"""Pure: the switch's transfer state machine (interop/transfers.py) and positions under it.

A small in-memory switch below applies ``step`` and its position effects exactly as the
real one will in one transaction; the property test throws random, duplicated, late and
out-of-order messages at it and checks that nothing happens twice.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from citywallet.interop import positions
from citywallet.interop.conditions import condition_of, new_fulfilment
from citywallet.interop.messages import Amount, ErrorCode, TransferPrepare
from citywallet.interop.settlement import CommittedTransfer, close_window
from citywallet.interop.transfers import (
    CommitPosition,
    Event,
    ForwardPrepare,
    Fulfil,
    NotifyState,
    PositionChecked,
    Prepare,
    Query,
    Reject,
    ReleasePosition,
    ReservePosition,
    SendError,
    State,
    Timeout,
    Transfer,
    step,
)

T0 = datetime(2026, 12, 7, 13, 30, tzinfo=UTC)
EXPIRY = T0 + timedelta(seconds=30)
FULFILMENT = new_fulfilment()
WRONG = new_fulfilment()
TID = "b51ec534-ee48-4575-b6a9-ead2955b8069"


def _prepare(amount: int = 500, **changes: Any) -> TransferPrepare:
    fields: dict[str, Any] = {
        "transfer_id": TID,
        "payer_fsp": "a",
        "payee_fsp": "b",
        "amount": Amount(amount=amount),
        "ilp_condition": condition_of(FULFILMENT),
        "expiration": EXPIRY,
        **changes,
    }
    return TransferPrepare(**fields)


@dataclass
class Switch:
    """What the switch process will do with ``step``'s outcome, minus storage and HTTP."""

    caps: dict[str, int] = field(default_factory=lambda: {"a": 1000, "b": 1000, "c": 1000})
    record: Transfer | None = None
    log: list[object] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.positions = {p: positions.Position(p, cap) for p, cap in self.caps.items()}

    def send(self, event: Event) -> list[object]:
        outcome = step(self.record, event)
        self.record = outcome.transfer
        sent: list[object] = []
        for effect in outcome.effects:
            self.log.append(effect)
            if isinstance(effect, ReservePosition):
                result = positions.reserve(self.positions[effect.participant], effect.amount)
                self.positions[effect.participant] = result.position
                sent += self.send(PositionChecked(TID, reserved=result.ok))
            elif isinstance(effect, CommitPosition):
                payer, payee = self.positions[effect.payer], self.positions[effect.payee]
                self.positions[effect.payer] = positions.commit_payer(payer, effect.amount)
                self.positions[effect.payee] = positions.credit_payee(payee, effect.amount)
            elif isinstance(effect, ReleasePosition):
                payer = self.positions[effect.participant]
                self.positions[effect.participant] = positions.release(payer, effect.amount)
            else:
                sent.append(effect)
        return sent

    @property
    def state(self) -> State | None:
        return None if self.record is None else self.record.state


def test_happy_path() -> None:
    switch = Switch()
    assert switch.send(Prepare("a", _prepare(), T0)) == [ForwardPrepare("b")]
    assert switch.state is State.RESERVED
    assert switch.positions["a"].reserved == 500
    sent = switch.send(Fulfil("b", TID, FULFILMENT, T0 + timedelta(seconds=1)))
    assert sent == [NotifyState("a", State.COMMITTED), NotifyState("b", State.COMMITTED)]
    assert switch.state is State.COMMITTED
    assert (switch.positions["a"].position, switch.positions["a"].reserved) == (500, 0)
    assert switch.positions["b"].position == -500


def test_expiry_voids_and_tells_both() -> None:
    switch = Switch()
    switch.send(Prepare("a", _prepare(), T0))
    assert switch.send(Timeout(TID, EXPIRY - timedelta(microseconds=1))) == []
    sent = switch.send(Timeout(TID, EXPIRY))
    assert sent == [
        SendError("a", ErrorCode.TRANSFER_EXPIRED),
        SendError("b", ErrorCode.TRANSFER_EXPIRED),
    ]
    assert switch.state is State.EXPIRED
    assert switch.positions["a"] == positions.Position("a", 1000)
    # The fulfilment arrives late: refused, nothing moves.
    late = switch.send(Fulfil("b", TID, FULFILMENT, EXPIRY + timedelta(seconds=1)))
    assert late == [SendError("b", ErrorCode.TRANSFER_EXPIRED)]
    assert switch.positions["a"].reserved == 0


def test_a_fulfilment_after_expiry_but_before_the_sweep_expires_it() -> None:
    switch = Switch()
    switch.send(Prepare("a", _prepare(), T0))
    sent = switch.send(Fulfil("b", TID, FULFILMENT, EXPIRY))
    assert SendError("a", ErrorCode.TRANSFER_EXPIRED) in sent
    assert switch.state is State.EXPIRED
    assert switch.positions["a"].reserved == 0


def test_over_the_cap_is_4001_and_holds_nothing() -> None:
    switch = Switch(caps={"a": 499, "b": 0})
    assert switch.send(Prepare("a", _prepare(), T0)) == [
        SendError("a", ErrorCode.PAYER_FSP_INSUFFICIENT_LIQUIDITY)
    ]
    assert switch.state is State.ABORTED
    assert switch.positions["a"] == positions.Position("a", 499)


def test_a_duplicate_prepare_is_answered_not_applied() -> None:
    switch = Switch()
    switch.send(Prepare("a", _prepare(), T0))
    assert switch.send(Prepare("a", _prepare(), T0)) == []  # in flight: answer comes later
    switch.send(Fulfil("b", TID, FULFILMENT, T0))
    assert switch.send(Prepare("a", _prepare(), T0)) == [NotifyState("a", State.COMMITTED)]
    assert switch.positions["a"].position == 500


def test_a_duplicate_with_another_body_is_3106_and_changes_nothing() -> None:
    switch = Switch()
    switch.send(Prepare("a", _prepare(), T0))
    before = switch.record
    assert switch.send(Prepare("a", _prepare(amount=501), T0)) == [
        SendError("a", ErrorCode.MODIFIED_REQUEST)
    ]
    assert switch.record == before
    assert switch.positions["a"].reserved == 500


def test_a_wrong_fulfilment_is_refused_and_changes_nothing() -> None:
    switch = Switch()
    switch.send(Prepare("a", _prepare(), T0))
    before = switch.record
    assert switch.send(Fulfil("b", TID, WRONG, T0)) == [
        SendError("b", ErrorCode.GENERIC_VALIDATION_ERROR)
    ]
    assert switch.record == before
    switch.send(Fulfil("b", TID, FULFILMENT, T0))  # the right one still commits
    assert switch.state is State.COMMITTED


def test_only_the_payee_fulfils_and_only_the_payer_prepares() -> None:
    switch = Switch()
    assert switch.send(Prepare("c", _prepare(), T0)) == [
        SendError("c", ErrorCode.GENERIC_VALIDATION_ERROR)
    ]
    assert switch.record is None
    switch.send(Prepare("a", _prepare(), T0))
    assert switch.send(Fulfil("a", TID, FULFILMENT, T0)) == [
        SendError("a", ErrorCode.GENERIC_VALIDATION_ERROR)
    ]
    # A third participant learns nothing, not even that the transfer exists.
    assert switch.send(Fulfil("c", TID, FULFILMENT, T0)) == [
        SendError("c", ErrorCode.TRANSFER_ID_NOT_FOUND)
    ]
    assert switch.send(Query("c", TID)) == [SendError("c", ErrorCode.TRANSFER_ID_NOT_FOUND)]
    assert switch.state is State.RESERVED


def test_payee_rejection_aborts_and_releases() -> None:
    switch = Switch()
    switch.send(Prepare("a", _prepare(), T0))
    sent = switch.send(Reject("b", TID, ErrorCode.PAYEE_REJECTED_TRANSACTION, T0))
    assert sent == [SendError("a", ErrorCode.PAYEE_REJECTED_TRANSACTION)]
    assert switch.state is State.ABORTED
    assert switch.positions["a"].reserved == 0
    assert switch.send(Reject("b", TID, ErrorCode.PAYEE_REJECTED_TRANSACTION, T0)) == []
    assert switch.send(Query("a", TID)) == [NotifyState("a", State.ABORTED)]


def test_a_rejection_after_commit_learns_the_commit() -> None:
    switch = Switch()
    switch.send(Prepare("a", _prepare(), T0))
    switch.send(Fulfil("b", TID, FULFILMENT, T0))
    sent = switch.send(Reject("b", TID, ErrorCode.PAYEE_REJECTED_TRANSACTION, T0))
    assert sent == [NotifyState("b", State.COMMITTED)]
    assert switch.positions["a"].position == 500


def test_messages_about_unknown_transfers() -> None:
    switch = Switch()
    for message in (
        Fulfil("b", TID, FULFILMENT, T0),
        Query("a", TID),
        Reject("b", TID, ErrorCode.PAYEE_REJECTED_TRANSACTION, T0),
    ):
        assert switch.send(message) == [SendError(message.source, ErrorCode.TRANSFER_ID_NOT_FOUND)]
    assert switch.send(Timeout(TID, EXPIRY)) == []
    assert switch.send(PositionChecked(TID, reserved=True)) == []
    assert switch.record is None


def test_an_event_for_another_transfer_is_a_bug() -> None:
    switch = Switch()
    switch.send(Prepare("a", _prepare(), T0))
    other = "0b9a1f3c-5a6e-4d7b-8c9d-0e1f2a3b4c5d"
    with pytest.raises(ValueError, match="given the record of"):
        step(switch.record, Query("a", other))
    with pytest.raises(ValueError, match="given the record of"):
        step(switch.record, Prepare("a", _prepare(transfer_id=other), T0))


def test_an_expired_prepare_is_refused_unstored() -> None:
    switch = Switch()
    assert switch.send(Prepare("a", _prepare(), EXPIRY)) == [
        SendError("a", ErrorCode.TRANSFER_EXPIRED)
    ]
    assert switch.record is None
    assert switch.positions["a"].reserved == 0


# ---- random traffic ------------------------------------------------------------------------

RANK = {State.RECEIVED: 0, State.RESERVED: 1}
at = st.integers(0, 40).map(lambda s: T0 + timedelta(seconds=s))
events = st.one_of(
    st.builds(lambda t: Prepare("a", _prepare(), t), at),
    st.builds(lambda t: Prepare("a", _prepare(amount=7), t), at),  # same id, other body
    st.builds(
        lambda p, f, t: Fulfil(p, TID, f, t),
        st.sampled_from("abc"),
        st.sampled_from([FULFILMENT, WRONG]),
        at,
    ),
    st.builds(
        lambda p, t: Reject(p, TID, ErrorCode.PAYEE_REJECTED_TRANSACTION, t),
        st.sampled_from("abc"),
        at,
    ),
    st.builds(lambda t: Timeout(TID, t), at),
    st.builds(lambda p: Query(p, TID), st.sampled_from("abc")),
    st.builds(lambda ok: PositionChecked(TID, reserved=ok), st.booleans()),
)


@given(st.lists(events, max_size=25), st.sampled_from([0, 499, 500, 10_000]))
def test_random_traffic_never_applies_anything_twice(script: list[Event], cap: int) -> None:
    switch = Switch(caps={"a": cap, "b": 0, "c": 0})
    states: list[State] = []
    first: TransferPrepare | None = None
    for message in script:
        switch.send(message)
        if switch.record is not None:
            states.append(switch.record.state)
            first = first or switch.record.prepare
    switch.send(Timeout(TID, EXPIRY))  # the sweep always comes
    event(f"final state: {switch.state}")

    effects = [
        e for e in switch.log if isinstance(e, ReservePosition | CommitPosition | ReleasePosition)
    ]
    reserves = [e for e in effects if isinstance(e, ReservePosition)]
    endings = [e for e in effects if isinstance(e, CommitPosition | ReleasePosition)]
    assert len(reserves) <= 1
    assert len(endings) <= 1
    # The record only moves forward; a final state is never left.
    for before, after in itertools.pairwise(states):
        if before.final:
            assert after is before
        else:
            assert RANK.get(after, 2) >= RANK[before]
    # Every stored transfer ends final, holding nothing, with positions that net to zero.
    if switch.record is not None:
        assert switch.record.state.final
        assert switch.record.prepare == first  # the first stored body won; others got 3106
    assert all(p.reserved == 0 for p in switch.positions.values())
    assert sum(p.position for p in switch.positions.values()) == 0
    committed = switch.state is State.COMMITTED
    assert switch.positions["a"].position == (first.amount.amount if committed and first else 0)
    assert switch.positions["a"].position <= cap
    if committed:
        assert switch.record is not None
        assert switch.record.fulfilment == FULFILMENT
        assert any(
            isinstance(e, Fulfil)
            and e.source == "b"
            and e.fulfilment == FULFILMENT
            and e.now < EXPIRY
            for e in script
        )


# ---- many transfers sharing positions, then settlement -----------------------------------

IDS = [f"00000000-0000-4000-8000-00000000000{i}" for i in range(6)]
PAIRS = [("a", "b"), ("b", "a"), ("a", "c"), ("c", "b")]


def _traffic_prepare(i: int) -> TransferPrepare:
    payer, payee = PAIRS[i % len(PAIRS)]
    return _prepare(amount=100 * (i + 1), transfer_id=IDS[i], payer_fsp=payer, payee_fsp=payee)


traffic = st.lists(
    st.tuples(
        # weighted so that a good share of transfers commit before the final sweep
        st.sampled_from(["prepare"] * 3 + ["fulfil"] * 3 + ["wrong", "reject", "timeout"]),
        st.integers(0, len(IDS) - 1),
        st.integers(0, 35).map(lambda s: T0 + timedelta(seconds=s)),
    ),
    min_size=10,
    max_size=60,
)


@given(traffic, st.integers(0, 1500))
def test_many_transfers_keep_positions_within_caps_and_settle_to_them(
    script: list[tuple[str, int, datetime]], cap: int
) -> None:
    book = {p: positions.Position(p, cap=cap) for p in "abc"}
    records: dict[str, Transfer | None] = dict.fromkeys(IDS)

    def send(tid: str, message: Event) -> None:
        outcome = step(records[tid], message)
        records[tid] = outcome.transfer
        for effect in outcome.effects:
            if isinstance(effect, ReservePosition):
                result = positions.reserve(book[effect.participant], effect.amount)
                book[effect.participant] = result.position
                send(tid, PositionChecked(tid, reserved=result.ok))
            elif isinstance(effect, CommitPosition):
                book[effect.payer] = positions.commit_payer(book[effect.payer], effect.amount)
                book[effect.payee] = positions.credit_payee(book[effect.payee], effect.amount)
            elif isinstance(effect, ReleasePosition):
                book[effect.participant] = positions.release(
                    book[effect.participant], effect.amount
                )

    for kind, i, now in script:
        tid, prepare = IDS[i], _traffic_prepare(i)
        if kind == "prepare":
            send(tid, Prepare(prepare.payer_fsp, prepare, now))
        elif kind in ("fulfil", "wrong"):
            secret = FULFILMENT if kind == "fulfil" else WRONG
            send(tid, Fulfil(prepare.payee_fsp, tid, secret, now))
        elif kind == "reject":
            send(tid, Reject(prepare.payee_fsp, tid, ErrorCode.PAYEE_REJECTED_TRANSACTION, now))
        else:
            send(tid, Timeout(tid, now))
        for p in book.values():  # nobody ever owes more than its cap, even with holds
            assert p.position + p.reserved <= cap
    for tid in IDS:
        send(tid, Timeout(tid, EXPIRY))

    committed = [
        CommittedTransfer(r.transfer_id, r.payer, r.payee, r.amount)
        for r in records.values()
        if r is not None and r.state is State.COMMITTED
    ]
    event(f"committed transfers (3 = 3 or more): {min(len(committed), 3)}")
    report = close_window("w", committed)
    assert all(p.reserved == 0 for p in book.values())
    assert {p: book[p].position for p in "abc"} == {p: report.net(p) for p in "abc"}
