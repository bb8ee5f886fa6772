"""Waking a resident's open pages when a notice for them commits.

:func:`ring_after_commit` is called by :func:`citywallet.inbox.service.record`; once the
transaction commits (in whatever thread ran it), every event stream of that resident in
this process is woken through its asyncio loop (``call_soon_threadsafe``): no stream polls
the database to notice. A deployment with several server processes also hears commits made
in the others on PostgreSQL: ``record`` sends ``NOTIFY citywallet_inbox`` with the user id
in the same transaction (delivered at commit, never for a rollback) and
:class:`PostgresListener` turns each one into a local ring. On SQLite (one process) the
local ring is all there is. Streams still look again every ``RECHECK_SECONDS`` as a safety
net, far from a tight loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass, field

import structlog
from sqlalchemy import text

from citywallet.platform.db import UnitOfWork

log = structlog.get_logger(__name__)
CHANNEL = "citywallet_inbox"
EVERYONE = "*"  # a NOTIFY payload that wakes every stream (a campaign's whole draw)
RECHECK_SECONDS = 20.0
_NOTIFY = text("SELECT pg_notify(:channel, :user_id)")


@dataclass(eq=False)
class Subscription:
    """One open stream of one resident: set when something for them committed."""

    user_id: str
    loop: asyncio.AbstractEventLoop
    event: asyncio.Event = field(default_factory=asyncio.Event)

    def wake(self) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            self.loop.call_soon_threadsafe(self.event.set)

    async def wait(self, seconds: float) -> bool:
        """Wait until woken (``True``) or ``seconds`` pass (``False``); then re-arm."""
        try:
            await asyncio.wait_for(self.event.wait(), seconds)
        except TimeoutError:
            return False
        self.event.clear()
        return True


class Bell:
    """The streams open in this process, by resident."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[str, set[Subscription]] = {}

    def subscribe(self, user_id: str) -> Subscription:
        """A new subscription on the running loop (call :meth:`unsubscribe` when done)."""
        sub = Subscription(user_id, asyncio.get_running_loop())
        with self._lock:
            self._open.setdefault(user_id, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            subs = self._open.get(sub.user_id)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._open[sub.user_id]

    def listening(self, user_id: str) -> int:
        """How many streams of ``user_id`` are open here."""
        with self._lock:
            return len(self._open.get(user_id, ()))

    def ring_all(self) -> None:
        """Something for very many committed: wake every stream in this process."""
        with self._lock:
            subs = [sub for group in self._open.values() for sub in group]
        for sub in subs:
            sub.wake()

    def ring(self, user_id: str) -> None:
        """Something for ``user_id`` committed: wake their streams in this process."""
        if user_id == EVERYONE:
            self.ring_all()
            return
        with self._lock:
            subs = list(self._open.get(user_id, ()))
        for sub in subs:
            sub.wake()


BELL = Bell()


def ring_after_commit(uow: UnitOfWork, user_id: str) -> None:
    """Wake ``user_id``'s streams once ``uow`` commits (here, and in the other server
    processes through PostgreSQL's NOTIFY)."""
    if uow.dialect == "postgresql":
        uow.session.execute(_NOTIFY, {"channel": CHANNEL, "user_id": user_id})
    uow.after_commit(lambda: BELL.ring(user_id))


class PostgresListener:
    """A daemon thread that LISTENs on :data:`CHANNEL` and rings :data:`BELL` for each
    notification (what other processes committed). Started by the app on PostgreSQL."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="inbox-listen", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def stopped(self) -> bool:
        return self._stop.is_set()

    def _run(self) -> None:
        import psycopg  # only on PostgreSQL deployments

        dsn = self._url.replace("postgresql+psycopg://", "postgresql://", 1)
        while not self._stop.is_set():
            try:
                with psycopg.connect(dsn, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=1.0):
                            BELL.ring(note.payload)
            except Exception:  # the database went away: listen again shortly
                log.warning("inbox listener lost its connection", exc_info=True)
                self._stop.wait(2.0)


_listeners: dict[str, PostgresListener] = {}
_listeners_lock = threading.Lock()


def listen(url: str) -> None:
    """Hear the other processes' commits for the database at ``url`` (PostgreSQL only):
    started by the first event stream, once per process and database."""
    if not url.startswith("postgresql"):
        return
    with _listeners_lock:
        if url not in _listeners:
            _listeners[url] = listener = PostgresListener(url)
            listener.start()


def stop_listening(url: str) -> None:
    """Stop hearing ``url`` (the app's shutdown)."""
    with _listeners_lock:
        listener = _listeners.pop(url, None)
    if listener is not None:
        listener.stop()
