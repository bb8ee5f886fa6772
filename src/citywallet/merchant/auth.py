"""Signed requests from merchants' servers and POS (docs/merchant-signing.md).

Each request carries ``Authorization: CW1-HMAC-SHA256 key_id=…,timestamp=…,nonce=…,
signature=…`` (or ``CW1-ED25519``) over the method, path, timestamp, nonce and body hash.
A timestamp outside ±``signature_window_seconds`` is refused, and a nonce is accepted once
per key while its timestamp is inside the window (kept in ``merchant_nonces`` that long).
The nonce is written in its own transaction: a replay is refused even if the first request
then failed.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from citywallet.merchant import signing
from citywallet.merchant.models import ApiKey, Merchant, Nonce
from citywallet.platform.clock import now_us
from citywallet.platform.config import Settings
from citywallet.platform.crypto import Encryptor
from citywallet.platform.db import Database, UnitOfWork
from citywallet.platform.errors import Unauthorized

SECOND_US = 1_000_000


@dataclass(frozen=True)
class MerchantCaller:
    """A merchant server authenticated by one of its keys."""

    merchant_pk: int
    merchant_id: str
    key_id: str


def _refuse(detail: str, code: str) -> Unauthorized:
    return Unauthorized(detail, code=code)


def authenticate(
    db: Database,
    *,
    authorization: str | None,
    method: str,
    path: str,
    body: bytes,
    encryptor: Encryptor,
    settings: Settings,
    now: int | None = None,
) -> MerchantCaller:
    """Check a signed request and spend its nonce; raises ``Unauthorized`` with a code."""
    moment = now if now is not None else now_us()
    try:
        header = signing.parse_authorization(authorization or "")
        signing.check_timestamp(
            header.timestamp, moment / SECOND_US, window=settings.signature_window_seconds
        )
    except signing.SignatureError as exc:
        raise _refuse(str(exc), exc.code) from exc
    message = signing.canonical_request(method, path, header.timestamp, header.nonce, body)

    def spend(uow: UnitOfWork) -> MerchantCaller:
        found = uow.session.execute(
            select(ApiKey, Merchant.public_id)
            .join(Merchant, Merchant.id == ApiKey.merchant_id)
            .where(ApiKey.public_id == header.key_id)
        ).first()
        if found is None or found[0].status != "active":
            raise _refuse("Unknown or revoked API key.", "api_key_invalid")
        key, merchant_id = found
        if not _verified(key, header, message, encryptor):
            raise _refuse(
                "The signature does not match the request; see docs/merchant-signing.md.",
                "signature_mismatch",
            )
        window = settings.signature_window_seconds * SECOND_US
        uow.session.add(
            Nonce(
                key_id=key.id,
                nonce=header.nonce,
                expires_at=header.timestamp * SECOND_US + window,
            )
        )
        try:
            uow.session.flush()
        except IntegrityError:
            raise _refuse("This nonce was used already.", "nonce_reused") from None
        if key.last_used_at is None or key.last_used_at < moment - 60 * SECOND_US:
            key.last_used_at = moment  # at most once a minute: keeps hot keys write-light
        return MerchantCaller(key.merchant_id, str(merchant_id), key.public_id)

    return db.transact(spend)


def _verified(
    key: ApiKey, header: signing.SignedHeader, message: bytes, encryptor: Encryptor
) -> bool:
    expected = "CW1-HMAC-SHA256" if key.scheme == "hmac-sha256" else "CW1-ED25519"
    if header.scheme != expected:
        return False
    if key.scheme == "hmac-sha256":
        assert key.secret_enc is not None
        secret = encryptor.decrypt(key.secret_enc, aad=key.public_id.encode()).decode()
        return signing.verify_hmac(secret, message, header.signature)
    assert key.public_key is not None
    return signing.verify_ed25519(base64.b64decode(key.public_key), message, header.signature)


def purge_nonces(uow: UnitOfWork, *, now: int | None = None) -> int:
    """Forget nonces whose timestamps have left the window; returns how many."""
    moment = now if now is not None else now_us()
    result = uow.session.execute(delete(Nonce).where(Nonce.expires_at < moment))
    return int(getattr(result, "rowcount", 0) or 0)
