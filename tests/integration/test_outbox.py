"""The outbox: delivered only after commit, retried with backoff, dead after its max age."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import text

from citywallet.platform import outbox
from citywallet.platform.db import Database
from citywallet.platform.outbox import SECOND_US, Message, backoff_us, deliver_due


def _row(db: Database, message_id: int) -> Any:
    with db.uow(readonly=True) as uow:
        return uow.session.execute(
            text(
                "SELECT attempts, next_attempt_at, delivered_at, dead, last_error, created_at "
                "FROM platform_outbox WHERE id = :id"
            ),
            {"id": message_id},
        ).one()


def test_delivered_after_commit_and_only_once(db: Database) -> None:
    seen: list[Message] = []
    message_id = db.transact(
        lambda uow: outbox.enqueue(uow, topic="sms", payload={"to": "u1", "text": "hi"})
    )
    assert deliver_due(db, handlers={"sms": seen.append}) == 1
    assert [(m.id, m.topic, m.payload, m.attempt) for m in seen] == [
        (message_id, "sms", {"to": "u1", "text": "hi"}, 1)
    ]
    row = _row(db, message_id)
    assert row.delivered_at is not None
    assert not row.dead
    assert row.attempts == 1
    assert deliver_due(db, handlers={"sms": seen.append}) == 0
    assert len(seen) == 1


def test_nothing_delivered_for_a_rolled_back_transaction(db: Database) -> None:
    seen: list[Message] = []
    with db.uow() as uow:
        outbox.enqueue(uow, topic="sms", payload={"to": "u1"})
        uow.rollback()

    def use_case(uow: Any) -> None:
        outbox.enqueue(uow, topic="sms", payload={"to": "u2"})
        raise RuntimeError("business rule said no")

    with pytest.raises(RuntimeError, match="business rule"):
        db.transact(use_case)
    assert deliver_due(db, handlers={"sms": seen.append}) == 0
    assert seen == []
    with db.uow(readonly=True) as uow:
        assert uow.session.execute(text("SELECT COUNT(*) FROM platform_outbox")).scalar_one() == 0


def test_failed_delivery_is_retried_with_backoff(db: Database) -> None:
    calls: list[int] = []

    def flaky(message: Message) -> None:
        calls.append(message.attempt)
        if message.attempt < 3:
            raise ConnectionError("webhook endpoint down")

    message_id = db.transact(lambda uow: outbox.enqueue(uow, topic="hook", payload={}))
    start = _row(db, message_id).created_at
    assert deliver_due(db, handlers={"hook": flaky}, now=start) == 0
    first = _row(db, message_id)
    assert first.attempts == 1
    assert first.delivered_at is None
    assert not first.dead
    assert "ConnectionError: webhook endpoint down" in first.last_error
    delay = first.next_attempt_at - start
    assert backoff_us(1) <= delay <= backoff_us(1) * 1.2 + 1  # 2 s plus up to 20 % jitter

    # Not due before its time, due after it.
    assert deliver_due(db, handlers={"hook": flaky}, now=first.next_attempt_at - 1) == 0
    assert calls == [1]
    assert deliver_due(db, handlers={"hook": flaky}, now=first.next_attempt_at) == 0
    second = _row(db, message_id)
    assert second.attempts == 2
    assert second.next_attempt_at - first.next_attempt_at >= backoff_us(2)  # doubled
    assert deliver_due(db, handlers={"hook": flaky}, now=second.next_attempt_at) == 1
    assert calls == [1, 2, 3]
    done = _row(db, message_id)
    assert done.delivered_at is not None
    assert done.last_error is None
    assert not done.dead


def test_a_claimed_message_is_not_delivered_twice_concurrently(db: Database) -> None:
    message_id = db.transact(lambda uow: outbox.enqueue(uow, topic="hook", payload={}))
    nested: list[int] = []

    def handler(message: Message) -> None:
        # While this delivery runs (outside any transaction), another worker finds nothing.
        nested.append(deliver_due(db, handlers={"hook": handler}))

    assert deliver_due(db, handlers={"hook": handler}) == 1
    assert nested == [0]
    assert _row(db, message_id).attempts == 1


def test_unknown_topic_is_retried_not_lost(db: Database) -> None:
    message_id = db.transact(lambda uow: outbox.enqueue(uow, topic="nobody", payload={}))
    assert deliver_due(db, handlers={}) == 0
    row = _row(db, message_id)
    assert row.delivered_at is None
    assert not row.dead
    assert "no outbox handler" in row.last_error


def test_dead_after_max_age(db: Database) -> None:
    def down(message: Message) -> None:
        raise TimeoutError("still down")

    message_id = db.transact(lambda uow: outbox.enqueue(uow, topic="hook", payload={}))
    created = _row(db, message_id).created_at
    assert deliver_due(db, handlers={"hook": down}, now=created + 3600 * SECOND_US) == 0
    assert not _row(db, message_id).dead
    assert deliver_due(db, handlers={"hook": down}, now=created + 24 * 3600 * SECOND_US) == 0
    row = _row(db, message_id)
    assert row.dead
    assert row.delivered_at is None
    assert row.attempts == 2
    # A dead message is never picked up again.
    assert deliver_due(db, handlers={"hook": down}, now=created + 48 * 3600 * SECOND_US) == 0
    assert _row(db, message_id).attempts == 2


def test_limit_and_order(db: Database) -> None:
    seen: list[int] = []
    ids = db.transact(
        lambda uow: [outbox.enqueue(uow, topic="t", payload={"n": n}) for n in range(5)]
    )
    assert deliver_due(db, handlers={"t": lambda m: seen.append(m.payload["n"])}, limit=3) == 3
    assert seen == [0, 1, 2]
    assert deliver_due(db, handlers={"t": lambda m: seen.append(m.payload["n"])}) == 2
    assert seen == [0, 1, 2, 3, 4]
    assert len(ids) == 5


def test_concurrent_delivery_records_each_outcome(db: Database) -> None:
    """With an executor the handlers run side by side; each message's outcome is its own:
    delivered ones are done, a failed one is retried on its topic's schedule, and a topic
    left out of ``topics`` is not claimed at all."""
    outbox.retry_policy("fast", base_seconds=0.25, cap_seconds=4.0)
    ids = db.transact(
        lambda uow: [outbox.enqueue(uow, topic="fast", payload={"n": n}) for n in range(4)]
    )
    other = db.transact(lambda uow: outbox.enqueue(uow, topic="slow", payload={}))

    def handler(message: Message) -> None:
        if message.payload["n"] == 2:
            raise ConnectionError("receiver down")

    with ThreadPoolExecutor(max_workers=4) as pool:
        delivered = deliver_due(db, handlers={"fast": handler}, topics=("fast",), executor=pool)
    assert delivered == 3
    rows = {message_id: _row(db, message_id) for message_id in ids}
    assert [rows[i].delivered_at is not None for i in ids] == [True, True, False, True]
    failed = rows[ids[2]]
    assert "receiver down" in failed.last_error
    assert failed.attempts == 1
    # 0.25 s doubled from the first attempt, with up to 20 % jitter: well under a second.
    assert 0 < failed.next_attempt_at - failed.created_at < 2 * SECOND_US
    assert _row(db, other).attempts == 0
