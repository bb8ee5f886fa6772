"""Request and response bodies of the wallet API.

Amounts are integers of minor units (fen) with an ISO 4217 ``currency``; card numbers and
phone numbers only ever leave masked. A card request carrying a CVV is refused outright.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from citywallet.platform.clock import to_datetime
from citywallet.platform.errors import InvalidInput
from citywallet.wallet.cards import CardView
from citywallet.wallet.closure import ClosureView
from citywallet.wallet.funding import MAX_AMOUNT, FundingView, WithdrawalQuote
from citywallet.wallet.history import ActivityView, HistoryPage, Receipt
from citywallet.wallet.receiving import RecentRecipient, RecipientView
from citywallet.wallet.restricted import RestrictedView
from citywallet.wallet.transfers import NOTE_MAX, SplitView, TransferView

AmountField = Field(
    gt=0, le=MAX_AMOUNT, strict=True, description="Integer minor units (fen).", examples=[1234]
)
CurrencyField = Field(default="CNY", pattern=r"^[A-Z]{3}$", examples=["CNY"])
PinField = Field(pattern=r"^[0-9]{6}$", description="The payment PIN.", examples=["502817"])
CVV_FIELDS = frozenset({"cvv", "cvv2", "cvc", "cvc2", "cvn", "cvn2", "security_code"})


class Strict(BaseModel):
    """Unknown fields are refused, not ignored."""

    model_config = ConfigDict(extra="forbid")


# --- requests -----------------------------------------------------------------------------


class CardCreate(Strict):
    """Bind a debit card in your verified name. Never send the CVV: a request with one is
    refused (422 ``cvv_not_accepted``) and nothing of it is kept."""

    card_number: str = Field(min_length=12, max_length=40, examples=["6222 0200 0000 0000 000"])
    phone: str = Field(
        min_length=5,
        max_length=32,
        description="The mobile number reserved at the bank for this card.",
        examples=["138 0013 8000"],
    )

    @model_validator(mode="before")
    @classmethod
    def _refuse_cvv(cls, data: Any) -> Any:
        if isinstance(data, dict) and CVV_FIELDS & {str(k).lower() for k in data}:
            # Not a ValueError: it propagates as the domain error, and the value is never
            # echoed back in a validation message.
            raise InvalidInput(
                "Never send a card's CVV: CityWallet neither needs nor accepts it.",
                code="cvv_not_accepted",
            )
        return data


class TopupCreate(Strict):
    """Move money from a bound card into the wallet."""

    card_id: str = Field(max_length=40, examples=["card_3qWf…"])
    amount: int = AmountField
    currency: str = CurrencyField
    pin: str = PinField


class WithdrawalCreate(TopupCreate):
    """Move money from the wallet to a bound card of your own name (fee: see the quote)."""


class TransferCreate(Strict):
    """Send money to another resident."""

    to: str = Field(
        min_length=3,
        max_length=40,
        description="A user id (usr_…) or a mainland mobile number.",
        examples=["138 0013 8001"],
    )
    amount: int = AmountField
    currency: str = CurrencyField
    note: str = Field(default="", max_length=NOTE_MAX * 2)
    pin: str = PinField


class ShareCreate(Strict):
    """One person's share: omit ``amount`` on every share to split evenly."""

    to: str = Field(min_length=3, max_length=40, description="A user id or mobile number.")
    amount: int | None = Field(default=None, gt=0, le=MAX_AMOUNT, strict=True)


class SplitCreate(Strict):
    """Ask people for their shares of a bill (the shares sum to the total exactly)."""

    total: int = AmountField
    currency: str = CurrencyField
    note: str = Field(default="", max_length=NOTE_MAX * 2)
    shares: list[ShareCreate] = Field(min_length=1, max_length=1000)


class SharePay(Strict):
    """Pay your share of a split."""

    pin: str = PinField


class SplitCancel(Strict):
    """Cancel the given unpaid shares, or (none given) the whole split."""

    share_ids: list[str] = Field(default_factory=list, max_length=1000)


class WalletClose(Strict):
    """Close your wallet and your account for good (confirm with the payment PIN)."""

    pin: str = PinField


# --- responses ----------------------------------------------------------------------------


class LimitsPublic(BaseModel):
    """A tier's limits in fen (``null``: no limit)."""

    single: int | None
    daily: int | None
    yearly: int | None
    lifetime: int | None
    balance: int | None


class LimitsLeftPublic(BaseModel):
    """What the limits still allow now (``null``: unlimited)."""

    single: int | None
    today: int | None
    this_year: int | None
    lifetime: int | None
    balance_room: int | None = Field(description="How much more the wallet may hold.")


class WalletPublic(BaseModel):
    """Your wallet: money, holds and limits."""

    currency: str
    balance: int = Field(description="Posted balance (fen).")
    pending_incoming: int = Field(description="Top-ups the bank has not confirmed yet.")
    pending_outgoing: int = Field(description="Withdrawals and fees held for the bank.")
    available: int = Field(description="What can be spent now: balance less outgoing holds.")
    tier: int
    limit_preset: str
    limits: LimitsPublic
    left: LimitsLeftPublic
    free_withdrawal_left: int = Field(description="Fee-free withdrawal quota left (fen).")
    restricted_available: int = Field(
        description="Campaign red-packet money you hold apart from your balance (active, not "
        "expired): it pays first at eligible merchants and can never be transferred or "
        "withdrawn. See GET /v1/wallet/restricted."
    )


class CardPublic(BaseModel):
    """A bound card (masked)."""

    id: str
    bank_code: str
    bank_name: str
    number_masked: str = Field(examples=["622202*********1234"])
    last4: str
    holder_name_masked: str
    status: Literal["active", "unbound"]
    created_at: datetime
    sandbox: bool = Field(description="True when the bank behind it is the sandbox.")

    @classmethod
    def of(cls, view: CardView, *, sandbox: bool) -> CardPublic:
        """From the service's view."""
        return cls(
            **{k: v for k, v in vars(view).items() if k != "created_at"},
            created_at=to_datetime(view.created_at),
            sandbox=sandbox,
        )


class CardList(BaseModel):
    """Your bound cards, newest first."""

    items: list[CardPublic]


class FundingPublic(BaseModel):
    """A top-up or withdrawal. ``status``: ``succeeded``, ``failed`` (see
    ``failure_code``), or ``unknown`` — the bank has not answered yet; the money stays
    held and the wallet settles it as soon as the bank does (poll this resource)."""

    id: str
    kind: Literal["topup", "withdrawal"]
    status: Literal["processing", "unknown", "succeeded", "failed"]
    amount: int
    fee: int
    currency: str
    card_id: str
    card_label: str
    failure_code: str | None
    created_at: datetime
    updated_at: datetime
    resolved_at: datetime | None

    @classmethod
    def of(cls, view: FundingView) -> FundingPublic:
        """From the service's view."""
        return cls(
            **{k: v for k, v in vars(view).items() if not k.endswith("_at")},
            created_at=to_datetime(view.created_at),
            updated_at=to_datetime(view.updated_at),
            resolved_at=to_datetime(view.resolved_at) if view.resolved_at else None,
        )


class WithdrawalQuotePublic(BaseModel):
    """The fee a withdrawal would pay now."""

    amount: int
    fee: int
    free_part: int = Field(description="The part the free quota covers.")
    free_quota_before: int = Field(description="Fee-free quota left before this withdrawal.")
    free_quota_after: int = Field(description="Fee-free quota left after this withdrawal.")
    total: int = Field(description="What leaves the wallet: amount + fee.")
    currency: str = "CNY"

    @classmethod
    def of(cls, quote: WithdrawalQuote) -> WithdrawalQuotePublic:
        """From the service's quote."""
        return cls(**vars(quote))


class TransferPublic(BaseModel):
    """A P2P transfer you sent."""

    id: str
    amount: int
    currency: str
    to_user_id: str
    to_label: str = Field(description="The recipient's masked name and phone number.")
    note: str
    status: Literal["succeeded"]
    created_at: datetime

    @classmethod
    def of(cls, view: TransferView) -> TransferPublic:
        """From the service's view."""
        return cls(
            **{k: v for k, v in vars(view).items() if k != "created_at"},
            created_at=to_datetime(view.created_at),
        )


class SharePublic(BaseModel):
    """One person's share of a split."""

    id: str
    user_id: str
    label: str
    amount: int
    status: Literal["unpaid", "paid", "cancelled"]
    paid_at: datetime | None


class SplitPublic(BaseModel):
    """A split bill (AA)."""

    id: str
    creator_id: str
    creator_label: str
    total: int
    currency: str
    note: str
    status: Literal["open", "completed", "cancelled"]
    paid_amount: int
    paid_count: int
    shares: list[SharePublic]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, view: SplitView) -> SplitPublic:
        """From the service's view."""
        return cls(
            id=view.id,
            creator_id=view.creator_id,
            creator_label=view.creator_label,
            total=view.total,
            currency=view.currency,
            note=view.note,
            status=view.status,
            paid_amount=view.paid_amount,
            paid_count=view.paid_count,
            shares=[
                SharePublic(
                    id=s.id,
                    user_id=s.user_id,
                    label=s.label,
                    amount=s.amount,
                    status=s.status,
                    paid_at=to_datetime(s.paid_at) if s.paid_at else None,
                )
                for s in view.shares
            ],
            created_at=to_datetime(view.created_at),
            updated_at=to_datetime(view.updated_at),
        )


class SplitList(BaseModel):
    """Splits you created or have a share in, newest first."""

    items: list[SplitPublic]


class RemindersPublic(BaseModel):
    """How many participants were reminded."""

    reminded: int


class TransactionPublic(BaseModel):
    """One line of your history."""

    id: str
    kind: Literal[
        "topup",
        "withdrawal",
        "transfer_out",
        "transfer_in",
        "split_payment",
        "split_collection",
        "merchant_payment",
        "merchant_refund",
        "redpacket_sent",
        "redpacket_received",
        "redpacket_refund",
    ]
    direction: Literal["in", "out"]
    amount: int
    fee: int
    currency: str
    status: str
    counterparty_user_id: str | None
    counterparty_label: str
    note: str
    reference: str | None = Field(
        description="The split a share belongs to, the card, or the order a refund is of."
    )
    origin: str | None = Field(
        default=None,
        description="The cell this line was brought from when the wallet moved (read-only).",
    )
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, view: ActivityView) -> TransactionPublic:
        """From the service's view."""
        return cls(
            **{k: v for k, v in vars(view).items() if not k.endswith("_at")},
            created_at=to_datetime(view.created_at),
            updated_at=to_datetime(view.updated_at),
        )


class TransactionPage(BaseModel):
    """A page of history, newest first."""

    items: list[TransactionPublic]
    next_cursor: str | None

    @classmethod
    def of(cls, page: HistoryPage) -> TransactionPage:
        """From the service's page."""
        return cls(
            items=[TransactionPublic.of(i) for i in page.items], next_cursor=page.next_cursor
        )


class ReceiptTransferPublic(BaseModel):
    """A ledger transfer behind the transaction: its sealed fields (the leaf of the proof)
    and, once sealed into a signed block, its inclusion proof (docs/ledger-proofs.md)."""

    id: str
    role: Literal["hold", "post", "void", "transfer"]
    sealed_fields: dict[str, Any]
    proof_status: Literal["sealed", "not_sealed_yet"]
    proof: dict[str, Any] | None


class ReceiptPublic(BaseModel):
    """A transaction with the ledger's evidence. ``proof_status`` ``not_sealed_yet``: the
    newest transfers are sealed into a block every few seconds; ask again."""

    transaction: TransactionPublic
    proof_status: Literal["sealed", "not_sealed_yet"]
    transfers: list[ReceiptTransferPublic]

    @classmethod
    def of(cls, receipt: Receipt) -> ReceiptPublic:
        """From the service's receipt."""
        return cls(
            transaction=TransactionPublic.of(receipt.transaction),
            proof_status=receipt.proof_status,
            transfers=[
                ReceiptTransferPublic(
                    id=t.id,
                    role=t.role,
                    sealed_fields=t.sealed_fields,
                    proof_status=t.proof_status,
                    proof=t.proof,
                )
                for t in receipt.transfers
            ],
        )


class RestrictedBalancePublic(BaseModel):
    """A restricted balance (a campaign red packet): where and until when it may be spent.
    Empty lists do not restrict; every list that is given must match the merchant."""

    source_id: str = Field(description="The campaign (or other source) it comes from.")
    name: str
    currency: str = "CNY"
    granted: int
    available: int = Field(description="What is left to spend (0 once reclaimed).")
    status: Literal["active", "reclaimed"]
    usable_now: bool = Field(description="Active and inside its validity window now.")
    reclaimed: int = Field(description="What went back to the funder when it was reclaimed.")
    reclaim_reason: Literal["expired", "wallet_closed"] | None
    valid_from: datetime
    valid_until: datetime = Field(description="Exclusive: unused money then goes back.")
    merchant_ids: list[str]
    districts: list[str]
    mccs: list[str] = Field(description="Merchant category codes (ISO 18245).")
    min_spend: int = Field(description="The smallest payment it may pay towards (fen).")

    @classmethod
    def of(cls, view: RestrictedView, *, now: int) -> RestrictedBalancePublic:
        """From the service's view, judged at ``now`` (microseconds)."""
        return cls(
            **{k: v for k, v in vars(view).items() if not k.startswith("valid_")},
            usable_now=view.status == "active" and view.valid_from <= now < view.valid_until,
            valid_from=to_datetime(view.valid_from),
            valid_until=to_datetime(view.valid_until),
        )


class RestrictedBalanceList(BaseModel):
    """Your restricted balances, newest first (reclaimed ones too, at zero)."""

    items: list[RestrictedBalancePublic]
    next_cursor: str | None = Field(description="Pass as ``cursor`` for the next page.")


class WalletClosedPublic(BaseModel):
    """Your wallet and account are closed; every session has ended."""

    user_id: str
    status: Literal["closed"] = "closed"
    currency: str
    closed_at: datetime
    restricted_returned: int = Field(
        description="Campaign red-packet money given back to its funders (fen)."
    )
    restricted_balances: int = Field(description="How many red-packet balances went back.")

    @classmethod
    def of(cls, view: ClosureView) -> WalletClosedPublic:
        """From the service's view."""
        return cls(
            user_id=view.user_id,
            currency=view.currency,
            closed_at=to_datetime(view.closed_at),
            restricted_returned=view.restricted_returned,
            restricted_balances=view.restricted_balances,
        )


# --- before a transfer: the payee, recent recipients, receive codes -----------------------


class RecipientPublic(BaseModel):
    """Whom a transfer would reach, as the payer sees them before confirming."""

    user_id: str = Field(description="The payee's user id: send the transfer ``to`` it.")
    masked_name: str = Field(
        description="The real name with all but its last character masked (``*华``); the "
        "masked phone number for a resident without a verified name."
    )
    phone_masked: str

    @classmethod
    def of(cls, view: RecipientView) -> RecipientPublic:
        """From the service's view."""
        return cls(
            user_id=view.user_id, masked_name=view.masked_name, phone_masked=view.phone_masked
        )


class RecentRecipientPublic(BaseModel):
    """Someone you sent money to lately."""

    user_id: str
    label: str = Field(description="Masked name and masked phone, as history lines show them.")
    last_sent_at: datetime


class RecentRecipientList(BaseModel):
    """The last distinct people you transferred to, newest first."""

    data: list[RecentRecipientPublic]

    @classmethod
    def of(cls, views: list[RecentRecipient]) -> RecentRecipientList:
        """From the service's views."""
        return cls(
            data=[
                RecentRecipientPublic(
                    user_id=v.user_id, label=v.label, last_sent_at=to_datetime(v.last_sent_at)
                )
                for v in views
            ]
        )


class ReceiveCodePublic(BaseModel):
    """Your receive code (收钱码): show ``payload`` as a QR code."""

    payload: str = Field(description="EMVCo payload (docs/wallet.md, 'Receive code').")
    amount: int | None = Field(description="The amount the code asks for (fen), if set.")
    currency: Literal["CNY"] = "CNY"


class ScannedReceiveCode(BaseModel):
    """A scanned receive code: whom it pays and how much (show before the PIN)."""

    recipient: RecipientPublic
    amount: int | None = Field(
        description="The amount the code asks for (fen); null: the payer chooses it."
    )
    currency: Literal["CNY"] = "CNY"
