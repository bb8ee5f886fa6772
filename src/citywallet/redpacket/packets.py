"""Red packets: sending to one person or to a group, and what people see of them.

**Money.** Sending moves the whole amount from the sender's wallet (their
``CUSTOMER_WALLET`` account, never a restricted campaign balance) into an escrow account of
the packet's own (``REDPACKET_ESCROW``, no overdraft) and draws every share at once, one
``redpacket_shares`` row each (:mod:`.shares`); each claim takes one share and moves it from
the escrow to the claimer's wallet; at expiry what is left goes back to the sender
(:mod:`.claims`). Ledger transfer ids are deterministic — ``rpk_X.fund``, ``rpk_X.claim.N``
(N = the share's position), ``rpk_X.return`` — so the ledger's idempotency refuses a second
payment of any of them even if a bug tried. An escrow account per packet means sends and
claims of different packets never lock the same row, and the ledger itself refuses to pay a
packet out twice.

**Who sees a packet**: its sender, its recipient, the members of its group (checked at each
request), and whoever claimed a share of it. Anyone else gets 404 ``redpacket_not_found``.

**Totals.** While a packet is active its row's totals stay 0 and views count its claimed
shares; the row carries them once the packet closed (see :mod:`.models`).

**Locks**, everywhere in this order: wallet rows (ascending ledger account), the sender's
limit-usage rows, share rows, ledger accounts (inside ``ledger.post``), packet rows. A
claim locks only its share (and the claimer's wallet if their tier has a balance limit),
then the escrow for the posting; only the claim that empties the packet, and the expiry
job, write the packet row, last.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Select, exists, func, insert, select

from citywallet.inbox import service as inbox
from citywallet.inbox.kinds import REDPACKET_RECEIVED
from citywallet.ledger import service as ledger
from citywallet.ledger.service import AccountSpec
from citywallet.ledger.types import AccountCode, AccountFlags, Result, TransferCode, TransferSpec
from citywallet.money import Money
from citywallet.platform.clock import now_us
from citywallet.platform.config import Settings, get_settings
from citywallet.platform.crypto import Encryptor
from citywallet.platform.cursors import decode_cursor, encode_cursor
from citywallet.platform.db import UnitOfWork
from citywallet.platform.errors import Conflict, InvalidInput
from citywallet.redpacket.errors import (
    PacketNotFound,
)
from citywallet.redpacket.groups import member_count, member_group, member_role
from citywallet.redpacket.models import (
    RedPacket,
    RedPacketGroup,
    RedPacketGroupMember,
    RedPacketShare,
)
from citywallet.redpacket.paging import page_limit
from citywallet.redpacket.plan import (
    PacketPlan,
    choose_kind,
    clean_greeting,
    plan_packet,
)
from citywallet.wallet import history
from citywallet.wallet.accounts import CURRENCY
from citywallet.wallet.errors import InsufficientBalance
from citywallet.wallet.funding import validate_amount
from citywallet.wallet.limits import reserve_outflow
from citywallet.wallet.people import find_recipient, label, lock_parties, new_id

SECOND_US = 1_000_000
ROLES = ("sent", "received", "available")
_SYSTEM_RANDOM = random.SystemRandom()  # shares must not be predictable


@dataclass(frozen=True)
class ClaimView:
    """One opened share: who, how much, when, in which order."""

    id: str
    packet_id: str
    user_id: str
    label: str
    amount: int
    position: int  # 1 for the first claim
    best_luck: bool
    created_at: int


@dataclass(frozen=True)
class PacketView:
    """A red packet as its sender, its recipients and its claimers see it.

    ``status``: ``active`` (shares left, claimable), ``finished`` (all claimed), ``expired``
    (the claim period is over; the refund job has not run yet) or ``refunded`` (what was
    left went back to the sender). ``claims`` is filled on the single-packet view only.
    """

    id: str
    kind: str  # "single" | "equal" | "lucky"
    sender_id: str
    sender_label: str
    group_id: str | None
    recipient_id: str | None
    target_label: str  # the group's name, or the recipient's masked name and phone
    total: int
    currency: str
    shares: int
    greeting: str
    status: str
    claimed_count: int
    claimed_amount: int
    refund_amount: int
    best_luck_claim_id: str | None
    my_claim: ClaimView | None
    claims: list[ClaimView] | None
    created_at: int
    expires_at: int
    finished_at: int | None
    refunded_at: int | None


@dataclass(frozen=True)
class PacketPage:
    """A page of packets, newest first; ``next_cursor`` fetches more."""

    items: list[PacketView]
    next_cursor: str | None


def _status(row: RedPacket, moment: int) -> str:
    if row.status == "active" and moment >= row.expires_at:
        return "expired"
    return row.status


def claim_view(row: RedPacketShare, packet: RedPacket) -> ClaimView:
    """A claimed share as its packet's viewers see it."""
    return ClaimView(
        id=str(row.public_id),
        packet_id=packet.public_id,
        user_id=str(row.user_id),
        label=str(row.label),
        amount=row.amount,
        position=row.position,
        best_luck=row.public_id == packet.best_luck_claim_id,
        created_at=int(row.claimed_at or 0),
    )


def claims_of(uow: UnitOfWork, packet: RedPacket) -> list[RedPacketShare]:
    """The claimed shares of a packet, by position."""
    return list(
        uow.session.scalars(
            select(RedPacketShare)
            .where(RedPacketShare.packet_id == packet.id, RedPacketShare.user_id.is_not(None))
            .order_by(RedPacketShare.position)
        )
    )


def claim_of(uow: UnitOfWork, packet_pk: int, user_id: str) -> RedPacketShare | None:
    """The share ``user_id`` claimed of a packet, if any."""
    found: RedPacketShare | None = uow.session.scalar(
        select(RedPacketShare).where(
            RedPacketShare.packet_id == packet_pk, RedPacketShare.user_id == user_id
        )
    )
    return found


def _claimed_totals(uow: UnitOfWork, packets: list[RedPacket]) -> dict[int, tuple[int, int]]:
    """(count, amount) claimed of each packet: counted from the shares while it is active,
    from its row once it closed (the row's totals are written then)."""
    totals = {p.id: (p.claimed_count, p.claimed_amount) for p in packets if p.status != "active"}
    active = [p.id for p in packets if p.status == "active"]
    if active:
        rows = uow.session.execute(
            select(
                RedPacketShare.packet_id,
                func.count(RedPacketShare.id),
                func.coalesce(func.sum(RedPacketShare.amount), 0),
            )
            .where(RedPacketShare.packet_id.in_(active), RedPacketShare.user_id.is_not(None))
            .group_by(RedPacketShare.packet_id)
        ).all()
        counted = {int(pk): (int(n), int(amount)) for pk, n, amount in rows}
        totals.update({pk: counted.get(pk, (0, 0)) for pk in active})
    return totals


def _view(
    row: RedPacket,
    group_public_id: str | None,
    *,
    totals: tuple[int, int],
    mine: ClaimView | None,
    claims: list[ClaimView] | None,
    moment: int,
) -> PacketView:
    claimed_count, claimed_amount = totals
    return PacketView(
        id=row.public_id,
        kind=row.kind,
        sender_id=row.sender_id,
        sender_label=row.sender_label,
        group_id=group_public_id,
        recipient_id=row.recipient_id,
        target_label=row.target_label,
        total=row.total,
        currency=row.currency,
        shares=row.shares,
        greeting=row.greeting,
        status=_status(row, moment),
        claimed_count=claimed_count,
        claimed_amount=claimed_amount,
        refund_amount=row.refund_amount,
        best_luck_claim_id=row.best_luck_claim_id,
        my_claim=mine,
        claims=claims,
        created_at=row.created_at,
        expires_at=row.expires_at,
        finished_at=row.finished_at,
        refunded_at=row.refunded_at,
    )


def _full_view(
    uow: UnitOfWork, row: RedPacket, group_public_id: str | None, *, viewer: str, moment: int
) -> PacketView:
    """One packet with every claim (its totals counted from them)."""
    claims = [claim_view(c, row) for c in claims_of(uow, row)]
    mine = next((c for c in claims if c.user_id == viewer), None)
    totals = (len(claims), sum(c.amount for c in claims))
    return _view(row, group_public_id, totals=totals, mine=mine, claims=claims, moment=moment)


def _page_views(
    uow: UnitOfWork, rows: Sequence[tuple[RedPacket, str | None]], *, viewer: str, moment: int
) -> list[PacketView]:
    """A page of packets without their claims: two queries, whatever the page size."""
    packets = [row for row, _group in rows]
    if not packets:
        return []
    totals = _claimed_totals(uow, packets)
    by_pk = {p.id: p for p in packets}
    mine = {
        share.packet_id: claim_view(share, by_pk[share.packet_id])
        for share in uow.session.scalars(
            select(RedPacketShare).where(
                RedPacketShare.packet_id.in_(list(by_pk)), RedPacketShare.user_id == viewer
            )
        )
    }
    return [
        _view(row, group, totals=totals[row.id], mine=mine.get(row.id), claims=None, moment=moment)
        for row, group in rows
    ]


def _with_group() -> Select[RedPacket, str]:
    return select(RedPacket, RedPacketGroup.public_id).outerjoin(
        RedPacketGroup, RedPacketGroup.id == RedPacket.group_id
    )


# --- sending ------------------------------------------------------------------------------


def send_packet(
    uow: UnitOfWork,
    *,
    user_id: str,
    amount: int,
    encryptor: Encryptor,
    to: str | None = None,
    group_id: str | None = None,
    kind: str | None = None,
    shares: int = 1,
    greeting: str = "",
    currency: str = CURRENCY,
    settings: Settings | None = None,
    rng: random.Random | None = None,
    now: int | None = None,
    pin: str | None = None,
) -> PacketView:
    """Send a red packet of ``amount`` fen: to one person (``to``: a user id or phone
    number; kind ``single``) or to a group the sender belongs to (``group_id``; ``shares``
    shares, kind ``lucky`` by default or ``equal``). With ``pin``, the payment PIN is checked
    in this transaction, together with the sender's wallet lock (run it with
    ``identity.run_confirmed``: a wrong PIN rolls everything back and is counted on its
    own); without, it was before. The money leaves the sender's wallet for the packet's
    escrow now, within the sender's limits, and every share is drawn now
    (:func:`.plan.plan_packet`), one row each, each paid from one of the packet's escrow
    stripes. The rules are :mod:`.plan`'s; this is the database part."""
    cfg = settings if settings is not None else get_settings()
    validate_amount(amount, currency)
    chosen = choose_kind(to=to, group_id=group_id, kind=kind, shares=shares)
    clean = clean_greeting(greeting)
    payer, _ = lock_parties(uow, user_id=user_id, pin=pin, encryptor=encryptor)
    sender, wallet = payer.user, payer.account_id
    group: RedPacketGroup | None = None
    recipient_id: str | None = None
    members: int | None = None
    if to is not None:
        recipient = find_recipient(uow, to, encryptor)
        if recipient.id == sender.id:
            raise InvalidInput("You cannot send a red packet to yourself.", code="cannot_pay_self")
        if recipient.status != "active":  # frozen, or closed by its owner
            raise Conflict(
                "The recipient cannot receive money right now.", code="recipient_unavailable"
            )
        recipient_id, target_label = recipient.id, label(recipient)
    else:
        group, _role = member_group(uow, user_id=sender.id, group_id=str(group_id))
        members, target_label = member_count(uow, group_pk=group.id), group.name
    plan = plan_packet(
        kind=chosen,
        amount=amount,
        shares=shares,
        greeting=clean,
        rng=rng or _SYSTEM_RANDOM,
        max_total=cfg.redpacket_max_total,
        max_shares=cfg.redpacket_max_shares,
        min_share=cfg.redpacket_min_share,
        members=members,
    )

    packet_id = new_id("rpk")
    moment = now if now is not None else now_us()
    periods = reserve_outflow(
        uow, user_id=sender.id, tier=sender.tier, amount=amount, settings=cfg, moment=moment
    )
    view = ledger.get_account(uow, account_id=wallet)
    if view is None or view.available < amount:
        raise InsufficientBalance(
            f"The wallet's available balance does not cover {Money(amount)}.",
            available=0 if view is None else view.available,
            needed=amount,
        )
    stripes = ledger.create_accounts(
        uow,
        accounts=[
            AccountSpec(
                CURRENCY,
                AccountCode.REDPACKET_ESCROW,
                AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS,
                packet_id,
            )
        ]
        * plan.stripes,
    )
    fund_id = f"{packet_id}.fund"
    results = ledger.post(uow, transfers=_funding(packet_id, wallet, amount, stripes, plan))
    if results[0] is Result.EXCEEDS_CREDITS:
        raise InsufficientBalance("The wallet's available balance does not cover the amount.")
    if any(result is not Result.OK for result in results):
        raise RuntimeError(f"ledger refused red packet {fund_id}: {[r.value for r in results]}")
    row = RedPacket(
        public_id=packet_id,
        sender_id=sender.id,
        sender_label=label(sender),
        kind=chosen,
        group_id=None if group is None else group.id,
        recipient_id=recipient_id,
        target_label=target_label,
        total=amount,
        shares=shares,
        min_share=cfg.redpacket_min_share,
        currency=CURRENCY,
        greeting=plan.greeting,
        escrow_account_id=stripes[0],
        status="active",
        claimed_count=0,
        claimed_amount=0,
        refund_amount=0,
        day_period=periods.day,
        year_period=periods.year,
        created_at=moment,
        expires_at=moment + cfg.redpacket_expiry_seconds * SECOND_US,
    )
    uow.session.add(row)
    uow.session.flush()  # the packet's id, for its shares
    uow.session.execute(
        insert(RedPacketShare),
        [
            {"packet_id": row.id, "position": position, "amount": share, "account_id": stripes[k]}
            for position, (share, k) in enumerate(
                zip(plan.amounts, plan.stripe_of_share, strict=True), start=1
            )
        ],
    )
    history.record(
        uow,
        user_id=sender.id,
        object_id=packet_id,
        kind="redpacket_sent",
        amount=amount,
        currency=CURRENCY,
        status="succeeded",
        transfer_ids=[fund_id],
        counterparty_user_id=recipient_id,
        counterparty_label=target_label,
        note=plan.greeting,
        reference=packet_id,
    )
    told = {"amount": amount, "currency": CURRENCY, "from": label(sender), "kind": chosen}
    if recipient_id is not None:
        inbox.record(uow, user_id=recipient_id, kind=REDPACKET_RECEIVED, ref=packet_id, params=told)
    elif group is not None:
        others = select(RedPacketGroupMember.user_id).where(
            RedPacketGroupMember.group_id == group.id, RedPacketGroupMember.user_id != sender.id
        )
        inbox.record_many(uow, others, kind=REDPACKET_RECEIVED, ref=packet_id, params=told)
    uow.session.flush()
    group_public = None if group is None else group.public_id
    return _full_view(uow, row, group_public, viewer=sender.id, moment=moment)


def _funding(
    packet_id: str, wallet: int, amount: int, stripes: list[int], plan: PacketPlan
) -> list[TransferSpec]:
    """The sender's wallet funds stripe 0 (``rpk_X.fund``, the whole amount), which funds
    every other stripe with what its shares hold (``rpk_X.stripe.K``)."""
    specs = [
        TransferSpec(
            id=f"{packet_id}.fund",
            debit_account_id=wallet,
            credit_account_id=stripes[0],
            amount=amount,
            ledger=CURRENCY,
            code=TransferCode.REDPACKET_FUND,
            reference=packet_id,
        )
    ]
    for k, held in enumerate(plan.stripe_totals[1:], start=1):
        specs.append(
            TransferSpec(
                id=f"{packet_id}.stripe.{k}",
                debit_account_id=stripes[0],
                credit_account_id=stripes[k],
                amount=held,
                ledger=CURRENCY,
                code=TransferCode.REDPACKET_FUND,
                reference=packet_id,
            )
        )
    return specs


# --- seeing -------------------------------------------------------------------------------


def _may_see(uow: UnitOfWork, row: RedPacket, user_id: str) -> bool:
    """The sender, the recipient, a member of the group, or someone who claimed a share."""
    if user_id in (row.sender_id, row.recipient_id):
        return True
    if row.group_id is not None and member_role(uow, group_pk=row.group_id, user_id=user_id):
        return True
    return claim_of(uow, row.id, user_id) is not None


def visible_packet(
    uow: UnitOfWork, *, user_id: str, packet_id: str
) -> tuple[RedPacket, str | None]:
    found = uow.session.execute(_with_group().where(RedPacket.public_id == packet_id)).first()
    if found is None or not _may_see(uow, found[0], user_id):
        raise PacketNotFound("No such red packet.")
    return found[0], found[1]


def get_packet(
    uow: UnitOfWork, *, user_id: str, packet_id: str, now: int | None = None
) -> PacketView:
    """A packet the user sent, was sent, can claim or has claimed: totals, every claim
    (who, how much, when), the best-luck mark, the status."""
    row, group_public = visible_packet(uow, user_id=user_id, packet_id=packet_id)
    moment = now if now is not None else now_us()
    return _full_view(uow, row, group_public, viewer=user_id, moment=moment)


def list_packets(
    uow: UnitOfWork,
    *,
    user_id: str,
    role: str = "sent",
    cursor: str | None = None,
    limit: int = 20,
    now: int | None = None,
) -> PacketPage:
    """The user's packets, newest first: ``sent``, ``received`` (claimed by them) or
    ``available`` (still open to them: to them or their groups, not yet claimed)."""
    if role not in ROLES:
        raise InvalidInput(f"role is one of {', '.join(ROLES)}.", code="invalid_role")
    size = page_limit(limit)
    moment = now if now is not None else now_us()
    key = RedPacketShare.id if role == "received" else RedPacket.id
    query = select(RedPacket, RedPacketGroup.public_id, key).outerjoin(
        RedPacketGroup, RedPacketGroup.id == RedPacket.group_id
    )
    if role == "received":
        query = query.join(RedPacketShare, RedPacketShare.packet_id == RedPacket.id).where(
            RedPacketShare.user_id == user_id
        )
    elif role == "sent":
        query = query.where(RedPacket.sender_id == user_id)
    else:
        my_groups = select(RedPacketGroupMember.group_id).where(
            RedPacketGroupMember.user_id == user_id
        )
        claimed = exists().where(
            RedPacketShare.packet_id == RedPacket.id, RedPacketShare.user_id == user_id
        )
        query = query.where(
            RedPacket.status == "active",
            RedPacket.expires_at > moment,
            (RedPacket.recipient_id == user_id) | RedPacket.group_id.in_(my_groups),
            ~claimed,
        )
    tag = f"p{ROLES.index(role)}"
    if cursor is not None:
        query = query.where(key < decode_cursor(tag, cursor))
    rows = uow.session.execute(query.order_by(key.desc()).limit(size + 1)).all()
    page = rows[:size]
    following = encode_cursor(tag, int(page[-1][2])) if len(rows) > size else None
    rows_and_groups = [(row, group_public) for row, group_public, _key in page]
    items = _page_views(uow, rows_and_groups, viewer=user_id, moment=moment)
    return PacketPage(items, following)


def list_group_packets(
    uow: UnitOfWork,
    *,
    user_id: str,
    group_id: str,
    cursor: str | None = None,
    limit: int = 20,
    now: int | None = None,
) -> PacketPage:
    """The packets sent to a group the user belongs to, newest first."""
    group, _role = member_group(uow, user_id=user_id, group_id=group_id)
    size = page_limit(limit)
    moment = now if now is not None else now_us()
    query = select(RedPacket).where(RedPacket.group_id == group.id)
    if cursor is not None:
        query = query.where(RedPacket.id < decode_cursor("pg", cursor))
    rows = list(uow.session.scalars(query.order_by(RedPacket.id.desc()).limit(size + 1)))
    page = rows[:size]
    following = encode_cursor("pg", page[-1].id) if len(rows) > size else None
    rows_and_group = [(row, group.public_id) for row in page]
    items = _page_views(uow, rows_and_group, viewer=user_id, moment=moment)
    return PacketPage(items, following)


def open_packets_count(uow: UnitOfWork, *, user_id: str) -> int:
    """How many of the user's sent packets still hold money in escrow (not yet all claimed
    nor returned): their leftovers come back to the sender's wallet, so it stays open."""
    return int(
        uow.session.scalar(
            select(func.count(RedPacket.id)).where(
                RedPacket.sender_id == user_id, RedPacket.status == "active"
            )
        )
        or 0
    )
