"""The provider's interop tables: lookups and quotes waiting for the switch's callbacks,
the quotes this deployment gave as a payee (with the fulfilment, encrypted), the transfers
of both roles, and the settlement windows already posted.

Ids on the wire (quote, transfer, window) are the switch's UUIDs; residents see opaque
prefixed public ids (``iqt_…``, ``itf_…``). Timestamps are microseconds since the epoch.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from citywallet.platform.crypto import register_encrypted_column
from citywallet.platform.db import Base, BigId


class PartyLookup(Base):
    """A resident's ``GET /parties`` waiting for (or answered by) the switch's callback."""

    __tablename__ = "interop_lookups"
    __table_args__ = (
        Index("ix_interop_lookups_identifier", "identifier", "state"),
        CheckConstraint("state IN ('waiting', 'found', 'not_found')", name="state_known"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(40))
    identifier: Mapped[str] = mapped_column(String(32))  # MSISDN, national digits
    state: Mapped[str] = mapped_column(String(16))
    fsp_id: Mapped[str | None] = mapped_column(String(32))
    fsp_name: Mapped[str | None] = mapped_column(String(100))  # the switch's display name
    masked_name: Mapped[str | None] = mapped_column(String(64))
    error_code: Mapped[str | None] = mapped_column(String(4))
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class PayerQuote(Base):
    """A quote a resident asked for, waiting for (or holding) the payee provider's terms."""

    __tablename__ = "interop_payer_quotes"
    __table_args__ = (
        CheckConstraint("state IN ('waiting', 'ready', 'failed')", name="state_known"),
        CheckConstraint("amount > 0", name="amount_positive"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)  # iqt_…
    quote_id: Mapped[str] = mapped_column(String(36), unique=True)  # the wire's UUID
    user_id: Mapped[str] = mapped_column(String(40))
    payee_identifier: Mapped[str] = mapped_column(String(32))
    payee_fsp: Mapped[str] = mapped_column(String(32))
    payee_fsp_name: Mapped[str | None] = mapped_column(String(100))  # the switch's word
    masked_name: Mapped[str] = mapped_column(String(64))
    amount: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(16))
    transfer_amount: Mapped[int | None] = mapped_column(BigInteger)
    payer_fee: Mapped[int | None] = mapped_column(BigInteger)
    payee_fee: Mapped[int | None] = mapped_column(BigInteger)
    condition: Mapped[str | None] = mapped_column(String(43))
    expires_at: Mapped[int | None] = mapped_column(BigInteger)
    error_code: Mapped[str | None] = mapped_column(String(4))
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class PayeeQuote(Base):
    """A quote this deployment gave as the payee's provider: the terms and the fulfilment
    (an envelope bound to the quote id), released only for a prepare that keeps them."""

    __tablename__ = "interop_payee_quotes"
    __table_args__ = (CheckConstraint("transfer_amount > 0", name="amount_positive"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    quote_id: Mapped[str] = mapped_column(String(36), unique=True)
    payer_fsp: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[str] = mapped_column(String(40))
    identifier: Mapped[str] = mapped_column(String(32))
    transfer_amount: Mapped[int] = mapped_column(BigInteger)
    payee_fee: Mapped[int] = mapped_column(BigInteger)
    payer_fee: Mapped[int] = mapped_column(BigInteger)
    condition: Mapped[str] = mapped_column(String(43), unique=True)
    fulfilment_enc: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[int] = mapped_column(BigInteger)
    response: Mapped[str] = mapped_column(Text)  # the PUT /quotes body, resent on duplicates
    created_at: Mapped[int] = mapped_column(BigInteger)


class InteropTransfer(Base):
    """One cross-provider transfer as this deployment sees it, payer or payee side, with the
    ledger's pending transfer that only the switch's final word resolves."""

    __tablename__ = "interop_transfers"
    __table_args__ = (
        Index("ix_interop_transfers_open", "state", "expires_at"),
        Index("ix_interop_transfers_user", "user_id", "id"),
        Index("uq_interop_transfers_payer_key", "user_id", "idempotency_key", unique=True),
        CheckConstraint("role IN ('payer', 'payee')", name="role_known"),
        CheckConstraint(
            "state IN ('PREPARED', 'COMMITTED', 'ABORTED', 'EXPIRED')", name="state_known"
        ),
        CheckConstraint("amount > 0 AND payer_fee >= 0 AND payee_fee >= 0", name="amounts"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)  # itf_…, also the hold's id
    transfer_id: Mapped[str] = mapped_column(String(36), unique=True)  # the switch's
    quote_id: Mapped[str] = mapped_column(String(36), unique=True)  # one transfer per quote
    role: Mapped[str] = mapped_column(String(8))
    user_id: Mapped[str] = mapped_column(String(40))
    counterparty_fsp: Mapped[str] = mapped_column(String(32))
    counterparty_fsp_name: Mapped[str | None] = mapped_column(String(100))  # display name
    counterparty_identifier: Mapped[str] = mapped_column(String(64))
    counterparty_name: Mapped[str] = mapped_column(String(64))
    amount: Mapped[int] = mapped_column(BigInteger)  # what crosses the switch
    payer_fee: Mapped[int] = mapped_column(BigInteger, default=0)
    payee_fee: Mapped[int] = mapped_column(BigInteger, default=0)
    condition: Mapped[str] = mapped_column(String(43))
    state: Mapped[str] = mapped_column(String(16))
    error_code: Mapped[str | None] = mapped_column(String(4))
    note: Mapped[str] = mapped_column(String(100), default="")
    usage: Mapped[str] = mapped_column(Text, default="{}")  # limit usage to give back on abort
    idempotency_key: Mapped[str | None] = mapped_column(String(128))
    expires_at: Mapped[int] = mapped_column(BigInteger)
    queried_at: Mapped[int | None] = mapped_column(BigInteger)  # last GET /transfers/{id}
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)
    resolved_at: Mapped[int | None] = mapped_column(BigInteger)


class SettlementWindow(Base):
    """A closed settlement window whose net this deployment posted (once)."""

    __tablename__ = "interop_settlement_windows"

    window_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    net_amount: Mapped[int] = mapped_column(BigInteger)
    transfer_count: Mapped[int] = mapped_column(BigInteger)
    ledger_transfer_id: Mapped[str | None] = mapped_column(String(64))
    closed_at: Mapped[int] = mapped_column(BigInteger)
    processed_at: Mapped[int] = mapped_column(BigInteger)


register_encrypted_column("interop_payee_quotes", "quote_id", "fulfilment_enc", aad_is_key=True)


class Move(Base):
    """A resident's move between cells as this cell sees it: ``out`` at the old cell (the
    state machine of :mod:`citywallet.interop.moves`, the quote and transfer that carry the
    balance, the lookup that confirms the alias), ``in`` at the new cell (the resident it
    created and the balance it expects)."""

    __tablename__ = "interop_moves"
    __table_args__ = (
        Index("ix_interop_moves_user", "user_id", "id"),
        CheckConstraint("direction IN ('out', 'in')", name="direction_known"),
        CheckConstraint(
            "state IN ('frozen', 'sent', 'accepted', 'quoting', 'transferring', "
            "'transferred', 'alias_sent', 'done', 'refused')",
            name="state_known",
        ),
        CheckConstraint("balance >= 0", name="balance_not_negative"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    move_id: Mapped[str] = mapped_column(String(36), unique=True)  # the wire's UUID
    direction: Mapped[str] = mapped_column(String(3))
    user_id: Mapped[str] = mapped_column(String(40))  # the resident at this cell
    other_fsp: Mapped[str] = mapped_column(String(32))  # where to (out) / from (in)
    state: Mapped[str] = mapped_column(String(16))
    balance: Mapped[int] = mapped_column(BigInteger)
    line_count: Mapped[int] = mapped_column(BigInteger, default=0)
    other_user_id: Mapped[str | None] = mapped_column(String(40))  # at the other cell
    quote_id: Mapped[str | None] = mapped_column(String(40))  # iqt_… carrying the balance
    transfer_id: Mapped[str | None] = mapped_column(String(40))  # itf_… carrying it
    lookup_id: Mapped[int | None] = mapped_column(BigInteger)  # confirms the alias moved
    outbox_id: Mapped[int | None] = mapped_column(BigInteger)  # the package, scrubbed later
    error_code: Mapped[str | None] = mapped_column(String(4))
    reason: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)
