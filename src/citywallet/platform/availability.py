"""Whether a database error means "the database cannot be reached or written right now"
(a failover, a restart, no writable host) rather than a fault in this request: the edge
answers those with 503 ``database_unavailable`` and ``Retry-After`` (docs/operations.md,
"PostgreSQL high availability")."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, OperationalError

RETRY_AFTER_SECONDS = 1

# admin_shutdown, crash_shutdown, cannot_connect_now (starting up or in recovery),
# read_only_sql_transaction (a session that landed on, or stayed on, a standby)
UNAVAILABLE_SQLSTATES = {"57P01", "57P02", "57P03", "25006"}


def database_unavailable(exc: BaseException) -> bool:
    """A lost or refused PostgreSQL connection, a server shutting down or in recovery, or a
    read-only session: trying again shortly (with the same ``Idempotency-Key``) may work.
    SQLite's errors (``database is locked`` …) are not counted: they are not outages."""
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    orig = exc.orig
    if not hasattr(orig, "sqlstate"):  # not psycopg's (sqlite3's errors carry no SQLSTATE)
        return False
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate is None:  # raised by the client: connecting failed, the connection broke
        return isinstance(exc, OperationalError)
    return str(sqlstate).startswith("08") or sqlstate in UNAVAILABLE_SQLSTATES
