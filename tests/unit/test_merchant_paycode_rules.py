"""Whether a payment-code charge is paid password-free or waits for the PIN (pure rules)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from citywallet.merchant.rules import FreeLimits, check_free_limits, pays_without_pin
from citywallet.platform.errors import InvalidInput

fen = st.integers(min_value=0, max_value=10_000_00)
amounts = st.integers(min_value=1, max_value=10_000_00)
limits = st.builds(FreeLimits, st.booleans(), fen, fen)


@given(amounts, limits, st.booleans())
def test_a_free_charge_is_within_every_limit(amount: int, free: FreeLimits, refused: bool) -> None:
    if pays_without_pin(amount, free, day_total_refused=refused):
        assert free.enabled
        assert not refused
        assert amount <= free.per_payment
        assert amount <= free.per_day


@given(amounts, limits)
def test_within_the_limits_a_charge_is_free_unless_the_day_is_full(
    amount: int, free: FreeLimits
) -> None:
    within = free.enabled and amount <= min(free.per_payment, free.per_day)
    assert pays_without_pin(amount, free) == within
    assert not pays_without_pin(amount, free, day_total_refused=True)


@given(amounts, amounts, limits)
def test_a_smaller_charge_is_free_when_a_larger_one_is(a: int, b: int, free: FreeLimits) -> None:
    small, large = sorted((a, b))
    if pays_without_pin(large, free):
        assert pays_without_pin(small, free)


@given(amounts, limits, fen, fen)
def test_raising_the_limits_never_asks_for_the_pin_where_it_did_not(
    amount: int, free: FreeLimits, more_each: int, more_day: int
) -> None:
    raised = FreeLimits(free.enabled, free.per_payment + more_each, free.per_day + more_day)
    if pays_without_pin(amount, free):
        assert pays_without_pin(amount, raised)


@given(amounts, fen, fen)
def test_switched_off_always_asks_for_the_pin(amount: int, each: int, day: int) -> None:
    assert not pays_without_pin(amount, FreeLimits(False, each, day))


@given(limits, limits)
def test_no_stored_row_means_the_defaults(stored: FreeLimits, default: FreeLimits) -> None:
    assert FreeLimits.stored_or(None, None, None, default=default) == default
    again = FreeLimits.stored_or(
        stored.enabled, stored.per_payment, stored.per_day, default=default
    )
    assert again == stored


@given(limits, fen)
def test_a_resident_chooses_ordered_limits_up_to_the_operators(free: FreeLimits, most: int) -> None:
    if 0 <= free.per_payment <= free.per_day <= most:
        assert check_free_limits(free, most_per_day=most) == free
    else:
        with pytest.raises(InvalidInput) as refused:
            check_free_limits(free, most_per_day=most)
        assert refused.value.code == "invalid_paycode_limits"


def test_a_charge_is_a_positive_amount() -> None:
    with pytest.raises(ValueError, match="positive"):
        pays_without_pin(0, FreeLimits(True, 100, 100))
