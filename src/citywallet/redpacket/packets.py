"""Red packets: send to one person or to a group, claim, expire, and what people see of them.

**Money.** Sending moves the whole amount from the sender's wallet (their
``CUSTOMER_WALLET`` account, never a restricted campaign balance) into an escrow account of
the packet's own (``REDPACKET_ESCROW``, no overdraft); each claim moves one share from it to
the claimer's wallet; at expiry what is left goes back to the sender. Ledger transfer ids
are deterministic — ``rpk_X.fund``, ``rpk_X.claim.N`` (N = claim position), ``rpk_X.return``
— so the ledger's idempotency refuses a second payment of any of them even if a bug tried.
An escrow account per packet means claims on different packets never lock the same row.

**Shares** are drawn at claim time from what is left (``rules.next_share``): a packet keeps
two numbers, not a plan, and no one (operators included) can read the shares in advance.

**Locks**, everywhere in this order: packet rows (ascending id), wallet rows (ascending
ledger account), the sender's limit-usage rows, ledger accounts (inside ``ledger.post``).
A claim locks its packet row (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN
IMMEDIATE`` serialises every writer already), so concurrent claims of one packet run one
after the other and each sees the shares its predecessors took. Refusals that only a final
state can cause (all claimed, expired) are answered from an unlocked read first: a packet
never leaves those states, so the answer cannot be stale, and losers never queue for the lock.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Select, exists, select

from citywallet.ledger import service as ledger
from citywallet.ledger.types import AccountCode, AccountFlags, Result, TransferCode, TransferSpec
from citywallet.money import Money
from citywallet.platform.clock import now_us
from citywallet.platform.config import Settings, get_settings
from citywallet.platform.crypto import Encryptor
from citywallet.platform.db import UnitOfWork
from citywallet.platform.errors import Conflict, InvalidInput
from citywallet.redpacket.errors import (
    AlreadyClaimed,
    NotClaimable,
    PacketEmpty,
    PacketExpired,
    PacketNotFound,
)
from citywallet.redpacket.groups import member_count, member_group, member_role
from citywallet.redpacket.models import (
    RedPacket,
    RedPacketClaim,
    RedPacketGroup,
    RedPacketGroupMember,
)
from citywallet.redpacket.paging import decode_cursor, encode_cursor, page_limit
from citywallet.redpacket.rules import best_luck, next_share, validate_packet
from citywallet.wallet import accounts, history
from citywallet.wallet.accounts import CURRENCY
from citywallet.wallet.errors import InsufficientBalance
from citywallet.wallet.funding import validate_amount
from citywallet.wallet.limits import check_inflow, reserve_outflow
from citywallet.wallet.people import active_user, find_recipient, label, new_id

GREETING_MAX = 40
DEFAULT_GREETING = "恭喜发财，大吉大利"
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
class ClaimResult:
    """What a claim returns: the share, and where the packet stands after it."""

    claim: ClaimView
    currency: str
    packet_status: str
    claimed_count: int
    shares: int


@dataclass(frozen=True)
class PacketPage:
    """A page of packets, newest first; ``next_cursor`` fetches more."""

    items: list[PacketView]
    next_cursor: str | None


def _greeting(greeting: str) -> str:
    clean = " ".join(greeting.split()) or DEFAULT_GREETING
    if len(clean) > GREETING_MAX:
        raise InvalidInput(
            f"A greeting has at most {GREETING_MAX} characters.", code="greeting_too_long"
        )
    return clean


def _status(row: RedPacket, moment: int) -> str:
    if row.status == "active" and moment >= row.expires_at:
        return "expired"
    return row.status


def _claim_view(row: RedPacketClaim, packet: RedPacket) -> ClaimView:
    return ClaimView(
        id=row.public_id,
        packet_id=packet.public_id,
        user_id=row.user_id,
        label=row.label,
        amount=row.amount,
        position=row.position,
        best_luck=row.public_id == packet.best_luck_claim_id,
        created_at=row.created_at,
    )


def _claims(uow: UnitOfWork, packet: RedPacket) -> list[RedPacketClaim]:
    return list(
        uow.session.scalars(
            select(RedPacketClaim)
            .where(RedPacketClaim.packet_id == packet.id)
            .order_by(RedPacketClaim.position)
        )
    )


def _claim_of(uow: UnitOfWork, packet_pk: int, user_id: str) -> RedPacketClaim | None:
    found: RedPacketClaim | None = uow.session.scalar(
        select(RedPacketClaim).where(
            RedPacketClaim.packet_id == packet_pk, RedPacketClaim.user_id == user_id
        )
    )
    return found


def _view(
    uow: UnitOfWork,
    row: RedPacket,
    group_public_id: str | None,
    *,
    viewer: str,
    moment: int,
    with_claims: bool,
) -> PacketView:
    claims = [_claim_view(c, row) for c in _claims(uow, row)] if with_claims else None
    if claims is not None:
        mine = next((c for c in claims if c.user_id == viewer), None)
    else:
        found = _claim_of(uow, row.id, viewer)
        mine = None if found is None else _claim_view(found, row)
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
        claimed_count=row.claimed_count,
        claimed_amount=row.claimed_amount,
        refund_amount=row.refund_amount,
        best_luck_claim_id=row.best_luck_claim_id,
        my_claim=mine,
        claims=claims,
        created_at=row.created_at,
        expires_at=row.expires_at,
        finished_at=row.finished_at,
        refunded_at=row.refunded_at,
    )


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
    now: int | None = None,
) -> PacketView:
    """Send a red packet of ``amount`` fen (PIN confirmed before): to one person (``to``: a
    user id or phone number; kind ``single``) or to a group the sender belongs to
    (``group_id``; ``shares`` shares, kind ``lucky`` by default or ``equal``). The money
    leaves the sender's wallet for the packet's escrow now, within the sender's limits."""
    cfg = settings if settings is not None else get_settings()
    validate_amount(amount, currency)
    if (to is None) == (group_id is None):
        raise InvalidInput(
            "Send a red packet either to one person (to) or to a group (group_id).",
            code="redpacket_target_required",
        )
    chosen = kind or ("single" if to is not None else "lucky")
    clean_greeting = _greeting(greeting)
    sender = active_user(uow, user_id)
    group: RedPacketGroup | None = None
    recipient_id: str | None = None
    members: int | None = None
    if to is not None:
        if chosen != "single" or shares != 1:
            raise InvalidInput(
                "A red packet to one person is one share of a fixed amount (kind 'single').",
                code="invalid_redpacket_kind",
            )
        recipient = find_recipient(uow, to, encryptor)
        if recipient.id == sender.id:
            raise InvalidInput("You cannot send a red packet to yourself.", code="cannot_pay_self")
        if recipient.status == "frozen":
            raise Conflict(
                "The recipient cannot receive money right now.", code="recipient_unavailable"
            )
        recipient_id, target_label = recipient.id, label(recipient)
    else:
        if chosen not in ("equal", "lucky"):
            raise InvalidInput(
                "A red packet to a group is 'lucky' or 'equal'.", code="invalid_redpacket_kind"
            )
        group, _role = member_group(uow, user_id=sender.id, group_id=str(group_id))
        members, target_label = member_count(uow, group_pk=group.id), group.name
    validate_packet(
        amount,
        shares,
        max_total=cfg.redpacket_max_total,
        max_shares=cfg.redpacket_max_shares,
        members=members,
    )
    if amount < shares * cfg.redpacket_min_share:
        raise InvalidInput(
            f"Every share is at least {Money(cfg.redpacket_min_share)}.", code="share_too_small"
        )

    packet_id = new_id("rpk")
    moment = now if now is not None else now_us()
    wallet = accounts.lock_wallets(uow, user_ids=[sender.id])[sender.id]
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
    escrow = ledger.create_account(
        uow,
        ledger=CURRENCY,
        code=AccountCode.REDPACKET_ESCROW,
        flags=AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS,
        owner_ref=packet_id,
    )
    fund_id = f"{packet_id}.fund"
    [result] = ledger.post(
        uow,
        transfers=[
            TransferSpec(
                id=fund_id,
                debit_account_id=wallet,
                credit_account_id=escrow,
                amount=amount,
                ledger=CURRENCY,
                code=TransferCode.REDPACKET_FUND,
                reference=packet_id,
            )
        ],
    )
    if result is Result.EXCEEDS_CREDITS:
        raise InsufficientBalance("The wallet's available balance does not cover the amount.")
    if result is not Result.OK:
        raise RuntimeError(f"ledger refused red packet {fund_id}: {result.value}")
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
        greeting=clean_greeting,
        escrow_account_id=escrow,
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
        note=clean_greeting,
        reference=packet_id,
    )
    uow.session.flush()
    group_public = None if group is None else group.public_id
    return _view(uow, row, group_public, viewer=sender.id, moment=moment, with_claims=True)


# --- seeing -------------------------------------------------------------------------------


def _may_see(uow: UnitOfWork, row: RedPacket, user_id: str) -> bool:
    """The sender, the recipient, a member of the group, or someone who claimed a share."""
    if user_id in (row.sender_id, row.recipient_id):
        return True
    if row.group_id is not None and member_role(uow, group_pk=row.group_id, user_id=user_id):
        return True
    return _claim_of(uow, row.id, user_id) is not None


def _visible(uow: UnitOfWork, *, user_id: str, packet_id: str) -> tuple[RedPacket, str | None]:
    found = uow.session.execute(_with_group().where(RedPacket.public_id == packet_id)).first()
    if found is None or not _may_see(uow, found[0], user_id):
        raise PacketNotFound("No such red packet.")
    return found[0], found[1]


def get_packet(
    uow: UnitOfWork, *, user_id: str, packet_id: str, now: int | None = None
) -> PacketView:
    """A packet the user sent, was sent, can claim or has claimed: totals, every claim
    (who, how much, when), the best-luck mark, the status."""
    row, group_public = _visible(uow, user_id=user_id, packet_id=packet_id)
    moment = now if now is not None else now_us()
    return _view(uow, row, group_public, viewer=user_id, moment=moment, with_claims=True)


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
    key = RedPacketClaim.id if role == "received" else RedPacket.id
    query = select(RedPacket, RedPacketGroup.public_id, key).outerjoin(
        RedPacketGroup, RedPacketGroup.id == RedPacket.group_id
    )
    if role == "received":
        query = query.join(RedPacketClaim, RedPacketClaim.packet_id == RedPacket.id).where(
            RedPacketClaim.user_id == user_id
        )
    elif role == "sent":
        query = query.where(RedPacket.sender_id == user_id)
    else:
        my_groups = select(RedPacketGroupMember.group_id).where(
            RedPacketGroupMember.user_id == user_id
        )
        claimed = exists().where(
            RedPacketClaim.packet_id == RedPacket.id, RedPacketClaim.user_id == user_id
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
    items = [
        _view(uow, row, group_public, viewer=user_id, moment=moment, with_claims=False)
        for row, group_public, _key in page
    ]
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
    items = [
        _view(uow, row, group.public_id, viewer=user_id, moment=moment, with_claims=False)
        for row in page
    ]
    return PacketPage(items, following)


# --- claiming -----------------------------------------------------------------------------


def _refuse_if_not_eligible(uow: UnitOfWork, row: RedPacket, user_id: str) -> None:
    """Only the recipient opens a packet to one person; only members open a group's."""
    if row.kind == "single" and row.recipient_id != user_id:
        raise NotClaimable("This red packet is for its recipient only.")
    if (
        row.group_id is not None
        and member_role(uow, group_pk=row.group_id, user_id=user_id) is None
    ):
        if _claim_of(uow, row.id, user_id) is not None:  # claimed, then left the group
            raise AlreadyClaimed("You have already opened this red packet.")
        raise NotClaimable("Only the group's members open its red packets.")


def _refuse_if_closed(uow: UnitOfWork, row: RedPacket, user_id: str, moment: int) -> None:
    """Refuse a claim of a packet that is all claimed or expired (saying which, and
    ``redpacket_already_claimed`` first to someone who has their share)."""
    if row.status != "active" or row.claimed_count >= row.shares or moment >= row.expires_at:
        if _claim_of(uow, row.id, user_id) is not None:
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
    row, _group_id = _visible(uow, user_id=claimer.id, packet_id=packet_id)
    _refuse_if_not_eligible(uow, row, claimer.id)
    _refuse_if_closed(uow, row, claimer.id, moment)  # final states: refused without the lock

    locked = uow.session.scalar(
        select(RedPacket)
        .where(RedPacket.id == row.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    assert locked is not None  # packets are never deleted
    row = locked
    if _claim_of(uow, row.id, claimer.id) is not None:
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
    wallet = accounts.lock_wallets(uow, user_ids=[claimer.id])[claimer.id]
    account = ledger.get_account(uow, account_id=wallet)
    assert account is not None
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
            everyone = _claims(uow, row)
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
        _claim_view(claim, row), row.currency, row.status, row.claimed_count, row.shares
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
    due_ids = list(
        uow.session.scalars(
            select(RedPacket.id)
            .where(RedPacket.status == "active", RedPacket.expires_at <= moment)
            .order_by(RedPacket.expires_at, RedPacket.id)
            .limit(max(1, limit))
        )
    )
    if not due_ids:
        return 0
    locked: Sequence[RedPacket] = uow.session.scalars(
        select(RedPacket)
        .where(RedPacket.id.in_(due_ids))
        .order_by(RedPacket.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).all()
    due = [p for p in locked if p.status == "active" and p.expires_at <= moment]
    if not due:
        return 0
    wallets = accounts.lock_wallets(uow, user_ids={p.sender_id for p in due})
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
