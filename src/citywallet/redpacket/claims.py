"""Claiming a red packet: a grab.

Every share is a row made at sending (:mod:`.packets`), paid from one of the packet's escrow
stripes (:mod:`.plan`), and a grab never reads a packet under a lock nor writes its row
(that row would be the one hot spot every claim of the packet queues for). The hot path is
Core SQL only (no ORM objects). A grab has two steps:

1. :func:`check_claim`, read only, **one statement**: the claimer (active, tier, masked name
   and phone) with their wallet's id, the packet, the claimer's group role, the share they
   already hold and whether a share is still free. Every refusal that does not depend on a
   race is decided here — not found, not claimable, already claimed, empty, expired — so a
   refused grab never opens a write transaction (on SQLite it never takes the writer lock).
   A packet seen finished or refunded is remembered by the process (a packet never
   reopens): later grabs of it skip the packet and its shares and read only the claimer,
   their role and their own share.
2. :func:`take_share`, one write transaction: the claimer's wallet lock and balance only if
   their tier has a balance limit; ``UPDATE redpacket_shares … WHERE id = (SELECT … ORDER
   BY position LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING`` takes the first free share
   without waiting for the claims that hold others (``UNIQUE (packet_id, user_id)`` refuses
   a second share to the same person); the history line; and last the ledger posting from
   the share's escrow stripe, so that stripe's row is locked only from the posting to the
   commit. Consecutive positions are paid from different stripes, so the claims in flight
   at one moment rarely queue on one escrow row.

**Closing a packet.** Under a stripe's lock every earlier posting on it has committed, so
the claim whose posting leaves a stripe at 0 is that stripe's last: exactly one per
stripe. With one stripe it is the packet's last claim and closes the packet (status,
totals, best luck from the shares). With several, each stripe's last claim locks the packet
row (a handful per packet, never every claim) and reads the shares: the last of them to get
the lock sees every other claim committed — they all posted on a stripe whose last claim
held that lock until its commit — and closes the packet if no share is left: exactly one.

:func:`grab` runs step 1 in a read-only unit of work and step 2 in ``db.transact``; the API
runs step 2 inside its idempotency transaction; :func:`claim_packet` runs both in one unit
of work. A grab that passed step 1 while the last shares were being taken can still be
refused in step 2 (at most about as many as claims were in flight at the end).

Lock order: wallet rows, share rows, ledger accounts, packet rows (:mod:`.expiry` too).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from typing import cast as typed

from sqlalchemy import (
    CTE,
    BigInteger,
    ClauseElement,
    Connection,
    CursorResult,
    Integer,
    Label,
    ScalarSelect,
    Select,
    String,
    Table,
    bindparam,
    cast,
    exists,
    literal,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler

from citywallet.identity.errors import AccountClosed, AccountFrozen, UserNotFound
from citywallet.identity.service import UserView, mover_select
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
from citywallet.redpacket.plan import escrow_stripes
from citywallet.redpacket.rules import best_luck
from citywallet.wallet import accounts, history
from citywallet.wallet.accounts import CURRENCY
from citywallet.wallet.limits import check_inflow, limits_for
from citywallet.wallet.people import label, new_id


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

_PACKETS = typed(Table, RedPacket.__table__)
_SHARES = typed(Table, RedPacketShare.__table__)
_PACKET = _PACKETS.c
_SHARE = _SHARES.c
_MEMBER = typed(Table, RedPacketGroupMember.__table__).c
_PACKET_COLUMNS = (
    _PACKET.id,
    _PACKET.public_id,
    _PACKET.kind,
    _PACKET.total,
    _PACKET.shares,
    _PACKET.currency,
    _PACKET.escrow_account_id,
    _PACKET.expires_at,
    _PACKET.sender_id,
    _PACKET.sender_label,
    _PACKET.greeting,
    _PACKET.recipient_id,
    _PACKET.group_id,
    _PACKET.status,
)
CLOSED_CACHE_SIZE = 10_000  # packets remembered as finished or refunded, per process


@dataclass(frozen=True, slots=True)
class _Packet:
    """The packet's fields a grab reads (all fixed at sending except ``status``)."""

    id: int
    public_id: str
    kind: str
    total: int
    shares: int
    currency: str
    escrow_account_id: int
    expires_at: int
    sender_id: str
    sender_label: str
    greeting: str
    recipient_id: str | None
    group_id: int | None
    status: str


class ClosedPackets:
    """Packets known finished or refunded in this process (they never reopen), oldest
    forgotten first. A grab of one skips the packet and its shares."""

    def __init__(self, size: int = CLOSED_CACHE_SIZE) -> None:
        self._size = size
        self._packets: dict[str, _Packet] = {}
        self._lock = threading.Lock()

    def get(self, packet_id: str) -> _Packet | None:
        return self._packets.get(packet_id)

    def add(self, packet: _Packet) -> None:
        with self._lock:
            while len(self._packets) >= self._size:
                del self._packets[next(iter(self._packets))]
            self._packets[packet.public_id] = packet

    def clear(self) -> None:
        with self._lock:
            self._packets.clear()


CLOSED = ClosedPackets()


class Prepared:
    """A Core statement built once and compiled once per dialect, then run as driver SQL
    with its parameters: no statement construction, cache-key computation or result
    processing per call (what a hot path otherwise pays for every grab). Only for
    statements whose parameters and results need no type processing (ints, strings)."""

    def __init__(self, build: Callable[[], ClauseElement]) -> None:
        self._build = build
        self._compiled: dict[str, tuple[str, tuple[str, ...] | None, dict[str, Any]]] = {}

    def run(self, conn: Connection, **params: Any) -> CursorResult[Any]:
        entry = self._compiled.get(conn.dialect.name)
        if entry is None:
            compiled = typed(SQLCompiler, self._build().compile(dialect=conn.dialect))
            order = tuple(compiled.positiontup) if compiled.positiontup else None
            entry = (str(compiled), order, dict(compiled.params))
            self._compiled[conn.dialect.name] = entry
        sql, order, defaults = entry
        values = {**defaults, **params}
        if order is None:
            return conn.exec_driver_sql(sql, values)
        return conn.exec_driver_sql(sql, tuple(values[name] for name in order))

    def first(self, conn: Connection, **params: Any) -> tuple[Any, ...] | None:
        """The first row as a plain tuple, or None."""
        row = self.run(conn, **params).first()
        return None if row is None else tuple(row)


def _role(group_pk: Any, user_id: Any) -> ScalarSelect[str]:
    return (
        select(_MEMBER.role)
        .where(_MEMBER.group_id == group_pk, _MEMBER.user_id == user_id)
        .scalar_subquery()
    )


def _mine(packet_pk: Any, user_id: Any) -> ScalarSelect[int]:
    return (
        select(_SHARE.id)
        .where(_SHARE.packet_id == packet_pk, _SHARE.user_id == user_id)
        .scalar_subquery()
    )


def _look(closed: bool) -> ClauseElement:
    """The claimer (``:user``) with their wallet, and the packet (``:packet``) with what
    decides their grab — or, for a packet known closed (``:packet_pk``, ``:group_pk``), only
    the claimer's role and share: one statement. Columns: the claimer's five facts, the
    wallet id, role, mine, then (packet not known closed) free and the packet's columns
    (NULL if there is no such packet)."""
    user = bindparam("user", type_=String)
    people = mover_select(pin=False)
    claimer = people.where(people.selected_columns.user_id == user).subquery("claimer")
    facts = (
        claimer.c.user_id,
        claimer.c.status,
        claimer.c.tier,
        claimer.c.phone_masked,
        claimer.c.name_masked,
        accounts.wallet_id_of(claimer.c.user_id),
    )
    if closed:
        group_pk = bindparam("group_pk", type_=Integer)
        packet_pk = bindparam("packet_pk", type_=Integer)
        return select(*facts, _role(group_pk, user), _mine(packet_pk, user))
    free = exists().where(
        _SHARE.packet_id == _PACKET.id, _SHARE.user_id.is_(None), _SHARE.refunded_at.is_(None)
    )
    return select(
        *facts,
        _role(_PACKET.group_id, user),
        _mine(_PACKET.id, user),
        free,
        *_PACKET_COLUMNS,
    ).select_from(claimer.outerjoin(_PACKETS, _PACKET.public_id == bindparam("packet")))


_LOOK_OPEN = Prepared(lambda: _look(closed=False))
_LOOK_CLOSED = Prepared(lambda: _look(closed=True))


def _refuse(
    row: _Packet, *, user_id: str, role: str | None, claimed: bool, free: bool, moment: int
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
    closed = CLOSED.get(packet_id)
    conn = uow.session.connection()
    if closed is None:
        found = _LOOK_OPEN.first(conn, user=user_id, packet=packet_id)
    else:
        found = _LOOK_CLOSED.first(
            conn, user=user_id, group_pk=closed.group_id, packet_pk=closed.id
        )
    if found is None:
        raise UserNotFound("No such user.")
    user, status, tier, phone_masked, name_masked, wallet_id, role, mine = found[:8]
    if status == "frozen":
        raise AccountFrozen("This account is frozen: it cannot move money.")
    if status == "closed":
        raise AccountClosed("This account is closed: it cannot move money.")
    if closed is None:
        free, *columns = found[8:]
        if columns[0] is None:
            raise PacketNotFound("No such red packet.")
        packet = _Packet(*columns)
        if packet.status != "active":
            CLOSED.add(packet)
    else:
        packet, free = closed, False
    claimer = UserView(user, phone_masked, status, tier, name_masked is not None, name_masked)
    _refuse(packet, user_id=user, role=role, claimed=mine is not None, free=free, moment=moment)
    return ClaimTicket(
        packet_pk=packet.id,
        packet_id=packet.public_id,
        kind=packet.kind,
        total=packet.total,
        shares=packet.shares,
        currency=packet.currency,
        escrow_account_id=packet.escrow_account_id,
        expires_at=packet.expires_at,
        sender_id=packet.sender_id,
        sender_label=packet.sender_label,
        greeting=packet.greeting,
        user_id=claimer.id,
        label=label(claimer),
        tier=claimer.tier,
        wallet_id=wallet_id,
        moment=moment,
    )


# --- step 2: taking a share ---------------------------------------------------------------


def _free_shares(packet_pk: Any) -> Select[Any]:
    return (
        select(_SHARE.id)
        .where(
            _SHARE.packet_id == packet_pk, _SHARE.user_id.is_(None), _SHARE.refunded_at.is_(None)
        )
        .order_by(_SHARE.position)
        .limit(1)
    )


def _received_line(taken: CTE) -> Select[Any]:
    """The claimer's history line for the share ``taken`` returns, as the columns of a
    SELECT: what :func:`history.record` writes, its transfer id built in SQL from the
    share's position (``:prefix`` is ``'["rpk_X.claim.'``)."""

    def value(name: str, type_: Any = String) -> Label[Any]:
        return bindparam(name, type_=type_).label(name)

    transfer_ids = bindparam("prefix", type_=String) + cast(taken.c.position, String) + '"]'
    return select(
        value("user_id"),
        value("object_id"),
        literal("redpacket_received").label("kind"),
        taken.c.amount.label("amount"),
        literal(0).label("fee"),
        literal(CURRENCY).label("currency"),
        literal("succeeded").label("status"),
        value("counterparty_user_id"),
        value("counterparty_label"),
        value("note"),
        value("reference"),
        transfer_ids.label("transfer_ids"),
        value("created_at", BigInteger),
        value("updated_at", BigInteger),
    ).select_from(taken)


def _take(*, skip_locked: bool, with_line: bool) -> ClauseElement:
    """Write the claimer into a share and return its (position, amount, stripe): the first
    free one nobody else holds (``skip_locked``, ``:packet_pk``) or the one named
    (``:share``); ``with_line`` (PostgreSQL) adds their history line in the same statement,
    a data-modifying CTE."""
    share: Any = (
        _free_shares(bindparam("packet_pk")).with_for_update(skip_locked=True).scalar_subquery()
        if skip_locked
        else bindparam("share")
    )
    take = (
        update(_SHARES)
        .where(_SHARE.id == share)
        .values(
            user_id=bindparam("user_id"),
            public_id=bindparam("object_id"),
            label=bindparam("claim_label"),
            claimed_at=bindparam("created_at"),
        )
        .returning(_SHARE.position, _SHARE.amount, _SHARE.account_id)
    )
    if not with_line:
        return take
    taken = take.cte("taken")
    line = history.insert_lines(_received_line(taken)).cte("line")
    return select(taken.c.position, taken.c.amount, taken.c.account_id).add_cte(line)


def _prepared_take(skip_locked: bool, with_line: bool) -> Prepared:
    return Prepared(lambda: _take(skip_locked=skip_locked, with_line=with_line))


_TAKE = {
    (skip, line): _prepared_take(skip, line) for skip in (True, False) for line in (True, False)
}


def _claim_share(
    uow: UnitOfWork, ticket: ClaimTicket, claim_id: str, share: int | None
) -> tuple[int, int, int] | None:
    """Write the claimer into ``share`` (None: the first free one nobody holds) and their
    history line; the share's (position, amount, stripe), or None if none was taken. On
    PostgreSQL one statement (the line rides in a data-modifying CTE); on SQLite two."""
    with_line = uow.dialect == "postgresql"
    params: dict[str, Any] = {
        "user_id": ticket.user_id,
        "object_id": claim_id,
        "claim_label": ticket.label,
        "created_at": ticket.moment,
    }
    if share is None:
        params["packet_pk"] = ticket.packet_pk
    else:
        params["share"] = share
    if with_line:
        params.update(
            updated_at=ticket.moment,
            counterparty_user_id=ticket.sender_id,
            counterparty_label=ticket.sender_label[:100],
            note=ticket.greeting,
            reference=ticket.packet_id,
            prefix=f'["{ticket.packet_id}.claim.',
        )
    statement = _TAKE[(share is None, with_line)]
    try:
        row = statement.first(uow.session.connection(), **params)
    except IntegrityError:  # UNIQUE (packet_id, user_id): their other grab took one first
        raise AlreadyClaimed("You have already opened this red packet.") from None
    if row is not None and not with_line:
        history.record(
            uow,
            user_id=ticket.user_id,
            object_id=claim_id,
            kind="redpacket_received",
            amount=row[1],
            currency=CURRENCY,
            status="succeeded",
            transfer_ids=[f"{ticket.packet_id}.claim.{row[0]}"],
            counterparty_user_id=ticket.sender_id,
            counterparty_label=ticket.sender_label,
            note=ticket.greeting,
            reference=ticket.packet_id,
        )
    return None if row is None else (int(row[0]), int(row[1]), int(row[2]))


def _take_free_share(
    uow: UnitOfWork, ticket: ClaimTicket, claim_id: str
) -> tuple[int, int, int] | None:
    """The first free share nobody else holds, else — after waiting for the holders (claims
    in flight, the expiry job) — one a holder let go of; None if the packet has none left."""
    taken = _claim_share(uow, ticket, claim_id, None)
    if taken is not None or uow.dialect != "postgresql":  # SQLite: this writer is alone
        return taken
    # Rare: every free share is held by a transaction in flight. Wait for them: a claim
    # refused for its claimer's tier lets its share go, and the job's refund must show.
    let_go = uow.session.connection().scalar(_free_shares(ticket.packet_pk).with_for_update())
    return None if let_go is None else _claim_share(uow, ticket, claim_id, let_go)


def _refuse_none_left(uow: UnitOfWork, ticket: ClaimTicket) -> None:
    """No share was left for a grab that passed the checks: expired or empty, as it ended."""
    status = uow.session.connection().scalar(
        select(_PACKET.status).where(_PACKET.id == ticket.packet_pk)
    )
    if status == "refunded" or ticket.moment >= ticket.expires_at:
        raise PacketExpired("This red packet has expired; what was left went back to the sender.")
    raise PacketEmpty("Every share of this red packet has been claimed.")


def _finish(uow: UnitOfWork, ticket: ClaimTicket, *, striped: bool) -> tuple[bool, str | None]:
    """Close the packet if this claim, the last of its stripe, left no share free: status,
    totals and best luck (lucky packets) on its row. Returns (closed, best-luck claim id).

    With several stripes the packet row is locked first (the last claims of the stripes
    queue here), and the shares are read after the lock: the last to get it sees all the
    other claims committed."""
    conn = uow.session.connection()
    if striped and uow.dialect == "postgresql":
        conn.execute(select(_PACKET.id).where(_PACKET.id == ticket.packet_pk).with_for_update())
    everyone = conn.execute(
        select(_SHARE.public_id, _SHARE.amount)
        .where(_SHARE.packet_id == ticket.packet_pk)
        .order_by(_SHARE.position)
    ).all()
    if any(claim_id is None for claim_id, _amount in everyone):
        return False, None  # another stripe still pays out (or a claim in flight)
    best = best_luck([amount for _id, amount in everyone]) if ticket.kind == "lucky" else None
    best_id = None if best is None else everyone[best][0]
    conn.execute(
        update(_PACKETS)
        .where(_PACKET.id == ticket.packet_pk)
        .values(
            status="finished",
            finished_at=ticket.moment,
            claimed_count=ticket.shares,
            claimed_amount=ticket.total,
            best_luck_claim_id=best_id,
        )
    )
    return True, best_id


def take_share(
    uow: UnitOfWork, *, ticket: ClaimTicket, settings: Settings | None = None
) -> ClaimResult:
    """Take the first free share of a checked grab and pay it from its escrow stripe into
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
    position, amount, stripe = taken
    if account is not None:
        check_inflow(tier=ticket.tier, account=account, amount=amount, settings=cfg)
    transfer_id = f"{ticket.packet_id}.claim.{position}"
    # The posting last: the stripe's lock is held only from here to the commit.
    [result] = ledger.post(
        uow,
        transfers=[
            TransferSpec(
                id=transfer_id,
                debit_account_id=stripe,
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
    escrow = ledger.get_account(uow, account_id=stripe)
    finished, best_id = False, None
    if escrow is not None and escrow.balance == 0:  # read under the stripe's lock
        striped = stripe != ticket.escrow_account_id or escrow_stripes(ticket.shares) > 1
        finished, best_id = _finish(uow, ticket, striped=striped)
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


@contextmanager
def checking(db: Database) -> Iterator[UnitOfWork]:
    """A read-only unit of work for :func:`check_claim`. On PostgreSQL its connection is in
    autocommit: the one statement runs without ``BEGIN`` and ``ROLLBACK`` (two round trips
    fewer) and, under READ COMMITTED, sees exactly what it would inside a transaction. On
    SQLite, ``db.uow(readonly=True)`` (a deferred ``BEGIN``, never the writer lock)."""
    if db.dialect != "postgresql":
        with db.uow(readonly=True) as uow:
            yield uow
        return
    session = Session(db.engine, expire_on_commit=False, autoflush=False)
    session.connection(execution_options={"isolation_level": "AUTOCOMMIT", "readonly": True})
    try:
        yield UnitOfWork(session)
    finally:
        session.close()


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
    with checking(db) as uow:
        ticket = check_claim(uow, user_id=user_id, packet_id=packet_id, now=now)
    return db.transact(lambda uow: take_share(uow, ticket=ticket, settings=settings))
