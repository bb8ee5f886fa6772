"""Signed requests from merchants' servers and POS (docs/merchant-signing.md).

Each request carries ``Authorization: CW1-HMAC-SHA256 key_id=…,timestamp=…,nonce=…,
signature=…`` (or ``CW1-ED25519``) over the method, path, timestamp, nonce and body hash.
A timestamp outside ±``signature_window_seconds`` is refused, and a nonce is accepted once
per key while its timestamp is inside the window (kept in ``merchant_nonces`` that long).
The nonce is written in its own transaction (a replay is refused even if the first request
then failed), or, for a payment-code charge, in the charge's own transaction and on its own
only when the charge fails. What never changes about a key (its merchant, scheme, secret) is
cached per process; whether it is still active is checked by the statement that spends the
nonce, so a revoked key stops at once in every process.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, replace

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from citywallet.merchant import signing
from citywallet.merchant.models import ApiKey, Merchant, Nonce
from citywallet.platform.cache import TtlCache
from citywallet.platform.clock import now_us
from citywallet.platform.config import Settings
from citywallet.platform.crypto import Encryptor
from citywallet.platform.db import Database, DriverSql, UnitOfWork
from citywallet.platform.errors import Unauthorized

SECOND_US = 1_000_000
KEY_CACHE_SECONDS = 300.0  # what is cached never changes; revocation is checked in SQL


@dataclass(frozen=True)
class PendingNonce:
    """A checked request's nonce, to be spent by :func:`spend_nonce`."""

    key_pk: int
    nonce: str
    expires_at: int


@dataclass(frozen=True)
class MerchantCaller:
    """A merchant server authenticated by one of its keys. ``nonce`` is set when the
    caller spends it in its own transaction (:func:`authenticate` with ``defer_nonce``)."""

    merchant_pk: int
    merchant_id: str
    key_id: str
    nonce: PendingNonce | None = None


@dataclass(frozen=True)
class _Key:
    """What never changes about an API key (cached per process): who it belongs to and
    how to check its signatures. Whether it is still active is checked by the statement
    that spends the nonce."""

    pk: int
    public_id: str
    merchant_pk: int
    merchant_id: str
    scheme: str
    secret: str | None  # HMAC: decrypted once
    public_key: bytes | None  # Ed25519


_KEYS: TtlCache[_Key] = TtlCache("merchant.api_keys", ttl=KEY_CACHE_SECONDS)
_TOUCHED: TtlCache[int] = TtlCache("merchant.api_key_used", ttl=60.0)  # last_used_at written


def _refuse(detail: str, code: str) -> Unauthorized:
    return Unauthorized(detail, code=code)


class _NoSuchKey(Exception):
    """Not cached: a key made a moment later must work at once."""


def _key(uow: UnitOfWork, key_id: str, encryptor: Encryptor) -> _Key | None:
    def load() -> _Key:
        found = uow.session.execute(
            select(ApiKey, Merchant.public_id)
            .join(Merchant, Merchant.id == ApiKey.merchant_id)
            .where(ApiKey.public_id == key_id, ApiKey.status == "active")
        ).first()
        if found is None:
            raise _NoSuchKey
        key, merchant_id = found
        secret = None
        if key.scheme == "hmac-sha256":
            assert key.secret_enc is not None
            secret = encryptor.decrypt(key.secret_enc, aad=key.public_id.encode()).decode()
        public = base64.b64decode(key.public_key) if key.public_key else None
        return _Key(key.id, key.public_id, key.merchant_id, str(merchant_id), key.scheme,
                    secret, public)  # fmt: skip

    try:
        return _KEYS.get(uow, key_id, load)
    except _NoSuchKey:
        return None


def forget_key(uow: UnitOfWork, key_id: str) -> None:
    """Drop a key from this process's cache (it was revoked)."""
    _KEYS.forget(uow, key_id)


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
    defer_nonce: bool = False,
) -> MerchantCaller:
    """Check a signed request and spend its nonce; raises ``Unauthorized`` with a code.

    With ``defer_nonce``, the nonce is returned unspent in ``MerchantCaller.nonce`` for the
    route to spend in the transaction of its work (:func:`spend_nonce`), and on its own
    if that work fails (:func:`spend_alone`): one transaction fewer on a charge."""
    header, message = _checked(authorization, method, path, body, settings, now)
    key = _KEYS.peek(db.engine, header.key_id)
    if key is None:
        with db.uow(readonly=True) as uow:
            key = _key(uow, header.key_id, encryptor)
    caller = _caller(key, header, message, settings)
    if defer_nonce:
        return caller
    assert caller.nonce is not None
    spend_alone(db, caller.nonce)
    return replace(caller, nonce=None)


def authenticate_cached(
    db: Database,
    *,
    authorization: str | None,
    method: str,
    path: str,
    body: bytes,
    settings: Settings,
    now: int | None = None,
) -> MerchantCaller | None:
    """:func:`authenticate` with ``defer_nonce`` when the key is in this process's cache:
    no I/O at all, so an async route runs it without a worker thread. None when the key
    must be read first (then call :func:`authenticate`)."""
    header, message = _checked(authorization, method, path, body, settings, now)
    key = _KEYS.peek(db.engine, header.key_id)
    return None if key is None else _caller(key, header, message, settings)


def _checked(
    authorization: str | None,
    method: str,
    path: str,
    body: bytes,
    settings: Settings,
    now: int | None,
) -> tuple[signing.SignedHeader, bytes]:
    """The parsed header, checked for its timestamp, and the message it signs."""
    moment = now if now is not None else now_us()
    try:
        header = signing.parse_authorization(authorization or "")
        signing.check_timestamp(
            header.timestamp, moment / SECOND_US, window=settings.signature_window_seconds
        )
    except signing.SignatureError as exc:
        raise _refuse(str(exc), exc.code) from exc
    return header, signing.canonical_request(method, path, header.timestamp, header.nonce, body)


def _caller(
    key: _Key | None, header: signing.SignedHeader, message: bytes, settings: Settings
) -> MerchantCaller:
    """The caller the key's signature proves, its nonce not yet spent."""
    if key is None:
        raise _refuse("Unknown or revoked API key.", "api_key_invalid")
    if not _verified(key, header, message):
        raise _refuse(
            "The signature does not match the request; see docs/merchant-signing.md.",
            "signature_mismatch",
        )
    window = settings.signature_window_seconds * SECOND_US
    pending = PendingNonce(key.pk, header.nonce, header.timestamp * SECOND_US + window)
    return MerchantCaller(key.merchant_pk, key.merchant_id, key.public_id, nonce=pending)


# Every signed request runs it (a charge in its own transaction): sent at the driver's level.
_SPEND_NONCE = DriverSql(
    "INSERT INTO merchant_nonces (key_id, nonce, expires_at) SELECT ?, ?, ? "
    "WHERE EXISTS (SELECT 1 FROM merchant_api_keys WHERE id = ? AND status = 'active') "
    "RETURNING key_id"
)


def spend_nonce(uow: UnitOfWork, pending: PendingNonce) -> None:
    """Spend a request's nonce in ``uow``, in one statement that also checks its key is
    still active (``nonce_reused``, ``api_key_invalid``). Concurrent requests with the
    same nonce wait on the unique index; all but the first are refused."""
    try:
        inserted = _SPEND_NONCE.run(
            uow, (pending.key_pk, pending.nonce, pending.expires_at, pending.key_pk)
        ).first()
    except IntegrityError:
        raise _refuse("This nonce was used already.", "nonce_reused") from None
    if inserted is None:
        raise _refuse("Unknown or revoked API key.", "api_key_invalid")

    def touch() -> int:  # at most once a minute per process: keeps hot keys write-light
        moment = now_us()
        uow.session.connection().execute(
            update(ApiKey).where(ApiKey.id == pending.key_pk).values(last_used_at=moment)
        )
        return moment

    _TOUCHED.get(uow, pending.key_pk, touch)


def spend_alone(db: Database, pending: PendingNonce) -> None:
    """Spend a nonce in a transaction of its own: a replay is refused even if the request
    then fails."""
    db.transact(lambda uow: spend_nonce(uow, pending))


def _verified(key: _Key, header: signing.SignedHeader, message: bytes) -> bool:
    expected = "CW1-HMAC-SHA256" if key.scheme == "hmac-sha256" else "CW1-ED25519"
    if header.scheme != expected:
        return False
    if key.scheme == "hmac-sha256":
        assert key.secret is not None
        return signing.verify_hmac(key.secret, message, header.signature)
    assert key.public_key is not None
    return signing.verify_ed25519(key.public_key, message, header.signature)


def purge_nonces(uow: UnitOfWork, *, now: int | None = None) -> int:
    """Forget nonces whose timestamps have left the window; returns how many."""
    moment = now if now is not None else now_us()
    result = uow.session.execute(delete(Nonce).where(Nonce.expires_at < moment))
    return int(getattr(result, "rowcount", 0) or 0)
