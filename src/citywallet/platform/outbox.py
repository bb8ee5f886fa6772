"""The transactional outbox: side effects written with the business change, delivered after.

A service calls :func:`enqueue` inside its unit of work, so the message exists if and only
if the business change committed. :func:`deliver_due` (a periodic task of the worker) claims
due messages in a short transaction of its own, calls each topic's handler outside any
transaction, then records the outcome. Delivery is at least once: a handler may see the
same message again (after a crash, or a claim that outlived ``claim_seconds``), so handlers
pass ``message.id`` on as an idempotency key to whatever they call.

The claim is a visibility timeout: ``next_attempt_at`` moves ``claim_seconds`` ahead, so no
other worker picks the message up while it is being delivered. PostgreSQL selects with
``FOR UPDATE SKIP LOCKED`` so concurrent workers claim disjoint messages; on SQLite the
``BEGIN IMMEDIATE`` writer lock serialises claims.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import text

from citywallet.platform.clock import now_us
from citywallet.platform.db import Database, UnitOfWork

SECOND_US = 1_000_000
MAX_AGE_SECONDS = 24 * 3600  # after this long without success a message is marked dead
BASE_DELAY_SECONDS = 2.0
MAX_DELAY_SECONDS = 3600.0
CLAIM_SECONDS = 60

log = structlog.get_logger(__name__)
# Spreading retries, not security (S311); its own generator leaves the global one alone.
_JITTER = random.Random()  # noqa: S311


@dataclass(frozen=True)
class Message:
    """One claimed outbox message, as a handler sees it."""

    id: int
    topic: str
    payload: dict[str, Any]
    attempt: int  # 1 on the first delivery attempt
    created_at: int


OutboxHandler = Callable[[Message], None]
_HANDLERS: dict[str, OutboxHandler] = {}


def outbox_handler(topic: str) -> Callable[[OutboxHandler], OutboxHandler]:
    """Register the function that delivers messages of ``topic`` (decorator)."""

    def register(fn: OutboxHandler) -> OutboxHandler:
        _HANDLERS[topic] = fn
        return fn

    return register


_RETRY: dict[str, tuple[float, float]] = {}


def retry_policy(topic: str, *, base_seconds: float, cap_seconds: float) -> None:
    """Retry ``topic`` on its own schedule (e.g. interop messages: sub-second, capped at a few
    seconds, because a transfer expires within a minute) instead of the default one."""
    _RETRY[topic] = (base_seconds, cap_seconds)


def registered_handlers() -> dict[str, OutboxHandler]:
    """A copy of the topic handlers registered with :func:`outbox_handler`."""
    return dict(_HANDLERS)


def backoff_us(
    attempt: int,
    *,
    base_seconds: float = BASE_DELAY_SECONDS,
    cap_seconds: float = MAX_DELAY_SECONDS,
    jitter: float = 0.0,
) -> int:
    """Delay before retry number ``attempt`` (1-based): doubling, capped, plus up to ``jitter``×."""
    delay = min(cap_seconds, base_seconds * 2 ** max(0, attempt - 1))
    delay *= 1 + jitter * _JITTER.random()
    return int(delay * SECOND_US)


def enqueue(
    uow: UnitOfWork, *, topic: str, payload: dict[str, Any], claim_seconds: float = 0
) -> int:
    """Write a message in the caller's transaction; it is delivered only if that commits.

    ``claim_seconds`` > 0 writes it already claimed (its first attempt) by the caller, who
    delivers it right after the commit and records the outcome (:func:`record_outcomes`);
    should the caller die first, the claim runs out and :func:`deliver_due` takes over."""
    moment = now_us()
    row = uow.session.execute(
        text(
            "INSERT INTO platform_outbox (topic, payload, created_at, next_attempt_at, "
            "attempts, dead) VALUES (:topic, :payload, :t, :next, :attempts, :dead) RETURNING id"
        ),
        {
            "topic": topic, "payload": _dumps(payload), "t": moment,
            "next": moment + int(claim_seconds * SECOND_US), "attempts": int(claim_seconds > 0),
            "dead": False,
        },
    ).one()  # fmt: skip
    return int(row[0])


def redact(uow: UnitOfWork, *, message_id: int, member: str, marker: Any) -> None:
    """Replace ``member`` of a message's payload with ``marker`` (a message that carried
    personal data, once its receiver answered); one not delivered yet is not sent again."""
    row = uow.session.execute(
        text("SELECT payload FROM platform_outbox WHERE id = :id"), {"id": message_id}
    ).first()
    if row is None:
        return
    payload = json.loads(row[0])
    payload[member] = marker
    uow.session.execute(
        text(
            "UPDATE platform_outbox SET payload = :payload, "
            "dead = CASE WHEN delivered_at IS NULL THEN :dead ELSE dead END WHERE id = :id"
        ),
        {"payload": _dumps(payload), "dead": True, "id": message_id},
    )


def deliver_due(
    db: Database,
    *,
    handlers: Mapping[str, OutboxHandler],
    now: int | None = None,
    limit: int = 100,
    max_age_seconds: int = MAX_AGE_SECONDS,
    claim_seconds: int = CLAIM_SECONDS,
    topics: Collection[str] | None = None,
    executor: Executor | None = None,
) -> int:
    """Deliver up to ``limit`` due messages (of ``topics`` only, if given); returns how many
    were delivered. With ``executor``, the handlers run concurrently on it (for topics whose
    messages may arrive in any order, such as interop's)."""
    moment = now if now is not None else now_us()
    only = sorted(topics) if topics is not None else None
    messages = db.transact(lambda uow: _claim(uow, moment, limit, claim_seconds, only))
    if executor is None or len(messages) < 2:
        return sum(
            _deliver_one(db, m, handlers.get(m.topic), moment, max_age_seconds) for m in messages
        )
    # Handlers run side by side (each is one network call); outcomes are recorded together.
    errors = list(executor.map(lambda m: call_handler(m, handlers.get(m.topic)), messages))
    record_outcomes(db, messages, errors, now=moment, max_age_seconds=max_age_seconds)
    return errors.count(None)


def record_outcomes(
    db: Database,
    messages: list[Message],
    errors: list[str | None],
    *,
    now: int | None = None,
    max_age_seconds: int = MAX_AGE_SECONDS,
) -> None:
    """Record, in one transaction, how each of ``messages`` went (``None``: delivered;
    else the error, and the message is retried on its topic's schedule)."""
    moment = now if now is not None else now_us()
    db.transact(lambda uow: _record_outcomes(uow, messages, errors, moment, max_age_seconds))


def call_handler(message: Message, handler: OutboxHandler | None) -> str | None:
    """Run the handler; the error text if it failed, else ``None``."""
    try:
        if handler is None:
            raise LookupError(f"no outbox handler for topic {message.topic!r}")
        handler(message)
    except Exception as exc:  # any handler failure means "try again later"
        return f"{exc.__class__.__name__}: {exc}"
    return None


def _record_outcomes(
    uow: UnitOfWork,
    messages: list[Message],
    errors: list[str | None],
    moment: int,
    max_age_seconds: int,
) -> None:
    delivered = [
        {"id": m.id, "now": moment} for m, e in zip(messages, errors, strict=True) if e is None
    ]
    if delivered:
        uow.session.execute(
            text(
                "UPDATE platform_outbox SET delivered_at = :now, last_error = NULL "
                "WHERE id = :id AND delivered_at IS NULL"
            ),
            delivered,
        )
    for message, error in zip(messages, errors, strict=True):
        if error is not None:
            dead = _record_failure(uow, message, error, moment, max_age_seconds)
            log.warning(
                "outbox delivery failed", message_id=message.id, topic=message.topic,
                attempt=message.attempt, dead=dead, error=error,
            )  # fmt: skip


def _deliver_one(
    db: Database, message: Message, handler: OutboxHandler | None, moment: int, max_age: int
) -> bool:
    """Call the handler, then record delivery or schedule a retry; returns delivered."""
    error = call_handler(message, handler)
    db.transact(lambda uow: _record_outcomes(uow, [message], [error], moment, max_age))
    return error is None


def _claim(
    uow: UnitOfWork, moment: int, limit: int, claim_seconds: int, topics: list[str] | None
) -> list[Message]:
    lock = " FOR UPDATE SKIP LOCKED" if uow.dialect == "postgresql" else ""
    params: dict[str, Any] = {"dead": False, "now": moment, "limit": limit}
    only = ""
    if topics is not None:
        params.update({f"topic{i}": topic for i, topic in enumerate(topics)})
        only = f" AND topic IN ({', '.join(f':topic{i}' for i in range(len(topics)))})"
    rows = uow.session.execute(
        text(
            "SELECT id, topic, payload, attempts, created_at FROM platform_outbox "
            f"WHERE delivered_at IS NULL AND dead = :dead AND next_attempt_at <= :now{only} "
            f"ORDER BY next_attempt_at, id LIMIT :limit{lock}"
        ),
        params,
    ).all()
    if not rows:
        return []
    uow.session.execute(
        text(
            "UPDATE platform_outbox SET attempts = attempts + 1, next_attempt_at = :until "
            "WHERE id = :id"
        ),
        [{"id": row[0], "until": moment + claim_seconds * SECOND_US} for row in rows],
    )
    return [Message(int(r[0]), r[1], json.loads(r[2]), int(r[3]) + 1, int(r[4])) for r in rows]


def _record_failure(
    uow: UnitOfWork, message: Message, error: str, moment: int, max_age_seconds: int
) -> bool:
    """Schedule the next attempt, or mark the message dead once it is too old; returns dead."""
    base, cap = _RETRY.get(message.topic, (BASE_DELAY_SECONDS, MAX_DELAY_SECONDS))
    next_at = moment + backoff_us(message.attempt, base_seconds=base, cap_seconds=cap, jitter=0.2)
    dead = next_at - message.created_at > max_age_seconds * SECOND_US
    uow.session.execute(
        text(
            "UPDATE platform_outbox SET next_attempt_at = :next, dead = :dead, last_error = :err "
            "WHERE id = :id AND delivered_at IS NULL"
        ),
        {"id": message.id, "next": next_at, "dead": dead, "err": error[:2000]},
    )
    return dead


def _dumps(payload: dict[str, Any]) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"))
