"""Per-process caches for what rarely changes, with short lifetimes (docs/architecture:
"caches only for what rarely changes").

Each cache belongs to one database engine (tests and tools run several databases in one
process) and holds entries for ``ttl`` seconds; a writer in this process drops the entry it
changes at once with :meth:`TtlCache.forget`, other processes see the change when the entry
expires. What may be cached, and what must still be checked in the statement that uses it,
is the caller's design: a merchant's fee rate may be a few seconds old, its status is
checked in the payment's own statement.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from sqlalchemy import Engine

from citywallet.platform.db import UnitOfWork

V = TypeVar("V")


class TtlCache(Generic[V]):
    """Values by key per engine, each kept ``ttl`` seconds (``None``: for the process's
    life, for values that never change such as a key's bytes)."""

    def __init__(self, name: str, *, ttl: float | None, max_entries: int = 50_000) -> None:
        self.name, self.ttl, self.max_entries = name, ttl, max_entries
        self._by_engine: weakref.WeakKeyDictionary[Engine, dict[Hashable, tuple[float, V]]] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()

    def _entries(self, where: UnitOfWork | Engine) -> dict[Hashable, tuple[float, V]]:
        engine = where if isinstance(where, Engine) else where.session.get_bind()
        assert isinstance(engine, Engine)
        with self._lock:
            return self._by_engine.setdefault(engine, {})

    def peek(self, engine: Engine, key: Hashable) -> V | None:
        """The cached value if there is a fresh one (no unit of work needed), else None."""
        found = self._entries(engine).get(key)
        if found is not None and (self.ttl is None or found[0] > time.monotonic()):
            return found[1]
        return None

    def get(self, uow: UnitOfWork, key: Hashable, load: Callable[[], V]) -> V:
        """The cached value, or ``load()`` (in ``uow``) remembered."""
        entries = self._entries(uow)
        now = time.monotonic()
        found = entries.get(key)
        if found is not None and (self.ttl is None or found[0] > now):
            return found[1]
        value = load()
        if len(entries) >= self.max_entries:
            entries.clear()  # crude but bounded: a hot working set refills at once
        entries[key] = (now + (self.ttl or 0.0), value)
        return value

    def forget(self, uow: UnitOfWork, key: Hashable) -> None:
        """Drop ``key`` (a writer in this process changed it)."""
        self._entries(uow).pop(key, None)
