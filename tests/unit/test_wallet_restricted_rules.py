"""Pure rules of restricted money (wallet.rules): where it may be spent (``usable_at``), which
balances pay first (``spend_first``), how a refund splits between the payer's own money and
restricted money (``refund_parts``), which earlier uses give it back (``return_order``) and to
which account (``returns_to_balance``)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from citywallet.wallet.rules import (
    Pot,
    Scope,
    Shop,
    refund_parts,
    return_order,
    returns_to_balance,
    spend_first,
)
from citywallet.wallet.rules import usable_at as usable

amounts = st.integers(min_value=1, max_value=10**9)
balances = st.integers(min_value=0, max_value=10**7)


@st.composite
def pot_lists(draw: st.DrawFn) -> list[Pot]:
    """Pots with distinct keys; expiries collide often (ties are broken by key)."""
    keys = draw(st.lists(st.integers(1, 10**6), unique=True, max_size=8))
    return [Pot(key, draw(st.integers(-5, 10**6)), draw(st.integers(0, 5))) for key in keys]


# --- spend_first --------------------------------------------------------------------------


def _taken(parts: Sequence[tuple[int, int]]) -> dict[int, int]:
    keys = [key for key, _ in parts]
    assert len(keys) == len(set(keys)), "a pot pays at most once"
    return dict(parts)


@given(pot_lists(), st.integers(-10, 3 * 10**6))
def test_spend_first_never_takes_more_than_there_is_or_than_asked(
    pots: list[Pot], amount: int
) -> None:
    taken = _taken(spend_first(pots, amount))
    by_key = {p.key: p for p in pots}
    assert set(taken) <= set(by_key)
    for key, part in taken.items():
        assert 0 < part <= by_key[key].available
    there = sum(max(0, p.available) for p in pots)
    # as much restricted money as possible: the payer's own money covers only the rest
    assert sum(taken.values()) == max(0, min(amount, there))


@given(pot_lists(), amounts)
def test_spend_first_empties_the_soonest_expiring_pots_first(pots: list[Pot], amount: int) -> None:
    parts = spend_first(pots, amount)
    usable_pots = sorted((p for p in pots if p.available > 0), key=lambda p: (p.expires, p.key))
    # the parts come in spending order and are a prefix of the pots by (expiry, key) ...
    assert [key for key, _ in parts] == [p.key for p in usable_pots[: len(parts)]]
    # ... every pot but the last one drawn is emptied, and nothing later is touched
    for (_key, part), pot in zip(parts[:-1], usable_pots, strict=False):
        assert part == pot.available
    if len(parts) < len(usable_pots):
        assert sum(part for _, part in parts) == amount


@given(pot_lists(), amounts)
def test_spend_first_does_not_depend_on_the_order_pots_are_listed(
    pots: list[Pot], amount: int
) -> None:
    assert spend_first(pots, amount) == spend_first(list(reversed(pots)), amount)


def test_spend_first_examples() -> None:
    late, soon, soon_too = Pot(1, 200_00, 30), Pot(7, 50_00, 10), Pot(3, 20_00, 10)
    assert spend_first([late, soon, soon_too], 60_00) == [(3, 20_00), (7, 40_00)]
    assert spend_first([late, soon, soon_too], 500_00) == [(3, 20_00), (7, 50_00), (1, 200_00)]
    assert spend_first([Pot(1, 0, 1), Pot(2, -3, 0)], 10) == []
    assert spend_first([], 10) == []
    assert spend_first([late], 0) == []


# --- refund_parts -------------------------------------------------------------------------


@st.composite
def payments(draw: st.DrawFn) -> tuple[int, int, list[int]]:
    """(own paid, restricted paid, refund amounts that together refund at most all of it)."""
    own = draw(st.integers(0, 10**6))
    restricted = draw(st.integers(0, 10**6))
    assume(own + restricted > 0)
    left, refunds = own + restricted, []
    for _ in range(draw(st.integers(1, 6))):
        if left == 0:
            break
        part = draw(st.integers(1, left))
        refunds.append(part)
        left -= part
    if draw(st.booleans()) and left:
        refunds.append(left)  # often refund everything
    return own, restricted, refunds


@given(payments())
def test_refunds_give_own_money_back_first_and_sum_exactly(
    payment: tuple[int, int, list[int]],
) -> None:
    own_paid, restricted_paid, refunds = payment
    own_back = restricted_back = 0
    for amount in refunds:
        own, restricted = refund_parts(
            amount=amount,
            own_paid=own_paid,
            own_returned=own_back,
            restricted_paid=restricted_paid,
            restricted_returned=restricted_back,
        )
        assert own >= 0
        assert restricted >= 0
        assert own + restricted == amount
        # restricted money only once the payer's own money is all back
        assert restricted == 0 or own_back + own == own_paid
        own_back += own
        restricted_back += restricted
        assert own_back <= own_paid
        assert restricted_back <= restricted_paid
    refunded = sum(refunds)
    assert own_back == min(refunded, own_paid)
    assert restricted_back == refunded - own_back
    if refunded == own_paid + restricted_paid:
        assert (own_back, restricted_back) == (own_paid, restricted_paid)


@given(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**6))
def test_a_refund_beyond_what_is_left_or_not_positive_is_refused(
    own_paid: int, restricted_paid: int, own_back_raw: int, restricted_back_raw: int
) -> None:
    own_back = min(own_back_raw, own_paid)
    restricted_back = min(restricted_back_raw, restricted_paid) if own_back == own_paid else 0
    left = own_paid - own_back + restricted_paid - restricted_back
    for amount in (0, -1, left + 1):
        with pytest.raises(ValueError, match=r"^the refund exceeds what is left of the payment$"):
            refund_parts(
                amount=amount,
                own_paid=own_paid,
                own_returned=own_back,
                restricted_paid=restricted_paid,
                restricted_returned=restricted_back,
            )


def test_refund_parts_examples() -> None:
    # paid 250.00: 200.00 red packet, 50.00 own
    paid = {"own_paid": 50_00, "restricted_paid": 200_00}
    assert refund_parts(amount=30_00, own_returned=0, restricted_returned=0, **paid) == (30_00, 0)
    assert refund_parts(amount=30_00, own_returned=30_00, restricted_returned=0, **paid) == (
        20_00,
        10_00,
    )
    assert refund_parts(amount=190_00, own_returned=50_00, restricted_returned=10_00, **paid) == (
        0,
        190_00,
    )


# --- return_order -------------------------------------------------------------------------


@st.composite
def uses_and_amount(draw: st.DrawFn) -> tuple[list[tuple[int, int]], int]:
    keys = draw(st.lists(st.integers(1, 10**6), unique=True, min_size=1, max_size=6))
    uses = [(key, draw(st.integers(0, 10**6))) for key in keys]
    total = sum(r for _, r in uses)
    assume(total > 0)
    return uses, draw(st.integers(1, total))


@given(uses_and_amount())
def test_return_order_undoes_the_last_use_first_and_exactly(
    case: tuple[list[tuple[int, int]], int],
) -> None:
    uses, amount = case
    parts = return_order(uses, amount)
    assert sum(part for _, part in parts) == amount
    returnable = dict(uses)
    for key, part in parts:
        assert 0 < part <= returnable[key]
    # the reverse of the spending order, skipping uses with nothing left to give back
    backwards = [key for key, r in reversed(uses) if r > 0]
    assert [key for key, _ in parts] == backwards[: len(parts)]
    for key, part in parts[:-1]:
        assert part == returnable[key]


@given(uses_and_amount(), st.integers(1, 10))
def test_return_order_refuses_more_than_the_uses_hold(
    case: tuple[list[tuple[int, int]], int], extra: int
) -> None:
    uses, _ = case
    with pytest.raises(ValueError, match=r"^the uses cannot give back that much$"):
        return_order(uses, sum(r for _, r in uses) + extra)


@given(uses_and_amount(), st.data())
def test_successive_returns_never_give_back_a_use_twice(
    case: tuple[list[tuple[int, int]], int], data: st.DataObject
) -> None:
    uses, _ = case
    spent = dict(uses)
    back = dict.fromkeys(spent, 0)
    while (left := sum(spent[k] - back[k] for k in spent)) > 0:
        amount = data.draw(st.integers(1, left))
        for key, part in return_order([(k, spent[k] - back[k]) for k, _ in uses], amount):
            back[key] += part
            assert back[key] <= spent[key]
    assert back == spent


def test_return_order_examples() -> None:
    assert return_order([(1, 100), (2, 50)], 70) == [(2, 50), (1, 20)]
    assert return_order([(1, 100), (2, 0)], 10) == [(1, 10)]
    assert return_order([(1, 100)], 0) == []


# --- usable_at ----------------------------------------------------------------------------

SHOP = Shop("mch_here", "罗湖区", "5812")
LIST_CHOICES = ("empty", "includes", "excludes")


def _listed(choice: str, value: str, others: list[str]) -> frozenset[str]:
    if choice == "empty":
        return frozenset()
    if choice == "includes":
        return frozenset([*others, value])
    return frozenset(others)


@given(
    st.sampled_from(LIST_CHOICES),
    st.sampled_from(LIST_CHOICES),
    st.sampled_from(LIST_CHOICES),
    st.lists(st.sampled_from(["mch_a", "mch_b", "mch_c"]), min_size=1, max_size=3),
    st.lists(st.sampled_from(["福田区", "南山区", "宝安区"]), min_size=1, max_size=3),
    st.lists(st.sampled_from(["5942", "7832", "7922"]), min_size=1, max_size=3),
    st.integers(0, 10**12),
    st.integers(1, 10**12),
    st.integers(0, 10**6),
    st.integers(0, 10**6),
    st.integers(-(10**12), 3 * 10**12),
)
def test_usable_at_means_in_the_window_at_least_the_minimum_and_every_given_list_matches(
    merchant_choice: str,
    district_choice: str,
    mcc_choice: str,
    other_merchants: list[str],
    other_districts: list[str],
    other_mccs: list[str],
    valid_from: int,
    length: int,
    min_spend: int,
    amount: int,
    moment: int,
) -> None:
    scope = Scope(
        merchant_ids=_listed(merchant_choice, SHOP.merchant_id, other_merchants),
        districts=_listed(district_choice, SHOP.district, other_districts),
        mccs=_listed(mcc_choice, SHOP.mcc, other_mccs),
        min_spend=min_spend,
        valid_from=valid_from,
        valid_until=valid_from + length,
    )
    in_window = valid_from <= moment < valid_from + length
    lists_match = "excludes" not in (merchant_choice, district_choice, mcc_choice)
    expected = in_window and amount >= min_spend and lists_match
    assert usable(scope, SHOP, amount=amount, moment=moment) is expected


def test_usable_at_window_edges_and_minimum_spend() -> None:
    scope = Scope(frozenset(), frozenset(), frozenset(), 100_00, 1_000, 2_000)
    assert usable(scope, SHOP, amount=100_00, moment=1_000)  # from is inclusive
    assert usable(scope, SHOP, amount=100_00, moment=1_999)
    assert not usable(scope, SHOP, amount=100_00, moment=2_000)  # until is exclusive
    assert not usable(scope, SHOP, amount=100_00, moment=999)
    assert not usable(scope, SHOP, amount=99_99, moment=1_500)


def test_usable_at_lists_combine_with_and() -> None:
    window = {"min_spend": 0, "valid_from": 0, "valid_until": 10}
    luohu_food = Scope(frozenset(), frozenset({"罗湖区"}), frozenset({"5812", "5814"}), **window)
    assert usable(luohu_food, SHOP, amount=1, moment=5)
    assert not usable(luohu_food, Shop("mch_here", "福田区", "5812"), amount=1, moment=5)
    assert not usable(luohu_food, Shop("mch_here", "罗湖区", "5942"), amount=1, moment=5)
    listed = Scope(frozenset({"mch_other"}), frozenset(), frozenset(), **window)
    assert not usable(listed, SHOP, amount=1, moment=5)


# --- returns_to_balance -------------------------------------------------------------------


@given(st.booleans(), st.integers(0, 10**15), st.integers(0, 10**15))
def test_restricted_money_returns_to_its_balance_only_while_valid(
    active: bool, valid_until: int, moment: int
) -> None:
    back = returns_to_balance(active=active, valid_until=valid_until, moment=moment)
    assert back == (active and moment < valid_until)


def test_restricted_money_return_edges() -> None:
    assert returns_to_balance(active=True, valid_until=100, moment=99)
    assert not returns_to_balance(active=True, valid_until=100, moment=100)  # expired: funder
    assert not returns_to_balance(active=False, valid_until=100, moment=0)  # reclaimed: funder
