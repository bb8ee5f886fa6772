"""Waiting for the switch's callback: look at a row again when its answer commits.

A resident's request (a lookup, a quote, a payment) sends its message and then waits for the
switch's answer, which arrives as another HTTP request. The service that applies an answer
calls :func:`notify_after_commit` with the key of what it answered (``party:{msisdn}``,
``quote:{public id}``, ``transfer:{public id}``): once the change commits, the requests of
this process waiting on that key look again, and nobody else is disturbed. A waiter without
a key wakes on every answer. When the answer lands in another process of the deployment
(``serve --workers N``), waiters still look every ``FALLBACK_SECONDS``. So a waiting request
costs two or three short read-only transactions, however many others wait beside it.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import TypeVar

from citywallet.platform.db import Database, UnitOfWork

T = TypeVar("T")
FALLBACK_SECONDS = 0.1


class _Changes:
    """Answers committed in this process, counted per key (and in all), to wait on."""

    def __init__(self) -> None:
        self.condition = threading.Condition()
        self.generation = 0
        self.keys: Counter[str] = Counter()  # answers per key that someone waits on
        self.waiters: Counter[str] = Counter()

    def bump(self, key: str) -> None:
        with self.condition:
            self.generation += 1
            if self.waiters[key]:
                self.keys[key] += 1
            self.condition.notify_all()

    def seen(self, key: str | None) -> int:
        return self.generation if key is None else self.keys[key]

    def wait_past(self, key: str | None, seen: int, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        with self.condition:
            while self.seen(key) == seen and (left := deadline - time.monotonic()) > 0:
                self.condition.wait(left)


_changes = _Changes()


def party_key(identifier: str) -> str:
    """What a request waiting for the lookup of ``identifier`` (an MSISDN) waits on."""
    return f"party:{identifier}"


def quote_key(public_id: str) -> str:
    """What a request waiting for the answer to a quote waits on."""
    return f"quote:{public_id}"


def transfer_key(public_id: str) -> str:
    """What a request waiting for a transfer's final state waits on."""
    return f"transfer:{public_id}"


def notify(key: str) -> None:
    """An answer about ``key`` committed in this process: its waiters look again now."""
    _changes.bump(key)


def notify_after_commit(uow: UnitOfWork, key: str) -> None:
    """Wake the waiters on ``key`` once ``uow`` commits."""
    uow.after_commit(lambda: notify(key))


def wait_for(
    db: Database,
    probe: Callable[[UnitOfWork], T | None],
    *,
    seconds: float,
    key: str | None = None,
) -> T | None:
    """What ``probe`` finds once it finds something, or ``None`` after ``seconds``; looks
    again when an answer about ``key`` commits here (any answer, without a key)."""
    deadline = time.monotonic() + seconds
    if key is not None:
        with _changes.condition:
            _changes.waiters[key] += 1
    try:
        while True:
            seen = _changes.seen(key)
            with db.uow(readonly=True) as uow:
                found = probe(uow)
            left = deadline - time.monotonic()
            if found is not None or left <= 0:
                return found
            _changes.wait_past(key, seen, min(FALLBACK_SECONDS, left))
    finally:
        if key is not None:
            with _changes.condition:
                _changes.waiters[key] -= 1
                if not _changes.waiters[key]:
                    del _changes.waiters[key]
                    _changes.keys.pop(key, None)
