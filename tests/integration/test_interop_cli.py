"""`citywallet interop key` and `citywallet interop aliases sync` (both engines)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from citywallet import cli
from citywallet.identity import service as identity
from citywallet.identity.gateways import SandboxIdentityVerifier
from citywallet.platform.db import Database
from tests.cli_support import cli_runner
from tests.identity_support import resident_id, sign_up, test_settings
from tests.interop_support import PROVIDER_SEED, outbox, switch_public_key
from tests.ledger_checks import test_encryptor

SEED = base64.b64encode(PROVIDER_SEED).decode()


@pytest.fixture
def runner(db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("CITYWALLET_INTEROP_KEY", SEED)
    yield from cli_runner(db, tmp_path, monkeypatch)


def test_key_prints_the_public_half(runner: CliRunner) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    public = (
        Ed25519PrivateKey.from_private_bytes(PROVIDER_SEED)
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    result = runner.invoke(cli.app, ["interop", "key"])
    assert result.exit_code == 0, result.output
    assert result.output == base64.b64encode(public).decode() + "\n"


def test_aliases_sync_registers_verified_residents(
    runner: CliRunner, db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    unconnected = runner.invoke(cli.app, ["interop", "aliases", "sync"])
    assert unconnected.exit_code == 1
    settings, enc = test_settings(tmp_path, db), test_encryptor()
    verified = sign_up(db, settings, enc, "13800138001").user
    sign_up(db, settings, enc, "13800138002")  # not verified: not findable
    identity.verify_real_name(
        db, user_id=verified.id, name="王芳", id_number=resident_id(sequence="001"),
        verifier=SandboxIdentityVerifier(), settings=settings, encryptor=enc,
    )  # fmt: skip
    monkeypatch.setenv("CITYWALLET_INTEROP_PARTICIPANT_ID", "provider-a")
    monkeypatch.setenv("CITYWALLET_INTEROP_SWITCH_URL", "http://127.0.0.1:9")  # nobody listens
    monkeypatch.setenv("CITYWALLET_INTEROP_SWITCH_PUBLIC_KEY", switch_public_key())
    from citywallet.platform.config import get_settings

    get_settings.cache_clear()
    result = runner.invoke(cli.app, ["interop", "aliases", "sync"])
    assert result.exit_code == 0, result.output
    assert "2 residents seen, 1 aliases queued" in result.output
    sent = [(m["method"], m["path"], m["json"]) for m in outbox(db)]
    assert sent == [
        ("POST", "/participants/MSISDN/13800138001", {"fspId": "provider-a", "maskedName": "*芳"})
    ]
