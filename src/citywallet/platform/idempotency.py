"""``Idempotency-Key`` handling for money-moving requests, inside the request's transaction.

The edge (the API's ``Idempotent``, the pages' ``forms.once``) runs :func:`claim_then`,
which calls :func:`begin` first thing in the unit of work. It inserts the key row before
anything else happens, so a concurrent request with the same key waits — on PostgreSQL at
the unique key until the first transaction ends, on SQLite at the ``BEGIN IMMEDIATE``
writer lock — and then sees the stored response. The use case runs, :func:`finish` stores
its response, and one commit makes the key, the ledger effects and the response durable
together. If the use case fails, the rollback removes the key as well, so a retry runs
again; to make a refusal replayable too, store it from a fresh unit of work with
``begin`` + ``finish``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text

from citywallet.platform.clock import now_us
from citywallet.platform.crypto import Encryptor
from citywallet.platform.db import DriverSql, UnitOfWork
from citywallet.platform.errors import Conflict, InvalidInput

KEY_TTL_SECONDS = 24 * 3600
_IN_PROGRESS = 0  # status_code of a key whose response is not stored yet


class IdempotencyKeyReused(InvalidInput):
    """The same ``Idempotency-Key`` arrived with a different request."""

    code = "idempotency_key_reused"
    status = 422
    title = "Idempotency key reused"


@dataclass(frozen=True)
class StoredResponse:
    """The response first given for an idempotency key, replayed byte for byte."""

    status_code: int
    body: bytes


def request_fingerprint(method: str, path: str, body: bytes) -> str:
    """A SHA-256 hex digest identifying a request (method, path and raw body)."""
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def fingerprint(encryptor: Encryptor, method: str, path: str, fields: Mapping[str, Any]) -> str:
    """The stored fingerprint of a request: a keyed hash of its method, path and parsed
    body (canonical JSON), so formatting does not count as another request and the stored
    value reveals nothing about a PIN in the body. The API and the pages both use it."""
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    raw = request_fingerprint(method, path, canonical.encode())
    return encryptor.lookup_hash(f"idempotency:{raw}")


def claim_then(
    uow: UnitOfWork,
    *,
    scope: str,
    key: str,
    request_hash: str,
    work: Callable[[UnitOfWork], StoredResponse],
) -> tuple[StoredResponse, bool]:
    """The one shape of an idempotent use case, for the API and the pages alike: claim
    ``key`` as the transaction's first statement, do ``work`` and store its response in the
    same transaction. Returns ``(response, replayed)``: a key used before returns its stored
    response without running ``work`` (so a replay needs no PIN and moves nothing)."""
    stored = begin(uow, scope=scope, key=key, request_hash=request_hash)
    if stored is not None:
        return stored, True
    response = work(uow)
    finish(uow, scope=scope, key=key, status_code=response.status_code, body=response.body)
    return response, False


# Every payment runs the claim and the finish: fixed statements sent at the driver's level
# (the ORM session's execute of a text() parsed per call cost more than the statement).
_CLAIM = DriverSql(
    "INSERT INTO platform_idempotency_keys "
    "(scope, key, request_hash, status_code, response_body, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (scope, key) DO NOTHING RETURNING scope"
)
_STORED = DriverSql(
    "SELECT request_hash, status_code, response_body FROM platform_idempotency_keys "
    "WHERE scope = ? AND key = ?"
)
_FINISH = DriverSql(
    "UPDATE platform_idempotency_keys SET status_code = ?, response_body = ? "
    "WHERE scope = ? AND key = ? AND status_code = ?"
)


def begin(uow: UnitOfWork, *, scope: str, key: str, request_hash: str) -> StoredResponse | None:
    """Claim ``key`` for this request; returns the stored response if it was seen before."""
    inserted = _CLAIM.run(uow, (scope, key, request_hash, _IN_PROGRESS, b"", now_us())).first()
    if inserted is not None:
        return None
    row = _stored_row(uow, scope, key)
    assert row is not None  # the insert just met it
    return _replayable(row, request_hash)


def lookup(uow: UnitOfWork, *, scope: str, key: str, request_hash: str) -> StoredResponse | None:
    """What :func:`begin` would answer for a key seen before, read only (nothing claimed):
    for a request refused before it claims its key, so that a retry of a finished first try
    still replays it. ``None`` if the key is new."""
    row = _stored_row(uow, scope, key)
    return None if row is None else _replayable(row, request_hash)


def _stored_row(uow: UnitOfWork, scope: str, key: str) -> tuple[str, int, bytes] | None:
    """(request hash, status code, response body) of a key, or None."""
    row = _STORED.run(uow, (scope, key)).first()
    return None if row is None else (str(row[0]), int(row[1]), bytes(row[2]))


def _replayable(row: tuple[str, int, bytes], request_hash: str) -> StoredResponse:
    if row[0] != request_hash:
        raise IdempotencyKeyReused("this Idempotency-Key was already used for a different request")
    if row[1] == _IN_PROGRESS:  # only if a caller committed without finish()
        raise Conflict(
            "the request with this Idempotency-Key has not finished",
            code="idempotency_key_in_progress",
        )
    return StoredResponse(row[1], row[2])


def finish(uow: UnitOfWork, *, scope: str, key: str, status_code: int, body: bytes) -> None:
    """Store the response for ``key`` in the same transaction as the request's effects."""
    if status_code == _IN_PROGRESS:
        raise ValueError("status_code must be a real HTTP status")
    result = _FINISH.run(uow, (status_code, body, scope, key, _IN_PROGRESS))
    if result.rowcount != 1:
        raise RuntimeError(f"finish() without begin() for idempotency key {scope}/{key}")


def purge_expired(
    uow: UnitOfWork, *, older_than_seconds: int = KEY_TTL_SECONDS, now: int | None = None
) -> int:
    """Delete keys older than ``older_than_seconds`` (default 24 h); returns how many."""
    moment = now if now is not None else now_us()
    result = uow.session.execute(
        text("DELETE FROM platform_idempotency_keys WHERE created_at < :cutoff"),
        {"cutoff": moment - older_than_seconds * 1_000_000},
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
