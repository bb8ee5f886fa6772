"""Ledger tables: accounts with four counters, immutable transfers, sealed blocks, the
global log's tree nodes and its published checkpoints."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from citywallet.platform.db import Base, BigId


class Account(Base):
    """A ledger account. Counters change only through the posting engine."""

    __tablename__ = "ledger_accounts"
    __table_args__ = (
        CheckConstraint(
            "debits_pending >= 0 AND debits_posted >= 0 AND credits_pending >= 0 "
            "AND credits_posted >= 0",
            name="counters_non_negative",
        ),
        # Second line of defence behind the engine: the no-overdraft flags hold in SQL too.
        CheckConstraint(
            "(flags & 1) = 0 OR debits_pending + debits_posted <= credits_posted",
            name="debits_within_credits",
        ),
        CheckConstraint(
            "(flags & 2) = 0 OR credits_pending + credits_posted <= debits_posted",
            name="credits_within_debits",
        ),
        Index("ix_ledger_accounts_owner", "owner_ref"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ledger: Mapped[str] = mapped_column(String(3))
    code: Mapped[int] = mapped_column(Integer)
    flags: Mapped[int] = mapped_column(Integer, default=0)
    owner_ref: Mapped[str | None] = mapped_column(String(64))
    debits_pending: Mapped[int] = mapped_column(BigInteger, default=0)
    debits_posted: Mapped[int] = mapped_column(BigInteger, default=0)
    credits_pending: Mapped[int] = mapped_column(BigInteger, default=0)
    credits_posted: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[int] = mapped_column(BigInteger)  # microseconds since the epoch


class TransferRow(Base):
    """A recorded transfer. Never updated except for its seal (block and leaf position)."""

    __tablename__ = "ledger_transfers"
    __table_args__ = (
        CheckConstraint("amount >= 0", name="amount_non_negative"),
        CheckConstraint("debit_account_id <> credit_account_id", name="accounts_differ"),
        Index("ix_ledger_transfers_debit", "debit_account_id", "seq"),
        Index("ix_ledger_transfers_credit", "credit_account_id", "seq"),
        Index("ix_ledger_transfers_reference", "reference"),
        # One post or void per pending transfer, enforced by the database as well.
        Index("uq_ledger_transfers_pending_id", "pending_id", unique=True),
        Index(
            "ix_ledger_transfers_unsealed",
            "seq",
            postgresql_where=text("block_height IS NULL"),
            sqlite_where=text("block_height IS NULL"),
        ),
        Index("uq_ledger_transfers_log_index", "log_index", unique=True),
    )

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    debit_account_id: Mapped[int] = mapped_column(ForeignKey("ledger_accounts.id"))
    credit_account_id: Mapped[int] = mapped_column(ForeignKey("ledger_accounts.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    ledger: Mapped[str] = mapped_column(String(3))
    code: Mapped[int] = mapped_column(Integer)
    flags: Mapped[int] = mapped_column(Integer)
    pending_id: Mapped[str | None] = mapped_column(String(64))
    timeout: Mapped[int] = mapped_column(Integer, default=0)
    reference: Mapped[str | None] = mapped_column(String(128))
    timestamp: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    block_height: Mapped[int | None] = mapped_column(BigInteger)
    leaf_index: Mapped[int | None] = mapped_column(Integer)
    # Position in the one growing log of all sealed transfers (blocks are consecutive runs).
    log_index: Mapped[int | None] = mapped_column(BigInteger)


class PendingTimeout(Base):
    """Open pending transfers that expire; a row leaves when its transfer is posted or voided."""

    __tablename__ = "ledger_pending_timeouts"
    __table_args__ = (Index("ix_ledger_pending_timeouts_expires_at", "expires_at"),)

    transfer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[int] = mapped_column(BigInteger)


class Block(Base):
    """A sealed block: Merkle root of its transfers, chained to the previous, signed."""

    __tablename__ = "ledger_blocks"

    height: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    prev_hash: Mapped[str] = mapped_column(String(64))
    merkle_root: Mapped[str] = mapped_column(String(64))
    tree_size: Mapped[int] = mapped_column(Integer)
    sealed_at: Mapped[int] = mapped_column(BigInteger)
    key_id: Mapped[str] = mapped_column(String(32))
    block_hash: Mapped[str] = mapped_column(String(64), unique=True)
    signature: Mapped[str] = mapped_column(String(128))
    # The sealed leaf hashes in order, so verification can name a changed transfer even
    # when its stored hash was rewritten too.
    leaves: Mapped[bytes] = mapped_column(LargeBinary)


class TreeNode(Base):
    """A complete subtree of the global log: level 0 are the leaves, level l covers 2^l."""

    __tablename__ = "ledger_tree_nodes"

    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class CheckpointRow(Base):
    """Every checkpoint ever published (a signed note), so none can be quietly forgotten."""

    __tablename__ = "ledger_checkpoints"

    tree_size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[int] = mapped_column(BigInteger)  # microseconds since the epoch
    note: Mapped[str] = mapped_column(Text)
