"""Strict base64url without padding (RFC 4648 §5, as JWS and Interledger use it).

Strict means one text per byte string: only the URL-safe alphabet, no ``=`` padding, no
whitespace, and unused trailing bits zero, so that equal bytes always travel as equal text
(a condition or a signature can be compared, hashed and stored as its text).
"""

from __future__ import annotations

import base64
import re

_ALPHABET = re.compile(r"[A-Za-z0-9_-]*")


class Base64UrlError(ValueError):
    """Not canonical unpadded base64url, or not the expected length."""


def encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def decode(text: str, *, length: int | None = None, what: str = "value") -> bytes:
    """Decode ``text``; ``length`` (bytes), when given, must match exactly."""
    if not isinstance(text, str) or _ALPHABET.fullmatch(text) is None:
        raise Base64UrlError(f"{what} is not base64url (A-Z a-z 0-9 - _, no padding)")
    if len(text) % 4 == 1:
        raise Base64UrlError(f"{what} has an impossible base64url length")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if encode(data) != text:
        raise Base64UrlError(f"{what} is not canonical base64url (non-zero trailing bits)")
    if length is not None and len(data) != length:
        raise Base64UrlError(f"{what} must be {length} bytes, got {len(data)}")
    return data
