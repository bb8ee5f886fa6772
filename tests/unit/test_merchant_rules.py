"""Merchant fees and their proportional return on refunds (pure rules)."""

from __future__ import annotations

import itertools
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from citywallet.merchant.rules import (
    clean_text,
    fee_back,
    fee_for,
    fee_returned,
    validate_fee_rate,
    validate_mcc,
    validate_out_no,
    validate_uscc,
)
from citywallet.platform.errors import InvalidInput


def half_up(value: Fraction) -> int:
    """The reference rounding: nearest integer, halves away from zero (values ≥ 0)."""
    floor = value.numerator // value.denominator
    return floor + (1 if value - floor >= Fraction(1, 2) else 0)


@given(st.integers(0, 10**13), st.integers(0, 1000))
def test_fee_is_the_rate_rounded_half_up(amount: int, rate_bp: int) -> None:
    assert fee_for(amount, rate_bp) == half_up(Fraction(amount * rate_bp, 10_000))


def test_fee_examples() -> None:
    assert fee_for(10_000, 38) == 38  # 100 yuan at 0.38 % is 0.38 yuan
    assert fee_for(1_234, 38) == 5  # 4.6892 fen → 5
    assert fee_for(131, 38) == 0  # 0.4978 fen → 0
    assert fee_for(132, 38) == 1  # 0.5016 fen → 1


@st.composite
def refund_plans(draw: st.DrawFn) -> tuple[int, int, list[int]]:
    amount = draw(st.integers(1, 10**9))
    fee = fee_for(amount, draw(st.integers(0, 1000)))
    cuts = sorted(draw(st.lists(st.integers(1, amount), max_size=8, unique=True)))
    points = [0, *[c for c in cuts if c < amount], amount]
    return amount, fee, [b - a for a, b in itertools.pairwise(points) if b > a]


@given(refund_plans())
def test_partial_refunds_return_exactly_the_whole_fee(plan: tuple[int, int, list[int]]) -> None:
    amount, fee, parts = plan
    refunded, returned = 0, 0
    for part in parts:
        back = fee_back(amount=amount, fee=fee, refunded_before=refunded, refund=part)
        assert 0 <= back <= fee - returned
        refunded, returned = refunded + part, returned + back
        # never far from the exact proportion
        assert abs(Fraction(returned) - Fraction(fee * refunded, amount)) <= Fraction(1, 2)
    assert (refunded, returned) == (amount, fee)


@given(st.integers(1, 10**9), st.integers(0, 10**7), st.data())
def test_fee_returned_is_monotone(amount: int, fee: int, data: st.DataObject) -> None:
    a = data.draw(st.integers(0, amount))
    b = data.draw(st.integers(a, amount))
    assert fee_returned(amount=amount, fee=fee, refunded=a) <= fee_returned(
        amount=amount, fee=fee, refunded=b
    )
    assert fee_returned(amount=amount, fee=fee, refunded=amount) == fee


def test_refund_beyond_the_order_is_a_bug() -> None:
    with pytest.raises(ValueError, match="refunded"):
        fee_returned(amount=100, fee=1, refunded=101)


@pytest.mark.parametrize(
    ("amount", "fee", "refunded"), [(100, 1, -1), (0, 0, 0), (-5, 0, 0), (100, -1, 50)]
)
def test_fee_returned_refuses_impossible_orders(amount: int, fee: int, refunded: int) -> None:
    with pytest.raises(ValueError, match=r"^refunded must lie between 0 and the order amount$"):
        fee_returned(amount=amount, fee=fee, refunded=refunded)


def test_fee_returned_edges() -> None:
    assert fee_returned(amount=100, fee=7, refunded=0) == 0
    assert fee_returned(amount=100, fee=7, refunded=100) == 7
    assert fee_returned(amount=100, fee=0, refunded=100) == 0
    assert fee_returned(amount=4, fee=1, refunded=2) == 1  # half of a fen rounds up
    assert fee_returned(amount=4, fee=1, refunded=1) == 0
    assert fee_back(amount=4, fee=1, refunded_before=1, refund=1) == 1
    assert fee_back(amount=4, fee=1, refunded_before=2, refund=2) == 0


@pytest.mark.parametrize(("amount", "rate_bp"), [(-1, 38), (100, -1), (-1, -1)])
def test_fee_for_refuses_a_negative_amount_or_rate(amount: int, rate_bp: int) -> None:
    with pytest.raises(ValueError, match=r"^amount and rate must not be negative$"):
        fee_for(amount, rate_bp)


def test_fee_for_zero() -> None:
    assert fee_for(0, 38) == 0
    assert fee_for(10_000, 0) == 0
    assert fee_for(5_000, 1) == 1  # exactly half a fen rounds up
    assert fee_for(4_999, 1) == 0


@pytest.mark.parametrize("rate_bp", [0, 1, 38, 999, 1000])
def test_validate_fee_rate_accepts_zero_to_ten_percent(rate_bp: int) -> None:
    assert validate_fee_rate(rate_bp) == rate_bp


@pytest.mark.parametrize("rate_bp", [-1, 1001, 10_000])
def test_validate_fee_rate_refuses_the_rest(rate_bp: int) -> None:
    with pytest.raises(InvalidInput) as bad:
        validate_fee_rate(rate_bp)
    assert bad.value.code == "invalid_fee_rate"
    assert str(bad.value) == "A fee rate is 0 to 1,000 basis points."


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Shop", "Shop"),
        ("  Lao  Wang\t Mian \n", "Lao Wang Mian"),
        ("Cafe\u0301", "Caf\u00e9"),  # NFC: e + combining acute becomes one character
        ("老王面馆", "老王面馆"),
        ("x" * 16, "x" * 16),
    ],
)
def test_clean_text_trims_normalises_and_single_spaces(raw: str, clean: str) -> None:
    assert clean_text(raw, field="name", max_length=16) == clean


@pytest.mark.parametrize(
    ("raw", "kwargs", "message"),
    [
        ("", {}, "name must not be empty."),
        (" \t\n ", {}, "name must not be empty."),
        ("x" * 11, {}, "name has at most 10 characters."),
        ("Cafe\u0301" * 2 + "x", {}, None),  # 11 characters before NFC, 9 after: fine
        ("老王面馆", {"latin": True}, "name is written in Latin letters"),
        ("Shop #1", {"latin": True}, "name is written in Latin letters"),
    ],
)
def test_clean_text_refusals(raw: str, kwargs: dict[str, bool], message: str | None) -> None:
    if message is None:
        assert clean_text(raw, field="name", max_length=10, **kwargs) == "Caf\u00e9Caf\u00e9x"
        return
    with pytest.raises(InvalidInput) as bad:
        clean_text(raw, field="name", max_length=10, **kwargs)
    assert bad.value.code == "invalid_merchant_field"
    assert str(bad.value).startswith(message)


def test_clean_text_latin_accepts_simple_punctuation() -> None:
    text = "Wang's Noodles & Co. (A-1/2), Ltd"
    assert clean_text(text, field="name", max_length=40, latin=True) == text


def test_onboarding_fields() -> None:
    assert validate_uscc("91110108551385082Q") == "91110108551385082Q"
    with pytest.raises(InvalidInput) as bad:
        validate_uscc("91110108551385082A")
    assert bad.value.code == "invalid_uscc"
    assert validate_mcc("5812") == "5812"
    for wrong in ("581", "0001", "58a2"):
        with pytest.raises(InvalidInput):
            validate_mcc(wrong)
    assert validate_out_no("20261123-0001") == "20261123-0001"
    for wrong in ("short", "has space 123", "x" * 65, "中文订单号123"):
        with pytest.raises(InvalidInput):
            validate_out_no(wrong)


def test_clean_text_latin_refusal_says_why() -> None:
    with pytest.raises(InvalidInput) as bad:
        clean_text("老王面馆", field="name", max_length=10, latin=True)
    assert str(bad.value) == (
        "name is written in Latin letters, digits and simple punctuation "
        "(it is printed in the EMV code that any wallet can read)."
    )


@pytest.mark.parametrize("code", ["0742", "5812", "9999"])
def test_validate_mcc_accepts_card_acceptor_codes(code: str) -> None:
    assert validate_mcc(code) == code


@pytest.mark.parametrize("code", ["0741", "0000", "581", "58123", "58a2", ""])
def test_validate_mcc_refusals(code: str) -> None:
    with pytest.raises(InvalidInput) as bad:
        validate_mcc(code)
    assert bad.value.code == "invalid_mcc"
    assert str(bad.value) == (
        "A merchant category code is four digits from 0742 to 9999 (ISO 18245)."
    )


def test_validate_uscc_refusal_says_why() -> None:
    with pytest.raises(InvalidInput) as bad:
        validate_uscc("91110108551385082A")
    assert str(bad.value) == "That is not a valid unified social credit code (统一社会信用代码)."


@pytest.mark.parametrize("value", ["a" * 6, "x" * 64, "A-b_c|d*e@1"])
def test_validate_out_no_accepts_6_to_64_characters(value: str) -> None:
    assert validate_out_no(value) == value
    assert validate_out_no(value, field="out_refund_no") == value


@pytest.mark.parametrize(
    ("field", "code"), [(None, "invalid_out_trade_no"), ("out_refund_no", "invalid_out_refund_no")]
)
def test_validate_out_no_refusals_name_the_field(field: str | None, code: str) -> None:
    for value in ("a" * 5, "x" * 65, "has space", "中文订单号123"):
        kwargs = {} if field is None else {"field": field}
        with pytest.raises(InvalidInput) as bad:
            validate_out_no(value, **kwargs)
        assert bad.value.code == code
        name = field or "out_trade_no"
        assert str(bad.value) == f"{name} is 6 to 64 characters: letters, digits and _-|*@."
