"""A per-process cache of live sessions: token hash → who, for a few seconds (pure logic).

A hit answers "who is calling" without any SQL. What makes it safe
(docs/security.md, "Session cache"):

- an entry lives ``ttl_seconds`` at most (a monotonic clock), so a session ended in another
  process stops working here within that time; the session's own expiry is checked on
  every hit by the caller;
- :meth:`SessionCache.drop` (logout, revocation, password change, freeze, closing in this
  process) removes the entries at once, and a lookup that began before the drop cannot put
  its (possibly stale) answer back: :meth:`SessionCache.put` takes the generation read
  before the lookup and refuses it when a drop happened since;
- the cache is bounded (``max_entries``; the oldest entries go first), and each new entry
  first clears the expired ones, so it holds about (sessions seen per second × TTL).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class CachedSession:
    """What a live session's token stands for."""

    user_id: str
    user_pk: int
    session_id: str
    session_pk: int
    kind: str
    expires_at: int  # µs since the epoch (the session's own end)
    last_seen_at: int  # µs since the epoch


class SessionCache:
    """Thread-safe: the event loop reads it, worker threads fill and drop it."""

    def __init__(
        self,
        *,
        ttl_seconds: float,
        max_entries: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self._clock = clock
        self._entries: dict[str, tuple[float, CachedSession]] = {}
        self._generation = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def generation(self) -> int:
        """Read before a lookup; hand it to :meth:`put` with the lookup's answer."""
        return self._generation

    def get(self, key: str) -> CachedSession | None:
        """The entry of ``key`` if it is younger than the TTL."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        deadline, value = entry
        if self._clock() >= deadline:
            with self._lock:
                if self._entries.get(key) is entry:
                    del self._entries[key]
            return None
        return value

    def put(self, key: str, value: CachedSession, *, generation: int) -> bool:
        """Remember ``value`` unless a drop happened since ``generation`` was read."""
        if self.ttl <= 0:
            return False
        with self._lock:
            if generation != self._generation:
                return False
            now = self._clock()
            self._entries.pop(key, None)
            # Entries are kept in the order they were put, which is their deadlines' order:
            # the expired ones are at the front, then the oldest live ones.
            while self._entries:
                first = next(iter(self._entries))
                if self._entries[first][0] > now and len(self._entries) < self.max_entries:
                    break
                del self._entries[first]
            self._entries[key] = (now + self.ttl, value)
        return True

    def touched(self, key: str, last_seen_at: int) -> None:
        """Record that the session of ``key`` was just marked used (its TTL is unchanged)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                deadline, value = entry
                self._entries[key] = (deadline, replace(value, last_seen_at=last_seen_at))

    def drop(self, which: Callable[[CachedSession], bool]) -> int:
        """Forget every entry ``which`` selects (and refuse lookups begun before); returns
        how many were forgotten."""
        with self._lock:
            self._generation += 1
            doomed = [key for key, (_, value) in self._entries.items() if which(value)]
            for key in doomed:
                del self._entries[key]
        return len(doomed)


class PendingTouches:
    """The sessions used since the last flush: session pk → the latest moment it was used
    (thread-safe; the flush takes them all at once, see ``sessions.record_use``)."""

    def __init__(self) -> None:
        self._moments: dict[int, int] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._moments)

    def add(self, session_pk: int, moment: int) -> None:
        """Remember that the session was used at ``moment`` (the latest moment wins)."""
        with self._lock:
            if moment > self._moments.get(session_pk, moment - 1):
                self._moments[session_pk] = moment

    def take(self) -> dict[int, int]:
        """Every pending touch, leaving none."""
        with self._lock:
            taken, self._moments = self._moments, {}
        return taken
