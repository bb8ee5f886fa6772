"""Checkpoints pushed to witnesses through the outbox: files and webhooks (both engines)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from citywallet.ledger import service as ledger
from citywallet.ledger.blocks import load_signer, seal_all
from citywallet.ledger.log import WITNESS_TOPIC
from citywallet.ledger.service import AccountSpec
from citywallet.ledger.types import AccountCode, Result, TransferSpec
from citywallet.ledger.verifier import verify_checkpoint
from citywallet.ledger.witness import append_checkpoint, read_checkpoints, witness_handler
from citywallet.merchant.netguard import NetguardError
from citywallet.merchant.webhooks import post_guarded
from citywallet.platform import outbox
from citywallet.platform.config import Settings
from citywallet.platform.db import Database, UnitOfWork
from tests.ledger_checks import assert_ledger_clean, test_encryptor

HOOK = "https://witness.example/checkpoints"


def _post_and_seal(db: Database, witnesses: list[str], ids: list[str]) -> bytes:
    def run(uow: UnitOfWork) -> bytes:
        bank, other = ledger.create_accounts(
            uow, accounts=[AccountSpec("CNY", AccountCode.BANK_SETTLEMENT)] * 2
        )
        specs = [TransferSpec(i, bank, other, 10, "CNY", 1) for i in ids]
        assert ledger.post(uow, transfers=specs) == [Result.OK] * len(ids)
        signer = load_signer(uow, test_encryptor())
        seal_all(uow, signer, witnesses=witnesses)
        return signer.public_key

    return db.transact(run)


def test_each_seal_reaches_every_witness_once(db: Database, tmp_path: Path) -> None:
    path = tmp_path / "witness.jsonl"
    posted: list[tuple[str, bytes]] = []
    answers = iter([503, 200, 200])

    def post(url: str, body: bytes) -> int:
        posted.append((url, body))
        return next(answers)

    handlers = {WITNESS_TOPIC: witness_handler(post)}
    public_key = _post_and_seal(db, [str(path), HOOK], ["w1", "w2"])
    assert outbox.deliver_due(db, handlers=handlers) == 1  # the file; the webhook said 503
    later = 10**18  # far enough ahead for any retry delay
    assert outbox.deliver_due(db, handlers=handlers, now=later) == 1
    _post_and_seal(db, [str(path), HOOK], ["w3"])
    assert outbox.deliver_due(db, handlers=handlers, now=later) == 2

    notes = read_checkpoints(path.read_text())
    assert [verify_checkpoint(n, public_key).tree_size for n in notes] == [2, 3]
    assert [url for url, _ in posted] == [HOOK] * 3
    assert verify_checkpoint(posted[-1][1].decode(), public_key).tree_size == 3
    # An outbox redelivery of the last checkpoint is not appended twice.
    assert not append_checkpoint(path, 3, notes[-1])
    assert len(path.read_text().splitlines()) == 2
    assert json.loads(path.read_text().splitlines()[0])["tree_size"] == 2
    assert_ledger_clean(db)


def test_witness_webhooks_pass_the_ssrf_guard(tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path)
    for url in ("http://127.0.0.1:9/witness", "http://169.254.169.254/latest", "file:///etc"):
        with pytest.raises(NetguardError):
            post_guarded(url, b"x", content_type="text/plain", settings=settings)


def test_a_witness_file_that_is_not_checkpoints_is_refused() -> None:
    with pytest.raises(ValueError, match="line 2"):
        read_checkpoints('{"tree_size": 1, "checkpoint": "a\\n\\nb\\n"}\n{"nope": 1}\n')
