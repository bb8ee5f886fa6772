"""Interledger-style conditions: the payee's secret and its SHA-256 hash.

The payee's provider draws a 32-byte *fulfilment* and sends only its *condition*
(SHA-256 of the fulfilment) in the quote; the payer's provider puts the condition in the
transfer prepare; the switch commits only when the payee later shows a fulfilment whose hash
is the condition. Both travel as unpadded base64url of 32 bytes (43 characters).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from citywallet.interop.b64url import Base64UrlError, decode, encode

SECRET_BYTES = 32
TEXT_LENGTH = 43  # unpadded base64url of 32 bytes


class ConditionError(ValueError):
    """A condition or fulfilment that is not 32 bytes of canonical base64url."""


def _bytes(text: str, what: str) -> bytes:
    try:
        return decode(text, length=SECRET_BYTES, what=what)
    except Base64UrlError as exc:
        raise ConditionError(str(exc)) from exc


def new_fulfilment() -> str:
    """A fresh random fulfilment (kept by the payee's provider until it commits)."""
    return encode(secrets.token_bytes(SECRET_BYTES))


def condition_of(fulfilment: str) -> str:
    """The condition that ``fulfilment`` fulfils."""
    return encode(hashlib.sha256(_bytes(fulfilment, "fulfilment")).digest())


def check_condition(condition: str) -> str:
    """``condition`` itself if it is well formed; ConditionError otherwise."""
    _bytes(condition, "condition")
    return condition


def check_fulfilment(fulfilment: str) -> str:
    _bytes(fulfilment, "fulfilment")
    return fulfilment


def matches(condition: str, fulfilment: str) -> bool:
    """Whether SHA-256(fulfilment) is the condition; malformed input raises ConditionError."""
    expected = _bytes(condition, "condition")
    actual = hashlib.sha256(_bytes(fulfilment, "fulfilment")).digest()
    return hmac.compare_digest(expected, actual)
