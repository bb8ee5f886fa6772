"""Pure: Interledger-style conditions and strict base64url (interop/conditions.py, b64url.py)."""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from citywallet.interop import b64url
from citywallet.interop.conditions import (
    TEXT_LENGTH,
    ConditionError,
    check_condition,
    condition_of,
    matches,
    new_fulfilment,
)

secrets32 = st.binary(min_size=32, max_size=32)


@given(st.binary(max_size=200))
def test_base64url_round_trips_without_padding(data: bytes) -> None:
    text = b64url.encode(data)
    assert set(text) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert b64url.decode(text) == data


@given(secrets32)
def test_condition_is_sha256_of_the_fulfilment(secret: bytes) -> None:
    fulfilment = b64url.encode(secret)
    condition = condition_of(fulfilment)
    assert len(fulfilment) == len(condition) == TEXT_LENGTH
    assert b64url.decode(condition) == hashlib.sha256(secret).digest()
    assert matches(condition, fulfilment)


@given(secrets32, secrets32)
def test_another_fulfilment_does_not_match(a: bytes, b: bytes) -> None:
    condition = condition_of(b64url.encode(a))
    assert matches(condition, b64url.encode(b)) == (a == b)


def test_new_fulfilments_are_fresh_and_well_formed() -> None:
    drawn = {new_fulfilment() for _ in range(50)}
    assert len(drawn) == 50
    assert all(check_condition(condition_of(f)) for f in drawn)


GOOD = b64url.encode(bytes(range(32)))


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (GOOD + "=", "padding"),
        (GOOD[:-1] + "+", "standard alphabet"),
        (GOOD[:20] + " " + GOOD[21:], "whitespace"),
        (GOOD[:-1], "31 bytes"),
        (b64url.encode(bytes(33)), "33 bytes"),
        (GOOD[:-1] + "B", "non-zero trailing bits"),  # 'A'→'B' sets a bit past byte 32
        ("", "empty"),
        ("A", "impossible length"),
        (base64.b64encode(bytes(range(32))).decode(), "padded standard base64"),
    ],
)
def test_malformed_conditions_and_fulfilments_are_refused(text: str, why: str) -> None:
    with pytest.raises(ConditionError):
        check_condition(text)
    with pytest.raises(ConditionError):
        matches(text, GOOD)
    with pytest.raises(ConditionError):
        matches(condition_of(GOOD), text)
    with pytest.raises(ConditionError):
        condition_of(text)


@given(st.text(max_size=60))
def test_decode_accepts_only_its_own_encodings(text: str) -> None:
    try:
        data = b64url.decode(text)
    except b64url.Base64UrlError:
        return
    assert b64url.encode(data) == text
