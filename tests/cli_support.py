"""The ``citywallet`` CLI against a test database (both engines), for a test module's
``runner`` fixture: ``yield from cli_runner(db, tmp_path, monkeypatch)``."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from citywallet import cli
from citywallet.platform.config import get_settings
from citywallet.platform.db import Database
from tests.ledger_checks import TEST_KEYRING


def cli_runner(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[CliRunner]:
    """The CLI on the test database with the test keys (schema built from the models)."""
    key = base64.b64encode(TEST_KEYRING.keys["t1"]).decode()
    monkeypatch.setenv("CITYWALLET_DATABASE_URL", db.url)
    monkeypatch.setenv("CITYWALLET_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("CITYWALLET_MASTER_KEYS", f"t1:{key}")
    monkeypatch.setenv("CITYWALLET_SANDBOX_BANK_LATENCY_MS", "0")
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setattr(cli, "upgrade", lambda _url: None)  # the schema is built from the models
    # structlog would keep CliRunner's captured stderr, closed once a command returns.
    monkeypatch.setattr(cli, "configure_logging", lambda **_kw: None)
    monkeypatch.setattr(cli.console, "width", 200)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()
