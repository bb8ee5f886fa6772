"""`citywallet merchant list|review|statement` against a real database (both engines), through
the merchant service."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from citywallet import cli
from citywallet.platform.db import Database
from tests.cli_support import cli_runner
from tests.ledger_checks import assert_ledger_clean, test_encryptor
from tests.merchant_support import register
from tests.wallet_support import make_resident, sandbox_bank, wallet_settings


@pytest.fixture
def runner(db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    """The CLI on the test database with the test keys (schema built from the models)."""
    yield from cli_runner(db, tmp_path, monkeypatch)


def test_list_review_and_statement(runner: CliRunner, db: Database, tmp_path: Path) -> None:
    settings, enc, bank = wallet_settings(tmp_path, db), test_encryptor(), sandbox_bank()
    first = register(db, settings, enc, make_resident(db, settings, enc, bank, 100), 0)
    second = register(db, settings, enc, make_resident(db, settings, enc, bank, 101), 1)

    listed = runner.invoke(cli.app, ["merchant", "list"])
    assert listed.exit_code == 0, listed.output
    assert first.id in listed.output
    assert second.id in listed.output
    assert listed.output.index(first.id) < listed.output.index(second.id)  # oldest first

    approved = runner.invoke(cli.app, ["merchant", "review", second.id, "approve"])
    assert approved.exit_code == 0, approved.output
    assert f"{second.id}: active" in approved.output
    active = runner.invoke(cli.app, ["merchant", "list", "--status", "active"])
    assert active.exit_code == 0, active.output
    assert second.id in active.output
    assert first.id not in active.output

    again = runner.invoke(cli.app, ["merchant", "review", second.id, "approve"])
    assert again.exit_code == 1
    assert "merchant_status_conflict" in again.output
    unknown = runner.invoke(cli.app, ["merchant", "review", "mch_nobody", "approve"])
    assert unknown.exit_code == 1
    assert "merchant_not_found" in unknown.output

    csv = runner.invoke(cli.app, ["merchant", "statement", second.id, "2026-12-07"])
    assert csv.exit_code == 0, csv.output
    assert csv.output.splitlines()[0] == "time,type,order_no,refund_no,amount,fee,net,balance"
    assert_ledger_clean(db)
