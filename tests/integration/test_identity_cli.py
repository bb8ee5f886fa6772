"""`citywallet sms outbox` and `citywallet users …` against a real database (both engines)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from citywallet import cli
from citywallet.identity import service
from citywallet.platform.db import Database
from tests.cli_support import cli_runner
from tests.identity_support import send_code, sign_up, test_settings
from tests.ledger_checks import test_encryptor

PHONE = "13800138000"


@pytest.fixture
def runner(db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    """The CLI on the test database with the test keys (schema built from the models)."""
    yield from cli_runner(db, tmp_path, monkeypatch)


def test_users_list_find_freeze_unfreeze(runner: CliRunner, db: Database, tmp_path: Path) -> None:
    enc = test_encryptor()
    settings = test_settings(tmp_path, db)
    user = sign_up(db, settings, enc, PHONE).user

    listed = runner.invoke(cli.app, ["users", "list"])
    assert listed.exit_code == 0, listed.output
    assert user.id in listed.output
    assert "138****8000" in listed.output
    assert PHONE not in listed.output

    found = runner.invoke(cli.app, ["users", "find", "+86 138 0013 8000"])
    assert found.exit_code == 0, found.output
    assert user.id in found.output
    missing = runner.invoke(cli.app, ["users", "find", "13912345678"])
    assert missing.exit_code == 1

    no_reason = runner.invoke(cli.app, ["users", "freeze", user.id])
    assert no_reason.exit_code != 0
    frozen = runner.invoke(cli.app, ["users", "freeze", user.id, "--reason", "stolen phone"])
    assert frozen.exit_code == 0, frozen.output
    assert "frozen" in frozen.output
    with db.uow(readonly=True) as uow:
        assert service.get_user(uow, user_id=user.id).status == "frozen"
    again = runner.invoke(cli.app, ["users", "freeze", user.id, "--reason", "again"])
    assert again.exit_code == 1
    assert "already_frozen" in again.output

    thawed = runner.invoke(cli.app, ["users", "unfreeze", user.id, "--reason", "recovered"])
    assert thawed.exit_code == 0, thawed.output
    with db.uow(readonly=True) as uow:
        assert service.get_user(uow, user_id=user.id).status == "active"
    unknown = runner.invoke(cli.app, ["users", "freeze", "usr_nobody", "--reason", "x"])
    assert unknown.exit_code == 1
    assert "user_not_found" in unknown.output


def test_sms_outbox_shows_the_sandbox_messages(
    runner: CliRunner, db: Database, tmp_path: Path
) -> None:
    code = send_code(db, test_settings(tmp_path, db), test_encryptor(), PHONE)
    shown = runner.invoke(cli.app, ["sms", "outbox", "--phone", "138 0013 8000"])
    assert shown.exit_code == 0, shown.output
    assert code in shown.output
    assert "138****8000" in shown.output
    assert PHONE not in shown.output
    other = runner.invoke(cli.app, ["sms", "outbox", "--phone", "13912345678"])
    assert code not in other.output
