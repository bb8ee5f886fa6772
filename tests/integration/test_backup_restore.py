"""``citywallet backup`` and ``citywallet restore`` on SQLite and PostgreSQL: a round trip
that keeps every transfer and balance, a manifest that names the last checkpoint, and
refusals: a non-empty target without ``--force``, a flipped byte, a tampered transfer row, a
checkpoint the backup does not reach, and a backup of a damaged ledger."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from citywallet import cli_backup
from citywallet.ledger.log import latest_checkpoint
from citywallet.ledger.verifier import parse_checkpoint
from citywallet.platform import backup as mechanics
from citywallet.platform.db import Database
from citywallet.wallet import service as wallet
from tests.backup_support import (
    flip_byte,
    fresh_database,
    run_backup,
    run_restore,
    tamper,
    the_backup,
)
from tests.cli_support import cli_runner
from tests.ledger_checks import assert_ledger_clean, test_encryptor
from tests.redpacket_support import Env
from tests.wallet_support import Resident, balance, sandbox_bank, wallet_settings


@pytest.fixture
def runner(db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setattr(cli_backup.console, "width", 200)  # no wrapped lines to match
    yield from cli_runner(db, tmp_path, monkeypatch)


@pytest.fixture
def env(db: Database, tmp_path: Path) -> Env:
    return Env(db, wallet_settings(tmp_path, db), test_encryptor(), sandbox_bank())


def _pay(env: Env, payer: Resident, payee: Resident, amount: int) -> str:
    view = env.run(
        lambda uow: wallet.send_transfer(
            uow,
            user_id=payer.user_id,
            to=payee.phone,
            amount=amount,
            encryptor=env.enc,
            settings=env.settings,
        )
    )
    return view.id


@pytest.fixture
def people(env: Env) -> list[Resident]:
    """Three funded residents who paid each other; everything sealed and verified."""
    residents = [env.resident(n, 100_00) for n in range(3)]
    for i in range(6):
        _pay(env, residents[i % 3], residents[(i + 1) % 3], 1_00 + i)
    assert_ledger_clean(env.db)
    return residents


def _transfers(url: str) -> dict[str, int]:
    database = Database(url, pool_size=1)
    try:
        with database.uow(readonly=True) as uow:
            rows = uow.session.execute(text("SELECT id, amount FROM ledger_transfers")).all()
    finally:
        database.dispose()
    return {str(row[0]): int(row[1]) for row in rows}


def test_a_backup_restores_every_transfer_and_balance(
    db: Database, runner: CliRunner, people: list[Resident], tmp_path: Path
) -> None:
    result = run_backup(runner, tmp_path / "backups")
    assert result.exit_code == 0, result.output
    assert "backup verified" in result.output
    backup = the_backup(tmp_path / "backups")
    manifest = mechanics.read_manifest(backup)
    with db.uow(readonly=True) as uow:
        newest = latest_checkpoint(uow)
    assert newest is not None
    published, _signatures = parse_checkpoint(newest)
    assert manifest.database == db.dialect
    assert manifest.checkpoint is not None
    assert manifest.checkpoint["note"] == newest
    assert manifest.checkpoint["tree_size"] == published.tree_size == len(_transfers(db.url))
    assert manifest.checkpoint["root_hash"] == published.root_hash.hex()
    assert manifest.sha256 == mechanics.file_sha256(backup)

    with fresh_database(db, tmp_path) as url:
        result = run_restore(runner, backup, url)
        assert result.exit_code == 0, result.output
        assert "restored and verified" in result.output
        assert f"tree size {published.tree_size}" in result.output
        assert _transfers(url) == _transfers(db.url)
        restored = Database(url, pool_size=2)
        try:
            for who in people:
                assert balance(restored, who.user_id) == balance(db, who.user_id)
            assert_ledger_clean(restored, seal=False)
        finally:
            restored.dispose()


def test_restore_refuses_a_database_that_is_not_empty_unless_forced(
    db: Database, runner: CliRunner, people: list[Resident], tmp_path: Path
) -> None:
    assert run_backup(runner, tmp_path / "backups").exit_code == 0
    backup = the_backup(tmp_path / "backups")
    before = _transfers(db.url)

    refused = run_restore(runner, backup, db.url)
    assert refused.exit_code == 1
    assert "not empty" in refused.output
    assert _transfers(db.url) == before

    with fresh_database(db, tmp_path) as url:
        assert run_restore(runner, backup, url).exit_code == 0
        again = run_restore(runner, backup, url)
        assert again.exit_code == 1
        assert "--force" in again.output
        forced = run_restore(runner, backup, url, "--force")
        assert forced.exit_code == 0, forced.output
        assert _transfers(url) == before


def test_a_flipped_byte_is_refused_before_the_target_is_touched(
    db: Database, runner: CliRunner, people: list[Resident], tmp_path: Path
) -> None:
    assert run_backup(runner, tmp_path / "backups").exit_code == 0
    backup = the_backup(tmp_path / "backups")
    flip_byte(backup)
    with fresh_database(db, tmp_path) as url:
        result = run_restore(runner, backup, url)
        assert result.exit_code == 1
        assert "does not match its manifest" in result.output
        assert mechanics.is_empty(url)


def test_a_tampered_transfer_row_is_refused_by_restores_verification(
    db: Database, runner: CliRunner, people: list[Resident], tmp_path: Path
) -> None:
    assert run_backup(runner, tmp_path / "backups").exit_code == 0
    backup = the_backup(tmp_path / "backups")
    with db.uow(readonly=True) as uow:
        victim = uow.session.execute(
            text("SELECT id FROM ledger_transfers ORDER BY timestamp DESC LIMIT 1")
        ).scalar_one()
    tamper(backup, db, f"UPDATE ledger_transfers SET amount = amount + 100 WHERE id = '{victim}'")
    mechanics.check_file(backup, mechanics.read_manifest(backup))  # the checksum now agrees

    with fresh_database(db, tmp_path) as url:
        result = run_restore(runner, backup, url)
    assert result.exit_code == 1
    assert "failed verification: do not serve from it" in result.output
    assert "✗" in result.output
    assert victim in result.output  # its leaf no longer matches its block


def test_a_checkpoint_the_backup_does_not_reach_is_refused(
    db: Database, runner: CliRunner, env: Env, people: list[Resident], tmp_path: Path
) -> None:
    """The manifest's checkpoint is held against the restored log: a newer one (history the
    backup does not hold) is caught as truncation."""
    assert run_backup(runner, tmp_path / "backups").exit_code == 0
    backup = the_backup(tmp_path / "backups")
    _pay(env, people[0], people[1], 5_00)
    assert_ledger_clean(db)  # seals: a newer checkpoint
    with db.uow(readonly=True) as uow:
        newer = latest_checkpoint(uow)
    assert newer is not None
    manifest = mechanics.read_manifest(backup)
    assert manifest.checkpoint is not None
    assert newer != manifest.checkpoint["note"]
    mechanics.write_manifest(
        backup,
        dataclasses.replace(manifest, checkpoint={**manifest.checkpoint, "note": newer}),
    )
    with fresh_database(db, tmp_path) as url:
        result = run_restore(runner, backup, url)
    assert result.exit_code == 1
    assert "truncated" in result.output


def test_a_backup_of_a_damaged_ledger_fails_its_own_verification(
    db: Database, runner: CliRunner, people: list[Resident], tmp_path: Path
) -> None:
    with db.uow() as uow:
        uow.session.execute(
            text(
                "UPDATE ledger_transfers SET amount = amount + 1 WHERE id = "
                "(SELECT id FROM ledger_transfers ORDER BY timestamp DESC LIMIT 1)"
            )
        )
        uow.commit()
    result = run_backup(runner, tmp_path / "backups")
    assert result.exit_code == 1
    assert "failed verification" in result.output
    names = sorted(p.name for p in (tmp_path / "backups").iterdir())
    assert len(names) == 1
    assert names[0].endswith(".unverified")  # and no manifest: restore refuses it


def test_checkpoints_kept_elsewhere_are_held_to_the_restored_log(
    db: Database, runner: CliRunner, env: Env, people: list[Resident], tmp_path: Path
) -> None:
    """``restore --checkpoint``: a kept checkpoint the backup reaches must agree with it; one
    newer than the backup is reported (what was sealed later is not in it), not refused; a
    forged one is refused."""
    assert run_backup(runner, tmp_path / "backups").exit_code == 0
    backup = the_backup(tmp_path / "backups")
    manifest = mechanics.read_manifest(backup)
    assert manifest.checkpoint is not None
    older = tmp_path / "older.note"
    older.write_text(manifest.checkpoint["note"], encoding="utf-8")
    _pay(env, people[0], people[1], 5_00)
    assert_ledger_clean(db)
    with db.uow(readonly=True) as uow:
        newest = latest_checkpoint(uow)
    assert newest is not None
    newer = tmp_path / "newer.note"
    newer.write_text(newest, encoding="utf-8")
    forged = tmp_path / "forged.note"
    forged.write_text(newest.replace("\n\n", "\nextra\n\n", 1), encoding="utf-8")

    with fresh_database(db, tmp_path, "kept") as url:
        result = run_restore(
            runner, backup, url, "--checkpoint", str(older), "--checkpoint", str(newer)
        )
        assert result.exit_code == 0, result.output
        size = parse_checkpoint(newest)[0].tree_size
        assert f"checkpoint {size} kept elsewhere is newer than the restored log" in result.output
    with fresh_database(db, tmp_path, "forged") as url:
        result = run_restore(runner, backup, url, "--checkpoint", str(forged))
        assert result.exit_code == 1
        assert "does not verify" in result.output
