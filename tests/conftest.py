"""Shared fixtures: the same integration tests run on SQLite and on PostgreSQL.

PostgreSQL comes from ``CITYWALLET_TEST_PG_URL`` (default: the local server, user postgres).
Each xdist worker gets its own database with the schema built from the models once; each
test starts from empty tables. (tests/integration/test_migrations.py proves the Alembic
migrations build exactly that schema.)
Outside CI an unreachable PostgreSQL skips its half with a visible reason; with ``CI=true``
it fails the run.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from citywallet.platform.db import Database
from citywallet.schema import metadata

# The suites written before dual control act as one operator signed in with a password (the
# single-operator mode, docs/web-operator.md); tests of dual control and the operators'
# second factor turn both on in their own settings (tests/web/test_operator_control.py …).
os.environ.setdefault("CITYWALLET_OPERATOR_DUAL_CONTROL", "false")
os.environ.setdefault("CITYWALLET_OPERATOR_SECOND_FACTOR", "false")

PG_ADMIN_URL = os.environ.get(
    "CITYWALLET_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
BACKENDS = os.environ.get("CITYWALLET_TEST_BACKENDS", "sqlite,postgresql").split(",")

# Tests never assert timings: a property test on a loaded machine (the suite runs in
# parallel) must not fail for taking longer than Hypothesis's default 200 ms per example.
hypothesis_settings.register_profile("citywallet", deadline=None)
# make mutation runs the unit tests once per mutant: property tests that do not set their own
# max_examples try 25 examples instead of 100 there.
hypothesis_settings.register_profile("mutation", deadline=None, max_examples=25)
hypothesis_settings.load_profile("mutation" if "MUTANT_UNDER_TEST" in os.environ else "citywallet")


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A freshly migrated PostgreSQL database for this worker."""
    name = f"cw_test_{_worker()}_{os.getpid()}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # any failure to reach PostgreSQL
        admin.dispose()
        message = f"PostgreSQL unreachable at {PG_ADMIN_URL}: {exc.__class__.__name__}"
        if IN_CI:
            pytest.fail(message + " (CI=true: PostgreSQL tests must run)", pytrace=False)
        pytest.skip(message)
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    _create_schema(url)
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file with the schema, copied for each test (building it per test is slow)."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    _create_schema(f"sqlite:///{path}")
    return path


def _create_schema(url: str) -> None:
    database = Database(url, pool_size=1)
    try:
        metadata.create_all(database.engine)
    finally:
        database.dispose()


def _truncate_all(database: Database) -> None:
    tables = ", ".join(t.name for t in metadata.sorted_tables)
    with database.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty, migrated database: SQLite or PostgreSQL."""
    if request.param == "sqlite":
        template = request.getfixturevalue("sqlite_template")
        target = tmp_path / "citywallet.db"
        shutil.copyfile(template, target)
        return f"sqlite:///{target}"
    url: str = request.getfixturevalue("pg_url")
    scratch = Database(url, pool_size=1)
    try:
        _truncate_all(scratch)
    finally:
        scratch.dispose()
    return url


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    """A :class:`Database` on an empty schema; every test that moves money ends verified."""
    database = Database(db_url, pool_size=40)
    yield database
    database.dispose()


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """A test that reconfigures structlog (e.g. to capture it) must not leak that setup."""
    import structlog

    saved = structlog.get_config()
    yield
    structlog.configure(**saved)
