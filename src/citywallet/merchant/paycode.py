"""Customer-presented payment codes: the one-time number a resident's phone shows (DOMAIN.md §3).

A merchant's scanner routes a code by its leading digits, so ours must never look like another
wallet's: WeChat Pay uses 18 digits starting 10–15, Alipay 16–24 digits starting 25–30,
UnionPay starts 62. Ours are 19 digits::

    88     | SSSSSSSS    | OOOOOOOO | C
    prefix | device slot | TOTP     | Luhn check digit over the first 18 digits

The slot finds the device (and so its secret) without a search; the TOTP (RFC 6238,
60-second step, 8 digits, HMAC-SHA-256) proves the phone holds the secret right now; the Luhn
digit catches a mistyped or misread code before any lookup. ``verify`` returns the matched
time-step counter so the caller can store it per device and refuse any counter not above the
last one: each code pays at most once. HMAC-SHA-1 would be as sound a PRF here (the secret
never leaves our app, so authenticator compatibility is moot); SHA-256 simply spares every
security review the question.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

import pyotp

PREFIX = "88"
LENGTH = 19
SLOT_DIGITS = 8
OTP_DIGITS = 8
STEP_SECONDS = 60
SECRET_BYTES = 32  # 256 bits, the size of an HMAC-SHA-256 output (RFC 6238's own SHA-256 seed)

_DIGITS = re.compile(r"[0-9]+")


class PaycodeError(ValueError):
    """Not a payment code this wallet can charge; ``code`` says why."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


def luhn_check_digit(digits: str) -> str:
    """The Luhn digit that makes ``digits`` + it valid."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * 2 if i % 2 == 0 else int(ch)
        total += d - 9 if d > 9 else d
    return str(-total % 10)


def luhn_valid(digits: str) -> bool:
    """Whether ``digits`` (ASCII digits only) ends with a correct Luhn check digit."""
    if len(digits) < 2 or not _DIGITS.fullmatch(digits):
        return False
    return luhn_check_digit(digits[:-1]) == digits[-1]


def foreign_wallet(code: str) -> str | None:
    """``"wechat_pay"``, ``"alipay"`` or ``"unionpay"`` if ``code`` is shaped like theirs."""
    if not _DIGITS.fullmatch(code):
        return None
    head = int(code[:2]) if len(code) >= 2 else -1
    if len(code) == 18 and 10 <= head <= 15:
        return "wechat_pay"
    if 16 <= len(code) <= 24 and 25 <= head <= 30:
        return "alipay"
    if 16 <= len(code) <= 19 and head == 62:
        return "unionpay"
    return None


def new_secret() -> str:
    """A fresh device secret (256 bits, base32 without padding, as pyotp reads it)."""
    return base64.b32encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii").rstrip("=")


def new_slot() -> str:
    """A random 8-digit device slot, never all zeros (the caller retries on a clash)."""
    return f"{secrets.randbelow(10**SLOT_DIGITS - 1) + 1:0{SLOT_DIGITS}d}"


def _check_slot(slot: str) -> None:
    if len(slot) != SLOT_DIGITS or not _DIGITS.fullmatch(slot) or int(slot) == 0:
        raise PaycodeError("A device slot is 8 digits, not all zeros.", code="paycode_malformed")


def _totp(secret: str) -> pyotp.TOTP:
    return pyotp.TOTP(secret, digits=OTP_DIGITS, digest=hashlib.sha256, interval=STEP_SECONDS)


def counter_at(at: float) -> int:
    """The TOTP time-step counter at unix time ``at`` (not before 1970)."""
    if at < 0:
        raise ValueError("payment codes start at the unix epoch")
    return int(at // STEP_SECONDS)


def generate(secret: str, slot: str, at: float) -> str:
    """The 19-digit code of device ``slot`` for the time step containing ``at`` (unix s)."""
    _check_slot(slot)
    otp = _totp(secret).generate_otp(counter_at(at))
    body = PREFIX + slot + otp
    return body + luhn_check_digit(body)


def parse(code: str) -> tuple[str, str]:
    """``(slot, otp)`` of a well-formed code of ours; PaycodeError otherwise."""
    wallet = foreign_wallet(code)
    if wallet is not None:
        raise PaycodeError(
            f"This is a {wallet.replace('_', ' ')} payment code, not a CityWallet one.",
            code="paycode_foreign",
        )
    if len(code) != LENGTH or not _DIGITS.fullmatch(code) or not code.startswith(PREFIX):
        raise PaycodeError(
            "A CityWallet payment code is 19 digits starting 88.", code="paycode_malformed"
        )
    if not luhn_valid(code):
        raise PaycodeError(
            "This payment code was misread (check digit); scan it again.",
            code="paycode_malformed",
        )
    slot, otp = code[2 : 2 + SLOT_DIGITS], code[2 + SLOT_DIGITS : -1]
    _check_slot(slot)
    return slot, otp


def verify(secret: str, otp: str, at: float, *, window: int = 1) -> int | None:
    """The time-step counter within ±``window`` steps of ``at`` whose OTP is ``otp``, or None."""
    if window < 0:
        raise ValueError("window must not be negative")
    if len(otp) != OTP_DIGITS or not _DIGITS.fullmatch(otp):
        return None
    totp = _totp(secret)
    now = counter_at(at)
    matched: int | None = None
    # Every candidate is compared (no early exit); the nearest step wins a (1e-8) coincidence.
    candidates = range(max(now - window, 0), now + window + 1)
    for counter in sorted(candidates, key=lambda c: abs(c - now)):
        expected = totp.generate_otp(counter).encode("ascii")
        if hmac.compare_digest(expected, otp.encode("ascii")) and matched is None:
            matched = counter
    return matched
