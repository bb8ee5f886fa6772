"""Engine, declarative base and the unit of work: one use case, one transaction.

SQLite: WAL, foreign keys on, and writers open with ``BEGIN IMMEDIATE`` so the single
writer lock serialises money movement (readers use a deferred ``BEGIN``).
PostgreSQL: READ COMMITTED with explicit row locks taken by the services in ascending id
order; :func:`transact` retries on serialization failures and deadlocks.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import structlog
from sqlalchemy import BigInteger, Engine, MetaData, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Session

from citywallet.platform import failpoints
from citywallet.platform.files import private_sqlite_file

if TYPE_CHECKING:
    from psycopg import Copy

T = TypeVar("T")
log = structlog.get_logger(__name__)
_JITTER = random.Random()  # noqa: S311 - retry jitter, not a secret; the global one is left alone

# An integer primary key that is BIGINT on PostgreSQL and the rowid alias on SQLite.
BigId = (
    BigInteger()
    .with_variant(sqlite.INTEGER(), "sqlite")
    .with_variant(postgresql.BIGINT(), "postgresql")
)

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base of every table; one metadata for Alembic."""

    metadata = MetaData(naming_convention=NAMING)


def make_engine(
    url: str,
    *,
    pool_size: int = 10,
    pre_ping: bool = False,
    recycle_seconds: int = 1800,
    ping_idle_seconds: float = 10.0,
    echo: bool = False,
) -> Engine:
    """Create an engine configured for CityWallet's transaction discipline.

    PostgreSQL connections are not pinged on every checkout (``pre_ping``, one round trip
    per transaction, off by default): they are replaced after ``recycle_seconds`` and pinged
    only when they sat unused for ``ping_idle_seconds`` (docs/operations.md, "Database
    connections": how a dead connection after a database restart is handled).
    """
    if url.startswith("sqlite"):
        private_sqlite_file(url)
        engine = create_engine(
            url,
            echo=echo,
            connect_args={"check_same_thread": False, "timeout": 60},
            pool_size=pool_size,
            max_overflow=pool_size * 4,
        )
        _configure_sqlite(engine)
        return engine
    engine = create_engine(
        url,
        echo=echo,
        pool_size=pool_size,
        max_overflow=pool_size * 2,
        pool_pre_ping=pre_ping,
        pool_recycle=recycle_seconds,
        isolation_level="READ COMMITTED",
    )
    if not pre_ping and ping_idle_seconds > 0:
        _ping_when_idle(engine, ping_idle_seconds)
    event.listen(engine, "after_cursor_execute", _mark_ran)
    return engine


RAN = "citywallet_ran"  # the connection's info: the running unit of work's "a statement ran"


def _mark_ran(conn: Connection, *_args: Any) -> None:
    ran = conn.info.get(RAN)
    if ran is not None and not ran:
        ran.append(True)


IDLE_SINCE = "citywallet_idle_since"


def _ping_when_idle(engine: Engine, idle_seconds: float) -> None:
    """Ping a pooled connection at checkout only if it sat unused ``idle_seconds`` or more:
    under load connections never wait that long, so the hot path pays no round trip; after
    a quiet spell (a database restart, a firewall dropping idle connections) a dead one is
    replaced before any request sees it."""
    dialect = engine.dialect

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info[IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.pop(IDLE_SINCE, None)
        if since is None or time.monotonic() - since < idle_seconds:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as exc:
            if dialect.is_disconnect(exc, dbapi_connection, None):
                # The pool drops this connection and checks out (or opens) another.
                raise DisconnectionError("a pooled connection died while idle") from exc
            raise


def _configure_sqlite(engine: Engine) -> None:
    """Take over SQLite's transaction handling so BEGIN IMMEDIATE can be emitted."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = "DEFERRED" if conn.get_execution_options().get("readonly") else "IMMEDIATE"
        conn.exec_driver_sql(f"BEGIN {mode}")


def is_sqlite(engine_or_conn: Engine | Connection) -> bool:
    """Whether this engine or connection talks to SQLite."""
    return engine_or_conn.dialect.name == "sqlite"


@dataclass(frozen=True)
class DriverSql:
    """A fixed statement sent at the driver's level (``exec_driver_sql``), written once with
    ``?`` placeholders and positional parameters (psycopg gets them as ``%s``). SQLAlchemy
    then neither compiles it, nor builds its cache key, nor binds parameters per execution:
    for the few statements every payment runs, where that costs more than the driver does.
    A list of parameter tuples runs it once per tuple (the driver's ``executemany``)."""

    sql: str
    pg: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pg", self.sql.replace("%", "%%").replace("?", "%s"))

    def run(self, uow: UnitOfWork, params: tuple[Any, ...] | list[tuple[Any, ...]]) -> Any:
        """Run it in ``uow``'s transaction; returns the cursor result."""
        conn = uow.session.connection()
        return conn.exec_driver_sql(
            self.pg if conn.dialect.name == "postgresql" else self.sql, params
        )


@contextmanager
def copy_in(conn: Connection, target: str, *, types: Sequence[str] = ()) -> Iterator[Copy]:
    """``COPY target FROM STDIN`` on a PostgreSQL connection's transaction: the bulk paths'
    way to write many rows. Text format; binary with ``types`` (one PostgreSQL type name
    per column: then write tuples with ``write_row``)."""
    driver = conn.connection.driver_connection
    assert driver is not None
    form = " (FORMAT BINARY)" if types else ""
    with driver.cursor() as cursor, cursor.copy(f"COPY {target} FROM STDIN{form}") as copy:
        if types:
            copy.set_types(list(types))
        yield copy


_AFTER_COMMIT = "citywallet.after_commit"


def _run_after_commit(session: Session) -> None:
    for callback in session.info.pop(_AFTER_COMMIT, []):
        try:
            callback()
        except Exception:  # the commit stands; what follows it must not turn it into an error
            log.exception("after-commit callback failed")


@dataclass
class UnitOfWork:
    """One database transaction. Services receive it; only the caller commits."""

    session: Session
    # PostgreSQL: non-empty once a statement of this transaction succeeded (see transact).
    ran: list[bool] | None = field(default=None, repr=False)

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.session.get_bind().dialect.name

    def commit(self) -> None:
        """Commit the transaction (called by the edge, never by a service)."""
        failpoints.hit("commit.before")
        self.session.commit()
        failpoints.hit("commit.after")

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once this transaction has committed, and never if it does not:
        how a service hands work to the process that must follow the commit (send a queued
        message now, wake a request waiting for this change) without committing itself."""
        callbacks = self.session.info.get(_AFTER_COMMIT)
        if callbacks is None:
            callbacks = self.session.info[_AFTER_COMMIT] = []
            event.listen(self.session, "after_commit", _run_after_commit)
        callbacks.append(callback)

    def rollback(self) -> None:
        """Abandon everything done in this unit of work."""
        self.session.rollback()


class Database:
    """An engine plus unit-of-work factory; one per process and database URL."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        pre_ping: bool = False,
        recycle_seconds: int = 1800,
        ping_idle_seconds: float = 10.0,
    ) -> None:
        self.url = url
        self.engine = make_engine(
            url,
            pool_size=pool_size,
            pre_ping=pre_ping,
            recycle_seconds=recycle_seconds,
            ping_idle_seconds=ping_idle_seconds,
        )

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    @contextmanager
    def uow(self, *, readonly: bool = False) -> Iterator[UnitOfWork]:
        """Open a unit of work; rolls back unless the caller committed."""
        session = Session(self.engine, expire_on_commit=False, autoflush=False)
        if readonly:
            conn = session.connection(execution_options={"readonly": True})
        else:
            conn = session.connection()  # begin now: BEGIN IMMEDIATE on SQLite
        ran: list[bool] | None = None
        if not is_sqlite(conn):
            ran = conn.info[RAN] = []
        try:
            yield UnitOfWork(session, ran)
        finally:
            session.rollback()
            session.close()

    def transact(
        self, fn: Callable[[UnitOfWork], T], *, attempts: int = 8, readonly: bool = False
    ) -> T:
        """Run ``fn`` in a unit of work and commit; retry on serialization failure/deadlock,
        and once when the connection turned out dead before any statement of the
        transaction succeeded (a database restart: nothing of it reached the database)."""
        attempt, reconnected = 0, False
        while True:
            attempt += 1
            current: UnitOfWork | None = None
            try:
                with self.uow(readonly=readonly) as uow:
                    current = uow
                    result = fn(uow)
                    uow.commit()
                    return result
            except DBAPIError as exc:
                ran = current.ran if current is not None else None
                if not reconnected and died_before_any_statement(exc, ran):
                    reconnected, attempt = True, attempt - 1  # the pool now opens a new one
                    continue
                if attempt >= attempts or not is_retryable(exc):
                    raise
                back_off(attempt)

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def died_before_any_statement(exc: DBAPIError, ran: list[bool] | None) -> bool:
    """A lost connection (the pool has invalidated it) and no statement of the transaction
    had succeeded (``ran``: the transaction's mark, see :data:`RAN`): the server never
    committed anything of it."""
    return bool(exc.connection_invalidated) and ran == []


def back_off(attempt: int) -> None:
    """Sleep a random, growing while before retrying a conflicted transaction."""
    time.sleep(min(0.2, 0.002 * 2**attempt) * _JITTER.random())


RETRYABLE_SQLSTATES = {"40001", "40P01"}  # serialization_failure, deadlock_detected


def is_retryable(exc: DBAPIError) -> bool:
    """Whether the database asks us to simply try the transaction again."""
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate in RETRYABLE_SQLSTATES:
        return True
    return isinstance(exc, OperationalError) and "database is locked" in str(exc.orig)


# connection_exception (08…), read_only_sql_transaction, admin_shutdown, crash_shutdown,
# cannot_connect_now: the database cannot take this transaction now (a failover, a restart)
UNAVAILABLE_SQLSTATES = {"25006", "57P01", "57P02", "57P03"}


def is_unavailable(exc: DBAPIError) -> bool:
    """Whether the database is unreachable or cannot write just now (as during a failover:
    no primary, or a standby still read-only), rather than refusing this statement: the
    request may simply be sent again later."""
    sqlstate = getattr(exc.orig, "sqlstate", None) or ""
    if exc.connection_invalidated or sqlstate.startswith("08") or sqlstate in UNAVAILABLE_SQLSTATES:
        return True
    if isinstance(exc, OperationalError) and not sqlstate:
        if not hasattr(exc.orig, "sqlstate"):  # SQLite: only a busy database is worth a retry
            return "database is locked" in str(exc.orig)
        return True  # psycopg's own: connecting failed, or the connection broke
    return False
