"""What a resident's campaign pages read: their own draw check (ticket and position among
all tickets) and where a campaign's red packets can be spent.

Read-only queries over the campaign service's own rules (:mod:`citywallet.campaign.lottery`):
nothing here changes state. The position was stored at the draw
(:func:`citywallet.campaign.service.draw`), so a page view reads one row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select

from citywallet.campaign import lottery
from citywallet.campaign.models import Registration
from citywallet.campaign.service import (
    campaign_row,
    draw_position,
    my_registration,
    registration_ids,
)
from citywallet.merchant.errors import MerchantNotFound
from citywallet.merchant.onboarding import merchant_by_public_id
from citywallet.platform.db import UnitOfWork


@dataclass(frozen=True)
class DrawCheck:
    """What a resident needs to check the draw for themself: the revealed seed, its
    published commitment, the list hash, their registration id and ticket
    (HMAC-SHA256(seed, id)) and the position of that ticket among all tickets (1 = the
    lowest; the first K positions win)."""

    campaign_id: str
    registration_id: str
    status: str  # won | lost
    rank: int | None
    prize: int | None
    seed: str
    seed_commitment: str
    list_hash: str
    ticket: str
    position: int
    total: int
    winners: int


def draw_check(uow: UnitOfWork, *, campaign_id: str, user_id: str) -> DrawCheck | None:
    """The resident's draw check, or ``None`` before the draw (``registration_not_found``
    if they did not register). The position is the one stored at the draw (one row); only
    for a campaign drawn before positions were stored is it computed from every ticket."""
    row = campaign_row(uow, campaign_id)
    mine = my_registration(uow, campaign_id=campaign_id, user_id=user_id)
    if row.seed_hex is None or row.list_hash is None or mine.ticket is None:
        return None
    entry_pk = uow.session.scalar(select(Registration.id).where(Registration.public_id == mine.id))
    assert entry_pk is not None
    position = draw_position(uow, registration_pk=entry_pk)
    total = row.registrations
    if position is None:
        seed = bytes.fromhex(row.seed_hex)
        own = (bytes.fromhex(mine.ticket), mine.id)
        ids = registration_ids(uow, row.id)
        position = 1 + sum(1 for rid in ids if (lottery.ticket(seed, rid), rid) < own)
        total = len(ids)
    return DrawCheck(
        campaign_id=row.public_id,
        registration_id=mine.id,
        status=mine.status,
        rank=mine.rank,
        prize=mine.prize,
        seed=row.seed_hex,
        seed_commitment=row.seed_commitment,
        list_hash=row.list_hash,
        ticket=mine.ticket,
        position=position,
        total=total,
        winners=row.winners,
    )


@dataclass(frozen=True)
class Place:
    """A merchant where a campaign's red packets can be spent."""

    merchant_id: str
    name_zh: str
    name_en: str
    district: str
    mcc: str


def places(uow: UnitOfWork, *, merchant_ids: Sequence[str]) -> list[Place]:
    """The named merchants (those that exist), in the order given."""
    found = []
    for merchant_id in merchant_ids:
        try:
            row = merchant_by_public_id(uow, merchant_id)
        except MerchantNotFound:
            continue
        found.append(Place(row.public_id, row.name_zh, row.name_en, row.district, row.mcc))
    return found
