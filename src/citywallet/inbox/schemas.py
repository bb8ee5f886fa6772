"""Response bodies of the message-centre API (``/v1/messages``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from citywallet.inbox.service import MessagePage, MessageView
from citywallet.platform.clock import to_datetime


class MessageObject(BaseModel):
    """What a message is about: the object's type and public id."""

    type: Literal["redpacket", "split", "campaign", "order", "merchant", "session"]
    id: str


class MessagePublic(BaseModel):
    """One message of the caller's message centre."""

    id: str = Field(examples=["msg_Zx3…"])
    kind: Literal[
        "redpacket_received",
        "split_requested",
        "campaign_won",
        "campaign_drawn",
        "charge_waiting",
        "device_signin",
        "payment_refused",
    ]
    object: MessageObject
    link: str = Field(description="The resident web app's page for the object.")
    params: dict[str, Any] = Field(
        description="What was true when it happened: amount (fen) and currency, names."
    )
    read: bool
    created_at: datetime
    read_at: datetime | None

    @classmethod
    def of(cls, view: MessageView) -> MessagePublic:
        return cls(
            id=view.id,
            kind=view.kind,
            object=MessageObject(type=view.object_type, id=view.object_id),
            link=view.link,
            params=view.params,
            read=view.read_at is not None,
            created_at=to_datetime(view.created_at),
            read_at=None if view.read_at is None else to_datetime(view.read_at),
        )


class MessageList(BaseModel):
    """A page of messages, newest first, with the unread count."""

    items: list[MessagePublic]
    next_cursor: str | None
    unread: int

    @classmethod
    def of(cls, page: MessagePage) -> MessageList:
        return cls(
            items=[MessagePublic.of(m) for m in page.items],
            next_cursor=page.next_cursor,
            unread=page.unread,
        )


class UnreadCount(BaseModel):
    """The unread badge."""

    unread: int


class ReadAll(BaseModel):
    """How many messages were unread and are now read."""

    marked: int


class WaitingCharge(BaseModel):
    """A payment-code charge above the password-free limit, waiting for the resident."""

    order_id: str
    merchant: str
    amount: int
    currency: str
    link: str = Field(description="The page that confirms it (PIN) or declines it.")


class LiveState(BaseModel):
    """What the resident's open pages show live: the badge and charges to confirm."""

    unread: int
    charges: list[WaitingCharge]
