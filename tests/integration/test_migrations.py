"""The Alembic migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from citywallet.schema import metadata, upgrade
from tests.conftest import IN_CI, PG_ADMIN_URL


def _assert_matches_models(url: str) -> None:
    upgrade(url)
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(context, metadata)
    finally:
        engine.dispose()
    assert diff == [], f"migrations and models differ: {diff}"


def test_migrations_match_models_on_sqlite(tmp_path: Path) -> None:
    _assert_matches_models(f"sqlite:///{tmp_path / 'migrated.db'}")


def test_migrations_match_models_on_postgresql() -> None:
    name = f"cw_migrations_{os.getpid()}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # any failure to reach PostgreSQL
        if IN_CI:
            pytest.fail(f"PostgreSQL unreachable: {exc}", pytrace=False)
        pytest.skip(f"PostgreSQL unreachable: {exc.__class__.__name__}")
    try:
        url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
        _assert_matches_models(url)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
