"""The switch's tables (docs/interop.md, "The switch"). Times are µs since the epoch."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from citywallet.platform.db import Base


class Participant(Base):
    """A provider or a cell, with its position: one row, locked for every position change."""

    __tablename__ = "switch_participants"
    __table_args__ = (
        CheckConstraint("cap >= 0 AND reserved >= 0", name="cap_and_reserved_not_negative"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    public_key: Mapped[str] = mapped_column(String(64))  # base64 of the 32-byte Ed25519 key
    callback_url: Mapped[str] = mapped_column(String(500))
    currency: Mapped[str] = mapped_column(String(3))
    cap: Mapped[int] = mapped_column(BigInteger)  # net debit cap, fen
    position: Mapped[int] = mapped_column(BigInteger)  # owed net in unsettled windows
    reserved: Mapped[int] = mapped_column(BigInteger)  # prepared, not yet final
    active: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class Alias(Base):
    """Who holds a party alias (a mobile number, a merchant id)."""

    __tablename__ = "switch_aliases"
    __table_args__ = (Index("ix_switch_aliases_fsp", "fsp_id"),)

    id_type: Mapped[str] = mapped_column(String(16), primary_key=True)
    identifier: Mapped[str] = mapped_column(String(64), primary_key=True)
    fsp_id: Mapped[str] = mapped_column(ForeignKey("switch_participants.id"))
    masked_name: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[int] = mapped_column(BigInteger)


class Quote(Base):
    """A quote in flight: routes the payee's answer back, detects duplicates, and keeps the
    answer forwarded (terms or refusal) to send the payer again on a resent request."""

    __tablename__ = "switch_quotes"
    __table_args__ = (Index("ix_switch_quotes_created", "created_at"),)  # the daily purge

    quote_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    payer: Mapped[str] = mapped_column(String(32))
    payee: Mapped[str] = mapped_column(String(32))
    digest: Mapped[str] = mapped_column(String(64))  # SHA-256 of the request's wire body
    state: Mapped[str] = mapped_column(String(16))  # REQUESTED | ANSWERED | FAILED
    answer_digest: Mapped[str | None] = mapped_column(String(64))
    answer: Mapped[str | None] = mapped_column(Text)  # the payee's body as forwarded (0014)
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class Transfer(Base):
    """The stored record of one transfer (``transfers.Transfer``) plus what queries need."""

    __tablename__ = "switch_transfers"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        Index("ix_switch_transfers_due", "state", "expiration"),
        Index("ix_switch_transfers_window", "window_id"),
    )

    transfer_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    payer: Mapped[str] = mapped_column(String(32))
    payee: Mapped[str] = mapped_column(String(32))
    amount: Mapped[int] = mapped_column(BigInteger)
    digest: Mapped[str] = mapped_column(String(64))
    prepare: Mapped[str] = mapped_column(Text)  # the prepare's wire JSON
    state: Mapped[str] = mapped_column(String(16))
    fulfilment: Mapped[str | None] = mapped_column(String(43))
    error_code: Mapped[str | None] = mapped_column(String(4))  # why it ended ABORTED/EXPIRED
    expiration: Mapped[int] = mapped_column(BigInteger)
    window_id: Mapped[str | None] = mapped_column(String(36))  # set when its window closes
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)
    completed_at: Mapped[int | None] = mapped_column(BigInteger)


class Window(Base):
    """A settlement window; exactly one is OPEN (a partial unique index says so)."""

    __tablename__ = "switch_windows"
    __table_args__ = (
        CheckConstraint("state IN ('OPEN', 'CLOSED')", name="state_known"),
        Index(
            "uq_switch_windows_open",
            "state",
            unique=True,
            sqlite_where=text("state = 'OPEN'"),
            postgresql_where=text("state = 'OPEN'"),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    state: Mapped[str] = mapped_column(String(8))
    opened_at: Mapped[int] = mapped_column(BigInteger)
    closed_at: Mapped[int | None] = mapped_column(BigInteger)
    report: Mapped[str | None] = mapped_column(Text)  # JSON of the SettlementReport


class Move(Base):
    """A resident's package relayed from one cell to another (``POST /moves``): who sent it
    to whom, its digest (a resend is relayed once), and the receiver's answer. An accepted
    move lets its sender hand the resident's alias over to the receiver. The relayed
    package's outbox row is scrubbed once the receiver answered (it holds PII)."""

    __tablename__ = "switch_moves"
    __table_args__ = (
        CheckConstraint("state IN ('RELAYED', 'ACCEPTED', 'REFUSED')", name="state_known"),
    )

    move_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    source: Mapped[str] = mapped_column(String(32))
    destination: Mapped[str] = mapped_column(String(32))
    identifier: Mapped[str] = mapped_column(String(32))  # the resident's MSISDN
    digest: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    outbox_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)
