"""Wallet tables: wallets, limit usage, bank cards, fundings, split bills, history, and
restricted balances (money granted for spending only at some merchants, until a date).

Money itself lives in the ledger; these tables hold what the ledger must not know (whose
wallet, which card, why). Users are referred to by their public id (``usr_…``), the
identity package's contract. Card numbers are stored only as ``Encryptor`` envelopes bound
to the card's public id (re-wrapped by ``citywallet keys rotate``), plus a keyed lookup
hash, the BIN and the last four digits; no CVV is ever accepted, so none is stored.
Timestamps are microseconds since the epoch.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from citywallet.platform.crypto import register_encrypted_column
from citywallet.platform.db import Base, BigId


class Wallet(Base):
    """A resident's CNY wallet: the ledger account that holds their balance."""

    __tablename__ = "wallet_wallets"

    user_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    ledger_account_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[int] = mapped_column(BigInteger)
    closed_at: Mapped[int | None] = mapped_column(BigInteger)  # closed by its owner


class LimitUsage(Base):
    """What a user has spent in one period (``d:2025-01-31``, ``y:2025``, ``life``, and
    ``free_wd`` for the free withdrawal quota); locked with the posting that changes it."""

    __tablename__ = "wallet_limit_usage"
    __table_args__ = (CheckConstraint("amount >= 0", name="amount_non_negative"),)

    user_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    period: Mapped[str] = mapped_column(String(16), primary_key=True)
    amount: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class BankCard(Base):
    """A debit card bound after a four-element check with the user's verified identity."""

    __tablename__ = "wallet_bank_cards"
    __table_args__ = (
        # One active binding of a card per user (an unbound card may be bound again).
        Index(
            "uq_wallet_bank_cards_active",
            "user_id",
            "card_hash",
            unique=True,
            sqlite_where=text("status = 'active'"),
            postgresql_where=text("status = 'active'"),
        ),
        Index("ix_wallet_bank_cards_user", "user_id", "id"),
        CheckConstraint("status IN ('active', 'unbound')", name="status_known"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)  # card_…
    user_id: Mapped[str] = mapped_column(String(40))
    card_enc: Mapped[str | None] = mapped_column(Text)  # dropped when the card is unbound
    card_hash: Mapped[str] = mapped_column(String(64))  # keyed lookup hash of the number
    bin: Mapped[str] = mapped_column(String(6))
    last4: Mapped[str] = mapped_column(String(4))
    number_length: Mapped[int] = mapped_column(Integer)
    bank_code: Mapped[str] = mapped_column(String(16))
    bank_name: Mapped[str] = mapped_column(String(100))
    holder_name_masked: Mapped[str] = mapped_column(String(64))
    holder_id_hash: Mapped[str] = mapped_column(String(64))  # the verified identity's id_hash
    check_ref: Mapped[str] = mapped_column(String(64))  # the bank's reference of the check
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[int] = mapped_column(BigInteger)
    unbound_at: Mapped[int | None] = mapped_column(BigInteger)


class Funding(Base):
    """A top-up from or a withdrawal to a bound card, held pending while the bank answers."""

    __tablename__ = "wallet_fundings"
    __table_args__ = (
        Index("ix_wallet_fundings_open", "status", "created_at"),
        Index("ix_wallet_fundings_user", "user_id", "id"),
        Index("ix_wallet_fundings_idempotency", "user_id", "idempotency_key"),
        CheckConstraint("amount > 0 AND fee >= 0 AND free_part >= 0", name="amounts_valid"),
        CheckConstraint("kind IN ('topup', 'withdrawal')", name="kind_known"),
        CheckConstraint(
            "status IN ('processing', 'unknown', 'succeeded', 'failed')", name="status_known"
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)  # top_… / wdr_…
    user_id: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(16))
    card_id: Mapped[str] = mapped_column(String(40))  # the card's public id
    amount: Mapped[int] = mapped_column(BigInteger)
    fee: Mapped[int] = mapped_column(BigInteger, default=0)
    free_part: Mapped[int] = mapped_column(BigInteger, default=0)  # covered by the free quota
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16))
    failure_code: Mapped[str | None] = mapped_column(String(64))
    bank_ref: Mapped[str | None] = mapped_column(String(64))
    day_period: Mapped[str] = mapped_column(String(16))  # the usage row it counted in
    idempotency_key: Mapped[str | None] = mapped_column(String(128))
    transfer_ids: Mapped[str] = mapped_column(Text)  # JSON list of ledger transfer ids
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)
    resolved_at: Mapped[int | None] = mapped_column(BigInteger)


class Activity(Base):
    """One line of a user's history; a P2P transfer has one line for each side."""

    __tablename__ = "wallet_activity"
    __table_args__ = (
        Index("uq_wallet_activity_user_object", "user_id", "object_id", unique=True),
        Index("ix_wallet_activity_user", "user_id", "id"),
        CheckConstraint("amount > 0 AND fee >= 0", name="amounts_valid"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(40))
    object_id: Mapped[str] = mapped_column(String(40))  # top_…, wdr_…, p2p_…, shr_…
    kind: Mapped[str] = mapped_column(String(24))
    amount: Mapped[int] = mapped_column(BigInteger)
    fee: Mapped[int] = mapped_column(BigInteger, default=0)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16))
    counterparty_user_id: Mapped[str | None] = mapped_column(String(40))
    counterparty_label: Mapped[str] = mapped_column(String(100), default="")
    note: Mapped[str] = mapped_column(String(200), default="")
    reference: Mapped[str | None] = mapped_column(String(40))  # e.g. the split a share is of
    transfer_ids: Mapped[str] = mapped_column(Text)  # JSON list of ledger transfer ids
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)
    # the cell this line was imported from when the wallet moved (read-only here)
    origin: Mapped[str | None] = mapped_column(String(32))


class Split(Base):
    """An AA split: a request that N people pay their exact shares to its creator."""

    __tablename__ = "wallet_splits"
    __table_args__ = (
        Index("ix_wallet_splits_creator", "creator_id", "id"),
        CheckConstraint("total > 0", name="total_positive"),
        CheckConstraint("status IN ('open', 'completed', 'cancelled')", name="status_known"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)  # spl_…
    creator_id: Mapped[str] = mapped_column(String(40))
    total: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    note: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class SplitShare(Base):
    """One person's share of a split."""

    __tablename__ = "wallet_split_shares"
    __table_args__ = (
        Index("uq_wallet_split_shares_person", "split_id", "user_id", unique=True),
        Index("ix_wallet_split_shares_user", "user_id", "id"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("status IN ('unpaid', 'paid', 'cancelled')", name="status_known"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)  # shr_…
    split_id: Mapped[int] = mapped_column(ForeignKey("wallet_splits.id"))
    position: Mapped[int] = mapped_column(Integer)
    user_id: Mapped[str] = mapped_column(String(40))
    amount: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))
    transfer_id: Mapped[str | None] = mapped_column(String(64))  # None: the creator's own share
    paid_at: Mapped[int | None] = mapped_column(BigInteger)
    last_reminded_at: Mapped[int | None] = mapped_column(BigInteger)


class RestrictedSource(Base):
    """Where restricted money comes from and where it may go: a government campaign, say.

    Its balances may be spent only at merchants in scope (by merchant id, district and/or
    MCC; an empty list does not restrict), between ``valid_from`` and ``valid_until``, on
    payments of at least ``min_spend``; they are never transferred, sent or withdrawn.
    Whatever is left at ``valid_until`` (or when a wallet closes) goes back to the funder.
    """

    __tablename__ = "wallet_restricted_sources"
    __table_args__ = (
        CheckConstraint("valid_from < valid_until", name="window_ordered"),
        CheckConstraint("min_spend >= 0", name="min_spend_non_negative"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)  # the owner's id: cmp_…
    name: Mapped[str] = mapped_column(String(100))
    funder_account_id: Mapped[int] = mapped_column(BigInteger)  # grants come from, and return to
    valid_from: Mapped[int] = mapped_column(BigInteger)
    valid_until: Mapped[int] = mapped_column(BigInteger)
    merchant_ids: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of mch_…
    districts: Mapped[str] = mapped_column(Text, default="[]")  # JSON list
    mccs: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of ISO 18245 codes
    min_spend: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[int] = mapped_column(BigInteger)


class RestrictedBalance(Base):
    """One resident's restricted money from one source: its own ledger account
    (CUSTOMER_RESTRICTED, no overdraft)."""

    __tablename__ = "wallet_restricted_balances"
    __table_args__ = (
        Index("uq_wallet_restricted_balances_person", "source_id", "user_id", unique=True),
        Index("ix_wallet_restricted_balances_user", "user_id", "id"),
        Index("ix_wallet_restricted_balances_open", "status", "source_id"),
        CheckConstraint("granted > 0 AND reclaimed >= 0", name="amounts_valid"),
        CheckConstraint("status IN ('active', 'reclaimed')", name="status_known"),
        CheckConstraint(
            "reclaim_reason IS NULL OR reclaim_reason IN ('expired', 'wallet_closed')",
            name="reclaim_reason_known",
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("wallet_restricted_sources.id"))
    user_id: Mapped[str] = mapped_column(String(40))
    ledger_account_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    granted: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default="active")
    reclaimed: Mapped[int] = mapped_column(BigInteger, default=0)
    reclaim_reason: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[int] = mapped_column(BigInteger)
    reclaimed_at: Mapped[int | None] = mapped_column(BigInteger)


class RestrictedUse(Base):
    """What one payment took from one restricted balance, and what its refunds gave back
    (to the balance while it was valid, else to the funder). ``own_amount`` is the payer's
    own money in the same payment (counted on the payment's first use only)."""

    __tablename__ = "wallet_restricted_uses"
    __table_args__ = (
        Index("uq_wallet_restricted_uses_payment", "balance_id", "payment_ref", unique=True),
        Index("ix_wallet_restricted_uses_payment", "payment_ref"),
        CheckConstraint(
            "spent > 0 AND own_amount >= 0 AND returned >= 0 AND returned_to_funder >= 0 "
            "AND returned + returned_to_funder <= spent",
            name="amounts_valid",
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    balance_id: Mapped[int] = mapped_column(ForeignKey("wallet_restricted_balances.id"))
    payment_ref: Mapped[str] = mapped_column(String(40))  # ord_…
    merchant_ref: Mapped[str] = mapped_column(String(40))  # mch_…
    district: Mapped[str] = mapped_column(String(40))
    mcc: Mapped[str] = mapped_column(String(4))
    spent: Mapped[int] = mapped_column(BigInteger)
    own_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    returned: Mapped[int] = mapped_column(BigInteger, default=0)  # back to the balance
    returned_to_funder: Mapped[int] = mapped_column(BigInteger, default=0)
    transfer_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)


register_encrypted_column("wallet_bank_cards", "public_id", "card_enc", aad_is_key=True)
