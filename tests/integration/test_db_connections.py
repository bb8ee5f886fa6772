"""Pooled PostgreSQL connections without a ping per checkout (docs/operations.md,
"Database connections"): a connection that died while idle (a database restart, a
firewall) is replaced before anyone uses it. Without the idle check a bare unit of work
fails once and the pool is renewed, while ``Database.transact`` runs a transaction again,
once, when its very first statement found the connection dead (nothing of it reached the
database), never after a statement succeeded. SQLite has no server connection to lose."""

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


def test_without_the_idle_check_a_transaction_reconnects_once(pg_url: str) -> None:
    db = Database(pg_url, pool_size=1, ping_idle_seconds=0)
    try:
        first = db.transact(_backend_pid)
        _kill(pg_url, first)
        # transact: the first statement found the connection dead; nothing of the
        # transaction reached the database, so it runs again on a new connection.
        second = db.transact(_backend_pid)
        assert second != first
        _kill(pg_url, second)
        # A bare unit of work has no one to retry it: it fails once, and the pool renews.
        with pytest.raises(OperationalError) as failed, db.uow(readonly=True) as uow:
            _backend_pid(uow)
        assert failed.value.connection_invalidated
        assert db.transact(_backend_pid) not in (first, second)
    finally:
        db.dispose()


def test_a_transaction_that_already_ran_a_statement_is_not_retried(pg_url: str) -> None:
    db = Database(pg_url, pool_size=1, ping_idle_seconds=0)
    calls = []

    def dies_midway(uow: UnitOfWork) -> int:
        calls.append(1)
        pid = _backend_pid(uow)
        _kill(pg_url, pid)
        return _backend_pid(uow)  # the connection is gone now

    try:
        with pytest.raises(OperationalError) as failed:
            db.transact(dies_midway)
        assert failed.value.connection_invalidated
        assert len(calls) == 1  # the outcome is the caller's to decide, not retried
        assert db.transact(_backend_pid) > 0
    finally:
        db.dispose()


def test_the_engine_does_not_ping_on_every_checkout(pg_url: str) -> None:
    db = Database(pg_url, pool_size=1)
    try:
        assert db.engine.pool._pre_ping is False
        assert db.engine.pool._recycle == 1800
    finally:
        db.dispose()
