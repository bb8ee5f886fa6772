"""Login sessions: one per device, a bearer token (API) or an HttpOnly cookie (pages).

The token is 32 random bytes; only its SHA-256 is stored (a stolen database does not yield
working tokens, and a high-entropy token needs no slow hash). A cookie session's CSRF token
is derived from the session token (HMAC), so it needs no storage and changes with the
session; unsafe requests authenticated by the cookie must echo it (see ``api/deps.py``).

Each server process remembers the sessions it looked up for a few seconds
(:mod:`citywallet.identity.session_cache`, :func:`cached` / :func:`look_up`); ending a
session here drops it from that cache when its transaction commits.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast
from weakref import WeakKeyDictionary

import structlog
from sqlalchemy import Engine, event, select, update

from citywallet.identity.errors import AccountClosed, AccountFrozen
from citywallet.identity.models import LoginSession, User
from citywallet.identity.queries import new_public_id, user_row
from citywallet.identity.session_cache import CachedSession, PendingTouches, SessionCache
from citywallet.platform.clock import now_us
from citywallet.platform.cursors import decode_cursor, encode_cursor
from citywallet.platform.db import Database, DriverSql, UnitOfWork
from citywallet.platform.errors import InvalidInput, NotFound

SECOND_US = 1_000_000
TOKEN_PREFIX = "cws_"  # noqa: S105 — a prefix that makes leaked tokens recognisable
TOUCH_EVERY_US = 60 * SECOND_US  # last_seen_at is refreshed at most once a minute
KINDS = ("bearer", "cookie")
CURSOR_TAG = "s1"  # the sessions list's cursors (citywallet.platform.cursors)
CLOSED_REASON = "account_closed"  # why the sessions of an account its owner closed ended

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class IssuedSession:
    """A new session; ``token`` is shown once and never stored."""

    id: str
    kind: str
    token: str
    csrf_token: str
    expires_at: int


@dataclass(frozen=True)
class SessionView:
    """A session as its owner sees it in the device list."""

    id: str
    kind: str
    device_name: str
    user_agent: str
    ip: str
    created_at: int
    last_seen_at: int
    expires_at: int


@dataclass(frozen=True)
class Authenticated:
    """Who a token belongs to."""

    user_id: str
    session_id: str
    session_pk: int
    kind: str
    needs_touch: bool


class SessionNotFound(NotFound):
    """No such session of yours."""

    code = "session_not_found"


def token_hash(token: str) -> str:
    """What is stored for a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_token_for(token: str) -> str:
    """The CSRF token that goes with a cookie session's token."""
    digest = hmac.new(token.encode(), b"citywallet-csrf", hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def csrf_matches(token: str, candidate: str | None) -> bool:
    """Whether ``candidate`` is the CSRF token of the session ``token`` (constant time)."""
    return candidate is not None and hmac.compare_digest(csrf_token_for(token), candidate)


def create_session(
    uow: UnitOfWork,
    *,
    user: User,
    kind: str,
    device_name: str,
    user_agent: str,
    ip: str,
    ttl_seconds: int,
) -> IssuedSession:
    """Open a session for ``user`` on one device."""
    if kind not in KINDS:
        raise InvalidInput("A session is 'bearer' or 'cookie'.", code="invalid_session_kind")
    moment = now_us()
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = LoginSession(
        public_id=new_public_id("ses"),
        user_id=user.id,
        token_hash=token_hash(token),
        kind=kind,
        device_name=(device_name or _device_from_agent(user_agent))[:100],
        user_agent=user_agent[:300],
        ip=ip[:64],
        created_at=moment,
        last_seen_at=moment,
        expires_at=moment + ttl_seconds * SECOND_US,
    )
    uow.session.add(row)
    uow.session.flush()
    return IssuedSession(row.public_id, kind, token, csrf_token_for(token), row.expires_at)


def seen_before(uow: UnitOfWork, *, user: User, device_name: str, user_agent: str) -> bool:
    """Whether ``user`` has had a session (live or not) from this device before: the same
    browser or app (its user agent, or its name when it sends none)."""
    query = select(LoginSession.id).where(LoginSession.user_id == user.id)
    if user_agent:
        query = query.where(LoginSession.user_agent == user_agent[:300])
    else:
        query = query.where(
            LoginSession.device_name == (device_name or _device_from_agent(""))[:100]
        )
    return uow.session.scalar(query.limit(1)) is not None


def device_from_agent(user_agent: str) -> str:
    """A device's name as a person says it (``iPhone``, ``Android``, …) from its user agent."""
    return _device_from_agent(user_agent)


def _device_from_agent(user_agent: str) -> str:
    for marker, name in (
        ("iPhone", "iPhone"), ("iPad", "iPad"), ("Android", "Android"), ("Windows", "Windows"),
        ("Macintosh", "Mac"), ("Linux", "Linux"),
    ):  # fmt: skip
        if marker in user_agent:
            return name
    return "Unknown device"


def authenticate(uow: UnitOfWork, *, token: str) -> Authenticated | None:
    """The live session of ``token``, or ``None``; a frozen account raises ``AccountFrozen``,
    a closed one ``AccountClosed``."""
    found = _read_session(uow, token)
    return None if found is None else _authenticated(found, now_us())


def _read_session(uow: UnitOfWork, token: str) -> CachedSession | None:
    if not token.startswith(TOKEN_PREFIX) or len(token) > 100:
        return None
    moment = now_us()
    row = uow.session.execute(
        select(LoginSession, User.public_id, User.status)
        .join(User, User.id == LoginSession.user_id)
        .where(LoginSession.token_hash == token_hash(token))
    ).first()
    if row is None:
        return None
    session, user_id, status = row
    if session.expires_at <= moment:
        return None
    # Freezing ends every session; its owner is told why rather than just "sign in".
    if status == "frozen" and session.revoked_reason in (None, "frozen"):
        raise AccountFrozen("This account is frozen; contact customer service.")
    # So does closing: a retry of the request that closed it learns that it took effect.
    if status == "closed" and session.revoked_reason in (None, CLOSED_REASON):
        raise AccountClosed("This account is closed.")
    if session.revoked_at is not None:
        return None
    return CachedSession(
        user_id=user_id,
        user_pk=session.user_id,
        session_id=session.public_id,
        session_pk=session.id,
        kind=session.kind,
        expires_at=session.expires_at,
        last_seen_at=session.last_seen_at,
    )


def _authenticated(found: CachedSession, moment: int) -> Authenticated:
    return Authenticated(
        user_id=found.user_id,
        session_id=found.session_id,
        session_pk=found.session_pk,
        kind=found.kind,
        needs_touch=moment - found.last_seen_at >= TOUCH_EVERY_US,
    )


# --- the per-process session cache (identity/session_cache.py, docs/security.md) ----------

# One cache per engine: a process has one per database; tests that build two runtimes on
# one database (two "processes") get two.
_CACHES: WeakKeyDictionary[Engine, SessionCache] = WeakKeyDictionary()
_CACHES_LOCK = threading.Lock()


def session_cache(db: Database, *, ttl_seconds: float, max_entries: int) -> SessionCache:
    """The session cache of ``db``'s engine (made on first use with these limits)."""
    cache = _CACHES.get(db.engine)
    if cache is None:
        with _CACHES_LOCK:
            cache = _CACHES.get(db.engine)
            if cache is None:
                cache = SessionCache(ttl_seconds=ttl_seconds, max_entries=max_entries)
                _CACHES[db.engine] = cache
    return cache


def cached(cache: SessionCache, *, token: str) -> Authenticated | None:
    """The session of ``token`` if the cache knows it and it has not expired: no SQL at
    all. ``None`` means "ask the database" (:func:`look_up`), not "signed out"."""
    found = cache.get(token_hash(token))
    if found is None:
        return None
    moment = now_us()
    if found.expires_at <= moment:
        return None
    return _authenticated(found, moment)


def look_up(db: Database, cache: SessionCache, *, token: str) -> Authenticated | None:
    """:func:`authenticate` in a read-only transaction of its own, remembering a live
    session in ``cache`` (unless it was dropped meanwhile)."""
    generation = cache.generation
    with db.uow(readonly=True) as uow:
        found = _read_session(uow, token)
    if found is None:
        return None
    cache.put(token_hash(token), found, generation=generation)
    return _authenticated(found, now_us())


def record_use(db: Database, cache: SessionCache, *, token: str, found: Authenticated) -> None:
    """Note that the session was used (at most once a minute, see ``needs_touch``): no
    SQL here. The moment waits in this process's buffer and a flusher thread writes every
    pending touch in one statement within :data:`FLUSH_EVERY_SECONDS` (and at shutdown:
    :func:`flush_touches`), so a request never pays a write transaction for it."""
    moment = now_us()
    _toucher(db).add(found.session_pk, moment)
    cache.touched(token_hash(token), moment)


# --- the per-process touch buffer (docs/identity.md, "Sessions") --------------------------

FLUSH_EVERY_SECONDS = 1.0  # how stale a session's last_seen_at may be beyond TOUCH_EVERY_US

# Sent at the driver's level: PostgreSQL updates every pending session in one statement
# (column arrays, in primary-key order so two processes' flushes cannot deadlock); SQLite,
# whose writes are serialised anyway, runs the statement once per session (executemany).
# Never backwards: a slower process's older moment does not overwrite a newer one.
_TOUCH_PG = DriverSql(
    "UPDATE identity_sessions AS s SET last_seen_at = t.seen "
    "FROM unnest(CAST(? AS bigint[]), CAST(? AS bigint[])) AS t(id, seen) "
    "WHERE s.id = t.id AND s.last_seen_at < t.seen"
)
_TOUCH_ONE = DriverSql(
    "UPDATE identity_sessions SET last_seen_at = ? WHERE id = ? AND last_seen_at < ?"
)


def write_touches(uow: UnitOfWork, touches: dict[int, int]) -> None:
    """Write pending touches (session pk → moment) in ``uow``: one statement."""
    if not touches:
        return
    pks = sorted(touches)
    if uow.dialect == "postgresql":
        _TOUCH_PG.run(uow, (pks, [touches[pk] for pk in pks]))
    else:
        _TOUCH_ONE.run(uow, [(touches[pk], pk, touches[pk]) for pk in pks])


class _Toucher:
    """One engine's pending touches and the daemon thread that flushes them; the thread
    runs only while something is pending (it ends after a flush that left nothing)."""

    def __init__(self, db: Database) -> None:
        self._db = weakref.ref(db)
        self.pending = PendingTouches()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._flushing = threading.Lock()

    def add(self, session_pk: int, moment: int) -> None:
        self.pending.add(session_pk, moment)
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="citywallet-session-touches", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(FLUSH_EVERY_SECONDS)
            try:
                self.flush()
            except Exception:  # advisory data: a failed flush is logged, never raised
                log.warning("session_touch_flush_failed", exc_info=True)
            with self._lock:
                if not self.pending:
                    self._thread = None
                    return

    def flush(self) -> int:
        """Write every pending touch now (one transaction, one statement); returns how many."""
        with self._flushing:
            db = self._db()
            touches = self.pending.take()
            if db is not None and touches:
                db.transact(lambda uow: write_touches(uow, touches))
            return len(touches)

    def discard(self) -> None:
        self.pending.take()


_TOUCHERS: WeakKeyDictionary[Engine, _Toucher] = WeakKeyDictionary()


def _toucher(db: Database) -> _Toucher:
    toucher = _TOUCHERS.get(db.engine)
    if toucher is None:
        with _CACHES_LOCK:
            toucher = _TOUCHERS.get(db.engine)
            if toucher is None:
                toucher = _TOUCHERS[db.engine] = _Toucher(db)
                # Touches still pending when the engine is disposed without a flush (a test's
                # database going away) are dropped, never written to whatever comes next.
                event.listen(db.engine, "engine_disposed", lambda _engine: toucher.discard())
    return toucher


def flush_touches(db: Database) -> int:
    """Write this process's pending touches of ``db`` now (shutdown: ``Runtime.close`` and
    the app's lifespan; tests); returns how many sessions were touched."""
    toucher = _TOUCHERS.get(db.engine)
    return 0 if toucher is None else toucher.flush()


def _forget(uow: UnitOfWork, which: Callable[[CachedSession], bool]) -> None:
    """Drop the cached sessions ``which`` selects now and again when this transaction
    commits (a lookup between the two reads the old rows; its answer is refused then)."""
    cache = _CACHES.get(cast(Engine, uow.session.get_bind()))
    if cache is None:
        return
    cache.drop(which)
    event.listen(uow.session, "after_commit", lambda _session: cache.drop(which), once=True)


def list_sessions(
    uow: UnitOfWork, *, user_id: str, limit: int = 20, cursor: str | None = None
) -> tuple[list[SessionView], str | None]:
    """The user's live sessions, newest first; returns a page and the cursor of the next."""
    user = user_row(uow, user_id)
    query = (
        select(LoginSession)
        .where(
            LoginSession.user_id == user.id,
            LoginSession.revoked_at.is_(None),
            LoginSession.expires_at > now_us(),
        )
        .order_by(LoginSession.id.desc())
        .limit(limit + 1)
    )
    if cursor is not None:
        query = query.where(LoginSession.id < decode_cursor(CURSOR_TAG, cursor))
    rows = list(uow.session.scalars(query))
    page = rows[:limit]
    views = [_session_view(r) for r in page]
    return views, (encode_cursor(CURSOR_TAG, page[-1].id) if len(rows) > limit else None)


def _session_view(r: LoginSession) -> SessionView:
    return SessionView(
        id=r.public_id,
        kind=r.kind,
        device_name=r.device_name,
        user_agent=r.user_agent,
        ip=r.ip,
        created_at=r.created_at,
        last_seen_at=r.last_seen_at,
        expires_at=r.expires_at,
    )


def revoke_session(
    uow: UnitOfWork, *, user_id: str, session_id: str, reason: str = "revoked"
) -> None:
    """End one of the user's sessions (another user's session answers ``session_not_found``)."""
    user = user_row(uow, user_id)
    session = uow.session.scalar(
        select(LoginSession).where(
            LoginSession.public_id == session_id, LoginSession.user_id == user.id
        )
    )
    if session is None or session.revoked_at is not None:
        raise SessionNotFound("No such session.")
    session.revoked_at = now_us()
    session.revoked_reason = reason
    pk = session.id
    _forget(uow, lambda cached: cached.session_pk == pk)


def revoke_all(
    uow: UnitOfWork, *, user_pk: int, reason: str, keep_session_id: str | None = None
) -> int:
    """End every live session of a user (but ``keep_session_id``); returns how many."""
    query = (
        update(LoginSession)
        .where(LoginSession.user_id == user_pk, LoginSession.revoked_at.is_(None))
        .values(revoked_at=now_us(), revoked_reason=reason)
    )
    if keep_session_id is not None:
        query = query.where(LoginSession.public_id != keep_session_id)
    result = uow.session.execute(query)
    _forget(uow, lambda cached: cached.user_pk == user_pk)
    return int(getattr(result, "rowcount", 0) or 0)
