"""Use cases of the message centre (services never commit; the caller's transaction does).

:func:`record` is what other features call, inside the transaction of their own event;
the rest serve the resident's list, the unread badge and marking read.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from sqlalchemy import (
    BigInteger,
    Select,
    String,
    Text,
    cast,
    func,
    insert,
    literal,
    select,
    text,
    union_all,
    update,
)

from citywallet.inbox import bell
from citywallet.inbox.kinds import KINDS, link, object_type
from citywallet.inbox.models import Notice
from citywallet.platform.clock import now_us
from citywallet.platform.cursors import decode_cursor, encode_cursor
from citywallet.platform.db import UnitOfWork
from citywallet.platform.errors import NotFound

CURSOR_TAG = "msg"
DEFAULT_LIMIT = 20
MAX_LIMIT = 100


class MessageNotFound(NotFound):
    """No such message, or not the caller's (both 404)."""

    code = "message_not_found"


@dataclass(frozen=True)
class MessageView:
    """A message as the resident sees it."""

    id: str
    kind: str
    object_type: str
    object_id: str
    link: str
    params: dict[str, Any]
    created_at: int
    read_at: int | None


@dataclass(frozen=True)
class MessagePage:
    """One page of messages, newest first, and the unread count."""

    items: list[MessageView]
    next_cursor: str | None
    unread: int


def _view(row: Notice) -> MessageView:
    return MessageView(
        id=row.public_id,
        kind=row.kind,
        object_type=object_type(row.kind),
        object_id=row.ref,
        link=link(row.kind, row.ref),
        params=json.loads(row.params or "{}"),
        created_at=row.created_at,
        read_at=row.read_at,
    )


def record(
    uow: UnitOfWork,
    *,
    user_id: str,
    kind: str,
    ref: str,
    params: Mapping[str, Any] | None = None,
) -> None:
    """Write one notice in ``uow``'s transaction (the event's own)."""
    record_many(uow, [user_id], kind=kind, ref=ref, params=params)


def record_many(
    uow: UnitOfWork,
    recipients: Iterable[str] | Select[Any],
    *,
    kind: str,
    ref: str,
    params: Mapping[str, Any] | None = None,
    broadcast: bool = False,
) -> int:
    """The same notice to each recipient, in ``uow``'s transaction; returns how many.

    ``recipients`` is a list of user ids or a query of one column of them (a group's
    members): either way it is **one** statement, which on PostgreSQL also sends the
    NOTIFY that wakes other server processes (delivered at commit, :mod:`.bell`). Ids are
    made by the database (``msg_`` and 122 random bits from ``gen_random_uuid`` on
    PostgreSQL, 120 from ``randomblob`` on SQLite), so a group's notices need no
    round trip to learn who its members are first. ``broadcast`` (for a query of very
    many: every registration of a campaign) sends one NOTIFY that wakes all streams instead
    of one per recipient."""
    if kind not in KINDS:
        raise ValueError(f"unknown notice kind {kind!r}")
    if isinstance(recipients, Select):
        source = recipients.subquery("recipients")
    else:
        people = list(dict.fromkeys(recipients))
        if not people:
            return 0
        source = union_all(*(select(literal(p, String).label("user_id")) for p in people)).subquery(
            "recipients"
        )
    postgres = uow.dialect == "postgresql"
    public_id = (
        literal("msg_") + func.replace(cast(func.gen_random_uuid(), String), "-", "")
        if postgres
        else literal("msg_") + func.lower(func.hex(func.randomblob(15)))
    )
    body = json.dumps(dict(params or {}), ensure_ascii=False, sort_keys=True)
    rows = select(
        public_id,
        source.c[0],
        literal(kind, String),
        literal(ref, String),
        literal(body, Text),
        literal(now_us(), BigInteger),
    )
    columns = ["public_id", "user_id", "kind", "ref", "params", "created_at"]
    if broadcast:  # too many to name: one NOTIFY that wakes every stream
        done = uow.session.execute(insert(Notice).from_select(columns, rows))
        if postgres:
            uow.session.execute(select(func.pg_notify(bell.CHANNEL, bell.EVERYONE)))
        uow.after_commit(bell.BELL.ring_all)
        return int(getattr(done, "rowcount", 0) or 0)
    written = insert(Notice).from_select(columns, rows).returning(Notice.user_id)
    if postgres:
        made = written.cte("made")
        query = select(made.c.user_id, func.pg_notify(bell.CHANNEL, made.c.user_id))
        told = [row[0] for row in uow.session.execute(query)]
    else:
        told = [row[0] for row in uow.session.execute(written)]
    for user_id in set(told):
        uow.after_commit(partial(bell.BELL.ring, user_id))
    return len(told)


def record_each(
    uow: UnitOfWork, kind: str, items: Sequence[tuple[str, str, Mapping[str, Any]]]
) -> int:
    """Notices of one kind that differ per recipient (``(user_id, ref, params)`` each: a
    split's shares, a batch of campaign winners): one insert and, on PostgreSQL, one
    NOTIFY statement, in ``uow``'s transaction."""
    if kind not in KINDS:
        raise ValueError(f"unknown notice kind {kind!r}")
    if not items:
        return 0
    moment = now_us()
    rows = [
        {
            "public_id": f"msg_{secrets.token_urlsafe(15)}",
            "user_id": user_id,
            "kind": kind,
            "ref": ref,
            "params": json.dumps(dict(params), ensure_ascii=False, sort_keys=True),
            "created_at": moment,
            "read_at": None,
        }
        for user_id, ref, params in items
    ]
    uow.session.execute(insert(Notice), rows)
    people = sorted({user_id for user_id, _, _ in items})
    if uow.dialect == "postgresql":
        uow.session.execute(_NOTIFY_EACH, {"channel": bell.CHANNEL, "ids": people})
    for user_id in people:
        uow.after_commit(partial(bell.BELL.ring, user_id))
    return len(rows)


_NOTIFY_EACH = text("SELECT pg_notify(:channel, u) FROM unnest(CAST(:ids AS text[])) AS u")


def changed(uow: UnitOfWork, *, user_id: str) -> None:
    """Something the resident's open pages show changed without a message (a waiting
    charge was confirmed or declined): wake their event streams once ``uow`` commits."""
    bell.ring_after_commit(uow, user_id)


def unread_count(uow: UnitOfWork, *, user_id: str) -> int:
    """How many of the resident's messages are unread (the badge)."""
    query = select(func.count()).where(Notice.user_id == user_id, Notice.read_at.is_(None))
    return int(uow.session.scalar(query) or 0)


def list_messages(
    uow: UnitOfWork,
    *,
    user_id: str,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
    unread_only: bool = False,
) -> MessagePage:
    """The resident's messages, newest first, ``limit`` a page (at most ``MAX_LIMIT``)."""
    limit = max(1, min(limit, MAX_LIMIT))
    query = select(Notice).where(Notice.user_id == user_id)
    if unread_only:
        query = query.where(Notice.read_at.is_(None))
    if cursor:
        query = query.where(Notice.id < decode_cursor(CURSOR_TAG, cursor))
    rows = list(uow.session.scalars(query.order_by(Notice.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return MessagePage(
        items=[_view(row) for row in rows],
        next_cursor=encode_cursor(CURSOR_TAG, rows[-1].id) if more else None,
        unread=unread_count(uow, user_id=user_id),
    )


def mark_read(uow: UnitOfWork, *, user_id: str, message_id: str) -> MessageView:
    """Mark one of the resident's messages read (already read: unchanged)."""
    row = uow.session.scalar(
        select(Notice).where(Notice.public_id == message_id, Notice.user_id == user_id)
    )
    if row is None:
        raise MessageNotFound("No such message.")
    if row.read_at is None:
        row.read_at = now_us()
        uow.session.flush()
        bell.ring_after_commit(uow, user_id)
    return _view(row)


def mark_all_read(uow: UnitOfWork, *, user_id: str) -> int:
    """Mark every unread message of the resident read; returns how many were unread."""
    done = uow.session.execute(
        update(Notice)
        .where(Notice.user_id == user_id, Notice.read_at.is_(None))
        .values(read_at=now_us())
    )
    changed = int(getattr(done, "rowcount", 0) or 0)
    if changed:
        bell.ring_after_commit(uow, user_id)
    return changed
