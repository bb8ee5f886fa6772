"""Step-up rules (identity/stepup.py): each threshold asks at its limit, not one fen below;
a new device is one signed in recently on an older account."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from citywallet.identity.stepup import (
    SECOND_US,
    Facts,
    Thresholds,
    accepted_factors,
    is_new_device,
    may_need,
    reasons,
)

DAY = 24 * 3600
NOW = 1_800_000_000 * SECOND_US
LIMITS = Thresholds(amount=500_000, new_payee_amount=100_000, new_device_amount=20_000,
                    new_device_seconds=DAY)  # fmt: skip
KNOWN_OLD = Facts(payee_known=True, session_created_at=NOW - 2 * DAY * SECOND_US,
                  account_created_at=NOW - 30 * DAY * SECOND_US, now=NOW)  # fmt: skip

limits_st = st.builds(
    Thresholds,
    amount=st.integers(1, 10**9),
    new_payee_amount=st.integers(1, 10**9),
    new_device_amount=st.integers(1, 10**9),
    new_device_seconds=st.integers(0, 30 * DAY),
)
facts_st = st.builds(
    Facts,
    payee_known=st.booleans(),
    session_created_at=st.integers(NOW - 60 * DAY * SECOND_US, NOW),
    account_created_at=st.integers(NOW - 90 * DAY * SECOND_US, NOW),
    now=st.just(NOW),
)


@given(limits_st)
def test_the_amount_limit_asks_at_the_limit_and_not_one_below(limits: Thresholds) -> None:
    assert "amount" in reasons(limits.amount, KNOWN_OLD, limits)
    assert "amount" not in reasons(limits.amount - 1, KNOWN_OLD, limits)


@given(limits_st)
def test_a_new_payee_asks_from_its_limit(limits: Thresholds) -> None:
    new = Facts(False, KNOWN_OLD.session_created_at, KNOWN_OLD.account_created_at, NOW)
    assert "new_payee" in reasons(limits.new_payee_amount, new, limits)
    assert "new_payee" not in reasons(limits.new_payee_amount - 1, new, limits)
    assert "new_payee" not in reasons(limits.new_payee_amount, KNOWN_OLD, limits)


@given(st.integers(1, 30 * DAY))
def test_a_new_device_asks_from_its_limit(window: int) -> None:
    limits = Thresholds(10**9, 10**9, 20_000, window)
    signed_in = NOW - (window * SECOND_US - 1)  # just inside the window
    new = Facts(True, signed_in, signed_in - window * SECOND_US - 1, NOW)
    assert is_new_device(new, limits)
    assert reasons(20_000, new, limits) == ["new_device"]
    assert reasons(20_000 - 1, new, limits) == []
    settled = Facts(True, NOW - window * SECOND_US, new.account_created_at, NOW)
    assert not is_new_device(settled, limits)  # the window has passed
    signup = Facts(True, signed_in, signed_in - window * SECOND_US, NOW)
    assert not is_new_device(signup, limits)  # the device that opened the account


@given(st.integers(0, 10**9), facts_st, limits_st)
def test_nothing_is_asked_below_every_threshold_so_nothing_is_read(
    amount: int, facts: Facts, limits: Thresholds
) -> None:
    if not may_need(amount, limits):
        assert reasons(amount, facts, limits) == []


@given(facts_st)
def test_no_window_means_no_new_device(facts: Facts) -> None:
    assert not is_new_device(facts, Thresholds(1, 1, 1, 0))


def test_the_factors_offered() -> None:
    assert accepted_factors(has_passkey=True) == ["passkey", "sms"]
    assert accepted_factors(has_passkey=False) == ["sms"]
