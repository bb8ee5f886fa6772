"""Waiting for the switch's callback: look at a row again whenever a callback commits.

A resident's request (a lookup, a quote, a payment) sends its message and then waits for the
switch's answer, which arrives as another HTTP request. When that callback lands in the same
process, the handler calls :func:`notify` after its commit and every waiter looks again at
once; when it lands in another process of the deployment (``serve --workers N``), waiters
still look every ``FALLBACK_SECONDS``. So a waiting request costs a handful of short
read-only transactions, not one every few milliseconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from citywallet.platform.db import Database, UnitOfWork

T = TypeVar("T")
FALLBACK_SECONDS = 0.05


class _Changes:
    """A counter of callbacks committed in this process, with a condition to wait on."""

    def __init__(self) -> None:
        self.generation = 0
        self.condition = threading.Condition()

    def bump(self) -> None:
        with self.condition:
            self.generation += 1
            self.condition.notify_all()

    def wait_past(self, seen: int, seconds: float) -> None:
        with self.condition:
            if self.generation == seen:
                self.condition.wait(seconds)


_changes = _Changes()


def notify() -> None:
    """A callback from the switch committed in this process: waiters look again now."""
    _changes.bump()


def wait_for(db: Database, probe: Callable[[UnitOfWork], T | None], *, seconds: float) -> T | None:
    """What ``probe`` finds once it finds something, or ``None`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        seen = _changes.generation
        with db.uow(readonly=True) as uow:
            found = probe(uow)
        left = deadline - time.monotonic()
        if found is not None or left <= 0:
            return found
        _changes.wait_past(seen, min(FALLBACK_SECONDS, left))
