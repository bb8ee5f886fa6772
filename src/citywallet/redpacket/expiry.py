"""Returning what is unclaimed of a red packet when it expires (the ``redpacket.expire`` job).

The job takes the shares nobody took in the transaction that posts their sum back to the
sender: ``UPDATE redpacket_shares SET refunded_at … WHERE user_id IS NULL AND refunded_at IS
NULL`` waits, on PostgreSQL, for claims holding a share and passes over the shares they
took, so a last claim and the job never both get a share (a claim finding no share left
answers ``redpacket_expired``). The refund's ledger id is the packet's own
(``rpk_X.return``), so a second refund would be refused by the ledger anyway. A packet paid
from several escrow stripes (:mod:`.plan`) first gathers every other stripe's remainder into
stripe 0 (``rpk_X.gather.K``), which returns the whole remainder to the sender, in the same
ledger batch: each stripe's balance is checked against the shares it still held.
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
) -> dict[int, dict[int, tuple[int, int]]]:
    """Mark every share nobody took refunded; per packet pk, per escrow stripe, the
    (shares, amount) refunded. On PostgreSQL the UPDATE waits for claims holding a share
    and then passes over the shares they took; a share a claim let go of is refunded."""
    rows = uow.session.execute(
        update(RedPacketShare)
        .where(
            RedPacketShare.packet_id.in_([p.id for p in packets]),
            RedPacketShare.user_id.is_(None),
            RedPacketShare.refunded_at.is_(None),
        )
        .values(refunded_at=moment)
        .returning(RedPacketShare.packet_id, RedPacketShare.account_id, RedPacketShare.amount)
        .execution_options(synchronize_session=False)
    ).all()
    back: dict[int, dict[int, tuple[int, int]]] = {}
    for packet_pk, stripe, amount in rows:
        stripes = back.setdefault(packet_pk, {})
        count, total = stripes.get(stripe, (0, 0))
        stripes[stripe] = (count + 1, total + amount)
    return back


def _returns(
    packet: RedPacket, stripes: dict[int, tuple[int, int]], wallet: int
) -> list[TransferSpec]:
    """The other stripes' remainders into stripe 0, then stripe 0's whole remainder to the
    sender (the last transfer)."""
    main = packet.escrow_account_id
    specs = [
        TransferSpec(
            id=f"{packet.public_id}.gather.{k}",
            debit_account_id=stripe,
            credit_account_id=main,
            amount=left,
            ledger=CURRENCY,
            code=TransferCode.REDPACKET_RETURN,
            reference=packet.public_id,
        )
        for k, (stripe, (_count, left)) in enumerate(
            sorted((s, held) for s, held in stripes.items() if s != main), start=1
        )
    ]
    specs.append(
        TransferSpec(
            id=return_transfer_id(packet.public_id),
            debit_account_id=main,
            credit_account_id=wallet,
            amount=sum(left for _count, left in stripes.values()),
            ledger=CURRENCY,
            code=TransferCode.REDPACKET_RETURN,
            reference=packet.public_id,
        )
    )
    return specs


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
    escrows = ledger.get_accounts(uow, ids=[k for p in packets for k in back[p.id]])
    for packet in packets:
        for stripe, (_count, left) in back[packet.id].items():
            if escrows[stripe].balance != left:
                raise RuntimeError(
                    f"escrow {stripe} of {packet.public_id} does not hold its remainder {left}"
                )
    plans = [_returns(p, back[p.id], wallets[p.sender_id]) for p in packets]
    results = ledger.post(uow, transfers=[spec for plan in plans for spec in plan])
    if not all(result.on_books for result in results):
        raise RuntimeError(f"ledger refused a red-packet return: {[r.value for r in results]}")
    for packet in packets:
        unclaimed = sum(count for count, _left in back[packet.id].values())
        left = sum(amount for _count, amount in back[packet.id].values())
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
