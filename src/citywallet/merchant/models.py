"""Merchant tables: merchants, stores, terminals, API keys, orders, refunds, payment-code
devices, webhook events and their delivery log, settlements.

Money lives in the ledger: each merchant has a receivable account (payments in, fees and
refunds out, no overdraft), a settlement account (money on its way to the merchant's bank)
and the platform's fee-revenue account for its fees (one per merchant, so that no single
platform row is locked by every payment in the city). These tables hold what the ledger
must not know. Secrets (the settlement card, the contact phone, HMAC API secrets, webhook
signing secrets, payment-code device secrets) are ``Encryptor`` envelopes bound to the
row's public id, re-wrapped by ``citywallet keys rotate``. Timestamps are microseconds
since the epoch.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from citywallet.merchant.rules import OrderStatus
from citywallet.platform.crypto import register_encrypted_column
from citywallet.platform.db import Base, BigId

MERCHANT_STATUSES = ("pending_review", "active", "suspended", "closed", "rejected")
ORDER_STATUSES = tuple(OrderStatus)  # the values the status check constraint allows


class Merchant(Base):
    """A business that residents pay, owned by a real-name resident (its representative)."""

    __tablename__ = "merchant_merchants"
    __table_args__ = (
        Index("ix_merchant_merchants_owner", "owner_user_id", "id"),
        Index("uq_merchant_merchants_uscc", "uscc", unique=True),
        CheckConstraint(
            "status IN ('pending_review', 'active', 'suspended', 'closed', 'rejected')",
            name="status_known",
        ),
        CheckConstraint("fee_rate_bp >= 0 AND fee_rate_bp <= 1000", name="fee_rate_sane"),
        CheckConstraint("settle_days >= 0 AND settle_days <= 30", name="settle_days_sane"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)  # mch_…
    owner_user_id: Mapped[str] = mapped_column(String(40))
    name_zh: Mapped[str] = mapped_column(String(60))
    name_en: Mapped[str] = mapped_column(String(25))  # EMV ID 59 holds at most 25
    city_zh: Mapped[str] = mapped_column(String(15))
    city_en: Mapped[str] = mapped_column(String(15))  # EMV ID 60 holds at most 15
    uscc: Mapped[str] = mapped_column(String(18))  # unified social credit code
    mcc: Mapped[str] = mapped_column(String(4))  # ISO 18245
    district: Mapped[str] = mapped_column(String(40))
    address: Mapped[str] = mapped_column(String(200))
    contact_name: Mapped[str] = mapped_column(String(40))
    contact_phone_enc: Mapped[str] = mapped_column(Text)
    card_enc: Mapped[str] = mapped_column(Text)  # the settlement card's number
    card_last4: Mapped[str] = mapped_column(String(4))
    card_bank_name: Mapped[str] = mapped_column(String(100))
    card_holder: Mapped[str] = mapped_column(String(64))  # the name the bank pays to
    fee_rate_bp: Mapped[int] = mapped_column(Integer)  # basis points: 38 = 0.38 %
    settle_days: Mapped[int] = mapped_column(Integer)  # T+n
    status: Mapped[str] = mapped_column(String(16))
    status_reason: Mapped[str] = mapped_column(String(200), default="")
    receivable_account_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    settlement_account_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    fee_account_id: Mapped[int] = mapped_column(BigInteger, unique=True)  # fees it paid
    webhook_secret_enc: Mapped[str] = mapped_column(Text)
    notify_url: Mapped[str | None] = mapped_column(String(500))  # default for orders
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class Store(Base):
    """A shop of a merchant, with its own static QR code."""

    __tablename__ = "merchant_stores"
    __table_args__ = (
        Index("ix_merchant_stores_merchant", "merchant_id", "id"),
        CheckConstraint("status IN ('active', 'closed')", name="status_known"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)  # sto_…
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchant_merchants.id"))
    name: Mapped[str] = mapped_column(String(60))
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[int] = mapped_column(BigInteger)


class Terminal(Base):
    """A till or POS device of a store (named on its payments and statements)."""

    __tablename__ = "merchant_terminals"
    __table_args__ = (Index("ix_merchant_terminals_store", "store_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)  # trm_…
    store_id: Mapped[int] = mapped_column(ForeignKey("merchant_stores.id"))
    label: Mapped[str] = mapped_column(String(25))
    created_at: Mapped[int] = mapped_column(BigInteger)


class ApiKey(Base):
    """A credential of a merchant's server or POS. HMAC keys keep their secret encrypted
    (verifying an HMAC needs it); Ed25519 keys keep only the public key."""

    __tablename__ = "merchant_api_keys"
    __table_args__ = (
        Index("ix_merchant_api_keys_merchant", "merchant_id", "id"),
        CheckConstraint("scheme IN ('hmac-sha256', 'ed25519')", name="scheme_known"),
        CheckConstraint("status IN ('active', 'revoked')", name="status_known"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)  # key_…
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchant_merchants.id"))
    scheme: Mapped[str] = mapped_column(String(16))
    label: Mapped[str] = mapped_column(String(60), default="")
    secret_enc: Mapped[str | None] = mapped_column(Text)  # hmac-sha256 only
    public_key: Mapped[str | None] = mapped_column(String(64))  # ed25519 only (base64)
    fingerprint: Mapped[str] = mapped_column(String(16))  # shown in lists, identifies the key
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[int] = mapped_column(BigInteger)
    last_used_at: Mapped[int | None] = mapped_column(BigInteger)
    revoked_at: Mapped[int | None] = mapped_column(BigInteger)


class Nonce(Base):
    """A nonce a signed request used, kept until its timestamp leaves the window."""

    __tablename__ = "merchant_nonces"
    __table_args__ = (Index("ix_merchant_nonces_expiry", "expires_at"),)

    key_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[int] = mapped_column(BigInteger)


class Order(Base):
    """What a resident pays a merchant: created by the merchant (dynamic QR), by the resident
    at a static code, or by the merchant's POS from a payment code."""

    __tablename__ = "merchant_orders"
    __table_args__ = (
        Index("uq_merchant_orders_out_trade_no", "merchant_id", "out_trade_no", unique=True),
        Index("ix_merchant_orders_merchant", "merchant_id", "id"),
        Index("ix_merchant_orders_payer", "payer_user_id", "id"),
        Index("ix_merchant_orders_open", "status", "expires_at"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint(
            "fee >= 0 AND refunded_amount >= 0 AND refunded_fee >= 0 "
            "AND refunded_amount <= amount AND refunded_fee <= fee",
            name="refunds_bounded",
        ),
        CheckConstraint(
            "restricted_refunded >= 0 AND restricted_refunded <= restricted_amount "
            "AND restricted_amount <= amount AND restricted_refunded <= refunded_amount",
            name="restricted_bounded",
        ),
        CheckConstraint(
            "status IN ('created', 'awaiting_confirmation', 'paid', 'closed')",
            name="status_known",
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)  # ord_…
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchant_merchants.id"))
    store_id: Mapped[int | None] = mapped_column(ForeignKey("merchant_stores.id"))
    terminal_id: Mapped[int | None] = mapped_column(ForeignKey("merchant_terminals.id"))
    out_trade_no: Mapped[str] = mapped_column(String(64))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    description: Mapped[str] = mapped_column(String(128), default="")
    channel: Mapped[str | None] = mapped_column(String(16))  # dynamic_qr / static_qr / paycode
    status: Mapped[str] = mapped_column(String(24))
    expires_at: Mapped[int] = mapped_column(BigInteger)
    notify_url: Mapped[str | None] = mapped_column(String(500))
    payer_user_id: Mapped[str | None] = mapped_column(String(40))
    fee: Mapped[int] = mapped_column(BigInteger, default=0)
    refunded_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    refunded_fee: Mapped[int] = mapped_column(BigInteger, default=0)
    # paid with restricted money (campaign red packets), and how much of that was refunded
    restricted_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    restricted_refunded: Mapped[int] = mapped_column(BigInteger, default=0)
    transfer_ids: Mapped[str] = mapped_column(Text, default="[]")  # JSON list
    decline_code: Mapped[str | None] = mapped_column(String(64))  # last refusal, for the POS
    paid_at: Mapped[int | None] = mapped_column(BigInteger)
    closed_at: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class Refund(Base):
    """A full or partial refund of a paid order, under the merchant's refund number."""

    __tablename__ = "merchant_refunds"
    __table_args__ = (
        Index("uq_merchant_refunds_out_refund_no", "merchant_id", "out_refund_no", unique=True),
        Index("ix_merchant_refunds_order", "order_id", "id"),
        CheckConstraint(
            "amount > 0 AND fee_back >= 0 AND restricted_amount >= 0 "
            "AND restricted_amount <= amount",
            name="amounts_valid",
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)  # rfd_…
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchant_merchants.id"))
    order_id: Mapped[int] = mapped_column(ForeignKey("merchant_orders.id"))
    out_refund_no: Mapped[str] = mapped_column(String(64))
    amount: Mapped[int] = mapped_column(BigInteger)
    fee_back: Mapped[int] = mapped_column(BigInteger)
    restricted_amount: Mapped[int] = mapped_column(BigInteger, default=0)  # red-packet part
    reason: Mapped[str] = mapped_column(String(80), default="")
    status: Mapped[str] = mapped_column(String(16))  # succeeded
    transfer_ids: Mapped[str] = mapped_column(Text)
    created_at: Mapped[int] = mapped_column(BigInteger)


class PaycodeDevice(Base):
    """A resident's device that shows payment codes: its secret, its slot (the code's
    routing digits) and the highest time step it has paid with (codes are single use)."""

    __tablename__ = "merchant_paycode_devices"
    __table_args__ = (
        Index("uq_merchant_paycode_devices_slot", "slot", unique=True),
        Index("ix_merchant_paycode_devices_user", "user_id", "id"),
        CheckConstraint("status IN ('active', 'revoked')", name="status_known"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)  # dev_…
    user_id: Mapped[str] = mapped_column(String(40))
    label: Mapped[str] = mapped_column(String(60), default="")
    slot: Mapped[str] = mapped_column(String(8))
    secret_enc: Mapped[str] = mapped_column(Text)
    last_counter: Mapped[int] = mapped_column(BigInteger, default=0)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[int] = mapped_column(BigInteger)


class PaycodePrefs(Base):
    """How much a resident lets a payment code take without asking (password-free)."""

    __tablename__ = "merchant_paycode_prefs"
    __table_args__ = (CheckConstraint("per_payment >= 0 AND per_day >= 0", name="limits_valid"),)

    user_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean)
    per_payment: Mapped[int] = mapped_column(BigInteger)
    per_day: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class WebhookEvent(Base):
    """One notification to a merchant's server, with its signed body fixed at creation."""

    __tablename__ = "merchant_webhook_events"
    __table_args__ = (
        Index("ix_merchant_webhook_events_merchant", "merchant_id", "id"),
        CheckConstraint("status IN ('pending', 'delivered', 'failed')", name="status_known"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)  # evt_…
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchant_merchants.id"))
    type: Mapped[str] = mapped_column(String(40))  # payment.succeeded, refund.succeeded, …
    object_id: Mapped[str] = mapped_column(String(40))  # ord_… / rfd_…
    url: Mapped[str] = mapped_column(String(500))
    body: Mapped[str] = mapped_column(Text)  # the JSON sent, byte for byte
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[int] = mapped_column(BigInteger)
    delivered_at: Mapped[int | None] = mapped_column(BigInteger)


class WebhookDelivery(Base):
    """One attempt to deliver an event: what the merchant's server answered."""

    __tablename__ = "merchant_webhook_deliveries"
    __table_args__ = (Index("ix_merchant_webhook_deliveries_event", "event_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("merchant_webhook_events.id"))
    attempted_at: Mapped[int] = mapped_column(BigInteger)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str] = mapped_column(String(200), default="")
    duration_ms: Mapped[int] = mapped_column(Integer)
    manual: Mapped[bool] = mapped_column(Boolean, default=False)


class Settlement(Base):
    """One business day's payout to a merchant's bank card (T+n)."""

    __tablename__ = "merchant_settlements"
    __table_args__ = (
        Index("uq_merchant_settlements_day", "merchant_id", "business_date", unique=True),
        Index("ix_merchant_settlements_open", "status", "id"),
        CheckConstraint("amount >= 0", name="amount_non_negative"),
        CheckConstraint(
            "status IN ('processing', 'unknown', 'paid', 'failed', 'empty')",
            name="status_known",
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)  # stl_…
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchant_merchants.id"))
    business_date: Mapped[str] = mapped_column(String(10))  # YYYY-MM-DD, the day settled
    amount: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    bank_reference: Mapped[str | None] = mapped_column(String(64))  # of the current attempt
    bank_ref: Mapped[str | None] = mapped_column(String(64))  # the bank's own reference
    failure_code: Mapped[str | None] = mapped_column(String(64))
    transfer_ids: Mapped[str] = mapped_column(Text, default="[]")
    next_attempt_at: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)
    paid_at: Mapped[int | None] = mapped_column(BigInteger)


register_encrypted_column("merchant_merchants", "public_id", "contact_phone_enc", aad_is_key=True)
register_encrypted_column("merchant_merchants", "public_id", "card_enc", aad_is_key=True)
register_encrypted_column("merchant_merchants", "public_id", "webhook_secret_enc", aad_is_key=True)
register_encrypted_column("merchant_api_keys", "public_id", "secret_enc", aad_is_key=True)
register_encrypted_column("merchant_paycode_devices", "public_id", "secret_enc", aad_is_key=True)


INTEROP_PAYMENT_STATES = ("quoted", "prepared", "committed", "aborted")


class InteropPayment(Base):
    """A payment to one of our merchants by another provider's resident, through the switch
    (docs/interop.md, "Merchant QR across providers"): the terms quoted for a scanned code,
    then the switch's transfer that pays its order. The payer is known only by their
    provider and alias (kept for a refund back through the switch)."""

    __tablename__ = "merchant_interop_payments"
    __table_args__ = (
        Index("uq_merchant_interop_payments_quote", "quote_id", unique=True),
        Index("uq_merchant_interop_payments_transfer", "transfer_id", unique=True),
        Index("ix_merchant_interop_payments_order", "order_public_id"),
        CheckConstraint("amount > 0 AND fee >= 0 AND fee <= amount", name="amounts_valid"),
        CheckConstraint(
            "state IN ('quoted', 'prepared', 'committed', 'aborted')", name="state_known"
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    quote_id: Mapped[str] = mapped_column(String(36))  # the switch's quote id
    transfer_id: Mapped[str | None] = mapped_column(String(36))  # the switch's transfer id
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchant_merchants.id"))
    store_id: Mapped[int] = mapped_column(ForeignKey("merchant_stores.id"))
    order_public_id: Mapped[str] = mapped_column(String(40))  # a static code's: made at prepare
    dynamic: Mapped[bool] = mapped_column(Boolean)
    amount: Mapped[int] = mapped_column(BigInteger)
    fee: Mapped[int] = mapped_column(BigInteger)
    payer_fsp: Mapped[str] = mapped_column(String(32))
    payer_id_type: Mapped[str] = mapped_column(String(16))  # MSISDN
    payer_identifier: Mapped[str] = mapped_column(String(64))
    payload_digest: Mapped[str] = mapped_column(String(64))  # SHA-256 of the scanned payload
    state: Mapped[str] = mapped_column(String(16))
    quote_expires_at: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)
