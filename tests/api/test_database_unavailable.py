"""While the database cannot be reached or written (a failover, a restart), requests answer
503 ``database_unavailable`` with ``Retry-After`` (problem+json for the API, the error page
for pages), logged once as a warning, never as a 500 with a traceback
(docs/operations.md, "PostgreSQL high availability"). Other database errors stay 500."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, ProgrammingError

from citywallet.api.app import create_app
from citywallet.interop.cells import free_port
from citywallet.platform.availability import database_unavailable
from citywallet.platform.config import Settings
from citywallet.platform.db import Database
from citywallet.runtime import Runtime
from tests.ledger_checks import test_encryptor


def _wrapped(kind: type[DBAPIError], orig: Exception, *, invalidated: bool = False) -> DBAPIError:
    return kind("SELECT 1", {}, orig, connection_invalidated=invalidated)


@pytest.mark.parametrize(
    ("error", "unavailable"),
    [
        (_wrapped(OperationalError, psycopg.OperationalError("connection failed")), True),
        (_wrapped(OperationalError, psycopg.errors.AdminShutdown()), True),
        (_wrapped(OperationalError, psycopg.errors.CannotConnectNow()), True),
        (_wrapped(OperationalError, psycopg.errors.ConnectionFailure()), True),
        (_wrapped(OperationalError, psycopg.errors.ReadOnlySqlTransaction()), True),
        (_wrapped(OperationalError, psycopg.OperationalError("gone"), invalidated=True), True),
        (_wrapped(IntegrityError, psycopg.errors.UniqueViolation()), False),
        (_wrapped(ProgrammingError, psycopg.errors.UndefinedTable()), False),
        (_wrapped(OperationalError, psycopg.errors.SerializationFailure()), False),
        (_wrapped(OperationalError, sqlite3.OperationalError("database is locked")), False),
        (RuntimeError("not a database error"), False),
    ],
)
def test_what_counts_as_the_database_being_unavailable(
    error: BaseException, unavailable: bool
) -> None:
    assert database_unavailable(error) is unavailable


@pytest.fixture
def unreachable(tmp_path: Path) -> Iterator[TestClient]:
    """The app on a PostgreSQL URL where nothing listens."""
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/cw?connect_timeout=2"
    database = Database(url, pool_size=1)
    runtime = Runtime(Settings(var_dir=tmp_path, database_url=url), database, test_encryptor())
    try:
        with TestClient(create_app(runtime), raise_server_exceptions=False) as client:
            yield client
    finally:
        database.dispose()


def test_the_api_answers_503_with_retry_after_while_the_database_is_unreachable(
    unreachable: TestClient,
) -> None:
    answers = [
        unreachable.get("/v1/wallet", headers={"Authorization": "Bearer nobody"}),
        unreachable.post(
            "/v1/wallet/transfers",
            json={"to": "13800138000", "amount": 100, "pin": "123456"},
            headers={"Authorization": "Bearer nobody", "Idempotency-Key": "k-1"},
        ),
        unreachable.get("/healthz"),
    ]
    for answer in answers:
        assert answer.status_code == 503, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert answer.json()["code"] == "database_unavailable"
    assert answers[0].headers["Retry-After"] == "1"
    assert answers[1].headers["Retry-After"] == "1"


def test_a_page_answers_the_503_error_page(unreachable: TestClient) -> None:
    unreachable.cookies.set("cw_session", "nobody")
    answer = unreachable.get("/app", follow_redirects=False)
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"].startswith("text/html")
    assert 'data-code="database_unavailable"' in answer.text
    assert answer.headers["Retry-After"] == "1"
