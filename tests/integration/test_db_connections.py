"""Pooled PostgreSQL connections without a ping per checkout (docs/operations.md,
"Database connections"): a connection that died while idle (a database restart, a
firewall) is replaced before anyone uses it; without the idle check the first use fails
once and the pool is renewed. SQLite has no server connection to lose."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from citywallet.platform.db import Database, UnitOfWork


def _backend_pid(uow: UnitOfWork) -> int:
    return int(uow.session.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _kill(pg_url: str, pid: int) -> None:
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()
    finally:
        admin.dispose()


def test_a_connection_that_died_while_idle_is_replaced_before_use(pg_url: str) -> None:
    # Any idle time counts here, so the check always runs: the outcome, not a timing.
    db = Database(pg_url, pool_size=1, ping_idle_seconds=1e-9)
    try:
        first = db.transact(_backend_pid)
        assert db.transact(_backend_pid) == first  # the pool keeps its connection
        _kill(pg_url, first)
        second = db.transact(_backend_pid)  # no error: the dead one was replaced
        assert second != first
    finally:
        db.dispose()


def test_without_the_idle_check_a_dead_connection_fails_once(pg_url: str) -> None:
    db = Database(pg_url, pool_size=1, ping_idle_seconds=0)
    try:
        first = db.transact(_backend_pid)
        _kill(pg_url, first)
        with pytest.raises(OperationalError) as failed:
            db.transact(_backend_pid)
        assert failed.value.connection_invalidated
        assert db.transact(_backend_pid) != first  # the pool was renewed
    finally:
        db.dispose()


def test_the_engine_does_not_ping_on_every_checkout(pg_url: str) -> None:
    db = Database(pg_url, pool_size=1)
    try:
        assert db.engine.pool._pre_ping is False
        assert db.engine.pool._recycle == 1800
    finally:
        db.dispose()
