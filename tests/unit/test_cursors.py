"""List cursors (issue 12 item 2): one decoder; anything that is not ours is 422."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from citywallet.platform.cursors import (
    MAX_POSITION,
    InvalidCursor,
    decode_cursor,
    encode_cursor,
)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@given(st.sampled_from(["h1", "s1", "g1", "p0", "pg"]), st.integers(0, MAX_POSITION))
def test_a_cursor_we_gave_out_decodes_to_its_position(tag: str, position: int) -> None:
    cursor = encode_cursor(tag, position)
    assert cursor.isascii()
    assert decode_cursor(tag, cursor) == position


@given(st.text(max_size=80))
def test_any_string_is_a_position_or_invalid_cursor(text: str) -> None:
    try:
        position = decode_cursor("h1", text)
    except InvalidCursor:
        assert (InvalidCursor.status, InvalidCursor.code) == (422, "invalid_cursor")
        return
    assert 0 <= position <= MAX_POSITION
    assert encode_cursor("h1", position) == text


@given(st.binary(max_size=60))
def test_any_base64_body_is_a_position_or_invalid_cursor(raw: bytes) -> None:
    try:
        position = decode_cursor("h1", _b64(raw))
    except InvalidCursor:
        return
    assert raw == f"h1:{position}".encode()


@pytest.mark.parametrize(
    "cursor",
    [
        "é",  # the 500 of issue 12: non-ASCII input
        "%C3%A9",
        "",
        "====",
        "a",  # base64 of no whole byte
        _b64("h1:é".encode()),
        _b64(b"h1:\xff"),
        _b64("h1:²".encode()),  # a digit to str.isdigit(), not to int()
        _b64("h1:١".encode()),  # an Arabic-Indic digit: int() would read it
        _b64(b"h1:-1"),
        _b64(b"h1:"),
        _b64(b"h1:1 "),
        _b64(b"s1:5"),  # another list's cursor
        _b64(f"h1:{MAX_POSITION + 1}".encode()),  # no row id is that large (PostgreSQL: 500)
        _b64(b"h1:" + b"9" * 40),
        "aDE6NQ==",  # padding is not part of our cursors
        "aDE6NR",  # "h1:5" too, but with spare bits set: not a spelling we give out
        _b64(b"h1:05"),
        "aDE6NQ" * 20,  # too long
    ],
)
def test_bad_cursors_are_refused(cursor: str) -> None:
    with pytest.raises(InvalidCursor):
        decode_cursor("h1", cursor)


def test_positions_outside_the_range_are_not_encoded() -> None:
    assert decode_cursor("h1", "aDE6NQ") == 5
    for tag, position in [("h1", -1), ("h1", MAX_POSITION + 1), ("H1", 1), ("h:1", 1)]:
        with pytest.raises(ValueError, match="not a cursor"):
            encode_cursor(tag, position)
