"""Pure: net debit cap positions and deferred net settlement (interop/positions, settlement)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from citywallet.interop.messages import ErrorCode
from citywallet.interop.positions import (
    Position,
    PositionError,
    commit_payer,
    credit_payee,
    release,
    reserve,
    settle,
)
from citywallet.interop.settlement import (
    CommittedTransfer,
    SettlementError,
    close_window,
    net_positions,
)

PARTICIPANTS = ["a", "b", "c", "d"]


def test_reserve_up_to_the_cap_and_not_a_fen_more() -> None:
    start = Position("a", cap=1000, position=300, reserved=200)
    assert start.headroom == 500
    assert reserve(start, 500).position.reserved == 700
    refused = reserve(start, 501)
    assert refused.refused is ErrorCode.PAYER_FSP_INSUFFICIENT_LIQUIDITY
    assert refused.position == start
    assert not refused.ok


def test_being_owed_raises_the_headroom() -> None:
    payee = credit_payee(Position("b", cap=0), 800)
    assert payee.position == -800
    assert reserve(payee, 800).ok
    assert not reserve(payee, 801).ok


def test_commit_and_release_move_the_reservation() -> None:
    held = reserve(Position("a", cap=1000), 400).position
    assert commit_payer(held, 400) == Position("a", cap=1000, position=400)
    assert release(held, 400) == Position("a", cap=1000)
    with pytest.raises(PositionError):
        release(held, 401)
    with pytest.raises(PositionError):
        commit_payer(Position("a", cap=1000), 1)
    for bad in (0, -1, True):
        with pytest.raises(PositionError):
            reserve(held, bad)


def test_settling_a_window_clears_the_position() -> None:
    owing = Position("a", cap=1000, position=400)
    assert settle(owing, 400).position == 0


ops = st.lists(
    st.tuples(st.sampled_from(["reserve", "commit", "release"]), st.integers(1, 600)),
    max_size=40,
)


@given(st.integers(0, 2000), ops)
def test_a_payer_never_owes_more_than_its_cap(cap: int, script: list[tuple[str, int]]) -> None:
    position = Position("a", cap=cap)
    held: list[int] = []
    for op, amount in script:
        if op == "reserve":
            result = reserve(position, amount)
            if result.ok:
                held.append(amount)
            else:
                assert amount > position.headroom
            position = result.position
        elif held:
            amount = held.pop(0)
            position = (commit_payer if op == "commit" else release)(position, amount)
        assert position.position + position.reserved <= cap
        assert position.reserved == sum(held)


transfers = st.lists(
    st.tuples(st.uuids().map(str), st.permutations(PARTICIPANTS), st.integers(1, 10**9)).map(
        lambda x: CommittedTransfer(x[0], x[1][0], x[1][1], x[2])
    ),
    max_size=60,
    unique_by=lambda t: t.transfer_id,
)


@given(transfers, st.randoms(use_true_random=False))
def test_net_positions_sum_to_zero_in_any_order(
    window: list[CommittedTransfer], rng: random.Random
) -> None:
    report = close_window("w1", window)
    assert sum(net for _, net in report.positions) == 0
    assert report.transfer_count == len(window)
    assert report.total_amount == sum(t.amount for t in window)
    shuffled = window[:]
    rng.shuffle(shuffled)
    assert close_window("w1", shuffled) == report


@given(transfers, st.data())
def test_each_transfer_counts_once(window: list[CommittedTransfer], data: st.DataObject) -> None:
    repeats = data.draw(st.lists(st.sampled_from(window), max_size=20)) if window else []
    assert close_window("w1", window + repeats) == close_window("w1", window)


@given(transfers)
def test_nets_are_what_each_participant_sent_minus_received(
    window: list[CommittedTransfer],
) -> None:
    nets = net_positions(window)
    for participant in PARTICIPANTS:
        sent = sum(t.amount for t in window if t.payer == participant)
        received = sum(t.amount for t in window if t.payee == participant)
        assert nets.get(participant, 0) == sent - received


@given(transfers)
def test_a_window_matches_the_switch_positions(window: list[CommittedTransfer]) -> None:
    """Committing the window's transfers through positions leaves exactly the report's nets."""
    book = {p: Position(p, cap=10**12) for p in PARTICIPANTS}
    for t in window:
        book[t.payer] = commit_payer(reserve(book[t.payer], t.amount).position, t.amount)
        book[t.payee] = credit_payee(book[t.payee], t.amount)
    report = close_window("w1", window)
    assert {p: book[p].position for p in PARTICIPANTS} == {p: report.net(p) for p in PARTICIPANTS}
    settled = {p: settle(book[p], report.net(p)) for p in PARTICIPANTS}
    assert all(pos.position == 0 for pos in settled.values())


def test_one_id_with_two_different_transfers_is_refused() -> None:
    first = CommittedTransfer("t1", "a", "b", 100)
    with pytest.raises(SettlementError, match="different terms"):
        close_window("w1", [first, CommittedTransfer("t1", "a", "b", 101)])


def test_bad_transfers_cannot_be_settled() -> None:
    with pytest.raises(SettlementError):
        CommittedTransfer("t1", "a", "a", 100)
    with pytest.raises(SettlementError):
        CommittedTransfer("t1", "a", "b", 0)


def test_an_empty_window_settles_nothing() -> None:
    report = close_window("w0", [])
    assert (report.transfer_count, report.total_amount, report.positions) == (0, 0, ())
