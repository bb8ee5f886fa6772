"""Claiming a red packet, and returning what is unclaimed when it expires.

A claim locks its packet row (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN
IMMEDIATE`` serialises every writer already), so concurrent claims of one packet run one
after the other and each sees the shares its predecessors took; the next share is drawn
then, from what is left (``rules.next_share``). Refusals that only a final state can cause
(all claimed, expired) are answered from an unlocked read first: a packet never leaves those
states, so the answer cannot be stale, and the losers of a rush never queue for the lock.

Expiry re-checks each packet under the same lock, so a claim and the refund job racing for
a packet's last share cannot both take it; the refund's ledger id (``rpk_X.return``) is the
packet's, so even a second refund that slipped past would be refused by the ledger.
Lock order as in :mod:`citywallet.redpacket.packets`: a claim locks the claimer's wallet
before the packet, the job the senders' wallets before their packets.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select

from citywallet.ledger import service as ledger
from citywallet.ledger.types import Result, TransferCode, TransferSpec
from citywallet.platform.clock import now_us
from citywallet.platform.config import Settings, get_settings
from citywallet.platform.db import UnitOfWork
from citywallet.redpacket.errors import AlreadyClaimed, NotClaimable, PacketEmpty, PacketExpired
from citywallet.redpacket.groups import member_role
from citywallet.redpacket.models import RedPacket, RedPacketClaim
from citywallet.redpacket.packets import (
    ClaimView,
    claim_of,
    claim_view,
    claims_of,
    visible_packet,
)
from citywallet.redpacket.rules import best_luck, next_share
from citywallet.wallet import accounts, history
from citywallet.wallet.accounts import CURRENCY
from citywallet.wallet.limits import check_inflow
from citywallet.wallet.people import active_user, label, new_id

_SYSTEM_RANDOM = random.SystemRandom()  # shares must not be predictable


@dataclass(frozen=True)
class ClaimResult:
    """What a claim returns: the share, and where the packet stands after it."""

    claim: ClaimView
    currency: str
    packet_status: str
    claimed_count: int
    shares: int


# --- claiming -----------------------------------------------------------------------------


def _refuse_if_not_eligible(uow: UnitOfWork, row: RedPacket, user_id: str) -> None:
    """Only the recipient opens a packet to one person; only members open a group's."""
    if row.kind == "single" and row.recipient_id != user_id:
        raise NotClaimable("This red packet is for its recipient only.")
    if (
        row.group_id is not None
        and member_role(uow, group_pk=row.group_id, user_id=user_id) is None
    ):
        if claim_of(uow, row.id, user_id) is not None:  # claimed, then left the group
            raise AlreadyClaimed("You have already opened this red packet.")
        raise NotClaimable("Only the group's members open its red packets.")


def _refuse_if_closed(uow: UnitOfWork, row: RedPacket, user_id: str, moment: int) -> None:
    """Refuse a claim of a packet that is all claimed or expired (saying which, and
    ``redpacket_already_claimed`` first to someone who has their share)."""
    if row.status != "active" or row.claimed_count >= row.shares or moment >= row.expires_at:
        if claim_of(uow, row.id, user_id) is not None:
            raise AlreadyClaimed("You have already opened this red packet.")
        if row.status == "finished" or row.claimed_count >= row.shares:
            raise PacketEmpty("Every share of this red packet has been claimed.")
        raise PacketExpired("This red packet has expired; what was left went back to the sender.")


def claim_packet(
    uow: UnitOfWork,
    *,
    user_id: str,
    packet_id: str,
    settings: Settings | None = None,
    rng: random.Random | None = None,
    now: int | None = None,
) -> ClaimResult:
    """Open a packet: draw the next share and pay it from the packet's escrow into the
    claimer's wallet. One claim per person; the recipient of a packet to one person, or
    any member of the group (its sender too). If the claimer's tier cannot take the share
    (balance limit), nothing is drawn and the share stays for others."""
    cfg = settings if settings is not None else get_settings()
    moment = now if now is not None else now_us()
    claimer = active_user(uow, user_id)
    row, _group_id = visible_packet(uow, user_id=claimer.id, packet_id=packet_id)
    _refuse_if_not_eligible(uow, row, claimer.id)
    _refuse_if_closed(uow, row, claimer.id, moment)  # final states: refused without the lock

    # The claimer's wallet before the packet (the lock order), so that the packet's lock,
    # which every claim of the packet queues for, is held for as little as possible.
    wallet = accounts.lock_wallets(uow, user_ids=[claimer.id])[claimer.id]
    account = ledger.get_account(uow, account_id=wallet)
    assert account is not None
    locked = uow.session.scalar(
        select(RedPacket)
        .where(RedPacket.id == row.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    assert locked is not None  # packets are never deleted
    row = locked
    if claim_of(uow, row.id, claimer.id) is not None:
        raise AlreadyClaimed("You have already opened this red packet.")
    _refuse_if_closed(uow, row, claimer.id, moment)

    position = row.claimed_count + 1
    amount = next_share(
        row.kind,
        row.total - row.claimed_amount,
        row.shares - row.claimed_count,
        rng or _SYSTEM_RANDOM,
        min_share=row.min_share,
    )
    check_inflow(tier=claimer.tier, account=account, amount=amount, settings=cfg)
    transfer_id = f"{row.public_id}.claim.{position}"
    [result] = ledger.post(
        uow,
        transfers=[
            TransferSpec(
                id=transfer_id,
                debit_account_id=row.escrow_account_id,
                credit_account_id=wallet,
                amount=amount,
                ledger=CURRENCY,
                code=TransferCode.REDPACKET_CLAIM,
                reference=row.public_id,
            )
        ],
    )
    if result is not Result.OK:  # the lock makes each position unique: anything else is a bug
        raise RuntimeError(f"ledger refused red packet claim {transfer_id}: {result.value}")
    claim = RedPacketClaim(
        public_id=new_id("rpc"),
        packet_id=row.id,
        user_id=claimer.id,
        label=label(claimer),
        position=position,
        amount=amount,
        transfer_id=transfer_id,
        created_at=moment,
    )
    uow.session.add(claim)
    row.claimed_count = position
    row.claimed_amount += amount
    if position == row.shares:
        row.status, row.finished_at = "finished", moment
        uow.session.flush()
        if row.kind == "lucky":
            everyone = claims_of(uow, row)
            best = best_luck([c.amount for c in everyone])
            row.best_luck_claim_id = None if best is None else everyone[best].public_id
    history.record(
        uow,
        user_id=claimer.id,
        object_id=claim.public_id,
        kind="redpacket_received",
        amount=amount,
        currency=CURRENCY,
        status="succeeded",
        transfer_ids=[transfer_id],
        counterparty_user_id=row.sender_id,
        counterparty_label=row.sender_label,
        note=row.greeting,
        reference=row.public_id,
    )
    uow.session.flush()
    return ClaimResult(
        claim_view(claim, row), row.currency, row.status, row.claimed_count, row.shares
    )


# --- expiry -------------------------------------------------------------------------------


def return_transfer_id(packet_id: str) -> str:
    """The id of the ledger transfer that returns a packet's remainder (posted at most once)."""
    return f"{packet_id}.return"


def expire_packets(uow: UnitOfWork, *, now: int | None = None, limit: int = 100) -> int:
    """Return what is unclaimed of packets past their expiry to their senders (the
    ``redpacket.expire`` job); returns how many packets were refunded. Safe to run twice or
    beside a last claim: each packet is re-checked under its row lock, and the return
    transfer's id is the packet's, so the ledger would refuse a second one anyway."""
    moment = now if now is not None else now_us()
    candidates = uow.session.execute(
        select(RedPacket.id, RedPacket.sender_id)
        .where(RedPacket.status == "active", RedPacket.expires_at <= moment)
        .order_by(RedPacket.expires_at, RedPacket.id)
        .limit(max(1, limit))
    ).all()
    if not candidates:
        return 0
    wallets = accounts.lock_wallets(uow, user_ids={sender for _id, sender in candidates})
    locked: Sequence[RedPacket] = uow.session.scalars(
        select(RedPacket)
        .where(RedPacket.id.in_([packet_pk for packet_pk, _sender in candidates]))
        .order_by(RedPacket.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).all()
    due = [p for p in locked if p.status == "active" and p.expires_at <= moment]
    if not due:
        return 0
    escrows = ledger.get_accounts(uow, ids=[p.escrow_account_id for p in due])
    for packet in due:
        left = packet.total - packet.claimed_amount
        if escrows[packet.escrow_account_id].balance != left:
            raise RuntimeError(f"escrow of {packet.public_id} does not hold its remainder {left}")
    results = ledger.post(
        uow,
        transfers=[
            TransferSpec(
                id=return_transfer_id(p.public_id),
                debit_account_id=p.escrow_account_id,
                credit_account_id=wallets[p.sender_id],
                amount=p.total - p.claimed_amount,
                ledger=CURRENCY,
                code=TransferCode.REDPACKET_RETURN,
                reference=p.public_id,
            )
            for p in due
        ],
    )
    for packet, result in zip(due, results, strict=True):
        if not result.on_books:
            raise RuntimeError(f"ledger refused the return of {packet.public_id}: {result.value}")
        left = packet.total - packet.claimed_amount
        packet.status, packet.refund_amount, packet.refunded_at = "refunded", left, moment
        history.record(
            uow,
            user_id=packet.sender_id,
            object_id=return_transfer_id(packet.public_id),
            kind="redpacket_refund",
            amount=left,
            currency=CURRENCY,
            status="succeeded",
            transfer_ids=[return_transfer_id(packet.public_id)],
            counterparty_user_id=packet.recipient_id,
            counterparty_label=packet.target_label,
            note=packet.greeting,
            reference=packet.public_id,
        )
    _give_back_usage(uow, due)
    uow.session.flush()
    return len(due)


def _give_back_usage(uow: UnitOfWork, packets: Sequence[RedPacket]) -> None:
    """Money that came back never left: take it off the limits it was counted against."""
    by_sender: dict[str, dict[str, int]] = {}
    for packet in packets:
        changes = by_sender.setdefault(packet.sender_id, {})
        for period in (packet.day_period, packet.year_period, accounts.LIFETIME):
            changes[period] = changes.get(period, 0) + packet.refund_amount
    for sender_id in sorted(by_sender):
        changes = by_sender[sender_id]
        used = accounts.lock_usage(uow, user_id=sender_id, periods=sorted(changes))
        accounts.add_usage(
            uow,
            user_id=sender_id,
            changes={period: -min(used.get(period, 0), back) for period, back in changes.items()},
        )
