"""Claiming a red packet: a grab.

Every share is a row made at sending (:mod:`.packets`), and a grab never reads a packet
under a lock nor writes its row (that row would be the one hot spot every claim of the
packet queues for). A grab has two steps:

1. :func:`check_claim`, read only: the claimer, and in one statement the packet with the
   claimer's group role, the share they already hold and whether a share is still free.
   Every refusal that does not depend on a race is decided here — not found, not claimable,
   already claimed, empty (the packet row's ``status`` is the finished flag, written once by
   the claim that empties the packet), expired — so a refused grab never opens a write
   transaction (on SQLite it never takes the writer lock).
2. :func:`take_share`, one write transaction: the claimer's wallet lock and balance only if
   their tier has a balance limit; ``UPDATE redpacket_shares … WHERE id = (SELECT … ORDER
   BY position LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING`` takes the first free share
   without waiting for the claims that hold others (``UNIQUE (packet_id, user_id)`` refuses
   a second share to the same person); the history line; and last the ledger posting from
   the packet's escrow, so the escrow row — the one lock all claims of a packet share — is
   held only from the posting to the commit. Under that lock every earlier posting has
   committed, so the claim whose posting leaves the escrow at 0 is the packet's last, exactly
   one per packet: it closes the packet (status, totals, best luck from the shares).

:func:`grab` runs step 1 in a read-only unit of work and step 2 in ``db.transact``; the API
runs step 2 inside its idempotency transaction; :func:`claim_packet` runs both in one unit
of work. A grab that passed step 1 while the last shares were being taken can still be
refused in step 2 (at most about as many as claims were in flight at the end).

Lock order: wallet rows, share rows, ledger accounts, packet rows (:mod:`.expiry` too).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Row, ScalarSelect, Select, exists, select, update
from sqlalchemy.exc import IntegrityError

from citywallet.ledger import service as ledger
from citywallet.ledger.types import Result, TransferCode, TransferSpec
from citywallet.platform.clock import now_us
from citywallet.platform.config import Settings, get_settings
from citywallet.platform.db import Database, UnitOfWork
from citywallet.redpacket.errors import (
    AlreadyClaimed,
    NotClaimable,
    PacketEmpty,
    PacketExpired,
    PacketNotFound,
)
from citywallet.redpacket.models import RedPacket, RedPacketGroupMember, RedPacketShare
from citywallet.redpacket.packets import ClaimView
from citywallet.redpacket.rules import best_luck
from citywallet.wallet import accounts, history
from citywallet.wallet.accounts import CURRENCY
from citywallet.wallet.limits import check_inflow, limits_for
from citywallet.wallet.people import active_user, label, new_id


@dataclass(frozen=True)
class ClaimResult:
    """What a claim returns: the share, and where the packet stands after it."""

    claim: ClaimView
    currency: str
    packet_status: str
    claimed_count: int
    shares: int


@dataclass(frozen=True)
class ClaimTicket:
    """A grab that passed the read-only checks: what taking the share needs."""

    packet_pk: int
    packet_id: str
    kind: str
    total: int
    shares: int
    currency: str
    escrow_account_id: int
    expires_at: int
    sender_id: str
    sender_label: str
    greeting: str
    user_id: str
    label: str
    tier: int
    wallet_id: int | None  # None: the claimer's wallet opens with this claim
    moment: int


# --- step 1: the read-only checks ---------------------------------------------------------


def _look(user_id: str) -> Select[RedPacket, str | None, int | None, bool]:
    """The packet with what decides a grab of ``user_id``, in one statement."""
    role = (
        select(RedPacketGroupMember.role)
        .where(
            RedPacketGroupMember.group_id == RedPacket.group_id,
            RedPacketGroupMember.user_id == user_id,
        )
        .scalar_subquery()
    )
    mine = (
        select(RedPacketShare.id)
        .where(RedPacketShare.packet_id == RedPacket.id, RedPacketShare.user_id == user_id)
        .scalar_subquery()
    )
    free = exists().where(
        RedPacketShare.packet_id == RedPacket.id,
        RedPacketShare.user_id.is_(None),
        RedPacketShare.refunded_at.is_(None),
    )
    return select(RedPacket, role, mine, free)


def _refuse(
    row: RedPacket, *, user_id: str, role: str | None, claimed: bool, free: bool, moment: int
) -> None:
    """Raise what a grab is refused for, in the documented order; return if it may go on."""
    if user_id not in (row.sender_id, row.recipient_id) and role is None and not claimed:
        raise PacketNotFound("No such red packet.")  # not one they may see
    if row.kind == "single" and row.recipient_id != user_id:
        raise NotClaimable("This red packet is for its recipient only.")
    if claimed:  # even if they left the group since, or it is all claimed or expired now
        raise AlreadyClaimed("You have already opened this red packet.")
    if row.group_id is not None and role is None:
        raise NotClaimable("Only the group's members open its red packets.")
    if row.status == "finished" or (row.status == "active" and not free):
        raise PacketEmpty("Every share of this red packet has been claimed.")
    if row.status != "active" or moment >= row.expires_at:
        raise PacketExpired("This red packet has expired; what was left went back to the sender.")


def check_claim(
    uow: UnitOfWork, *, user_id: str, packet_id: str, now: int | None = None
) -> ClaimTicket:
    """Decide from a read-only look whether ``user_id`` may open the packet now (raising the
    refusal if not); the ticket is what :func:`take_share` needs."""
    moment = now if now is not None else now_us()
    claimer = active_user(uow, user_id)
    found = uow.session.execute(_look(claimer.id).where(RedPacket.public_id == packet_id)).first()
    if found is None:
        raise PacketNotFound("No such red packet.")
    row, role, mine, free = found
    _refuse(row, user_id=claimer.id, role=role, claimed=mine is not None, free=free, moment=moment)
    return ClaimTicket(
        packet_pk=row.id,
        packet_id=row.public_id,
        kind=row.kind,
        total=row.total,
        shares=row.shares,
        currency=row.currency,
        escrow_account_id=row.escrow_account_id,
        expires_at=row.expires_at,
        sender_id=row.sender_id,
        sender_label=row.sender_label,
        greeting=row.greeting,
        user_id=claimer.id,
        label=label(claimer),
        tier=claimer.tier,
        wallet_id=accounts.find_wallet(uow, user_id=claimer.id),
        moment=moment,
    )


# --- step 2: taking a share ---------------------------------------------------------------


def _free_shares(packet_pk: int) -> Select[int]:
    return (
        select(RedPacketShare.id)
        .where(
            RedPacketShare.packet_id == packet_pk,
            RedPacketShare.user_id.is_(None),
            RedPacketShare.refunded_at.is_(None),
        )
        .order_by(RedPacketShare.position)
        .limit(1)
    )


def _claim_share(
    uow: UnitOfWork, ticket: ClaimTicket, claim_id: str, share: ScalarSelect[int] | int
) -> Row[int, int] | None:
    """Write the claimer into ``share``; its (position, amount), or None if it was gone."""
    try:
        return uow.session.execute(
            update(RedPacketShare)
            .where(RedPacketShare.id == share)
            .values(
                user_id=ticket.user_id,
                public_id=claim_id,
                label=ticket.label,
                claimed_at=ticket.moment,
            )
            .returning(RedPacketShare.position, RedPacketShare.amount)
            .execution_options(synchronize_session=False)
        ).first()
    except IntegrityError:  # UNIQUE (packet_id, user_id): their other grab took one first
        raise AlreadyClaimed("You have already opened this red packet.") from None


def _take_free_share(uow: UnitOfWork, ticket: ClaimTicket, claim_id: str) -> Row[int, int] | None:
    """The first free share nobody else holds, else — after waiting for the holders (claims
    in flight, the expiry job) — one a holder let go of; None if the packet has none left."""
    taken = _claim_share(
        uow,
        ticket,
        claim_id,
        _free_shares(ticket.packet_pk).with_for_update(skip_locked=True).scalar_subquery(),
    )
    if taken is not None or uow.dialect != "postgresql":  # SQLite: this writer is alone
        return taken
    # Rare: every free share is held by a transaction in flight. Wait for them: a claim
    # refused for its claimer's tier lets its share go, and the job's refund must show.
    let_go = uow.session.scalar(_free_shares(ticket.packet_pk).with_for_update())
    return None if let_go is None else _claim_share(uow, ticket, claim_id, let_go)


def _refuse_none_left(uow: UnitOfWork, ticket: ClaimTicket) -> None:
    """No share was left for a grab that passed the checks: expired or empty, as it ended."""
    status = uow.session.scalar(select(RedPacket.status).where(RedPacket.id == ticket.packet_pk))
    if status == "refunded" or ticket.moment >= ticket.expires_at:
        raise PacketExpired("This red packet has expired; what was left went back to the sender.")
    raise PacketEmpty("Every share of this red packet has been claimed.")


def _finish(uow: UnitOfWork, ticket: ClaimTicket) -> str | None:
    """Close a packet whose last share this claim took: status, totals and best luck (lucky
    packets) on its row. Returns the best-luck claim id."""
    everyone = uow.session.execute(
        select(RedPacketShare.public_id, RedPacketShare.amount)
        .where(RedPacketShare.packet_id == ticket.packet_pk)
        .order_by(RedPacketShare.position)
    ).all()
    best = best_luck([amount for _id, amount in everyone]) if ticket.kind == "lucky" else None
    best_id = None if best is None else everyone[best][0]
    uow.session.execute(
        update(RedPacket)
        .where(RedPacket.id == ticket.packet_pk)
        .values(
            status="finished",
            finished_at=ticket.moment,
            claimed_count=ticket.shares,
            claimed_amount=ticket.total,
            best_luck_claim_id=best_id,
        )
        .execution_options(synchronize_session=False)
    )
    return best_id


def take_share(
    uow: UnitOfWork, *, ticket: ClaimTicket, settings: Settings | None = None
) -> ClaimResult:
    """Take the first free share of a checked grab and pay it from the packet's escrow into
    the claimer's wallet. If the claimer's tier cannot hold it (balance limit), nothing is
    taken and the share stays for others."""
    cfg = settings if settings is not None else get_settings()
    wallet, account = ticket.wallet_id, None
    if limits_for(ticket.tier, cfg).balance is not None:  # the check needs a locked balance
        lock = accounts.lock_wallets if wallet is None else accounts.lock_opened_wallets
        wallet = lock(uow, user_ids=[ticket.user_id])[ticket.user_id]
        account = ledger.get_account(uow, account_id=wallet)
        assert account is not None
    elif wallet is None:
        wallet = accounts.ensure_wallet(uow, user_id=ticket.user_id)

    claim_id = new_id("rpc")
    taken = _take_free_share(uow, ticket, claim_id)
    if taken is None:
        _refuse_none_left(uow, ticket)
        raise AssertionError("unreachable")
    position, amount = taken
    if account is not None:
        check_inflow(tier=ticket.tier, account=account, amount=amount, settings=cfg)
    transfer_id = f"{ticket.packet_id}.claim.{position}"
    history.record(
        uow,
        user_id=ticket.user_id,
        object_id=claim_id,
        kind="redpacket_received",
        amount=amount,
        currency=CURRENCY,
        status="succeeded",
        transfer_ids=[transfer_id],
        counterparty_user_id=ticket.sender_id,
        counterparty_label=ticket.sender_label,
        note=ticket.greeting,
        reference=ticket.packet_id,
    )
    uow.session.flush()  # the history line now: the posting, and the escrow lock, come last
    [result] = ledger.post(
        uow,
        transfers=[
            TransferSpec(
                id=transfer_id,
                debit_account_id=ticket.escrow_account_id,
                credit_account_id=wallet,
                amount=amount,
                ledger=CURRENCY,
                code=TransferCode.REDPACKET_CLAIM,
                reference=ticket.packet_id,
            )
        ],
    )
    if result is not Result.OK:  # one share per position and row: anything else is a bug
        raise RuntimeError(f"ledger refused red packet claim {transfer_id}: {result.value}")
    escrow = ledger.get_account(uow, account_id=ticket.escrow_account_id)
    finished = escrow is not None and escrow.balance == 0  # read under the escrow's lock
    best_id = _finish(uow, ticket) if finished else None
    claim = ClaimView(
        id=claim_id,
        packet_id=ticket.packet_id,
        user_id=ticket.user_id,
        label=ticket.label,
        amount=amount,
        position=position,
        best_luck=best_id == claim_id,
        created_at=ticket.moment,
    )
    # Shares are taken in position order, so the position counts the shares taken so far
    # (claims still in flight included); only the closing claim says "all".
    claimed = ticket.shares if finished else min(position, ticket.shares - 1)
    return ClaimResult(
        claim, ticket.currency, "finished" if finished else "active", claimed, ticket.shares
    )


# --- both steps ---------------------------------------------------------------------------


def claim_packet(
    uow: UnitOfWork,
    *,
    user_id: str,
    packet_id: str,
    settings: Settings | None = None,
    now: int | None = None,
) -> ClaimResult:
    """Open a packet in one unit of work: the checks, then the share. One claim per person;
    the recipient of a packet to one person, or any member of the group (its sender too)."""
    ticket = check_claim(uow, user_id=user_id, packet_id=packet_id, now=now)
    return take_share(uow, ticket=ticket, settings=settings)


def grab(
    db: Database,
    *,
    user_id: str,
    packet_id: str,
    settings: Settings | None = None,
    now: int | None = None,
) -> ClaimResult:
    """Open a packet as the API does: the checks in a read-only unit of work, the share in
    one write transaction, so a refused grab never writes."""
    with db.uow(readonly=True) as uow:
        ticket = check_claim(uow, user_id=user_id, packet_id=packet_id, now=now)
    return db.transact(lambda uow: take_share(uow, ticket=ticket, settings=settings))
