"""The message centre's service on SQLite and PostgreSQL: notices are written in the
caller's transaction (rolled back with it), listed newest first, counted and marked read;
the bell rings only after a commit."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest
from sqlalchemy import select, text

from citywallet.inbox import bell, kinds
from citywallet.inbox import service as inbox
from citywallet.inbox.models import Notice
from citywallet.platform.db import Database

T = TypeVar("T")


def test_a_notice_lives_and_dies_with_its_transaction(db: Database) -> None:
    with db.uow() as uow:
        inbox.record(uow, user_id="usr_a", kind=kinds.SPLIT_REQUESTED, ref="spl_1")
        uow.rollback()
    with db.uow(readonly=True) as uow:
        assert inbox.unread_count(uow, user_id="usr_a") == 0

    db.transact(
        lambda uow: inbox.record(
            uow, user_id="usr_a", kind=kinds.REDPACKET_RECEIVED, ref="rpk_1", params={"a": 1}
        )
    )
    with db.uow(readonly=True) as uow:
        page = inbox.list_messages(uow, user_id="usr_a")
    [message] = page.items
    assert page.unread == 1
    assert message.id.startswith("msg_")
    assert len(message.id) > 20
    assert (message.kind, message.object_type, message.object_id) == (
        "redpacket_received",
        "redpacket",
        "rpk_1",
    )
    assert message.link == "/app/redpackets/rpk_1"
    assert message.params == {"a": 1}
    assert message.read_at is None


def test_many_recipients_from_a_list_or_a_query(db: Database) -> None:
    made = db.transact(
        lambda uow: inbox.record_many(
            uow, ["usr_a", "usr_b", "usr_a"], kind=kinds.SPLIT_REQUESTED, ref="spl_9"
        )
    )
    assert made == 2
    query = select(Notice.user_id).where(Notice.ref == "spl_9")
    again = db.transact(
        lambda uow: inbox.record_many(uow, query, kind=kinds.CAMPAIGN_WON, ref="cmp_1")
    )
    assert again == 2
    with db.uow(readonly=True) as uow:
        ids = {m.id for u in ("usr_a", "usr_b") for m in inbox.list_messages(uow, user_id=u).items}
        assert inbox.unread_count(uow, user_id="usr_a") == 2
    assert len(ids) == 4


def test_paging_and_marking_read(db: Database) -> None:
    for n in range(5):
        db.transact(
            lambda uow, n=n: inbox.record(
                uow, user_id="usr_a", kind=kinds.CHARGE_WAITING, ref=f"ord_{n}"
            )
        )
    db.transact(lambda uow: inbox.record(uow, user_id="usr_b", kind=kinds.DEVICE_SIGNIN, ref="s"))
    with db.uow(readonly=True) as uow:
        first = inbox.list_messages(uow, user_id="usr_a", limit=3)
        assert first.next_cursor is not None
        rest = inbox.list_messages(uow, user_id="usr_a", limit=3, cursor=first.next_cursor)
    assert [m.object_id for m in first.items + rest.items] == [f"ord_{n}" for n in range(4, -1, -1)]
    assert rest.next_cursor is None

    newest = first.items[0].id
    read = db.transact(lambda uow: inbox.mark_read(uow, user_id="usr_a", message_id=newest))
    assert read.read_at is not None
    with pytest.raises(inbox.MessageNotFound):  # someone else's message
        db.transact(lambda uow: inbox.mark_read(uow, user_id="usr_b", message_id=newest))
    with db.uow(readonly=True) as uow:
        assert inbox.unread_count(uow, user_id="usr_a") == 4
        unread = inbox.list_messages(uow, user_id="usr_a", unread_only=True)
    assert newest not in {m.id for m in unread.items}

    assert db.transact(lambda uow: inbox.mark_all_read(uow, user_id="usr_a")) == 4
    with db.uow(readonly=True) as uow:
        assert inbox.unread_count(uow, user_id="usr_a") == 0
        assert inbox.unread_count(uow, user_id="usr_b") == 1


def test_the_bell_rings_after_the_commit_only(db: Database) -> None:
    async def scenario() -> tuple[bool, bool]:
        sub = bell.BELL.subscribe("usr_bell")
        try:
            with db.uow() as uow:
                inbox.record(uow, user_id="usr_bell", kind=kinds.CHARGE_WAITING, ref="ord_x")
                uow.rollback()
            rolled_back = await sub.wait(0.2)
            await asyncio.to_thread(
                db.transact,
                lambda uow: inbox.record(
                    uow, user_id="usr_bell", kind=kinds.CHARGE_WAITING, ref="ord_y"
                ),
            )
            committed = await sub.wait(5.0)
            return rolled_back, committed
        finally:
            bell.BELL.unsubscribe(sub)

    assert _run(scenario) == (False, True)
    assert bell.BELL.listening("usr_bell") == 0


def test_other_processes_commits_ring_here_on_postgresql(db: Database) -> None:
    """On PostgreSQL a NOTIFY from any connection (what another server process's commit
    sends, ``inbox.record`` puts it in the transaction) wakes this process's streams;
    SQLite serves from one process and has no listener."""
    postgres = db.dialect == "postgresql"

    async def scenario() -> bool:
        bell.listen(db.url)
        sub = bell.BELL.subscribe("usr_far")
        try:
            await asyncio.sleep(0.5)  # the listener's LISTEN is in place
            await asyncio.to_thread(_notify_from_outside, db, "usr_far")
            return await sub.wait(5.0 if postgres else 0.5)
        finally:
            bell.BELL.unsubscribe(sub)
            bell.stop_listening(db.url)

    assert _run(scenario) is postgres


def _notify_from_outside(db: Database, user_id: str) -> None:
    if db.dialect != "postgresql":
        return
    with db.engine.connect() as conn:
        conn.execute(text("SELECT pg_notify(:c, :u)"), {"c": bell.CHANNEL, "u": user_id})
        conn.commit()


def _run(scenario: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """``asyncio.run`` on a thread of its own: an earlier test in this process (a browser
    driver) may have left an event loop set on the main thread."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(scenario())).result()
