"""Pure sending rules (citywallet.redpacket.plan): the kind, the greeting, the plan of a
packet's shares and the escrow stripes that pay them."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from citywallet.platform.errors import InvalidInput
from citywallet.redpacket.plan import (
    DEFAULT_GREETING,
    GREETING_MAX,
    MAX_STRIPES,
    SHARES_PER_STRIPE,
    PacketPlan,
    choose_kind,
    clean_greeting,
    escrow_stripes,
    plan_packet,
    stripe_of,
    stripe_totals,
)
from citywallet.redpacket.rules import KINDS

shares_counts = st.integers(1, 500)


@st.composite
def plans(draw: st.DrawFn) -> tuple[str, int, int, int]:
    """A feasible (kind, total, shares, seed) for a group packet."""
    kind = draw(st.sampled_from(("equal", "lucky")))
    shares = draw(st.integers(1, 200))
    total = draw(st.integers(shares, 20_000 if shares <= 200 else shares * 100))
    return kind, total, shares, draw(st.integers(0, 2**32 - 1))


def _plan(kind: str, total: int, shares: int, seed: int, **options: int | None) -> PacketPlan:
    return plan_packet(
        kind=kind,
        amount=total,
        shares=shares,
        greeting="",
        rng=random.Random(seed),
        max_total=options.get("max_total") or 20_000,
        max_shares=options.get("max_shares") or 200,
        min_share=options.get("min_share") or 1,
        members=options.get("members"),
    )


@given(shares_counts)
def test_stripes_grow_with_the_shares_up_to_the_cap(shares: int) -> None:
    stripes = escrow_stripes(shares)
    assert 1 <= stripes <= min(shares, MAX_STRIPES)
    assert stripes == min(MAX_STRIPES, -(-shares // SHARES_PER_STRIPE))
    assert escrow_stripes(shares + 1) >= stripes


def test_stripe_examples() -> None:
    assert [escrow_stripes(n) for n in (1, 3, 8, 9, 10, 16, 17, 100, 200)] == [
        1, 1, 1, 2, 2, 2, 3, 13, 16
    ]  # fmt: skip


@given(shares_counts, st.integers(0, 499))
def test_consecutive_positions_use_different_stripes(shares: int, start: int) -> None:
    """Claims take shares in position order, so the claims in flight at one moment hold a
    window of consecutive positions: any window as wide as the stripes touches each once."""
    stripes = escrow_stripes(shares)
    window = [stripe_of(p, stripes) for p in range(start + 1, start + 1 + stripes)]
    assert sorted(window) == list(range(stripes))


@given(plans())
def test_a_plan_pays_every_share_from_a_stripe_that_holds_exactly_its_shares(
    case: tuple[str, int, int, int],
) -> None:
    kind, total, shares, seed = case
    plan = _plan(kind, total, shares, seed)
    assert plan.kind == kind
    amounts = plan.amounts
    assert len(amounts) == shares
    assert sum(amounts) == total
    assert min(amounts) >= 1
    assert plan.stripes == escrow_stripes(shares)
    totals = plan.stripe_totals
    assert sum(totals) == total
    assert all(t > 0 for t in totals)  # every stripe pays at least one share
    by_stripe = [0] * plan.stripes
    for amount, stripe in zip(amounts, plan.stripe_of_share, strict=True):
        by_stripe[stripe] += amount
    assert by_stripe == totals


@given(st.lists(st.integers(1, 10_000), min_size=1, max_size=300), st.integers(1, MAX_STRIPES))
def test_stripe_totals_add_up(amounts: list[int], stripes: int) -> None:
    totals = stripe_totals(amounts, stripes)
    assert len(totals) == stripes
    assert sum(totals) == sum(amounts)


@given(plans())
def test_the_same_seed_draws_the_same_plan(case: tuple[str, int, int, int]) -> None:
    kind, total, shares, seed = case
    assert _plan(kind, total, shares, seed) == _plan(kind, total, shares, seed)


@pytest.mark.parametrize(
    ("total", "shares", "options", "code"),
    [
        (20_001, 1, {}, "packet_too_large"),
        (100, 201, {}, "too_many_shares"),
        (100, 6, {"members": 5}, "too_many_shares"),
        (5, 6, {}, "share_too_small"),
        (50, 10, {"min_share": 6}, "share_too_small"),
    ],
)
def test_a_plan_refuses_what_breaks_a_limit(
    total: int, shares: int, options: dict[str, int], code: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        _plan("lucky", total, shares, 1, **options)
    assert caught.value.code == code


@given(st.sampled_from(KINDS), st.text(max_size=3), st.text(max_size=3), st.integers(1, 3))
def test_a_kind_needs_exactly_one_target(kind: str, to: str, group: str, shares: int) -> None:
    for target, group_id in ((None, None), (to, group)):
        with pytest.raises(InvalidInput) as caught:
            choose_kind(to=target, group_id=group_id, kind=kind, shares=shares)
        assert caught.value.code == "redpacket_target_required"


def test_kind_examples() -> None:
    assert choose_kind(to="usr_x", group_id=None, kind=None, shares=1) == "single"
    assert choose_kind(to=None, group_id="rpg_x", kind=None, shares=5) == "lucky"
    assert choose_kind(to=None, group_id="rpg_x", kind="equal", shares=5) == "equal"
    for to, group, kind, shares in [
        ("usr_x", None, "lucky", 1),
        ("usr_x", None, None, 2),
        (None, "rpg_x", "single", 1),
    ]:
        with pytest.raises(InvalidInput) as caught:
            choose_kind(to=to, group_id=group, kind=kind, shares=shares)
        assert caught.value.code == "invalid_redpacket_kind"


@given(st.text(max_size=GREETING_MAX * 2))
def test_a_greeting_is_collapsed_and_bounded(greeting: str) -> None:
    clean = " ".join(greeting.split()) or DEFAULT_GREETING
    if len(clean) > GREETING_MAX:
        with pytest.raises(InvalidInput):
            clean_greeting(greeting)
        return
    assert clean_greeting(greeting) == clean
    assert clean_greeting(clean) == clean  # idempotent
