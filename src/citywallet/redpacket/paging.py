"""Opaque list cursors for red-packet lists (a tag and a row id, base64url)."""

from __future__ import annotations

import base64
import binascii

from citywallet.platform.errors import InvalidInput

MAX_PAGE = 100


def encode_cursor(tag: str, row_id: int) -> str:
    """An opaque cursor for the rows after ``row_id`` in the list called ``tag``."""
    return base64.urlsafe_b64encode(f"{tag}:{row_id}".encode()).decode().rstrip("=")


def decode_cursor(tag: str, cursor: str) -> int:
    """The row id inside a cursor of list ``tag`` (``invalid_cursor`` otherwise)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        found, _, value = raw.partition(":")
        if found != tag or not value.isdigit():
            raise ValueError(raw)
        return int(value)
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise InvalidInput("That cursor is not valid.", code="invalid_cursor") from None


def page_limit(limit: int) -> int:
    """``limit`` bounded to 1…``MAX_PAGE``."""
    return max(1, min(limit, MAX_PAGE))
