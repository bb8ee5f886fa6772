"""Passkey rules, pure: a payment's challenge bound to its intent, and allowed origins.

A payment confirmed by a passkey ("fingerprint/face pay") signs a WebAuthn challenge that
the server derived from a random nonce and the payment's **intent** — its kind, the payee
(a merchant code's payload, a resident's id or phone), the amount and currency, the order:

    challenge = SHA-256("citywallet/pay/v1" ‖ nonce ‖ canonical JSON of the intent)

The server keeps only the nonce (and the challenge's hash, to find it). When the payment
arrives it recomputes the challenge from the nonce and *the payment it is asked to make*;
an assertion made for another payee, amount or order carries another challenge and is
refused (``passkey_intent_mismatch``) before anything moves. The challenge is also used at
most once and dies after ``webauthn_challenge_seconds``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

PAY_DOMAIN = b"citywallet/pay/v1"
INTENT_KINDS = ("scan", "transfer", "charge")


def canonical_intent(intent: Mapping[str, object]) -> bytes:
    """The intent as canonical JSON (sorted keys, no spaces, UTF-8): one byte string per
    meaning, whatever order or spacing the caller used."""
    kind = intent.get("kind")
    if kind not in INTENT_KINDS:
        raise ValueError(f"unknown intent kind {kind!r}")
    return json.dumps(
        dict(intent), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode()


def payment_challenge(nonce: bytes, intent: Mapping[str, object]) -> bytes:
    """The challenge a passkey signs to confirm exactly this payment."""
    return hashlib.sha256(PAY_DOMAIN + nonce + canonical_intent(intent)).digest()


def challenge_hash(challenge: bytes) -> str:
    """How a challenge is found again (its SHA-256, hex): the challenge itself is not kept."""
    return hashlib.sha256(challenge).hexdigest()


def scan_intent(*, payload: str, amount: int | None, currency: str = "CNY") -> dict[str, object]:
    """The intent of paying a scanned merchant code (its payload names merchant, store and,
    for a dynamic code, the order and amount; a static code's amount is the one typed)."""
    return {"kind": "scan", "payload": payload.strip(), "amount": amount, "currency": currency}


def transfer_intent(*, to: str, amount: int, currency: str = "CNY") -> dict[str, object]:
    """The intent of sending ``amount`` to the resident ``to`` (a user id or phone)."""
    return {"kind": "transfer", "to": to.strip(), "amount": amount, "currency": currency}


def charge_intent(*, order_id: str) -> dict[str, object]:
    """The intent of confirming one payment-code charge (its order fixes payee and amount)."""
    return {"kind": "charge", "order_id": order_id}


def origin_allowed(origin: str, *, rp_id: str, allowed: Sequence[str]) -> bool:
    """Whether a ceremony's origin may be accepted: one of ``allowed`` when it is set; else
    ``https://<rp_id>`` (any port), or ``http://localhost`` when the rp id is localhost."""
    if allowed:
        return origin in allowed
    parts = urlsplit(origin)
    if parts.hostname != rp_id or parts.path not in ("", "/"):
        return False
    return parts.scheme == "https" or (parts.scheme == "http" and rp_id == "localhost")
