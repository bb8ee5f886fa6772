"""Step-up rules, pure: when a payment needs a second factor besides the payment PIN.

A payment or transfer asks for a second factor (a passkey, or an SMS code to the
resident's own phone) when any of these holds (thresholds are settings, in fen):

- ``amount``: the amount is at least ``step_up_amount``;
- ``new_payee``: the payee was never paid before and the amount is at least
  ``step_up_new_payee_amount``;
- ``new_device``: the session was opened less than ``step_up_new_device_seconds`` ago on
  an account older than that (a device added later, not the one that signed up) and the
  amount is at least ``step_up_new_device_amount``.

A payment below every threshold is decided without reading anything (:func:`may_need`), so
the common small payment keeps its statement budget. A passkey assertion with user
verification is itself two factors (the device and the fingerprint/face): a payment
confirmed by passkey needs nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass

SECOND_US = 1_000_000
FACTORS = ("passkey", "sms")


@dataclass(frozen=True)
class Thresholds:
    """The step-up settings (fen; seconds)."""

    amount: int
    new_payee_amount: int
    new_device_amount: int
    new_device_seconds: int


@dataclass(frozen=True)
class Facts:
    """What the rules look at besides the amount (read only when :func:`may_need`)."""

    payee_known: bool
    session_created_at: int  # µs
    account_created_at: int  # µs
    now: int  # µs


def may_need(amount: int, limits: Thresholds) -> bool:
    """Whether the payment is large enough for any rule to apply (else: no step-up, and no
    facts need reading)."""
    return amount >= min(limits.amount, limits.new_payee_amount, limits.new_device_amount)


def is_new_device(facts: Facts, limits: Thresholds) -> bool:
    """A session younger than the window, on an account older than the session by more than
    the window (the sign-up's own device is not new)."""
    window = limits.new_device_seconds * SECOND_US
    if window <= 0:
        return False
    recent = facts.now - facts.session_created_at < window
    added_later = facts.session_created_at - facts.account_created_at > window
    return recent and added_later


def reasons(amount: int, facts: Facts, limits: Thresholds) -> list[str]:
    """Why this payment needs a second factor (empty: it does not)."""
    found = []
    if amount >= limits.amount:
        found.append("amount")
    if amount >= limits.new_payee_amount and not facts.payee_known:
        found.append("new_payee")
    if amount >= limits.new_device_amount and is_new_device(facts, limits):
        found.append("new_device")
    return found


def accepted_factors(*, has_passkey: bool) -> list[str]:
    """The second factors the resident can give: a passkey only if they registered one."""
    return [f for f in FACTORS if f != "passkey" or has_passkey]
