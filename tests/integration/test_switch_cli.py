"""`citywallet switch …` on both engines: participants, caps, windows, the key."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from citywallet import cli
from citywallet.platform.db import Database
from tests.cli_support import cli_runner
from tests.switch_support import KEYS, SWITCH_SEED, positions, public_b64


@pytest.fixture
def runner(db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("CITYWALLET_INTEROP_KEY", base64.b64encode(SWITCH_SEED).decode())
    yield from cli_runner(db, tmp_path, monkeypatch)


def run(runner: CliRunner, *args: str) -> str:
    result = runner.invoke(cli.app, ["switch", *args])
    assert result.exit_code == 0, result.output
    return result.output


def add_args(participant: str, cap: str = "500000") -> list[str]:
    return [
        "participants", "add", participant, "--name", "Provider A",
        "--public-key", public_b64(KEYS[participant]),
        "--callback-url", "http://127.0.0.1:8101/fspiop", "--cap", cap,
    ]  # fmt: skip


def test_participants_are_added_idempotently_capped_and_deactivated(
    runner: CliRunner, db: Database
) -> None:
    assert "added" in run(runner, *add_args("provider-a"))
    assert "unchanged" in run(runner, *add_args("provider-a"))
    assert "updated" in run(runner, *add_args("provider-a", "600000"))
    listed = run(runner, "participants", "list")
    assert "provider-a" in listed
    assert "¥6,000.00" in listed
    assert "cap ¥1.00, headroom ¥1.00" in run(runner, "participants", "cap", "provider-a", "100")
    assert "deactivated" in run(runner, "participants", "deactivate", "provider-a")
    assert positions(db) == {"provider-a": (0, 0)}

    bad = runner.invoke(cli.app, ["switch", *add_args("provider-b")[:-1], "-5"])
    assert bad.exit_code == 1
    assert "participant_invalid" in bad.output
    unknown = runner.invoke(cli.app, ["switch", "participants", "cap", "provider-z", "1"])
    assert unknown.exit_code == 1
    assert "participant_unknown" in unknown.output


def test_the_key_and_the_windows(runner: CliRunner) -> None:
    expected = public_b64(Ed25519PrivateKey.from_private_bytes(SWITCH_SEED))
    assert run(runner, "key").strip() == expected
    closed = run(runner, "windows", "close")
    assert "CLOSED" in closed
    listed = run(runner, "windows", "list")
    assert "OPEN" in listed
    assert "CLOSED" in listed
