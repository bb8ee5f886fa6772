"""Production refuses an unsafe start (issue 12, item 9): with ``CITYWALLET_SANDBOX=false``,
``citywallet serve`` and ``worker`` exit non-zero, listing what is missing, unless the keys
are given and real adapters configured; production never writes a key file."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from citywallet import cli
from citywallet.api.app import create_app_from_env
from citywallet.platform.config import Settings, get_settings
from citywallet.platform.crypto import MissingKeys, load_keyring
from citywallet.platform.db import Database
from citywallet.runtime import Runtime, UnsafeStart
from tests.ledger_checks import TEST_KEYRING, test_encryptor

MASTER = f"t1:{base64.b64encode(TEST_KEYRING.keys['t1']).decode()}"
LEDGER_SEED = bytes(range(100, 132))
LEDGER = base64.b64encode(LEDGER_SEED).decode()
ADAPTERS = {
    "CITYWALLET_SMS_ADAPTER": "tests.production_adapters:sms",
    "CITYWALLET_IDENTITY_ADAPTER": "tests.production_adapters:identity",
    "CITYWALLET_BANK_ADAPTER": "tests.production_adapters:bank",
}


@pytest.fixture
def production(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    """The CLI in production mode with nothing configured; a run of uvicorn is recorded."""
    for name in ("MASTER_KEYS", "LOOKUP_KEY", "KEY_FILE", "LEDGER_KEY", "TRUSTED_PROXIES"):
        monkeypatch.delenv(f"CITYWALLET_{name}", raising=False)
    for name in ADAPTERS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CITYWALLET_SANDBOX", "false")
    monkeypatch.setenv("CITYWALLET_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("CITYWALLET_DATABASE_URL", f"sqlite:///{tmp_path / 'cw.db'}")
    monkeypatch.setattr(cli, "configure_logging", lambda **_kw: None)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def _record_uvicorn(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append(kw))
    return calls


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_an_unconfigured_production_start_is_refused_and_writes_nothing(
    production: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    calls = _record_uvicorn(monkeypatch)
    result = production.invoke(cli.app, [command])
    assert result.exit_code == 78, result.output
    message = result.output
    assert "refusing to start with CITYWALLET_SANDBOX=false" in message
    for missing in (
        "CITYWALLET_MASTER_KEYS",
        "payment-PIN",
        "CITYWALLET_LEDGER_KEY",
        "CITYWALLET_SMS_ADAPTER",
        "CITYWALLET_IDENTITY_ADAPTER",
        "CITYWALLET_BANK_ADAPTER",
    ):
        assert missing in message
    assert calls == []
    assert not (tmp_path / "var" / "keys.json").exists()
    assert not (tmp_path / "cw.db").exists()  # not even migrated


def test_each_missing_piece_is_named_alone(
    production: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CITYWALLET_MASTER_KEYS", MASTER)
    monkeypatch.setenv("CITYWALLET_LEDGER_KEY", LEDGER)
    for name, spec in ADAPTERS.items():
        monkeypatch.setenv(name, spec)
    monkeypatch.setenv("CITYWALLET_BANK_ADAPTER", "tests.production_adapters:broken")
    result = production.invoke(cli.app, ["worker"])
    assert result.exit_code == 78
    reasons = [line for line in result.output.splitlines() if line.strip().startswith("- ")]
    assert len(reasons) == 1
    assert "bank adapter" in reasons[0]
    assert "gateway unreachable" in reasons[0]


def test_a_configured_production_server_starts_with_its_keys_and_adapters(
    production: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = tmp_path / "secrets" / "keys.json"
    key_file.parent.mkdir()
    ring = {"current": "t1", "keys": {"t1": MASTER.removeprefix("t1:")}, "ledger": LEDGER}
    key_file.write_text(json.dumps(ring))
    monkeypatch.setenv("CITYWALLET_KEY_FILE", str(key_file))
    for name, spec in ADAPTERS.items():
        monkeypatch.setenv(name, spec)
    calls = _record_uvicorn(monkeypatch)
    result = production.invoke(cli.app, ["serve"])
    assert result.exit_code == 0, result.output
    assert len(calls) == 1
    assert (calls[0]["proxy_headers"], calls[0]["forwarded_allow_ips"]) == (False, "")
    assert not (tmp_path / "var" / "keys.json").exists()
    runtime = Runtime.from_settings(get_settings())
    try:  # the ledger key is the configured one, not a generated one
        expected = Ed25519PrivateKey.from_private_bytes(LEDGER_SEED).public_key()
        assert runtime.ledger_signer().private_key.public_key() == expected
        assert runtime.sms.__class__.__name__ == "RecordingSms"
    finally:
        runtime.close()


def test_the_app_factory_refuses_too(production: CliRunner) -> None:
    with pytest.raises(UnsafeStart, match="CITYWALLET_SMS_ADAPTER"):
        create_app_from_env()


def test_production_never_generates_keys(tmp_path: Path) -> None:
    settings = Settings(sandbox=False, var_dir=tmp_path)
    with pytest.raises(MissingKeys, match="CITYWALLET_MASTER_KEYS"):
        load_keyring(settings)
    assert not (tmp_path / "keys.json").exists()
    database = Database(f"sqlite:///{tmp_path / 'cw.db'}")
    runtime = Runtime(settings, database, test_encryptor())
    try:
        with pytest.raises(MissingKeys, match="CITYWALLET_LEDGER_KEY"):
            runtime.ledger_signer()
    finally:
        runtime.close()
    load_keyring(Settings(var_dir=tmp_path))  # sandbox (development): created on first start
    assert (tmp_path / "keys.json").exists()
