"""Pure: FSPIOP error codes a peer may send (interop/messages.py).

FSPIOP lets a scheme define codes of its own (4 digits; the first digit is the category), so
any 4-digit code must parse: a listed one as its ``ErrorCode``, any other as an ``OtherCode``
kept as its text. Anything else is malformed, which the receivers answer with 3101 (a
validation error that is not a missing member).
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from citywallet.interop.messages import (
    Category,
    ErrorCode,
    ErrorMessage,
    OtherCode,
    category,
    error,
    parse_code,
)

FOUR_DIGITS = st.text(alphabet="0123456789", min_size=4, max_size=4)


def _body(code: object, description: str = "scheme error") -> bytes:
    info = {"errorCode": code, "errorDescription": description}
    return json.dumps({"errorInformation": info}).encode()


@given(code=FOUR_DIGITS)
def test_every_four_digit_code_parses_and_round_trips(code: str) -> None:
    message = ErrorMessage.model_validate_json(_body(code))
    parsed = message.error_information.error_code
    assert parsed == code
    assert parsed.value == code
    known = code in {c.value for c in ErrorCode}
    assert isinstance(parsed, ErrorCode) is known
    assert isinstance(parsed, OtherCode) is not known
    assert ErrorMessage.model_validate_json(message.wire()) == message
    assert json.loads(message.wire())["errorInformation"]["errorCode"] == code
    # Our own error body for it, with the default description, is a valid message too.
    assert ErrorMessage.model_validate_json(error(parsed).wire()).error_information.error_code == (
        code
    )
    expected = Category(code[0]) if code[0] in "12345" else Category.UNDEFINED
    assert category(code) is expected


@given(
    code=st.one_of(
        st.text(alphabet="0123456789", min_size=5, max_size=8),
        st.text(alphabet="0123456789", max_size=3),
        st.text(min_size=1, max_size=6).filter(lambda t: not t.isascii() or not t.isdigit()),
        st.integers(min_value=0, max_value=9999),
    )
)
def test_other_codes_are_malformed_never_missing(code: object) -> None:
    with pytest.raises(ValidationError) as refused:
        ErrorMessage.model_validate_json(_body(code))
    # "missing" would answer 3102; every other validation error answers 3101.
    assert {e["type"] for e in refused.value.errors()} == {"value_error"}
    with pytest.raises(ValueError, match="4 digits"):
        parse_code(code)


def test_unknown_codes_read_by_category() -> None:
    payee = parse_code("5999")
    assert isinstance(payee, OtherCode)
    assert (category(payee), payee.description) == (Category.PAYEE, "Payee error 5999")
    assert category(parse_code("2999")) is Category.SERVER
    assert parse_code("0999").description == "Unknown error 0999"
    assert parse_code("3303") is ErrorCode.TRANSFER_EXPIRED
    assert category(ErrorCode.PAYER_FSP_INSUFFICIENT_LIQUIDITY) is Category.PAYER
