"""Returning what is unclaimed of a red packet when it expires (the ``redpacket.expire`` job).

The job takes the shares nobody took in the transaction that posts their sum back to the
sender: ``UPDATE redpacket_shares SET refunded_at … WHERE user_id IS NULL AND refunded_at IS
NULL`` waits, on PostgreSQL, for claims holding a share and passes over the shares they
took, so a last claim and the job never both get a share (a claim finding no share left
answers ``redpacket_expired``). The refund's ledger id is the packet's own
(``rpk_X.return``), so a second refund would be refused by the ledger anyway.
Lock order as for claims: the senders' wallets, the shares, the ledger accounts, the packet
rows; then the senders' limit-usage rows, which every user of them reaches through the
sender's wallet lock first.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select, update

from citywallet.ledger import service as ledger
from citywallet.ledger.types import TransferCode, TransferSpec
from citywallet.platform.clock import now_us
from citywallet.platform.db import UnitOfWork
from citywallet.redpacket.models import RedPacket, RedPacketShare
from citywallet.wallet import accounts, history
from citywallet.wallet.accounts import CURRENCY


def return_transfer_id(packet_id: str) -> str:
    """The id of the ledger transfer that returns a packet's remainder (posted at most once)."""
    return f"{packet_id}.return"


def _refund_free_shares(
    uow: UnitOfWork, packets: Sequence[RedPacket], moment: int
) -> dict[int, tuple[int, int]]:
    """Mark every share nobody took refunded; (shares, amount) refunded per packet pk. On
    PostgreSQL the UPDATE waits for claims holding a share and then passes over the shares
    they took; a share a claim let go of is refunded."""
    rows = uow.session.execute(
        update(RedPacketShare)
        .where(
            RedPacketShare.packet_id.in_([p.id for p in packets]),
            RedPacketShare.user_id.is_(None),
            RedPacketShare.refunded_at.is_(None),
        )
        .values(refunded_at=moment)
        .returning(RedPacketShare.packet_id, RedPacketShare.amount)
        .execution_options(synchronize_session=False)
    ).all()
    back: dict[int, tuple[int, int]] = {}
    for packet_pk, amount in rows:
        count, total = back.get(packet_pk, (0, 0))
        back[packet_pk] = (count + 1, total + amount)
    return back


def expire_packets(uow: UnitOfWork, *, now: int | None = None, limit: int = 100) -> int:
    """Return what is unclaimed of packets past their expiry to their senders (the
    ``redpacket.expire`` job); returns how many packets were refunded. Safe to run twice or
    beside a last claim: only the run that marks a packet's free shares refunded returns
    them, and the return transfer's id is the packet's, so the ledger would refuse a second."""
    moment = now if now is not None else now_us()
    due = list(
        uow.session.scalars(
            select(RedPacket)
            .where(RedPacket.status == "active", RedPacket.expires_at <= moment)
            .order_by(RedPacket.expires_at, RedPacket.id)
            .limit(max(1, limit))
        )
    )
    if not due:
        return 0
    # The senders' wallets first (the lock order); two runs due on one packet queue here.
    wallets = accounts.lock_wallets(uow, user_ids={p.sender_id for p in due})
    back = _refund_free_shares(uow, due, moment)
    # A packet another run refunded, or whose last share a claim took, has nothing left.
    packets = [p for p in due if p.id in back]
    if not packets:
        return 0
    escrows = ledger.get_accounts(uow, ids=[p.escrow_account_id for p in packets])
    for packet in packets:
        left = back[packet.id][1]
        if escrows[packet.escrow_account_id].balance != left:
            raise RuntimeError(f"escrow of {packet.public_id} does not hold its remainder {left}")
    results = ledger.post(
        uow,
        transfers=[
            TransferSpec(
                id=return_transfer_id(p.public_id),
                debit_account_id=p.escrow_account_id,
                credit_account_id=wallets[p.sender_id],
                amount=back[p.id][1],
                ledger=CURRENCY,
                code=TransferCode.REDPACKET_RETURN,
                reference=p.public_id,
            )
            for p in packets
        ],
    )
    for packet, result in zip(packets, results, strict=True):
        if not result.on_books:
            raise RuntimeError(f"ledger refused the return of {packet.public_id}: {result.value}")
        unclaimed, left = back[packet.id]
        packet.status, packet.refund_amount, packet.refunded_at = "refunded", left, moment
        packet.claimed_count, packet.claimed_amount = packet.shares - unclaimed, packet.total - left
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
    uow.session.flush()  # the packet rows after the ledger accounts (the lock order)
    _give_back_usage(uow, packets)
    uow.session.flush()
    return len(packets)


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
