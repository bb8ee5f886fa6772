"""Platform tables: encrypted secrets, jobs and leases, the outbox, idempotency keys."""

from __future__ import annotations

from sqlalchemy import BigInteger, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from citywallet.platform.db import Base, BigId


class Secret(Base):
    """A named secret (e.g. the ledger signing key), encrypted with the data-encryption keys."""

    __tablename__ = "platform_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    ciphertext: Mapped[str] = mapped_column(Text)  # Encryptor envelope: "v1.<kid>.<b64>"
    public: Mapped[str | None] = mapped_column(Text)  # a public counterpart, if any
    created_at: Mapped[int] = mapped_column(BigInteger)


class Job(Base):
    """A unit of background work, claimed through the database so it runs once."""

    __tablename__ = "platform_jobs"
    __table_args__ = (Index("ix_platform_jobs_due", "status", "run_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64))
    dedupe_key: Mapped[str | None] = mapped_column(String(128), unique=True)
    payload: Mapped[str] = mapped_column(Text, default="{}")
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued|running|done|failed
    run_at: Mapped[int] = mapped_column(BigInteger)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=10)
    locked_by: Mapped[str | None] = mapped_column(String(64))
    locked_until: Mapped[int | None] = mapped_column(BigInteger)
    last_error: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[int | None] = mapped_column(BigInteger)


class Lease(Base):
    """Who may run a periodic task right now (one holder across all worker processes)."""

    __tablename__ = "platform_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(64))
    until: Mapped[int] = mapped_column(BigInteger)


class OutboxMessage(Base):
    """A side effect to deliver after commit (webhook, SMS, e-mail), at least once."""

    __tablename__ = "platform_outbox"
    __table_args__ = (Index("ix_platform_outbox_due", "delivered_at", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    topic: Mapped[str] = mapped_column(String(64))
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[int] = mapped_column(BigInteger)
    next_attempt_at: Mapped[int] = mapped_column(BigInteger)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    delivered_at: Mapped[int | None] = mapped_column(BigInteger)
    dead: Mapped[bool] = mapped_column(default=False)
    last_error: Mapped[str | None] = mapped_column(Text)


class IdempotencyKey(Base):
    """A stored response for an ``Idempotency-Key``, committed with the request's effects."""

    __tablename__ = "platform_idempotency_keys"

    scope: Mapped[str] = mapped_column(String(64), primary_key=True)  # who: user/merchant/key
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response_body: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[int] = mapped_column(BigInteger)
