"""Request and response bodies of the residents' interop API (``/v1/interop``)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from citywallet.interop.provider.common import provider_name
from citywallet.interop.provider.payer import InteropTransferView, PartyView, QuoteView
from citywallet.platform.clock import to_datetime
from citywallet.wallet.schemas import AmountField, CurrencyField, PinField, Strict
from citywallet.wallet.transfers import NOTE_MAX


class PartyPublic(BaseModel):
    """Who holds a mobile number at another provider (``participant_name``: the provider as
    people should see it, its display name at the switch or else its participant id)."""

    participant: str
    masked_name: str
    participant_name: str

    @classmethod
    def of(cls, view: PartyView) -> PartyPublic:
        return cls(
            participant=view.participant, masked_name=view.masked_name,
            participant_name=provider_name(view.participant, view.participant_name),
        )  # fmt: skip


class QuoteCreate(Strict):
    """Ask another provider's terms for sending ``amount`` to a mobile number."""

    phone: str = Field(min_length=5, max_length=20, examples=["13900139000"])
    amount: int = AmountField
    currency: str = CurrencyField


class QuotePublic(BaseModel):
    """Terms to show before the PIN: who receives, the fee, the total, until when."""

    quote_id: str
    participant: str
    participant_name: str
    masked_name: str
    amount: int
    payer_fee: int
    total: int
    currency: str
    expires_at: datetime

    @classmethod
    def of(cls, view: QuoteView) -> QuotePublic:
        return cls(
            quote_id=view.quote_id, participant=view.participant,
            participant_name=view.participant_name, masked_name=view.masked_name,
            amount=view.amount, payer_fee=view.payer_fee, total=view.total,
            currency=view.currency, expires_at=to_datetime(view.expires_at),
        )  # fmt: skip


class InteropTransferCreate(Strict):
    """Pay a quote."""

    quote_id: str = Field(min_length=4, max_length=40)
    pin: str = PinField
    note: str = Field(default="", max_length=NOTE_MAX * 2)


class InteropTransferPublic(BaseModel):
    """A cross-provider transfer: ``processing`` until the switch's final word."""

    id: str
    switch_transfer_id: str
    role: str
    state: str
    participant: str
    participant_name: str
    masked_name: str
    amount: int
    payer_fee: int
    currency: str
    note: str
    error_code: str | None
    created_at: datetime
    resolved_at: datetime | None

    @classmethod
    def of(cls, view: InteropTransferView) -> InteropTransferPublic:
        return cls(
            id=view.id, switch_transfer_id=view.switch_transfer_id, role=view.role,
            state=view.state, participant=view.participant,
            participant_name=view.participant_name, masked_name=view.masked_name,
            amount=view.amount, payer_fee=view.payer_fee, currency=view.currency,
            note=view.note, error_code=view.error_code, created_at=to_datetime(view.created_at),
            resolved_at=None if view.resolved_at is None else to_datetime(view.resolved_at),
        )  # fmt: skip
