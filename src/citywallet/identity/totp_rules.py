"""TOTP for operators (RFC 6238 as authenticator apps read it: SHA-1, 6 digits, 30-second
steps), pure: no database, no web. A code is accepted for the current step or one step
either side (clock drift), and only for a step later than the last one accepted (a code
seen once cannot be replayed)."""

from __future__ import annotations

import hmac

import pyotp

DIGITS = 6
STEP_SECONDS = 30
DRIFT_STEPS = 1  # accept the previous and the next step too


def new_secret() -> str:
    """A fresh secret: 160 random bits in base32, as authenticator apps take it."""
    return pyotp.random_base32(32)


def provisioning_uri(secret: str, *, account: str, issuer: str) -> str:
    """The ``otpauth://totp/…`` URI an authenticator app scans (the enrolment QR)."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(
        name=account, issuer_name=issuer
    )


def code_at(secret: str, *, step: int) -> str:
    """The code of time step ``step`` (seconds since the epoch // 30)."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).generate_otp(step)


def step_of(unix_seconds: float) -> int:
    """The time step a moment falls in."""
    return int(unix_seconds // STEP_SECONDS)


def matching_step(secret: str, code: str, *, now_seconds: float, last_step: int) -> int | None:
    """The step ``code`` belongs to if it is valid now and newer than ``last_step``;
    ``None`` otherwise (wrong, out of the window, or replayed)."""
    code = code.strip().replace(" ", "")
    if len(code) != DIGITS or not code.isdigit():
        return None
    current = step_of(now_seconds)
    found = None
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if hmac.compare_digest(code_at(secret, step=step), code) and step > last_step:
            found = step
    return found
