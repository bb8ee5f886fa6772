"""Money: exact parsing and formatting at the edges, and the exact proportional split."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from citywallet.money import MINOR_UNITS, Money, MoneyError, allocate


@pytest.mark.parametrize(
    ("text", "currency", "amount"),
    [
        ("12.34", "CNY", 1234),
        ("12.3", "CNY", 1230),
        ("12", "CNY", 1200),
        ("0.01", "CNY", 1),
        ("0", "CNY", 0),
        ("-5.50", "CNY", -550),
        ("  7.05 ", "CNY", 705),
        ("1,234.56", "CNY", 123456),
        ("999999999999999.99", "CNY", 99999999999999999),
        ("1234", "JPY", 1234),
        ("3.5", "USD", 350),
    ],
)
def test_parse_is_exact(text: str, currency: str, amount: int) -> None:
    money = Money.parse(text, currency)
    assert (money.amount, money.currency) == (amount, currency)


def test_parse_defaults_to_cny() -> None:
    assert Money.parse("1.5") == Money(150, "CNY")


@pytest.mark.parametrize(
    ("text", "currency", "message"),
    [
        ("12.345", "CNY", "CNY has 2 decimal places"),
        ("1.5", "JPY", "JPY has 0 decimal places"),
        ("", "CNY", "not an amount: ''"),
        ("abc", "CNY", "not an amount: 'abc'"),
        ("1.", "CNY", "not an amount: '1.'"),
        (".5", "CNY", "not an amount: '.5'"),
        ("+1", "CNY", "not an amount: '+1'"),
        ("1e3", "CNY", "not an amount: '1e3'"),
        ("1 000", "CNY", "not an amount: '1 000'"),
        ("1234567890123456", "CNY", "not an amount"),  # 16 whole digits
        ("1.00", "XXX", "unsupported currency 'XXX'"),
    ],
)
def test_parse_refusals(text: str, currency: str, message: str) -> None:
    with pytest.raises(MoneyError) as caught:
        Money.parse(text, currency)
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize(
    ("money", "text", "bare"),
    [
        (Money(123456), "¥1,234.56", "1,234.56"),
        (Money(5), "¥0.05", "0.05"),
        (Money(0), "¥0.00", "0.00"),
        (Money(-150), "-¥1.50", "-1.50"),
        (Money(100_000_000), "¥1,000,000.00", "1,000,000.00"),
        (Money(1234, "JPY"), "¥1,234", "1,234"),
        (Money(-7, "JPY"), "-¥7", "-7"),
        (Money(10, "HKD"), "HK$0.10", "0.10"),
        (Money(99, "USD"), "$0.99", "0.99"),
        (Money(100, "EUR"), "€1.00", "1.00"),
    ],
)
def test_format_for_people(money: Money, text: str, bare: str) -> None:
    assert money.format() == text
    assert str(money) == text
    assert money.format(symbol=False) == bare


@given(st.integers(-(10**15) + 1, 10**15 - 1), st.sampled_from(sorted(MINOR_UNITS)))
def test_format_then_parse_round_trips(amount: int, currency: str) -> None:
    money = Money(amount, currency)
    assert Money.parse(money.format(symbol=False), currency) == money


@pytest.mark.parametrize("bad", [1.5, "12", True, None])
def test_amounts_are_integers(bad: object) -> None:
    with pytest.raises(MoneyError) as caught:
        Money(bad)  # type: ignore[arg-type]
    assert str(caught.value) == "amounts are integers of minor units"


def test_unknown_currency() -> None:
    with pytest.raises(MoneyError) as caught:
        Money(1, "XYZ")
    assert str(caught.value) == "unsupported currency 'XYZ'"


def test_money_orders_and_compares() -> None:
    assert Money(1) < Money(2)
    assert Money(1, "CNY") != Money(1, "HKD")


# --- allocate ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "weights", "parts"),
    [
        (100, [1, 1, 1], [34, 33, 33]),
        (101, [1, 1, 1], [34, 34, 33]),
        (10, [3, 7], [3, 7]),
        (10, [1, 0, 1], [5, 0, 5]),
        (7, [0, 5], [0, 7]),
        (0, [1, 2], [0, 0]),
        (5, [1, 2, 2], [1, 2, 2]),
        (4, [1, 2, 2], [1, 2, 1]),  # remainders 0.8 and 0.6 for each 2: the first gets it
        (2, [2, 1, 1], [1, 1, 0]),  # equal remainders: the lower index first
        (1, [1, 1, 2], [0, 0, 1]),  # the largest remainder first, not the first index
    ],
)
def test_allocate_examples(total: int, weights: list[int], parts: list[int]) -> None:
    assert allocate(total, weights) == parts


@given(st.integers(0, 10**12), st.lists(st.integers(0, 10**6), min_size=1, max_size=30))
def test_allocate_is_exact_and_largest_remainder(total: int, weights: list[int]) -> None:
    if sum(weights) == 0:
        with pytest.raises(MoneyError):
            allocate(total, weights)
        return
    parts = allocate(total, weights)
    assert sum(parts) == total
    assert len(parts) == len(weights)
    shares = [Fraction(total * weight, sum(weights)) for weight in weights]
    floors = [share.numerator // share.denominator for share in shares]
    assert all(part - floor in (0, 1) for part, floor in zip(parts, floors, strict=True))
    # The extra units go to the largest remainders, ties to the lower index.
    rank = [(floor - share, i) for i, (share, floor) in enumerate(zip(shares, floors, strict=True))]
    bumped = [rank[i] for i in range(len(parts)) if parts[i] > floors[i]]
    kept = [rank[i] for i in range(len(parts)) if parts[i] == floors[i]]
    assert not bumped or not kept or max(bumped) < min(kept)


@pytest.mark.parametrize("weights", [[], [0], [0, 0], [-1, 2], [2, -1], [-1, -1]])
def test_allocate_needs_non_negative_weights_with_a_positive_sum(weights: list[int]) -> None:
    with pytest.raises(MoneyError) as caught:
        allocate(10, weights)
    assert str(caught.value) == "weights must be non-negative with a positive sum"
