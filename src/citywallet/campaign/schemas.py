"""Request and response bodies of the campaign API (and the CLI's spec file).

Amounts are integers of fen. Times going in are ISO 8601 with an offset
(``2020-10-09T00:00:00+08:00``) or integer seconds since the epoch; a time without an
offset is refused (whose midnight would it be?). Times coming out are RFC 3339.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
)

from citywallet.campaign.reports import CampaignReport
from citywallet.campaign.rules import Eligibility
from citywallet.campaign.service import CampaignSpec, CampaignView, RegistrationView
from citywallet.platform.clock import to_datetime

MAX_AMOUNT = 10**13  # fen: a hundred billion yuan


MAX_EPOCH_SECONDS = 253_402_300_799  # 9999-12-31T23:59:59Z, the last time a datetime holds


def _epoch_seconds(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        # An out-of-range number must be a 422, not an OverflowError from the clock (a 500).
        if not 0 <= value <= MAX_EPOCH_SECONDS:
            raise ValueError(f"seconds since the epoch are 0 to {MAX_EPOCH_SECONDS}")
        return to_datetime(value * 1_000_000)
    return value


# The document says what is accepted: either spelling (docs/campaigns.md).
TimeIn = Annotated[
    AwareDatetime,
    BeforeValidator(_epoch_seconds),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "format": "date-time"},
                {
                    "type": "integer",
                    "minimum": 0,
                    "maximum": MAX_EPOCH_SECONDS,
                    "description": "Seconds since the epoch.",
                },
            ]
        }
    ),
]


def micros(moment: datetime) -> int:
    """A timezone-aware datetime in microseconds since the epoch (exact)."""
    delta = moment - datetime(1970, 1, 1, tzinfo=to_datetime(0).tzinfo)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


class Strict(BaseModel):
    """Unknown fields are refused, not ignored."""

    model_config = ConfigDict(extra="forbid")


class PrizeIn(Strict):
    """One denomination and how many packets of it."""

    amount: int = Field(gt=0, le=MAX_AMOUNT, strict=True, examples=[20_000])
    count: int = Field(gt=0, le=10_000_000, strict=True, examples=[50_000])


class EligibilityIn(Strict):
    """Who may register (a verified real name is always needed)."""

    min_tier: int = Field(default=1, ge=1, le=3, strict=True)
    districts: list[str] = Field(default_factory=list, max_length=100)
    attributes: dict[str, str] = Field(default_factory=dict, examples=[{"social_insurance": "sz"}])


class CampaignCreate(Strict):
    """Create a campaign (a draft until opened). Amounts in fen."""

    name: str = Field(min_length=1, max_length=100, examples=["罗湖区消费红包"])
    description: str = Field(default="", max_length=500)
    funder_name: str = Field(min_length=1, max_length=100, examples=["深圳市罗湖区人民政府"])
    funder_bank_account: str = Field(min_length=12, max_length=40)
    budget: int = Field(gt=0, le=MAX_AMOUNT, strict=True, examples=[1_000_000_000])
    prizes: list[PrizeIn] = Field(min_length=1, max_length=20)
    registration_opens_at: TimeIn
    registration_closes_at: TimeIn
    draw_at: TimeIn
    valid_from: TimeIn
    valid_until: TimeIn
    eligibility: EligibilityIn = Field(default_factory=EligibilityIn)
    merchant_ids: list[str] = Field(default_factory=list, max_length=100_000)
    districts: list[str] = Field(default_factory=list, max_length=100)
    mccs: list[str] = Field(default_factory=list, max_length=100)
    min_spend: int = Field(default=0, ge=0, le=MAX_AMOUNT, strict=True)

    @field_validator("funder_bank_account")
    @classmethod
    def _digits(cls, value: str) -> str:
        return value.replace(" ", "")

    def spec(self) -> CampaignSpec:
        """The service's spec (times in microseconds)."""
        return CampaignSpec(
            name=self.name,
            description=self.description,
            funder_name=self.funder_name,
            funder_bank_account=self.funder_bank_account,
            budget=self.budget,
            prizes=[(p.amount, p.count) for p in self.prizes],
            registration_opens_at=micros(self.registration_opens_at),
            registration_closes_at=micros(self.registration_closes_at),
            draw_at=micros(self.draw_at),
            valid_from=micros(self.valid_from),
            valid_until=micros(self.valid_until),
            eligibility=Eligibility(
                min_tier=self.eligibility.min_tier,
                districts=tuple(self.eligibility.districts),
                attributes=dict(self.eligibility.attributes),
            ),
            merchant_ids=tuple(self.merchant_ids),
            districts=tuple(self.districts),
            mccs=tuple(self.mccs),
            min_spend=self.min_spend,
        )


class Prize(BaseModel):
    """A denomination (fen) and its count."""

    amount: int
    count: int


class CampaignPublic(BaseModel):
    """A campaign as residents see it (the seed only once revealed at the draw)."""

    id: str
    name: str
    description: str
    status: str
    funder_name: str
    funding_status: str
    currency: str = "CNY"
    budget: int
    prizes: list[Prize]
    eligibility: dict[str, Any]
    registration_opens_at: datetime
    registration_closes_at: datetime
    draw_at: datetime
    valid_from: datetime
    valid_until: datetime
    merchant_ids: list[str]
    districts: list[str]
    mccs: list[str]
    min_spend: int
    seed_commitment: str
    seed: str | None
    list_hash: str | None
    registrations: int
    winners: int
    issued: int
    created_at: datetime

    @classmethod
    def of(cls, view: CampaignView) -> CampaignPublic:
        """From the service's view."""
        return cls(
            id=view.id,
            name=view.name,
            description=view.description,
            status=view.status,
            funder_name=view.funder_name,
            funding_status=view.funding_status,
            budget=view.budget,
            prizes=[Prize(amount=a, count=c) for a, c in view.prizes],
            eligibility=view.eligibility,
            registration_opens_at=to_datetime(view.registration_opens_at),
            registration_closes_at=to_datetime(view.registration_closes_at),
            draw_at=to_datetime(view.draw_at),
            valid_from=to_datetime(view.valid_from),
            valid_until=to_datetime(view.valid_until),
            merchant_ids=view.merchant_ids,
            districts=view.districts,
            mccs=view.mccs,
            min_spend=view.min_spend,
            seed_commitment=view.seed_commitment,
            seed=view.seed,
            list_hash=view.list_hash,
            registrations=view.registrations,
            winners=view.winners,
            issued=view.issued,
            created_at=to_datetime(view.created_at),
        )


class CampaignList(BaseModel):
    """Campaigns, newest first."""

    items: list[CampaignPublic]


class RegistrationPublic(BaseModel):
    """Your entry; after the draw its outcome and ticket (HMAC-SHA256(seed, id), hex)."""

    id: str
    campaign_id: str
    status: str
    rank: int | None
    prize: int | None
    ticket: str | None
    issued: bool
    created_at: datetime

    @classmethod
    def of(cls, view: RegistrationView) -> RegistrationPublic:
        """From the service's view."""
        return cls(
            id=view.id,
            campaign_id=view.campaign_id,
            status=view.status,
            rank=view.rank,
            prize=view.prize,
            ticket=view.ticket,
            issued=view.issued,
            created_at=to_datetime(view.created_at),
        )


class FundingResult(BaseModel):
    """Where funding stands: ``funded``, ``pending`` (the bank has not answered) or
    ``unfunded`` (refused: see ``campaign``)."""

    funding_status: str
    campaign: CampaignPublic


class BatchProgress(BaseModel):
    """What one call of issue or reclaim did: ``done`` is true when nothing is left."""

    processed: int
    batches: int
    done: bool
    campaign: CampaignPublic


class AttributesSet(Strict):
    """Set a resident's attributes (an empty value removes one)."""

    values: dict[str, str] = Field(min_length=1, max_length=50)


class AttributesPublic(BaseModel):
    """A resident's attributes after the change."""

    user_id: str
    attributes: dict[str, str]


class Breakdown(BaseModel):
    """Spending at merchants of one category or district (fen)."""

    key: str
    payments: int
    spent: int
    own_amount: int


class ResidentDistrictPublic(BaseModel):
    """Registrations and winners by district of residence."""

    district: str
    registrations: int
    winners: int


class DayPublic(BaseModel):
    """One business day (Asia/Shanghai)."""

    day: str
    registrations: int
    payments: int
    spent: int


class ReportPublic(BaseModel):
    """A campaign's report (docs/campaigns.md defines every figure)."""

    campaign_id: str
    name: str
    status: str
    currency: str
    budget: int
    registrations: int
    winners: int
    issued_count: int
    issued_amount: int
    claimed: int
    payments: int
    spent_gross: int
    refunded: int
    returned_to_funder: int
    spent: int
    reclaimed: int
    outstanding: int
    own_spending: int
    redemption_rate: float
    by_mcc: list[Breakdown]
    by_district: list[Breakdown]
    by_resident_district: list[ResidentDistrictPublic]
    daily: list[DayPublic]

    @classmethod
    def of(cls, data: CampaignReport) -> ReportPublic:
        """From the report."""
        return cls.model_validate(data, from_attributes=True)
