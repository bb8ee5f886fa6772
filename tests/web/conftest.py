"""A client on the real app (pages included) over the ``db`` fixture's database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from citywallet.api.app import create_app
from citywallet.platform.db import Database
from citywallet.runtime import Runtime
from tests.ledger_checks import test_encryptor
from tests.wallet_support import wallet_settings


@pytest.fixture
def runtime(db: Database, tmp_path: Path) -> Runtime:
    return Runtime(wallet_settings(tmp_path, db), db, test_encryptor())


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(
        create_app(runtime), raise_server_exceptions=False, follow_redirects=False
    ) as test_client:
        yield test_client
