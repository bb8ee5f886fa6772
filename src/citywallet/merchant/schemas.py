"""Request and response bodies of the merchant and payment APIs.

Amounts are integers of fen with an ISO 4217 ``currency``; times are RFC 3339 (UTC).
Responses are built from the services' views with ``from_attributes``.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from citywallet.identity.passkey_schemas import Confirmed, PinOrPasskey
from citywallet.platform.clock import to_datetime
from citywallet.wallet.funding import MAX_AMOUNT

AmountField = Field(
    gt=0, le=MAX_AMOUNT, strict=True, description="Integer minor units (fen).", examples=[1234]
)
PinField = Field(pattern=r"^[0-9]{6}$", description="The payment PIN.", examples=["502817"])
OutNoField = Field(
    min_length=6,
    max_length=64,
    pattern=r"^[A-Za-z0-9_\-|*@]+$",
    description="Your own number for it, unique per merchant.",
    examples=["20261123-000042"],
)


def _micros(value: Any) -> Any:
    return to_datetime(value) if isinstance(value, int) else value


Time = Annotated[datetime, BeforeValidator(_micros)]


class Strict(BaseModel):
    """Unknown fields are refused, not ignored."""

    model_config = ConfigDict(extra="forbid")


class Public(BaseModel):
    """A response read from a service view."""

    model_config = ConfigDict(from_attributes=True)


# --- onboarding ---------------------------------------------------------------------------


class MerchantCreate(Strict):
    """Apply to become a merchant (you must have a verified real name and a bound card)."""

    name_zh: str = Field(min_length=1, max_length=60, examples=["罗湖好味道餐厅"])
    name_en: str = Field(min_length=1, max_length=25, examples=["Luohu Good Taste"])
    city_zh: str = Field(default="深圳", min_length=1, max_length=15)
    city_en: str = Field(default="Shenzhen", min_length=1, max_length=15)
    uscc: str = Field(
        min_length=18,
        max_length=24,
        description="Unified social credit code (统一社会信用代码), check digit verified.",
        examples=["91440300MA5FXXXX1A"],
    )
    mcc: str = Field(pattern=r"^[0-9]{4}$", description="ISO 18245 category.", examples=["5812"])
    district: str = Field(min_length=1, max_length=40, examples=["罗湖区"])
    address: str = Field(min_length=1, max_length=200, examples=["深圳市罗湖区东门中路1号"])
    contact_name: str = Field(min_length=1, max_length=40)
    contact_phone: str = Field(min_length=5, max_length=32)
    settlement_card_id: str = Field(
        min_length=3, max_length=40, description="One of your bound debit cards (card_…)."
    )
    notify_url: str | None = Field(default=None, max_length=500)


class MerchantUpdate(Strict):
    """Change the default notify URL of your orders (null: none)."""

    notify_url: str | None = Field(default=None, max_length=500)


class MerchantPublic(Public):
    """A merchant as its owner sees it."""

    id: str
    owner_user_id: str
    name_zh: str
    name_en: str
    city_zh: str
    city_en: str
    uscc: str
    mcc: str
    district: str
    address: str
    contact_name: str
    settlement_card: str
    fee_rate_bp: int = Field(description="Merchant discount rate in basis points (38 = 0.38 %).")
    settle_days: int = Field(description="Settlement delay: T+n days.")
    status: Literal["pending_review", "active", "suspended", "closed", "rejected"]
    status_reason: str
    notify_url: str | None
    created_at: Time


class MerchantList(BaseModel):
    """Your merchants."""

    items: list[MerchantPublic]


class BalancePublic(BaseModel):
    """Money the platform owes the merchant."""

    currency: str
    receivable: int = Field(description="Paid in, less fees and refunds, not yet settled.")
    in_settlement: int = Field(description="Swept for settlement, on its way to the bank.")


class WebhookSecretPublic(BaseModel):
    """The secret that signs your webhooks (CityWallet-Signature)."""

    secret: str


class StoreCreate(Strict):
    """Open another store."""

    name: str = Field(min_length=1, max_length=60)


class TerminalCreate(Strict):
    """Register a till or POS in a store."""

    label: str = Field(min_length=1, max_length=25, examples=["TILL-01"])


class TerminalPublic(BaseModel):
    """A terminal."""

    id: str
    label: str


class StorePublic(BaseModel):
    """A store and its terminals."""

    id: str
    merchant_id: str
    name: str
    status: str
    terminals: list[TerminalPublic]
    created_at: Time

    @classmethod
    def of(cls, view: Any) -> StorePublic:
        """From the service's view."""
        return cls(
            id=view.id,
            merchant_id=view.merchant_id,
            name=view.name,
            status=view.status,
            terminals=[TerminalPublic(id=t, label=label) for t, label in view.terminals],
            created_at=view.created_at,
        )


class StoreList(BaseModel):
    """A merchant's stores."""

    items: list[StorePublic]


class StaticCodePublic(BaseModel):
    """A store's static code: print it at the counter."""

    store_id: str
    payload: str = Field(description="The EMVCo merchant-presented payload.")
    png_url: str
    svg_url: str


class ApiKeyCreate(Strict):
    """Create a key for your server or POS."""

    scheme: Literal["hmac-sha256", "ed25519"] = "hmac-sha256"
    label: str = Field(default="", max_length=60)


class ApiKeyPublic(Public):
    """An API key (its secret is never shown again)."""

    id: str
    scheme: str
    label: str
    fingerprint: str
    status: str
    created_at: Time
    last_used_at: Time | None


class ApiKeyCreated(BaseModel):
    """A new key: store ``secret`` now, it is shown this once."""

    key: ApiKeyPublic
    secret: str = Field(
        description="HMAC secret, or the Ed25519 private key (base64 of 32 raw bytes)."
    )


class ApiKeyList(BaseModel):
    """A merchant's keys."""

    items: list[ApiKeyPublic]


# --- orders and refunds (signed merchant API) --------------------------------------------


class OrderCreate(Strict):
    """Create an order to show as a dynamic QR code."""

    out_trade_no: str = OutNoField
    amount: int = AmountField
    currency: str = Field(default="CNY", pattern=r"^[A-Z]{3}$")
    description: str = Field(default="", max_length=128)
    store_id: str | None = None
    terminal_id: str | None = None
    expires_in: int | None = Field(default=None, ge=60, le=7 * 24 * 3600, strict=True)
    notify_url: str | None = Field(default=None, max_length=500)


class OrderPublic(Public):
    """An order."""

    id: str
    merchant_id: str
    store_id: str | None
    terminal_id: str | None
    out_trade_no: str
    amount: int
    currency: str
    description: str
    channel: Literal["dynamic_qr", "static_qr", "paycode", "interop_qr"] | None
    status: Literal["created", "awaiting_confirmation", "paid", "closed"]
    fee: int
    refunded_amount: int
    refunded_fee: int
    expires_at: Time
    paid_at: Time | None
    closed_at: Time | None
    created_at: Time
    decline_code: str | None
    qr_payload: str | None = Field(description="The dynamic code, while the order is payable.")


class OrderList(BaseModel):
    """A page of orders, newest first."""

    items: list[OrderPublic]
    next_before: str | None


class CodeCharge(Strict):
    """Charge a customer's payment code scanned at the POS."""

    code: str = Field(min_length=10, max_length=32, examples=["8812345678901234567"])
    amount: int = AmountField
    currency: str = Field(default="CNY", pattern=r"^[A-Z]{3}$")
    out_trade_no: str = OutNoField
    description: str = Field(default="", max_length=128)
    store_id: str | None = None
    terminal_id: str | None = None
    notify_url: str | None = Field(default=None, max_length=500)


class RefundCreate(Strict):
    """Refund part or all of a paid order."""

    out_refund_no: str = OutNoField
    amount: int = AmountField
    reason: str = Field(default="", max_length=80)


class RefundPublic(Public):
    """A refund."""

    id: str
    order_id: str
    out_trade_no: str
    out_refund_no: str
    amount: int
    fee_back: int
    currency: str
    reason: str
    # processing / failed: only a refund through the switch (an order paid by another
    # provider's resident) waits for the switch's word
    status: Literal["succeeded", "processing", "failed"]
    created_at: Time


class RefundList(BaseModel):
    """An order's refunds."""

    items: list[RefundPublic]


# --- residents ----------------------------------------------------------------------------


class ScanPreviewRequest(Strict):
    """A scanned merchant code."""

    payload: str = Field(min_length=10, max_length=512)


class ScanPreviewPublic(Public):
    """Whom you would pay, and how much (static codes: you type the amount)."""

    kind: Literal["static", "dynamic"]
    merchant_id: str
    merchant_name: str
    merchant_name_en: str
    store_name: str
    amount: int | None
    currency: str
    order_id: str | None
    description: str
    restricted_usable: int = Field(
        description="Campaign red-packet money that pays first here (static codes: all of "
        "it that may be spent here); your own balance covers the rest."
    )
    provider: str | None = Field(
        default=None,
        description="Another wallet provider's merchant (its switch participant id): paid "
        "through the interoperability switch; its provider checks the code when you pay.",
    )


class ScanPay(Strict, Confirmed):
    """Pay a scanned merchant code."""

    payload: str = Field(min_length=10, max_length=512)
    amount: int | None = Field(
        default=None, gt=0, le=MAX_AMOUNT, strict=True, description="Static codes only."
    )
    note: str = Field(default="", max_length=128)


class PaymentPublic(Public):
    """A payment you made to a merchant."""

    order_id: str
    merchant_id: str
    merchant_name: str
    amount: int
    restricted_amount: int = Field(description="Of the amount, paid with campaign red packets.")
    currency: str
    status: str
    channel: str
    paid_at: Time | None
    provider: str | None = Field(
        default=None, description="The merchant's provider, for a payment through the switch."
    )
    switch_transfer_id: str | None = Field(
        default=None, description="The switch's transfer id of a payment through the switch."
    )
    transfer_id: str | None = Field(
        default=None,
        description="A payment through the switch: our transfer's id (itf_…); "
        "GET /v1/interop/transfers/{id} tells its state while it is processing.",
    )


class PaymentList(BaseModel):
    """Payments waiting for your confirmation."""

    items: list[PaymentPublic]


class PinConfirm(Strict, PinOrPasskey):
    """Confirm with your payment PIN, or a passkey made for this charge (``kind: charge``)."""


class DeviceCreate(Strict):
    """Register this device to show payment codes."""

    label: str = Field(default="", max_length=60, examples=["My phone"])


class DevicePublic(Public):
    """A device that shows payment codes."""

    id: str
    label: str
    status: str
    created_at: Time


class DeviceCreated(BaseModel):
    """Keep ``secret`` and ``slot`` on the device to make codes offline (RFC 6238, 60 s)."""

    device: DevicePublic
    secret: str
    slot: str


class DeviceList(BaseModel):
    """Your payment-code devices."""

    items: list[DevicePublic]


class CodePublic(BaseModel):
    """The payment code to show now (as digits, Code 128 barcode and QR)."""

    code: str
    valid_until: Time
    barcode_svg_url: str
    qr_svg_url: str


class PrefsUpdate(Strict):
    """Password-free limits for payment codes."""

    enabled: bool = Field(strict=True)
    per_payment: int = Field(ge=0, le=MAX_AMOUNT, strict=True)
    per_day: int = Field(ge=0, le=MAX_AMOUNT, strict=True)
    pin: str = PinField


class PrefsPublic(Public):
    """Password-free limits for payment codes, and what today has used."""

    enabled: bool
    per_payment: int
    per_day: int
    used_today: int


# --- webhook events -----------------------------------------------------------------------


class EventPublic(Public):
    """A webhook event."""

    id: str
    type: Literal["payment.succeeded", "refund.succeeded", "order.closed"]
    object_id: str
    url: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    created_at: Time
    delivered_at: Time | None


class DeliveryPublic(Public):
    """One delivery attempt and what your server answered."""

    attempted_at: Time
    status_code: int | None = Field(description="None: no answer (timeout, refused, …).")
    error: str
    duration_ms: int
    manual: bool


class EventDetailPublic(EventPublic):
    """An event with the exact body sent and its delivery log."""

    body: str
    deliveries: list[DeliveryPublic]


class EventList(BaseModel):
    """A page of events, newest first."""

    items: list[EventPublic]
    next_before: str | None


# --- settlements --------------------------------------------------------------------------


class SettlementPublic(Public):
    """A business day's payout to your bank card."""

    id: str
    business_date: date = Field(description="The business day whose money this pays.")
    amount: int
    currency: str
    status: Literal["processing", "unknown", "paid", "failed", "empty"]
    attempts: int
    bank_reference: str | None = Field(description="Our reference of the latest attempt.")
    bank_ref: str | None = Field(description="The bank's own reference.")
    failure_code: str | None
    next_attempt_at: Time | None
    created_at: Time
    updated_at: Time
    paid_at: Time | None


class SettlementList(BaseModel):
    """A page of settlements, latest business day first."""

    items: list[SettlementPublic]
    next_before: str | None
