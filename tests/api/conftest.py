"""An HTTP client on the real application over the `db` fixture's database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from citywallet.api.app import create_app
from citywallet.platform.config import Settings
from citywallet.platform.db import Database
from citywallet.runtime import Runtime
from tests.ledger_checks import test_encryptor


@pytest.fixture
def runtime(db: Database, tmp_path: Path) -> Runtime:
    """A runtime on the test database with the fixed test keys."""
    return Runtime(Settings(var_dir=tmp_path, database_url=db.url), db, test_encryptor())


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    """A client that raises nothing itself: errors come back as problem+json responses."""
    with TestClient(create_app(runtime), raise_server_exceptions=False) as test_client:
        yield test_client
