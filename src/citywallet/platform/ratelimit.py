"""Rate limits kept in the database, so every server process shares them.

A :class:`Rule` allows ``limit`` hits per ``window_seconds`` for one key (a phone's lookup
hash, a client IP). The window opens at a key's first hit and closes ``window_seconds``
later ("1 per minute" means the next one a full minute after the last window opened, not
at the next minute boundary). Exceeding raises :class:`~citywallet.platform.errors.RateLimited`,
which the API answers with 429 and ``Retry-After``.

Each hit is one atomic upsert (``INSERT … ON CONFLICT DO UPDATE … RETURNING``, on both
PostgreSQL and SQLite ≥ 3.35) that counts and records at once, so concurrent requests cannot
both take the last slot. Keys are stored only as SHA-256 digests: a bucket never shows a
phone number or an IP. A refused hit raises inside the caller's unit of work, whose rollback
undoes it: refusals do not extend a lockout.

Two ways to use a rule:

* :func:`hit` inside the use case's own transaction, when the guarded work is quick and
  happens in that transaction (issuing an SMS code): the bucket row stays locked until
  commit, so the count and the work are one.
* :func:`reserve` before slow work done outside any transaction (argon2, an external
  call): it takes the slot in a short transaction of its own and commits it, so parallel
  requests see each other's reservations *before* any of them does the work. Over the limit
  it raises and the work is never done. Where only failures should count (a wrong
  password), the caller gives a successful attempt's slot back with :func:`release`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy import BigInteger, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from citywallet.platform.clock import now_us
from citywallet.platform.db import Base, Database, UnitOfWork
from citywallet.platform.errors import RateLimited

SECOND_US = 1_000_000


class RateLimitBucket(Base):
    """The hits of one key under one rule in its current window."""

    __tablename__ = "platform_rate_limits"

    bucket: Mapped[str] = mapped_column(String(100), primary_key=True)  # rule:sha256(key)
    window_start: Mapped[int] = mapped_column(BigInteger)
    window_end: Mapped[int] = mapped_column(BigInteger)
    hits: Mapped[int] = mapped_column(Integer)


@dataclass(frozen=True)
class Rule:
    """At most ``limit`` hits per ``window_seconds`` per key; ``code`` is the problem code."""

    name: str
    limit: int
    window_seconds: int
    code: str = "rate_limited"


def _bucket(rule: Rule, key: str) -> str:
    return f"{rule.name}:{hashlib.sha256(key.encode()).hexdigest()[:64]}"


def _retry_after(window_end: int, moment: int) -> int:
    return max(1, -(-(window_end - moment) // SECOND_US))  # ceiling, at least one second


def _count(uow: UnitOfWork, rule: Rule, key: str, moment: int) -> tuple[int, int]:
    """Upsert one hit; returns (hits in the window, window end)."""
    end = moment + rule.window_seconds * SECOND_US
    row = uow.session.execute(
        text(
            "INSERT INTO platform_rate_limits (bucket, window_start, window_end, hits) "
            "VALUES (:bucket, :now, :end, 1) "
            "ON CONFLICT (bucket) DO UPDATE SET "
            "hits = CASE WHEN platform_rate_limits.window_end <= :now THEN 1 "
            "ELSE platform_rate_limits.hits + 1 END, "
            "window_start = CASE WHEN platform_rate_limits.window_end <= :now THEN :now "
            "ELSE platform_rate_limits.window_start END, "
            "window_end = CASE WHEN platform_rate_limits.window_end <= :now THEN :end "
            "ELSE platform_rate_limits.window_end END "
            "RETURNING hits, window_end"
        ),
        {"bucket": _bucket(rule, key), "now": moment, "end": end},
    ).one()
    return int(row[0]), int(row[1])


def hit(uow: UnitOfWork, rule: Rule, key: str, *, now: int | None = None) -> None:
    """Count one hit; raise ``RateLimited`` if it is over the limit."""
    moment = now if now is not None else now_us()
    hits, window_end = _count(uow, rule, key, moment)
    if hits > rule.limit:
        raise _refusal(rule, window_end, moment)


def reserve(db: Database, *slots: tuple[Rule, str], now: int | None = None) -> None:
    """Take one slot of each ``(rule, key)`` in a committed transaction of its own, before the
    work they guard; raise ``RateLimited`` (nothing taken) if any has none left."""
    moment = now if now is not None else now_us()

    def take(uow: UnitOfWork) -> None:
        for rule, key in slots:
            hit(uow, rule, key, now=moment)

    db.transact(take)


def release(uow: UnitOfWork, rule: Rule, key: str, *, now: int | None = None) -> None:
    """Give back one slot taken in the current window (the attempt did not count: it
    succeeded); a window that has closed meanwhile is left alone."""
    uow.session.execute(
        text(
            "UPDATE platform_rate_limits SET hits = hits - 1 "
            "WHERE bucket = :bucket AND hits > 0 AND window_end > :now"
        ),
        {"bucket": _bucket(rule, key), "now": now if now is not None else now_us()},
    )


def reset(uow: UnitOfWork, rule: Rule, key: str) -> None:
    """Forget the key's hits (e.g. failed logins after a successful one)."""
    uow.session.execute(
        text("DELETE FROM platform_rate_limits WHERE bucket = :bucket"),
        {"bucket": _bucket(rule, key)},
    )


def purge_expired(uow: UnitOfWork, *, now: int | None = None, limit: int = 10_000) -> int:
    """Delete buckets whose window has closed; returns how many (a periodic task)."""
    moment = now if now is not None else now_us()
    result = uow.session.execute(
        text(
            "DELETE FROM platform_rate_limits WHERE bucket IN (SELECT bucket FROM "
            "platform_rate_limits WHERE window_end <= :now LIMIT :limit)"
        ),
        {"now": moment, "limit": limit},
    )
    return int(getattr(result, "rowcount", 0) or 0)


def _refusal(rule: Rule, window_end: int, moment: int) -> RateLimited:
    seconds = _retry_after(window_end, moment)
    return RateLimited(
        f"Too many attempts; try again in {seconds} seconds.",
        retry_after=seconds,
        code=rule.code,
    )
