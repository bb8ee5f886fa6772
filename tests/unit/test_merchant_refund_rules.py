"""Refund rules (merchant.refund_rules, pure): what a refund may take, the fee it returns,
the own and restricted parts, and the ledger legs that move them."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from citywallet.ledger.types import TransferCode
from citywallet.merchant.refund_rules import (
    Paid,
    RefundAccounts,
    RefundSplit,
    check_amount,
    refund_legs,
    refundable_payer,
    split_refund,
)
from citywallet.merchant.rules import fee_for
from citywallet.platform.errors import Conflict, InvalidInput

ACCOUNTS = RefundAccounts(fee=1, receivable=2, payer=3)
FUNDER, BALANCE = 40, 50


@dataclass(frozen=True)
class Back:
    """A restricted piece to give back, as wallet.restricted.plan_return says."""

    account_id: int
    amount: int
    to_funder: bool


@st.composite
def orders(draw: st.DrawFn) -> Paid:
    """A paid order, nothing refunded yet; part of it (maybe all) paid with restricted money."""
    amount = draw(st.integers(1, 10**9))
    return Paid(
        amount=amount,
        fee=fee_for(amount, draw(st.integers(0, 1000))),
        restricted=draw(st.one_of(st.just(0), st.just(amount), st.integers(0, amount))),
    )


@st.composite
def refund_runs(draw: st.DrawFn) -> tuple[Paid, list[int]]:
    """An order and refund amounts that fit in it, often adding up to all of it."""
    paid = draw(orders())
    left, amounts = paid.amount, []
    for _ in range(draw(st.integers(1, 8))):
        if left == 0:
            break
        part = draw(st.one_of(st.integers(1, left), st.integers(1, min(left, 100))))
        amounts.append(part)
        left -= part
    if left and draw(st.booleans()):
        amounts.append(left)
    return paid, amounts


def givebacks_for(split: RefundSplit, data: st.DataObject) -> list[Back]:
    """The restricted part cut into pieces, each to its balance or to the funder."""
    left, pieces = split.restricted, []
    while left:
        piece = data.draw(st.integers(1, left))
        funder = data.draw(st.booleans())
        pieces.append(Back(FUNDER if funder else BALANCE + len(pieces), piece, funder))
        left -= piece
    return pieces


# --- split_refund ---------------------------------------------------------------------------


@given(refund_runs())
def test_refunds_conserve_money_and_return_the_whole_fee_at_the_end(
    run: tuple[Paid, list[int]],
) -> None:
    paid, amounts = run
    order = paid
    fee_total = own_total = restricted_total = 0
    for amount in amounts:
        split = split_refund(order, amount)
        assert split.amount == amount
        assert split.own >= 0
        assert split.restricted >= 0
        assert split.own + split.restricted == amount  # every fen goes somewhere, once
        assert 0 <= split.fee_back <= paid.fee - fee_total
        # restricted money only once the payer's own money is all back
        own_left = (paid.amount - paid.restricted) - (order.refunded - order.restricted_refunded)
        assert split.restricted == 0 or split.own == own_left
        fee_total += split.fee_back
        own_total += split.own
        restricted_total += split.restricted
        order = order.after(split)
        assert order.refunded <= paid.amount  # never more than was paid
        assert order.restricted_refunded <= paid.restricted
    refunded = sum(amounts)
    assert order.refundable == paid.amount - refunded
    assert own_total == min(refunded, paid.amount - paid.restricted)
    assert restricted_total == refunded - own_total
    if refunded == paid.amount:
        # pro-rata rounding: partial refunds that add up to the order return its fee exactly
        assert fee_total == paid.fee
        assert restricted_total == paid.restricted


@given(refund_runs(), st.integers(1, 10**9))
def test_a_refund_beyond_what_is_left_is_refused(run: tuple[Paid, list[int]], extra: int) -> None:
    paid, amounts = run
    order = paid
    for amount in amounts:
        order = order.after(split_refund(order, amount))
    with pytest.raises(Conflict) as refused:
        split_refund(order, order.refundable + extra)
    assert refused.value.code == "refund_exceeds_paid"
    assert refused.value.extra["refundable"] == order.refundable


@given(orders(), st.integers(-(10**9), 0))
def test_a_refund_is_a_positive_amount(paid: Paid, amount: int) -> None:
    with pytest.raises(InvalidInput) as refused:
        split_refund(paid, amount)
    assert refused.value.code == "invalid_amount"
    with pytest.raises(InvalidInput):
        check_amount(amount)


def test_split_examples() -> None:
    # 100 yuan at 0.38 %, 30 yuan of it red-packet money
    paid = Paid(amount=10_000, fee=38, restricted=3_000)
    first = split_refund(paid, 8_000)
    assert first == RefundSplit(amount=8_000, fee_back=30, own=7_000, restricted=1_000)
    second = split_refund(paid.after(first), 2_000)
    assert second == RefundSplit(amount=2_000, fee_back=8, own=0, restricted=2_000)
    assert paid.after(first).after(second).refundable == 0
    assert Paid(amount=4, fee=1).after(split_refund(Paid(amount=4, fee=1), 2)) == Paid(
        amount=4, fee=1, refunded=2
    )


@pytest.mark.parametrize(
    ("status", "payer"), [("created", "u1"), ("closed", "u1"), ("paid", None), ("created", None)]
)
def test_only_a_paid_order_with_a_payer_is_refundable(status: str, payer: str | None) -> None:
    with pytest.raises(Conflict) as refused:
        refundable_payer(status=status, payer_user_id=payer)
    assert refused.value.code == "order_not_paid"
    assert refundable_payer(status="paid", payer_user_id="u1") == "u1"


# --- refund_legs ----------------------------------------------------------------------------


@given(refund_runs(), st.data())
def test_legs_move_exactly_the_refund(run: tuple[Paid, list[int]], data: st.DataObject) -> None:
    paid, amounts = run
    order = paid
    for number, amount in enumerate(amounts):
        split = split_refund(order, amount)
        backs = givebacks_for(split, data)
        legs = refund_legs(f"rfd{number}", split, ACCOUNTS, backs, currency="CNY")
        assert all(leg.amount and leg.amount > 0 for leg in legs)
        assert all(leg.ledger == "CNY" and leg.reference == f"rfd{number}" for leg in legs)
        assert len({leg.id for leg in legs}) == len(legs)
        fee_legs = [leg for leg in legs if leg.code == TransferCode.FEE]
        rest = [leg for leg in legs if leg.code != TransferCode.FEE]
        # the fee comes back first, from the fee account to the receivable
        assert sum(leg.amount or 0 for leg in fee_legs) == split.fee_back
        assert all(
            (leg.debit_account_id, leg.credit_account_id) == (ACCOUNTS.fee, ACCOUNTS.receivable)
            for leg in fee_legs
        )
        assert legs[: len(fee_legs)] == fee_legs
        # everything else leaves the receivable and adds up to the refund
        assert all(leg.debit_account_id == ACCOUNTS.receivable for leg in rest)
        assert sum(leg.amount or 0 for leg in rest) == amount
        to_payer = [leg for leg in rest if leg.credit_account_id == ACCOUNTS.payer]
        assert sum(leg.amount or 0 for leg in to_payer) == split.own
        # a restricted piece goes to its account; to a funder it is a campaign reclaim
        pieces = rest[len(to_payer) :]
        assert [(leg.credit_account_id, leg.amount) for leg in pieces] == [
            (b.account_id, b.amount) for b in backs
        ]
        assert [leg.code == TransferCode.CAMPAIGN_RECLAIM for leg in pieces] == [
            b.to_funder for b in backs
        ]
        order = order.after(split)


@given(orders(), st.data())
def test_givebacks_must_add_up_to_the_restricted_part(paid: Paid, data: st.DataObject) -> None:
    assume(paid.restricted > 0)
    split = split_refund(paid, paid.amount)
    wrong = data.draw(st.integers(0, 2 * split.restricted).filter(lambda n: n != split.restricted))
    with pytest.raises(ValueError, match="givebacks"):
        refund_legs("rfd", split, ACCOUNTS, [Back(BALANCE, wrong, False)], currency="CNY")


def test_legs_example() -> None:
    split = RefundSplit(amount=2_500, fee_back=10, own=1_000, restricted=1_500)
    backs = [Back(BALANCE, 1_000, False), Back(FUNDER, 500, True)]
    legs = refund_legs("rfd_x", split, ACCOUNTS, backs, currency="CNY")
    assert [(leg.id, leg.debit_account_id, leg.credit_account_id, leg.amount) for leg in legs] == [
        ("rfd_x.fee", 1, 2, 10),
        ("rfd_x.refund", 2, 3, 1_000),
        ("rfd_x.rp0", 2, BALANCE, 1_000),
        ("rfd_x.rp1", 2, FUNDER, 500),
    ]
    assert [leg.code for leg in legs] == [
        TransferCode.FEE,
        TransferCode.REFUND,
        TransferCode.REFUND,
        TransferCode.CAMPAIGN_RECLAIM,
    ]
    # no fee back and no own part: only the restricted pieces
    only = refund_legs(
        "rfd_y", RefundSplit(5, 0, 0, 5), ACCOUNTS, [Back(BALANCE, 5, False)], currency="CNY"
    )
    assert [leg.id for leg in only] == ["rfd_y.rp0"]
