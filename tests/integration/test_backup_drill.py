"""The backup drill, on SQLite and PostgreSQL: residents pay each other from several client
threads through a real uvicorn server (its worker sealing and publishing checkpoints), a
backup is taken in the middle of the load, and restored into a fresh database. Then: every
transfer acknowledged before the backup started is in the restored database with its ledger
transfers, the books balance, the log agrees with the checkpoint in the manifest, and the
restored database takes new payments."""

from __future__ import annotations

import http.client
import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from citywallet import cli_backup
from citywallet.api.app import create_app
from citywallet.ledger.audit import verify_ledger
from citywallet.ledger.blocks import load_signer
from citywallet.ledger.verifier import verify_checkpoint
from citywallet.platform import backup as mechanics
from citywallet.platform.db import Database
from citywallet.runtime import Runtime
from tests.backup_support import fresh_database, run_backup, run_restore, the_backup
from tests.cli_support import cli_runner
from tests.ledger_checks import assert_ledger_clean, test_encryptor
from tests.redpacket_support import Env, serve
from tests.wallet_support import PIN, Resident, sandbox_bank, wallet_settings

CLIENTS = 4
BEFORE_BACKUP = 40  # acknowledged payments before the backup starts (at least)
AFTER_BACKUP = 20  # and after it finished


@pytest.fixture
def runner(db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setattr(cli_backup.console, "width", 200)  # no wrapped lines to match
    yield from cli_runner(db, tmp_path, monkeypatch)


def _pay(base: str, payer: Resident, payee: Resident, amount: int) -> tuple[int, dict[str, str]]:
    address = urlsplit(base)
    conn = http.client.HTTPConnection(address.hostname or "", address.port, timeout=60)
    try:
        conn.request(
            "POST",
            "/v1/wallet/transfers",
            body=json.dumps({"to": payee.phone, "amount": amount, "currency": "CNY", "pin": PIN}),
            headers={
                "Authorization": f"Bearer {payer.token}",
                "Content-Type": "application/json",
                "Idempotency-Key": str(uuid.uuid4()),
            },
        )
        response = conn.getresponse()
        body = json.loads(response.read())
    finally:
        conn.close()
    return response.status, body


class Load:
    """Clients paying in a ring until stopped; each acknowledged payment with its moment."""

    def __init__(self, base: str, residents: list[Resident]) -> None:
        self.base = base
        self.residents = residents
        self.stop = threading.Event()
        self.acked: list[tuple[float, str]] = []
        self.failures: list[str] = []
        self.lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(CLIENTS)
        ]

    def _client(self, i: int) -> None:
        payer = self.residents[i]
        payee = self.residents[(i + 1) % len(self.residents)]
        n = 0
        while not self.stop.is_set():
            n += 1
            status, body = _pay(self.base, payer, payee, 1 + n % 97)
            with self.lock:
                if status == 201:
                    self.acked.append((time.monotonic(), body["id"]))
                else:
                    self.failures.append(f"{status} {body}")

    def wait_for(self, count: int) -> None:
        deadline = time.monotonic() + 300
        while len(self.acked) < count:
            assert not self.failures, self.failures[:3]
            assert time.monotonic() < deadline, f"only {len(self.acked)} payments"
            time.sleep(0.05)

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=120)


def _present(database: Database, payment_ids: list[str]) -> set[str]:
    """The payments among ``payment_ids`` the database holds with all their ledger transfers."""
    with database.uow(readonly=True) as uow:
        rows = uow.session.execute(
            text("SELECT object_id, transfer_ids FROM wallet_activity WHERE kind = 'transfer_out'")
        ).all()
        transfers = {
            str(r[0]) for r in uow.session.execute(text("SELECT id FROM ledger_transfers"))
        }
    wanted = set(payment_ids)
    return {
        str(object_id)
        for object_id, ids in rows
        if object_id in wanted and set(json.loads(ids)) <= transfers
    }


def test_a_backup_under_load_restores_every_acknowledged_payment(
    db: Database, runner: CliRunner, tmp_path: Path
) -> None:
    settings = wallet_settings(tmp_path, db, seal_interval_seconds=0.2)
    runtime = Runtime(settings, db, test_encryptor())
    env = Env(db, settings, runtime.encryptor, sandbox_bank())
    residents = [env.resident(n, 1_000_00) for n in range(CLIENTS)]
    assert_ledger_clean(db)  # the top-ups sealed: a checkpoint exists before the load

    with serve(create_app(runtime, start_worker=True)) as base, Load(base, residents) as load:
        load.wait_for(BEFORE_BACKUP)
        backup_started = time.monotonic()
        result = run_backup(runner, tmp_path / "backups")
        assert result.exit_code == 0, result.output
        backup_finished = time.monotonic()
        after = len(load.acked)
        load.wait_for(after + AFTER_BACKUP)  # the server kept serving
    assert not load.failures, load.failures[:3]
    acked_before = [pid for moment, pid in load.acked if moment < backup_started]
    assert len(acked_before) >= BEFORE_BACKUP
    during = [pid for moment, pid in load.acked if backup_started < moment < backup_finished]
    assert during, "the server must have kept committing payments while the backup ran"
    assert_ledger_clean(db)

    backup = the_backup(tmp_path / "backups")
    manifest = mechanics.read_manifest(backup)
    assert manifest.checkpoint is not None
    with fresh_database(db, tmp_path) as url:
        result = run_restore(runner, backup, url)
        assert result.exit_code == 0, result.output
        restored = Database(url, pool_size=10)
        try:
            assert _present(restored, acked_before) == set(acked_before)
            with restored.uow(readonly=True) as uow:
                signer = load_signer(uow, runtime.encryptor)
                held = verify_checkpoint(manifest.checkpoint["note"], signer.public_key)
                report = verify_ledger(uow, public_key=signer.public_key, outside=[held])
            assert report.ok, report.problems
            assert report.sealed_transfers >= held.tree_size > 0

            again = Runtime(
                settings.model_copy(update={"database_url": url}), restored, runtime.encryptor
            )
            with serve(create_app(again)) as restored_base:
                status, body = _pay(restored_base, residents[0], residents[1], 123)
            assert status == 201, body
            assert _present(restored, [body["id"]]) == {body["id"]}
            assert_ledger_clean(restored)
        finally:
            restored.dispose()
