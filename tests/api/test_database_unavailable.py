"""A database that cannot take a transaction just now (unreachable, or a standby that is
still read-only during a failover) answers 503 problem+json ``database_unavailable`` with
``Retry-After``, logged once as a warning, and ``/readyz`` says not ready; pages get a 503
page (issue 17, docs/operations.md "PostgreSQL high availability")."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError
from structlog.testing import capture_logs

from citywallet.api.app import create_app
from citywallet.platform.db import Database, is_unavailable
from citywallet.runtime import Runtime
from tests.ledger_checks import test_encryptor
from tests.server_support import free_port
from tests.wallet_support import wallet_settings


class _Driver(Exception):
    def __init__(self, message: str, sqlstate: str | None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("sqlstate", "message", "unavailable"),
    [
        ("25006", "cannot execute INSERT in a read-only transaction", True),
        ("57P01", "terminating connection due to administrator command", True),
        ("57P03", "the database system is starting up", True),
        ("08006", "connection failure", True),
        (None, "connection refused", True),  # psycopg's own: no server answered
        (None, "consuming input failed: server closed the connection", True),
        ("sqlite", "database is locked", True),
        ("40001", "could not serialize access", False),
        ("sqlite", "no such table: identity_users", False),
    ],
)
def test_which_database_errors_mean_try_again_later(
    sqlstate: str | None, message: str, unavailable: bool
) -> None:
    driver = Exception(message) if sqlstate == "sqlite" else _Driver(message, sqlstate)
    exc = OperationalError("SELECT 1", {}, driver)
    assert is_unavailable(exc) is unavailable


def test_a_broken_constraint_is_not_unavailability() -> None:
    assert not is_unavailable(IntegrityError("INSERT", {}, _Driver("duplicate key", "23505")))


def _client(tmp_path: Path, url: str) -> Iterator[TestClient]:
    database = Database(url, pool_size=2)
    runtime = Runtime(wallet_settings(tmp_path, database), database, test_encryptor())
    try:
        with TestClient(create_app(runtime), raise_server_exceptions=False) as client:
            yield client
    finally:
        database.dispose()


def _assert_503_logged_once(client: TestClient) -> None:
    with capture_logs() as logs:
        answer = client.post("/v1/auth/sms-codes", json={"phone": "13900139000"})
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["code"] == "database_unavailable"
    assert answer.headers["retry-after"] == "1"
    events = [entry["event"] for entry in logs]
    assert events.count("database_unavailable") == 1
    assert "unhandled_error" not in events
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["status"] == "not_ready"


def test_an_unreachable_database_answers_503(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nowhere?connect_timeout=2"
    for client in _client(tmp_path, url):
        _assert_503_logged_once(client)
        client.cookies.set("cw_session", "a-session-the-database-would-know")
        page = client.get("/app", follow_redirects=False)  # reads the session's viewer
        assert page.status_code == 503
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers["retry-after"] == "1"
        assert "database_unavailable" in page.text


def test_a_read_only_database_answers_503(tmp_path: Path, pg_url: str) -> None:
    """A standby before promotion: it answers, but refuses to write (SQLSTATE 25006)."""
    url = make_url(pg_url).update_query_dict({"options": "-c default_transaction_read_only=on"})
    for client in _client(tmp_path, url.render_as_string(hide_password=False)):
        _assert_503_logged_once(client)
        assert client.get("/readyz").json()["checks"]["database"] == "read_only"
