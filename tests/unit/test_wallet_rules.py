"""Pure wallet rules: Luhn and card numbers, the withdrawal fee, AA shares, tier limits."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from citywallet.platform.errors import InvalidInput
from citywallet.wallet.bank import sandbox_card_number
from citywallet.wallet.rules import (
    BINS,
    ECNY_PRESET,
    PBOC_PRESET,
    FeeRule,
    LimitsLeft,
    TierLimits,
    Usage,
    WithdrawalFee,
    balance_refusal,
    bank_for,
    even_split,
    limits_left,
    luhn_check_digit,
    luhn_valid,
    mask_card,
    normalize_card_number,
    outflow_refusal,
    periods_at,
    tier_limits,
    validate_shares,
    withdrawal_fee,
)

DEFAULT_FEE = FeeRule()
digits = st.text(alphabet="0123456789", min_size=15, max_size=18)

# --- Luhn and card numbers ----------------------------------------------------------------


def test_luhn_known_numbers() -> None:
    assert luhn_valid("4111111111111111")
    assert luhn_valid("79927398713")
    assert not luhn_valid("79927398710")
    assert not luhn_valid("")
    assert not luhn_valid("4111 1111 1111 1111")
    assert not luhn_valid(
        "４１１１１１１１１１１１１１１１"
    )  # full-width digits are not digits here


@given(digits)
def test_check_digit_completes_a_valid_number(partial: str) -> None:
    number = partial + luhn_check_digit(partial)
    assert luhn_valid(number)
    assert sum(luhn_valid(partial + d) for d in "0123456789") == 1


@given(digits, st.data())
def test_luhn_catches_every_single_digit_error(partial: str, data: st.DataObject) -> None:
    number = partial + luhn_check_digit(partial)
    position = data.draw(st.integers(0, len(number) - 1))
    replacement = data.draw(st.sampled_from("0123456789"))
    assume(replacement != number[position])
    assert not luhn_valid(number[:position] + replacement + number[position + 1 :])


@given(digits, st.data())
def test_luhn_catches_adjacent_transpositions_except_09(partial: str, data: st.DataObject) -> None:
    number = partial + luhn_check_digit(partial)
    i = data.draw(st.integers(0, len(number) - 2))
    a, b = number[i], number[i + 1]
    assume(a != b and {a, b} != {"0", "9"})
    assert not luhn_valid(number[:i] + b + a + number[i + 2 :])


@given(
    st.sampled_from(sorted(BINS)),
    st.text(alphabet="0123456789", min_size=4, max_size=4),
    st.integers(16, 19),
    st.integers(0, 10**6),
)
def test_sandbox_card_numbers_are_valid(bin_: str, ending: str, length: int, serial: int) -> None:
    number = sandbox_card_number(ending, bin_=bin_, length=length, serial=serial)
    assert (len(number), number[:6], number[-4:]) == (length, bin_, ending)
    assert normalize_card_number(number) == number
    assert bank_for(number) == BINS[bin_]


def test_normalize_card_number_and_mask() -> None:
    number = sandbox_card_number("1234", bin_="622202")
    spaced = " ".join(number[i : i + 4] for i in range(0, len(number), 4))
    assert normalize_card_number(spaced) == number
    assert normalize_card_number(number[:4] + "-" + number[4:]) == number
    assert mask_card(number) == "622202" + "*" * 9 + "1234"
    for bad in (
        "",
        "622202",
        "6" * 20,
        number[:-1] + "x",
        number[:-1] + str((int(number[-1]) + 1) % 10),
    ):
        with pytest.raises(InvalidInput) as exc:
            normalize_card_number(bad)
        assert exc.value.code == "invalid_card_number"
    assert bank_for("622202" + "0" * 13).code == "ICBC"  # type: ignore[union-attr]
    assert bank_for("621483" + "0" * 10).code == "CMB"  # type: ignore[union-attr]
    assert bank_for("622700" + "0" * 13).code == "CCB"  # type: ignore[union-attr]
    assert bank_for("411111" + "0" * 10) is None


# --- the withdrawal fee -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "free_left", "fee"),
    [
        (100_000, 100_000, 0),  # the whole free quota
        (100_001, 100_000, 10),  # 1 fen over: the minimum 0.10
        (150_000, 100_000, 50),  # 500 yuan charged: 0.50
        (10_000, 0, 10),  # 0.1 % of 100 yuan is 0.10
        (5_000, 0, 10),  # 0.05 → the minimum
        (12_345, 0, 12),  # 0.12345 → 0.12
        (12_350, 0, 12),  # 0.1235 → 0.12 (half up of 12.35 fen is 12)
        (12_500, 0, 13),  # 0.125 → 0.13 (half up)
        (1_000_000, 0, 1_000),  # 10,000 yuan: 10 yuan
    ],
)
def test_withdrawal_fee_examples(amount: int, free_left: int, fee: int) -> None:
    assert withdrawal_fee(amount, free_quota_left=free_left, rule=DEFAULT_FEE).fee == fee


@given(
    st.integers(1, 10**12),
    st.integers(-10, 200_000),
    st.integers(0, 1_000),
    st.integers(0, 1_000),
)
def test_withdrawal_fee_properties(amount: int, free_left: int, rate_bp: int, minimum: int) -> None:
    rule = FeeRule(free_quota=100_000, rate_bp=rate_bp, minimum=minimum)
    result = withdrawal_fee(amount, free_quota_left=free_left, rule=rule)
    assert result.free_part + result.chargeable == amount
    assert 0 <= result.free_part <= max(0, free_left)
    if result.chargeable == 0:
        assert result.fee == 0
    else:
        assert result.fee >= minimum
        exact = result.chargeable * rate_bp / 10_000
        assert result.fee == minimum or abs(result.fee - exact) <= 0.5
    bigger = withdrawal_fee(amount + 1, free_quota_left=free_left, rule=rule)
    assert bigger.fee >= result.fee  # never cheaper to withdraw more


def test_withdrawal_fee_refuses_non_positive_amounts() -> None:
    with pytest.raises(InvalidInput):
        withdrawal_fee(0, free_quota_left=0, rule=DEFAULT_FEE)


# --- AA split -----------------------------------------------------------------------------


@given(st.integers(1, 10**12), st.integers(1, 100))
def test_even_split_is_exact_and_fair(total: int, people: int) -> None:
    assume(total >= people)
    shares = even_split(total, people)
    assert len(shares) == people
    assert sum(shares) == total
    assert max(shares) - min(shares) <= 1
    assert min(shares) >= 1
    assert shares == sorted(shares, reverse=True)  # the first people carry the extra fen
    validate_shares(total, shares)


def test_even_split_refusals() -> None:
    with pytest.raises(InvalidInput):
        even_split(2, 3)  # a share would be 0
    with pytest.raises(InvalidInput):
        even_split(100, 0)


@given(st.lists(st.integers(1, 10**9), min_size=1, max_size=100), st.integers(-3, 3))
def test_validate_shares_needs_the_exact_sum(shares: list[int], off: int) -> None:
    total = sum(shares) + off
    if off == 0:
        validate_shares(total, shares)
    else:
        with pytest.raises(InvalidInput) as exc:
            validate_shares(total, shares)
        assert exc.value.code in {"shares_do_not_sum_to_total", "invalid_amount"}


def test_validate_shares_refusals() -> None:
    for total, shares, code in [
        (100, [], "invalid_share_count"),
        (100, [100, 0], "invalid_share_amount"),
        (100, [101, -1], "invalid_share_amount"),
        (0, [0], "invalid_amount"),
        (101, [1] * 101, "invalid_share_count"),
    ]:
        with pytest.raises(InvalidInput) as exc:
            validate_shares(total, shares)
        assert exc.value.code == code


# --- tier limits --------------------------------------------------------------------------


def test_presets_follow_the_domain_figures() -> None:
    assert PBOC_PRESET[1].lifetime == 1_000_00
    assert PBOC_PRESET[2].yearly == 100_000_00
    assert PBOC_PRESET[3].yearly == 200_000_00
    assert PBOC_PRESET[0] == TierLimits(0, 0, 0, 0, 0)
    type_i = ECNY_PRESET[3]
    assert (type_i.balance, type_i.single, type_i.daily, type_i.yearly) == (
        500_000_00,
        50_000_00,
        100_000_00,
        500_000_00,
    )
    type_iv = ECNY_PRESET[0]
    assert (type_iv.balance, type_iv.single, type_iv.daily, type_iv.yearly) == (
        10_000_00,
        2_000_00,
        5_000_00,
        50_000_00,
    )


def test_tier_limits_presets_and_overrides() -> None:
    assert tier_limits(2) == PBOC_PRESET[2]
    assert tier_limits(2, preset="ecny") == ECNY_PRESET[2]
    assert tier_limits(9) == PBOC_PRESET[3]  # above the table: the top tier
    assert tier_limits(-1) == PBOC_PRESET[0]
    custom = tier_limits(1, overrides={"1": {"daily": 500_00, "lifetime": None}})
    assert (custom.daily, custom.lifetime) == (500_00, None)
    with pytest.raises(ValueError, match="preset"):
        tier_limits(1, preset="nope")
    with pytest.raises(ValueError, match="fields"):
        tier_limits(1, overrides={"1": {"weekly": 1}})


optional = st.none() | st.integers(0, 10**7)


@given(
    st.builds(TierLimits, optional, optional, optional, optional, optional),
    st.lists(st.tuples(st.integers(1, 10**6), st.booleans()), max_size=40),
)
def test_accepted_payments_never_exceed_the_limits(
    limits: TierLimits, payments: list[tuple[int, bool]]
) -> None:
    usage = Usage()
    for amount, own_card in payments:
        if outflow_refusal(limits, usage, amount, own_card=own_card) is not None:
            continue
        usage = Usage(
            daily=usage.daily + amount,
            yearly=usage.yearly + (0 if own_card else amount),
            lifetime=usage.lifetime + (0 if own_card else amount),
        )
        assert limits.single is None or amount <= limits.single
    for limit, used in (
        (limits.daily, usage.daily),
        (limits.yearly, usage.yearly),
        (limits.lifetime, usage.lifetime),
    ):
        assert limit is None or used <= limit
    left = limits_left(limits, usage)
    for value in (left.today, left.this_year, left.lifetime):
        assert value is None or value >= 0


def test_outflow_refusal_codes_and_own_card_exemption() -> None:
    limits = TierLimits(single=100, daily=150, yearly=200, lifetime=None)
    assert outflow_refusal(limits, Usage(), 101) == "single_limit_exceeded"
    assert outflow_refusal(limits, Usage(daily=100), 60) == "daily_limit_exceeded"
    assert outflow_refusal(limits, Usage(yearly=150), 60) == "yearly_limit_exceeded"
    assert outflow_refusal(limits, Usage(yearly=150), 60, own_card=True) is None
    assert outflow_refusal(TierLimits(lifetime=10), Usage(lifetime=10), 1) == (
        "lifetime_limit_exceeded"
    )
    assert balance_refusal(TierLimits(balance=100), 100) is None
    assert balance_refusal(TierLimits(balance=100), 101) == "balance_limit_exceeded"
    assert balance_refusal(TierLimits(), 10**15) is None


def test_periods_are_beijing_days_and_years() -> None:
    def at(text: str) -> int:
        return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1_000_000)

    assert periods_at(at("2024-12-31T15:59:59")).day == "d:2024-12-31"  # 23:59:59 in Beijing
    new_year = periods_at(at("2024-12-31T16:00:00"))
    assert (new_year.day, new_year.year, new_year.lifetime) == ("d:2025-01-01", "y:2025", "life")


@pytest.mark.parametrize(
    ("limits", "usage", "code"),
    [
        (TierLimits(single=100), Usage(), "single_limit_exceeded"),
        (TierLimits(daily=150), Usage(daily=50), "daily_limit_exceeded"),
        (TierLimits(yearly=200), Usage(yearly=100), "yearly_limit_exceeded"),
        (TierLimits(lifetime=1000), Usage(lifetime=900), "lifetime_limit_exceeded"),
    ],
)
def test_paying_exactly_what_is_left_is_allowed(
    limits: TierLimits, usage: Usage, code: str
) -> None:
    """Every limit is inclusive: 100 left pays 100, not 101."""
    assert outflow_refusal(limits, usage, 100) is None
    assert outflow_refusal(limits, usage, 101) == code
    own_card = outflow_refusal(limits, usage, 101, own_card=True)
    assert own_card == (code if code in ("single_limit_exceeded", "daily_limit_exceeded") else None)


def test_the_first_limit_broken_is_the_one_named() -> None:
    limits = TierLimits(single=10, daily=10, yearly=10, lifetime=10)
    full = Usage(daily=10, yearly=10, lifetime=10)
    assert outflow_refusal(limits, full, 11) == "single_limit_exceeded"
    assert outflow_refusal(limits, full, 1) == "daily_limit_exceeded"
    assert outflow_refusal(limits, Usage(yearly=10, lifetime=10), 1) == "yearly_limit_exceeded"
    assert outflow_refusal(limits, Usage(lifetime=10), 1) == "lifetime_limit_exceeded"
    assert outflow_refusal(TierLimits(), full, 10**15) is None


def test_limits_left_reports_what_may_still_leave() -> None:
    limits = TierLimits(single=500, daily=1_000, yearly=5_000, lifetime=9_000, balance=1)
    left = limits_left(limits, Usage(daily=300, yearly=4_000, lifetime=9_500))
    assert left == LimitsLeft(single=500, today=700, this_year=1_000, lifetime=0)
    assert limits_left(limits, Usage()) == LimitsLeft(
        single=500, today=1_000, this_year=5_000, lifetime=9_000
    )
    exact = limits_left(limits, Usage(daily=1_000, yearly=5_000, lifetime=9_000))
    assert (exact.today, exact.this_year, exact.lifetime) == (0, 0, 0)
    assert limits_left(TierLimits(), Usage(daily=5)) == LimitsLeft(None, None, None, None)


@given(
    st.builds(TierLimits, optional, optional, optional, optional),
    st.builds(Usage, st.integers(0, 10**7), st.integers(0, 10**7), st.integers(0, 10**7)),
    st.integers(1, 10**7),
)
def test_what_is_left_is_exactly_what_may_be_paid(
    limits: TierLimits, usage: Usage, amount: int
) -> None:
    """A payment passes exactly when it fits under every figure ``limits_left`` reports."""
    left = limits_left(limits, usage)
    fits = all(value is None or amount <= value for value in figures(left))
    assert (outflow_refusal(limits, usage, amount) is None) == fits


def figures(left: LimitsLeft) -> tuple[int | None, ...]:
    """The four figures of a ``LimitsLeft``."""
    return (left.single, left.today, left.this_year, left.lifetime)


@pytest.mark.parametrize(
    ("call", "code", "message"),
    [
        (
            lambda: normalize_card_number("6222 0212 3456 789"),
            "invalid_card_number",
            "A card number has 16 to 19 digits.",
        ),
        (
            lambda: normalize_card_number("6222021234567890"),
            "invalid_card_number",
            "That card number is mistyped.",
        ),
        (
            lambda: withdrawal_fee(0, free_quota_left=0, rule=DEFAULT_FEE),
            "invalid_amount",
            "The amount must be positive.",
        ),
        (lambda: validate_shares(0, [1]), "invalid_amount", "The total must be positive."),
        (lambda: validate_shares(5, []), "invalid_share_count", "A split has 1 to 100 shares."),
        (
            lambda: validate_shares(5, [1] * 4, max_shares=3),
            "invalid_share_count",
            "A split has 1 to 3 shares.",
        ),
        (
            lambda: validate_shares(5, [5, 0]),
            "invalid_share_amount",
            "Every share is at least 0.01.",
        ),
        (
            lambda: validate_shares(5, [2, 2]),
            "shares_do_not_sum_to_total",
            "The shares add up to 4, not to the total 5.",
        ),
        (
            lambda: even_split(5, 0),
            "invalid_share_count",
            "A split needs at least one person.",
        ),
        (lambda: even_split(2, 3), "invalid_share_amount", "Every share is at least 0.01."),
    ],
)
def test_wallet_refusals_say_why(call: Callable[[], object], code: str, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        call()
    assert (caught.value.code, str(caught.value)) == (code, message)


def test_split_edges() -> None:
    validate_shares(100, [1] * 100)  # 100 shares of a fen each: the most allowed
    validate_shares(1, [1])
    assert even_split(3, 3) == [1, 1, 1]
    assert even_split(5, 1) == [5]


def test_withdrawal_fee_edges() -> None:
    rule = FeeRule(free_quota=0, rate_bp=10, minimum=10)
    assert withdrawal_fee(1, free_quota_left=1, rule=rule) == WithdrawalFee(1, 0, 0)
    assert withdrawal_fee(1, free_quota_left=-5, rule=rule) == WithdrawalFee(0, 1, 10)
    assert withdrawal_fee(15_000, free_quota_left=0, rule=rule) == WithdrawalFee(0, 15_000, 15)
    # 0.1 % of 14,500 fen is 14.5 fen, half up to 15; of 14,499 it is 14.499, down to 14.
    assert withdrawal_fee(14_500, free_quota_left=0, rule=rule).fee == 15
    assert withdrawal_fee(14_499, free_quota_left=0, rule=rule).fee == 14
    assert withdrawal_fee(5_000, free_quota_left=0, rule=rule).fee == 10  # 5 fen: the minimum
    one_bp = FeeRule(free_quota=0, rate_bp=1, minimum=0)
    assert withdrawal_fee(14_999, free_quota_left=0, rule=one_bp).fee == 1  # 1.4999 fen
    assert withdrawal_fee(15_000, free_quota_left=0, rule=one_bp).fee == 2  # 1.5 fen
    assert FeeRule() == FeeRule(free_quota=100_000, rate_bp=10, minimum=10)


def test_card_helpers_edges() -> None:
    assert mask_card("6222021234567890123") == "622202*********0123"
    assert bank_for("6222021234567890123") is BINS["622202"]
    assert bank_for("4111111111111111") is None
    assert not luhn_valid("")
    assert not luhn_valid("１２３")  # full-width digits are digits, but not ASCII
    assert luhn_check_digit("7992739871") == "3"
