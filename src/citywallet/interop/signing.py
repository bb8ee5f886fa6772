"""FSPIOP-Signature: a detached JWS (RFC 7515) with Ed25519, ``alg`` EdDSA (RFC 8037).

Every message between a participant and the switch is signed by its sender over the body and
the routing headers, so that neither can be changed on the way. As in the FSPIOP API, the
``FSPIOP-Signature`` header carries a JSON object of two members:

    {"protectedHeader": "<base64url of the JWS protected header>",
     "signature": "<base64url of the 64-byte Ed25519 signature>"}

The protected header is a JSON object naming the algorithm and copying the headers it
protects: ``alg``, ``FSPIOP-Source``, ``FSPIOP-Destination`` (absent when the request has
none), ``FSPIOP-URI``, ``FSPIOP-HTTP-Method`` and ``Date``. The signing input is the JWS one,
``protectedHeader || "." || base64url(body)``; the payload is detached (it is the HTTP body),
so the same parts also form the compact detached serialisation ``protectedHeader..signature``
(RFC 7515 appendix F), which ``compact`` returns for logs and receipts.

Verification refuses, each with its own ``reason``: a header that is not that JSON object
(``malformed``), bad base64url (``bad_base64``), any algorithm but EdDSA or extra protected
members such as ``crit`` (``wrong_alg`` / ``malformed``), protected headers that differ from
the request's (``header_mismatch``) and a signature that does not verify (``signature_mismatch``).
``check_date`` bounds replay to ``DATE_WINDOW`` around the receiver's clock (``stale_date``);
idempotency by message id makes a replay inside the window harmless. Pure: the caller passes
``now``; no key storage.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from citywallet.interop.b64url import Base64UrlError, decode, encode

HEADER = "FSPIOP-Signature"
ALGORITHM = "EdDSA"
SIGNATURE_BYTES = 64
DATE_WINDOW = 300  # seconds either side of the receiver's clock

_MEMBERS = frozenset(
    {"alg", "FSPIOP-Source", "FSPIOP-Destination", "FSPIOP-URI", "FSPIOP-HTTP-Method", "Date"}
)

Reason = Literal[
    "malformed", "bad_base64", "wrong_alg", "header_mismatch", "signature_mismatch", "stale_date"
]


class SignatureError(ValueError):
    """A signature that does not prove the message; ``reason`` says why (stable, for logs)."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason: Reason = reason


@dataclass(frozen=True, slots=True)
class SignedHeaders:
    """The request headers a signature protects, as the HTTP request carries them."""

    source: str
    destination: str | None
    uri: str
    method: str
    date: str

    def protected(self) -> dict[str, str]:
        fields = {
            "alg": ALGORITHM,
            "FSPIOP-Source": self.source,
            "FSPIOP-Destination": self.destination,
            "FSPIOP-URI": self.uri,
            "FSPIOP-HTTP-Method": self.method,
            "Date": self.date,
        }
        return {name: value for name, value in fields.items() if value is not None}


def _signing_input(protected_b64: str, body: bytes) -> bytes:
    return f"{protected_b64}.{encode(body)}".encode("ascii")


def sign(key: Ed25519PrivateKey, headers: SignedHeaders, body: bytes) -> str:
    """The ``FSPIOP-Signature`` header value for ``body`` sent with ``headers``."""
    protected = json.dumps(headers.protected(), separators=(",", ":"), sort_keys=True)
    protected_b64 = encode(protected.encode("utf-8"))
    signature = key.sign(_signing_input(protected_b64, body))
    return json.dumps(
        {"protectedHeader": protected_b64, "signature": encode(signature)},
        separators=(",", ":"),
    )


def _parts(header_value: str) -> tuple[str, str]:
    try:
        parsed = json.loads(header_value)
    except (TypeError, ValueError) as exc:
        raise SignatureError("malformed", f"{HEADER} is not JSON") from exc
    if (
        not isinstance(parsed, dict)
        or set(parsed) != {"protectedHeader", "signature"}
        or not all(isinstance(v, str) for v in parsed.values())
    ):
        raise SignatureError(
            "malformed", f"{HEADER} must be an object of protectedHeader and signature"
        )
    return parsed["protectedHeader"], parsed["signature"]


def _protected(protected_b64: str) -> dict[str, object]:
    try:
        raw = decode(protected_b64, what="protectedHeader")
    except Base64UrlError as exc:
        raise SignatureError("bad_base64", str(exc)) from exc
    try:
        protected = json.loads(raw.decode("utf-8"))
    except ValueError as exc:
        raise SignatureError("malformed", "the protected header is not UTF-8 JSON") from exc
    if not isinstance(protected, dict):
        raise SignatureError("malformed", "the protected header is not a JSON object")
    return protected


def verify(key: Ed25519PublicKey, header_value: str, headers: SignedHeaders, body: bytes) -> None:
    """Return if ``header_value`` signs ``body`` and ``headers`` with ``key``; else raise."""
    protected_b64, signature_b64 = _parts(header_value)
    protected = _protected(protected_b64)
    if protected.get("alg") != ALGORITHM:
        raise SignatureError("wrong_alg", f"alg must be {ALGORITHM}, got {protected.get('alg')!r}")
    unknown = sorted(set(protected) - _MEMBERS)
    if unknown:
        raise SignatureError("malformed", f"unexpected protected header members: {unknown}")
    expected = headers.protected()
    for name in sorted(_MEMBERS):
        if protected.get(name) != expected.get(name):
            raise SignatureError("header_mismatch", f"{name} differs from the signed value")
    try:
        signature = decode(signature_b64, length=SIGNATURE_BYTES, what="signature")
    except Base64UrlError as exc:
        raise SignatureError("bad_base64", str(exc)) from exc
    try:
        key.verify(signature, _signing_input(protected_b64, body))
    except InvalidSignature as exc:
        raise SignatureError("signature_mismatch", "the signature does not verify") from exc


def compact(header_value: str) -> str:
    """The compact detached JWS (``protected..signature``) of a well-formed header value."""
    protected_b64, signature_b64 = _parts(header_value)
    return f"{protected_b64}..{signature_b64}"


def check_date(date: str, now: datetime, window: int = DATE_WINDOW) -> None:
    """Refuse an HTTP ``Date`` (RFC 9110 IMF-fixdate) further than ``window`` s from ``now``."""
    try:
        sent = parsedate_to_datetime(date)
    except (TypeError, ValueError) as exc:
        raise SignatureError("stale_date", "Date is not an HTTP date") from exc
    if sent.tzinfo is None:
        raise SignatureError("stale_date", "Date carries no time zone")
    if abs((now - sent).total_seconds()) > window:
        raise SignatureError("stale_date", f"Date is more than {window} s from our clock")
