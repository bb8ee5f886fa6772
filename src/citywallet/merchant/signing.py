"""Signatures on merchant API requests and on our webhooks (docs/merchant-signing.md).

Requests: the merchant signs a canonical string (method, path with query, timestamp, nonce,
SHA-256 of the body) with either a shared HMAC-SHA256 secret or an Ed25519 private key that
never leaves its server (we store only the public key). The timestamp bounds replay to a
window and the nonce, spent once per key by the caller, closes it.

Webhooks follow Stripe's well-known scheme so merchants can reuse code they have:
``CityWallet-Signature: t=<unix s>,v1=<hex HMAC-SHA256 of "t." + body>``; during a secret
rotation the header carries one ``v1`` per live secret and any match is accepted.

Everything here is pure: no clock (callers pass ``now``), no storage.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

AUTHORIZATION_HEADER = "Authorization"
WEBHOOK_HEADER = "CityWallet-Signature"
HMAC_SCHEME = "CW1-HMAC-SHA256"
ED25519_SCHEME = "CW1-ED25519"
SCHEMES = (HMAC_SCHEME, ED25519_SCHEME)
SIGNATURE_BYTES = {HMAC_SCHEME: 32, ED25519_SCHEME: 64}
DEFAULT_WINDOW = 300  # seconds either side of our clock

_FIELDS = ("key_id", "timestamp", "nonce", "signature")
_KEY_ID = re.compile(r"[A-Za-z0-9_\-]{1,64}")
_TIMESTAMP = re.compile(r"0|[1-9][0-9]{0,11}")
_NONCE = re.compile(r"[A-Za-z0-9_\-]{16,64}")
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_HEX64 = re.compile(r"[0-9a-f]{64}")


class SignatureError(ValueError):
    """A missing, malformed, stale or wrong signature; ``code`` says which."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class SignedHeader:
    """The parts of an ``Authorization: CW1-…`` header."""

    scheme: str
    key_id: str
    timestamp: int
    nonce: str
    signature: str  # base64


def _malformed(message: str) -> SignatureError:
    return SignatureError(message, code="signature_malformed")


# --- requests -----------------------------------------------------------------------------


def canonical_request(method: str, path: str, timestamp: int, nonce: str, body: bytes) -> bytes:
    """The bytes a merchant signs: method, path?query, timestamp, nonce, body SHA-256, each + LF."""
    lines = (method.upper(), path, str(timestamp), nonce, hashlib.sha256(body).hexdigest())
    return "".join(line + "\n" for line in lines).encode("utf-8")


def format_authorization(
    scheme: str, key_id: str, timestamp: int, nonce: str, signature: str
) -> str:
    """The ``Authorization`` header value for a signed request."""
    return f"{scheme} key_id={key_id},timestamp={timestamp},nonce={nonce},signature={signature}"


def parse_authorization(header: str) -> SignedHeader:
    """The scheme and fields of an ``Authorization`` header; SignatureError if unusable."""
    text = header.strip()
    if not text:
        raise SignatureError(
            "Sign the request: Authorization: CW1-HMAC-SHA256 key_id=…,timestamp=…,nonce=…,"
            "signature=… (see docs/merchant-signing.md).",
            code="signature_missing",
        )
    scheme, _, params = text.partition(" ")
    scheme = scheme.upper()  # auth schemes are case-insensitive (RFC 9110 §11.1)
    if scheme not in SCHEMES:
        raise SignatureError(
            f"Unsupported scheme; use {HMAC_SCHEME} or {ED25519_SCHEME}.",
            code="signature_scheme_unsupported",
        )
    fields: dict[str, str] = {}
    for part in params.split(","):
        name, sep, value = part.strip().partition("=")  # base64 padding keeps its "="
        if not sep or name not in _FIELDS or name in fields:
            raise _malformed(f"The Authorization header has exactly the fields {_FIELDS}.")
        fields[name] = value
    if len(fields) != len(_FIELDS):
        raise _malformed(f"The Authorization header has exactly the fields {_FIELDS}.")
    if not _KEY_ID.fullmatch(fields["key_id"]):
        raise _malformed("key_id is the id of one of your API keys.")
    if not _TIMESTAMP.fullmatch(fields["timestamp"]):
        raise _malformed("timestamp is unix seconds, a plain decimal number.")
    if not _NONCE.fullmatch(fields["nonce"]):
        raise _malformed("nonce is 16–64 characters from A–Z, a–z, 0–9, '_' and '-'.")
    if _decode_b64(fields["signature"], SIGNATURE_BYTES[scheme]) is None:
        raise _malformed(f"signature is the base64 of {SIGNATURE_BYTES[scheme]} bytes.")
    return SignedHeader(
        scheme, fields["key_id"], int(fields["timestamp"]), fields["nonce"], fields["signature"]
    )


def _decode_b64(text: str, size: int) -> bytes | None:
    if not _BASE64.fullmatch(text):
        return None
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    # Only the canonical spelling: non-zero padding bits would let one signature have two texts.
    if len(raw) != size or base64.b64encode(raw).decode("ascii") != text:
        return None
    return raw


def check_timestamp(timestamp: int, now: float, *, window: int = DEFAULT_WINDOW) -> None:
    """Refuse (``signature_expired``) a timestamp more than ``window`` seconds from ``now``."""
    if abs(now - timestamp) > window:
        raise SignatureError(
            f"The request's timestamp is more than {window} s from our clock ({int(now)}); "
            "check the server's time.",
            code="signature_expired",
        )


def sign_hmac(secret: str, message: bytes) -> str:
    """The base64 HMAC-SHA256 of ``message`` under ``secret`` (its UTF-8 bytes)."""
    digest = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def verify_hmac(secret: str, message: bytes, signature: str) -> bool:
    """Whether ``signature`` is the HMAC-SHA256 of ``message`` (constant-time)."""
    raw = _decode_b64(signature, SIGNATURE_BYTES[HMAC_SCHEME])
    expected = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()
    return raw is not None and hmac.compare_digest(raw, expected)


def _key_invalid() -> SignatureError:
    return SignatureError(
        "An Ed25519 private key is 32 raw bytes, their base64, or a PKCS#8 PEM.",
        code="signature_key_invalid",
    )


def _private_key(key: str | bytes) -> Ed25519PrivateKey:
    if isinstance(key, bytes) and len(key) == 32:
        raw = key
    else:
        text = key.decode("ascii", "replace") if isinstance(key, bytes) else key
        if "-----BEGIN" in text:
            try:
                loaded = serialization.load_pem_private_key(text.encode("ascii"), password=None)
            except (ValueError, TypeError, UnicodeEncodeError) as exc:
                raise _key_invalid() from exc
            if not isinstance(loaded, Ed25519PrivateKey):
                raise _key_invalid()
            return loaded
        try:
            raw = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise _key_invalid() from exc
    if len(raw) != 32:
        raise _key_invalid()
    return Ed25519PrivateKey.from_private_bytes(raw)


def sign_ed25519(private_key: str | bytes, message: bytes) -> str:
    """The base64 Ed25519 signature of ``message`` (key: base64 or raw 32 bytes, or PEM)."""
    return base64.b64encode(_private_key(private_key).sign(message)).decode("ascii")


def verify_ed25519(public_key: bytes, message: bytes, signature: str) -> bool:
    """Whether ``signature`` is an Ed25519 signature of ``message`` by raw ``public_key``."""
    if len(public_key) != 32:
        raise SignatureError("An Ed25519 public key is 32 bytes.", code="signature_key_invalid")
    raw = _decode_b64(signature, SIGNATURE_BYTES[ED25519_SCHEME])
    if raw is None:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(raw, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def new_ed25519_keypair() -> tuple[str, bytes]:
    """A fresh key pair: (private key as base64 of 32 raw bytes, shown once; raw public key)."""
    private = Ed25519PrivateKey.generate()
    raw_private = private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    raw_public = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return base64.b64encode(raw_private).decode("ascii"), raw_public


# --- webhooks -----------------------------------------------------------------------------


def _webhook_hmac(secret: str, timestamp: int, body: bytes) -> str:
    signed = f"{timestamp}.".encode("ascii") + body
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def webhook_signature(
    secret: str, timestamp: int, body: bytes, *, older_secrets: Sequence[str] = ()
) -> str:
    """The ``CityWallet-Signature`` value: ``t=…,v1=…`` (one ``v1`` per secret in rotation)."""
    entries = [f"t={timestamp}"]
    entries += [f"v1={_webhook_hmac(s, timestamp, body)}" for s in (secret, *older_secrets)]
    return ",".join(entries)


def verify_webhook(
    secret: str, header: str, body: bytes, *, now: float, tolerance: int = DEFAULT_WINDOW
) -> None:
    """Check a webhook's ``CityWallet-Signature`` against ``body``; SignatureError if not ours."""
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            raise _malformed("The signature header is t=<unix s>,v1=<hex>[,v1=<hex>…].")
        if name == "t":
            if timestamp is not None or not _TIMESTAMP.fullmatch(value):
                raise _malformed("The signature header has one t=<unix seconds>.")
            timestamp = int(value)
        elif name == "v1":
            if not _HEX64.fullmatch(value):
                raise _malformed("A v1 signature is 64 lower-case hex digits.")
            candidates.append(value)
        # Other schemes (v0, a future v2) are ignored, as Stripe's clients do.
    if timestamp is None or not candidates:
        raise _malformed("The signature header is t=<unix s>,v1=<hex>[,v1=<hex>…].")
    expected = _webhook_hmac(secret, timestamp, body).encode("ascii")
    matched = False
    for candidate in candidates:  # no early exit: the time taken does not say which matched
        matched |= hmac.compare_digest(candidate.encode("ascii"), expected)
    if not matched:
        raise SignatureError(
            "The webhook signature does not match this body and secret.",
            code="signature_mismatch",
        )
    if abs(now - timestamp) > tolerance:
        raise SignatureError(
            f"The webhook was signed more than {tolerance} s from now; it may be a replay.",
            code="signature_expired",
        )
