"""Waiting for the switch's callback: poll a row in short read-only transactions."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from citywallet.platform.db import Database, UnitOfWork

T = TypeVar("T")
POLL_SECONDS = 0.01


def wait_for(db: Database, probe: Callable[[UnitOfWork], T | None], *, seconds: float) -> T | None:
    """What ``probe`` finds once it finds something, or ``None`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        with db.uow(readonly=True) as uow:
            found = probe(uow)
        if found is not None or time.monotonic() >= deadline:
            return found
        time.sleep(POLL_SECONDS)
