"""Opaque list cursors: a list's tag and a row position, base64url without padding.

Every list that pages by cursor encodes and decodes here, so one careful parser stands
between the query string and the SQL: anything that is not a cursor we gave out for this
list (other alphabets, non-ASCII, another list's tag, a number no row id can reach) is
``422 invalid_cursor``, never a 500.
"""

from __future__ import annotations

import base64
import binascii
import re

from citywallet.platform.errors import InvalidInput

# Row ids are signed 64-bit integers on both engines; a larger position would make
# PostgreSQL fail the comparison ("integer out of range") instead of matching nothing.
MAX_POSITION = 2**63 - 1
_ALPHABET = re.compile(r"[A-Za-z0-9_-]{1,64}")
_TAG = re.compile(r"[a-z][a-z0-9]{0,7}")
_BODY = re.compile(r"([a-z][a-z0-9]{0,7}):([0-9]{1,19})")


class InvalidCursor(InvalidInput):
    """A cursor that this list never gave out."""

    code = "invalid_cursor"


def encode_cursor(tag: str, position: int) -> str:
    """An opaque cursor for the rows after ``position`` in the list called ``tag``."""
    if not _TAG.fullmatch(tag) or not 0 <= position <= MAX_POSITION:
        raise ValueError(f"not a cursor: {tag!r}, {position!r}")
    return base64.urlsafe_b64encode(f"{tag}:{position}".encode()).decode().rstrip("=")


def decode_cursor(tag: str, cursor: str) -> int:
    """The position inside a cursor of list ``tag`` (``InvalidCursor`` for anything else)."""
    if _ALPHABET.fullmatch(cursor):
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except (binascii.Error, ValueError):
            raw = b""
        found = _BODY.fullmatch(raw.decode("ascii", errors="replace"))
        if found and found.group(1) == tag and int(found.group(2)) <= MAX_POSITION:
            position = int(found.group(2))
            # Only the one spelling we give out (base64 ignores a last character's spare bits).
            if encode_cursor(tag, position) == cursor:
                return position
    raise InvalidCursor("That cursor is not one we gave out for this list.")
