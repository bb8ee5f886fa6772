"""Request and response bodies of the red-packet API (amounts in fen, with ``currency``)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from citywallet.platform.clock import to_datetime
from citywallet.redpacket.claims import ClaimResult
from citywallet.redpacket.groups import NAME_MAX, GroupPage, GroupView, MemberView
from citywallet.redpacket.packets import ClaimView, PacketPage, PacketView
from citywallet.redpacket.plan import GREETING_MAX
from citywallet.wallet.funding import MAX_AMOUNT

PinField = Field(pattern=r"^[0-9]{6}$", description="The payment PIN.", examples=["502817"])


class Strict(BaseModel):
    """Unknown fields are refused, not ignored."""

    model_config = ConfigDict(extra="forbid")


def _at(us: int | None) -> datetime | None:
    return None if us is None else to_datetime(us)


# --- groups -------------------------------------------------------------------------------


class GroupCreate(Strict):
    """A new group you own; ``members`` are added at once (you are a member anyway)."""

    name: str = Field(min_length=1, max_length=NAME_MAX * 2, examples=["家人群"])
    members: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="User ids (usr_…) or mobile numbers.",
        examples=[["138 0013 8001"]],
    )


class MembersAdd(Strict):
    """People to add (the owner only); those already in are skipped."""

    members: list[str] = Field(min_length=1, max_length=100, examples=[["138 0013 8002"]])


class MemberPublic(BaseModel):
    """A member (masked name and phone)."""

    user_id: str
    label: str
    role: Literal["owner", "member"]
    added_at: datetime

    @classmethod
    def of(cls, view: MemberView) -> MemberPublic:
        """From the service's view."""
        return cls(
            user_id=view.user_id,
            label=view.label,
            role=view.role,
            added_at=to_datetime(view.added_at),
        )


class GroupPublic(BaseModel):
    """A group you belong to; ``members`` only on the single-group view."""

    id: str
    name: str
    owner_id: str
    role: Literal["owner", "member"] = Field(description="Your role in the group.")
    member_count: int
    members: list[MemberPublic] | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, view: GroupView) -> GroupPublic:
        """From the service's view."""
        return cls(
            id=view.id,
            name=view.name,
            owner_id=view.owner_id,
            role=view.role,
            member_count=view.member_count,
            members=None if view.members is None else [MemberPublic.of(m) for m in view.members],
            created_at=to_datetime(view.created_at),
            updated_at=to_datetime(view.updated_at),
        )


class GroupList(BaseModel):
    """Groups you belong to, newest first."""

    items: list[GroupPublic]
    next_cursor: str | None

    @classmethod
    def of(cls, page: GroupPage) -> GroupList:
        """From the service's page."""
        return cls(items=[GroupPublic.of(g) for g in page.items], next_cursor=page.next_cursor)


# --- packets ------------------------------------------------------------------------------


class PacketCreate(Strict):
    """Send a red packet: to one person (``to``) or to a group (``group_id``), never both.

    ``amount`` is always the packet's total. To a group: ``shares`` shares (at most as many
    as the group has members, you included), ``lucky`` (random shares, the default) or
    ``equal``."""

    to: str | None = Field(
        default=None,
        min_length=3,
        max_length=40,
        description="A user id (usr_…) or mobile number.",
        examples=["138 0013 8001"],
    )
    group_id: str | None = Field(default=None, max_length=40, examples=["rpg_3qWf…"])
    kind: Literal["single", "equal", "lucky"] | None = Field(
        default=None, description="Default: single to a person, lucky to a group."
    )
    amount: int = Field(
        gt=0, le=MAX_AMOUNT, strict=True, description="The total, in fen.", examples=[8888]
    )
    shares: int = Field(default=1, ge=1, le=10_000, strict=True)
    greeting: str = Field(default="", max_length=GREETING_MAX * 2, examples=["恭喜发财"])
    currency: str = Field(default="CNY", pattern=r"^[A-Z]{3}$", examples=["CNY"])
    pin: str = PinField


class ClaimCreate(Strict):
    """Open a red packet (no fields; the body may be omitted)."""


class ClaimPublic(BaseModel):
    """One opened share."""

    id: str
    packet_id: str
    user_id: str
    label: str = Field(description="The claimer's masked name and phone number.")
    amount: int
    position: int = Field(description="1 for the first share opened.")
    best_luck: bool = Field(description="The largest share of a lucky packet, all claimed.")
    created_at: datetime

    @classmethod
    def of(cls, view: ClaimView) -> ClaimPublic:
        """From the service's view."""
        return cls(
            **{k: v for k, v in vars(view).items() if k != "created_at"},
            created_at=to_datetime(view.created_at),
        )


class ClaimResultPublic(BaseModel):
    """Your share, and where the packet stands after it."""

    claim: ClaimPublic
    currency: str
    packet_status: Literal["active", "finished"]
    claimed_count: int
    shares: int

    @classmethod
    def of(cls, result: ClaimResult) -> ClaimResultPublic:
        """From the service's result."""
        return cls(
            claim=ClaimPublic.of(result.claim),
            currency=result.currency,
            packet_status="finished" if result.packet_status == "finished" else "active",
            claimed_count=result.claimed_count,
            shares=result.shares,
        )


class PacketPublic(BaseModel):
    """A red packet; ``claims`` (who, how much, when) on the single-packet view only."""

    id: str
    kind: Literal["single", "equal", "lucky"]
    sender_id: str
    sender_label: str
    group_id: str | None
    recipient_id: str | None
    target_label: str = Field(description="The group's name, or the recipient (masked).")
    total: int
    currency: str
    shares: int
    greeting: str
    status: Literal["active", "finished", "expired", "refunded"]
    claimed_count: int
    claimed_amount: int
    refund_amount: int = Field(description="What went back to the sender at expiry.")
    best_luck_claim_id: str | None = Field(
        description="The largest share, once every share of a lucky packet is claimed."
    )
    my_claim: ClaimPublic | None
    claims: list[ClaimPublic] | None
    created_at: datetime
    expires_at: datetime
    finished_at: datetime | None
    refunded_at: datetime | None

    @classmethod
    def of(cls, view: PacketView) -> PacketPublic:
        """From the service's view."""
        return cls(
            id=view.id,
            kind=view.kind,
            sender_id=view.sender_id,
            sender_label=view.sender_label,
            group_id=view.group_id,
            recipient_id=view.recipient_id,
            target_label=view.target_label,
            total=view.total,
            currency=view.currency,
            shares=view.shares,
            greeting=view.greeting,
            status=view.status,
            claimed_count=view.claimed_count,
            claimed_amount=view.claimed_amount,
            refund_amount=view.refund_amount,
            best_luck_claim_id=view.best_luck_claim_id,
            my_claim=None if view.my_claim is None else ClaimPublic.of(view.my_claim),
            claims=None if view.claims is None else [ClaimPublic.of(c) for c in view.claims],
            created_at=to_datetime(view.created_at),
            expires_at=to_datetime(view.expires_at),
            finished_at=_at(view.finished_at),
            refunded_at=_at(view.refunded_at),
        )


class PacketList(BaseModel):
    """Red packets, newest first."""

    items: list[PacketPublic]
    next_cursor: str | None

    @classmethod
    def of(cls, page: PacketPage) -> PacketList:
        """From the service's page."""
        return cls(items=[PacketPublic.of(p) for p in page.items], next_cursor=page.next_cursor)
