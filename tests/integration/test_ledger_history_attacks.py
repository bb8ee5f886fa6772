"""Rewriting history with the platform's own key, and the outside checkpoint that catches it.

Someone with the database and the ledger key can make the database consistent with itself
again after any change: delete the seals, change a transfer, rewrite its hash and the
counters, and seal everything anew — every block, signature and checkpoint is then valid,
so plain ``ledger verify`` passes and ``ledger proof`` serves a validly signed proof of the
forged amount. What they cannot do is change a checkpoint that a witness already holds:
``ledger verify --checkpoint <witness file>`` recomputes the log from the transfers' own
fields and finds it no longer extends what was published. Both attacks of issue 12 are
reproduced here through the CLI, on both databases.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text
from typer.testing import CliRunner

from citywallet import cli
from citywallet.api.app import create_app
from citywallet.ledger import service as ledger
from citywallet.ledger.blocks import load_signer
from citywallet.ledger.log import WITNESS_TOPIC, sign_checkpoint
from citywallet.ledger.merkle import merkle_root
from citywallet.ledger.service import AccountSpec
from citywallet.ledger.types import AccountCode, AccountFlags, Result, TransferCode, TransferSpec
from citywallet.ledger.verifier import transfer_leaf_hash, verify_inclusion_proof
from citywallet.ledger.witness import read_checkpoints, witness_handler
from citywallet.platform import outbox
from citywallet.platform.config import get_settings
from citywallet.platform.db import Database, UnitOfWork
from citywallet.runtime import Runtime
from tests.ledger_checks import TEST_KEYRING, assert_ledger_clean, test_encryptor
from tests.redpacket_support import serve
from tests.wallet_support import wallet_settings

CNY = "CNY"


@pytest.fixture
def witness(tmp_path: Path) -> Path:
    return tmp_path / "elsewhere" / "witness.jsonl"


@pytest.fixture
def runner(
    db: Database, tmp_path: Path, witness: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[CliRunner]:
    """The CLI on the test database with the test keys and one witness file."""
    key = base64.b64encode(TEST_KEYRING.keys["t1"]).decode()
    monkeypatch.setenv("CITYWALLET_DATABASE_URL", db.url)
    monkeypatch.setenv("CITYWALLET_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("CITYWALLET_MASTER_KEYS", f"t1:{key}")
    monkeypatch.setenv("CITYWALLET_LEDGER_WITNESSES", json.dumps([str(witness)]))
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setattr(cli, "upgrade", lambda _url: None)  # the schema is built from the models
    monkeypatch.setattr(cli, "configure_logging", lambda **_kw: None)
    monkeypatch.setattr(cli.console, "width", 200)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def _accounts(db: Database) -> tuple[int, int, int]:
    customer = AccountSpec(
        CNY, AccountCode.CUSTOMER_WALLET, AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
    )
    bank, alice, bob = db.transact(
        lambda uow: ledger.create_accounts(
            uow, accounts=[AccountSpec(CNY, AccountCode.BANK_SETTLEMENT), customer, customer]
        )
    )
    return bank, alice, bob


def _post(db: Database, *specs: TransferSpec) -> None:
    for spec in specs:  # one transaction each: seq order is posting order on both databases

        def post(uow: UnitOfWork, s: TransferSpec = spec) -> list[Result]:
            return ledger.post(uow, transfers=[s])

        assert db.transact(post) == [Result.OK]


def _seal_and_witness(runner: CliRunner, db: Database) -> None:
    """`ledger seal`, then the worker's outbox delivery of the checkpoint to the witness."""
    sealed = runner.invoke(cli.app, ["ledger", "seal"])
    assert sealed.exit_code == 0, sealed.output

    def refuse(url: str, body: bytes) -> int:
        raise AssertionError("no webhook witness is configured")

    outbox.deliver_due(db, handlers={WITNESS_TOPIC: witness_handler(refuse)})


def _verify(runner: CliRunner, *args: str) -> tuple[int, str]:
    result = runner.invoke(cli.app, ["ledger", "verify", *args])
    return result.exit_code, result.output


def _tamper(db: Database, *statements: str, **params: object) -> None:
    def run(uow: UnitOfWork) -> None:
        for sql in statements:
            uow.session.execute(text(sql), params)

    db.transact(run)


@pytest.fixture
def books(runner: CliRunner, db: Database) -> tuple[int, int, int]:
    """Two sealed, witnessed rounds of transfers: t0–t3, then t4–t6."""
    bank, alice, bob = _accounts(db)
    _post(
        db,
        TransferSpec("t0", bank, alice, 10_000, CNY, TransferCode.TOPUP),
        TransferSpec("t1", bank, bob, 5_000, CNY, TransferCode.TOPUP),
        TransferSpec("t2", alice, bob, 1_200, CNY, TransferCode.P2P),
        TransferSpec("t3", bob, alice, 300, CNY, TransferCode.P2P),
    )
    _seal_and_witness(runner, db)
    _post(
        db,
        TransferSpec("t4", alice, bob, 700, CNY, TransferCode.P2P),
        TransferSpec("t5", bob, alice, 50, CNY, TransferCode.P2P),
        TransferSpec("t6", alice, bank, 400, CNY, TransferCode.WITHDRAWAL),
    )
    _seal_and_witness(runner, db)
    return bank, alice, bob


def test_the_witness_file_holds_every_published_checkpoint(
    books: tuple[int, int, int], witness: Path
) -> None:
    notes = read_checkpoints(witness.read_text())
    assert [json.loads(line)["tree_size"] for line in witness.read_text().splitlines()] == [4, 7]
    assert notes[-1].startswith("citywallet.example/ledger\n7\n")


def test_full_reseal_with_a_changed_amount_is_caught_only_against_the_witness(
    runner: CliRunner, db: Database, books: tuple[int, int, int], witness: Path
) -> None:
    _bank, alice, bob = books
    code, output = _verify(runner, "--checkpoint", str(witness))
    assert code == 0, output

    # The attack of issue 12: unseal everything, change t2's amount, rewrite its stored hash
    # and both accounts' counters, then reseal with the platform's own key.
    with db.uow(readonly=True) as uow:
        original = ledger.get_transfer(uow, transfer_id="t2")
    assert original is not None
    forged = replace(original, amount=120)
    _tamper(
        db,
        "DELETE FROM ledger_blocks",
        "DELETE FROM ledger_tree_nodes",
        "DELETE FROM ledger_checkpoints",
        "UPDATE ledger_transfers SET block_height = NULL, leaf_index = NULL, log_index = NULL",
        "UPDATE ledger_transfers SET amount = 120, hash = :h WHERE id = 't2'",
        "UPDATE ledger_accounts SET debits_posted = debits_posted - 1080 WHERE id = :alice",
        "UPDATE ledger_accounts SET credits_posted = credits_posted - 1080 WHERE id = :bob",
        h=ledger.transfer_hash(forged),
        alice=alice,
        bob=bob,
    )
    resealed = runner.invoke(cli.app, ["ledger", "seal"])
    assert resealed.exit_code == 0, resealed.output
    assert "sealed 7 transfers" in resealed.output

    # Everything the platform signs is consistent again: plain verify passes and the proof
    # of the forged amount verifies with the published key. A signature by the operator's
    # own key cannot stop the operator; that is why the outside checkpoint exists.
    proof_run = runner.invoke(cli.app, ["ledger", "proof", "t2"])
    assert proof_run.exit_code == 0, proof_run.output
    proof = json.loads(proof_run.output)
    with db.uow() as uow:
        public_key = load_signer(uow, test_encryptor()).public_key
    fields = forged.canonical()
    verify_inclusion_proof(proof, public_key, fields)
    assert proof["log"]["leaf_index"] == 2
    code, output = _verify(runner)
    assert code == 0, output

    code, output = _verify(runner, "--checkpoint", str(witness))
    assert code == 1, output
    assert "outside checkpoint 4" in output
    assert "history was rewritten" in output
    assert "outside checkpoint 7" in output


def test_deleting_the_newest_block_and_its_transfers_is_caught_against_the_witness(
    runner: CliRunner, db: Database, books: tuple[int, int, int], witness: Path
) -> None:
    # The second attack: drop the newest block with its transfers, roll the counters back,
    # and tidy the log so that it ends where the block began.
    with db.uow(readonly=True) as uow:
        height, start = uow.session.execute(
            text(
                "SELECT block_height, MIN(log_index) FROM ledger_transfers "
                "WHERE block_height = (SELECT MAX(height) FROM ledger_blocks) "
                "GROUP BY block_height"
            )
        ).one()
        dropped = uow.session.execute(
            text(
                "SELECT debit_account_id, credit_account_id, amount FROM ledger_transfers "
                "WHERE block_height = :h"
            ),
            {"h": height},
        ).all()
    assert (height, start, len(dropped)) == (1, 4, 3)
    statements = [
        "DELETE FROM ledger_transfers WHERE block_height = :h",
        "DELETE FROM ledger_blocks WHERE height = :h",
        "DELETE FROM ledger_tree_nodes WHERE (idx + 1) * (1 << level) > :start",
        "DELETE FROM ledger_checkpoints WHERE tree_size > :start",
    ]
    for debit, credit, amount in dropped:
        statements += [
            f"UPDATE ledger_accounts SET debits_posted = debits_posted - {amount} "
            f"WHERE id = {debit}",
            f"UPDATE ledger_accounts SET credits_posted = credits_posted - {amount} "
            f"WHERE id = {credit}",
        ]
    _tamper(db, *statements, h=height, start=start)

    code, output = _verify(runner)
    assert code == 0, output  # self-consistent: the database alone cannot tell

    code, output = _verify(runner, "--checkpoint", str(witness))
    assert code == 1, output
    assert "outside checkpoint 7" in output
    assert "history was truncated" in output


def test_honest_growth_stays_consistent_with_every_witnessed_checkpoint(
    runner: CliRunner, db: Database, books: tuple[int, int, int], witness: Path, tmp_path: Path
) -> None:
    bank, alice, _bob = books
    _post(db, TransferSpec("t7", bank, alice, 1_000, CNY, TransferCode.TOPUP))
    _seal_and_witness(runner, db)
    assert len(read_checkpoints(witness.read_text())) == 3
    code, output = _verify(runner, "--checkpoint", str(witness))
    assert code == 0, output
    assert "outside checkpoints" in output

    # A checkpoint served at a URL (here the platform's own endpoint) works too.
    runtime = Runtime(wallet_settings(tmp_path, db), db, test_encryptor())
    with serve(create_app(runtime, start_worker=False)) as url:
        code, output = _verify(runner, "--checkpoint", f"{url}/v1/ledger/checkpoint")
        assert code == 0, output
        code, output = _verify(runner, "--checkpoint", f"{url}/v1/ledger/checkpoint?size=5")
        assert code == 1
        assert "HTTP 404" in output

    # A single note kept in a file works too; one signed by another key is refused.
    single = tmp_path / "one.txt"
    single.write_text(read_checkpoints(witness.read_text())[0])
    assert _verify(runner, "--checkpoint", str(single))[0] == 0
    stranger = Ed25519PrivateKey.generate()
    with db.uow() as uow:
        signer = load_signer(uow, test_encryptor())
    forged = replace(signer, private_key=stranger)
    single.write_text(sign_checkpoint(forged, 8, merkle_root([b"\x00" * 32] * 8), 1))
    code, output = _verify(runner, "--checkpoint", str(single))
    assert code == 1
    assert "bad signature" in output
    assert_ledger_clean(db)


def test_a_transfer_left_unsealed_past_the_bound_fails_verify(
    runner: CliRunner, db: Database, books: tuple[int, int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    bank, alice, _bob = books
    _post(db, TransferSpec("late", bank, alice, 100, CNY, TransferCode.TOPUP))
    assert _verify(runner)[0] == 0  # well inside 10 intervals of 2 s
    monkeypatch.setenv("CITYWALLET_SEAL_INTERVAL_SECONDS", "0.001")
    monkeypatch.setenv("CITYWALLET_LEDGER_UNSEALED_BOUND_INTERVALS", "10")
    get_settings.cache_clear()
    time.sleep(0.05)  # past a 10 ms bound; nothing here depends on how much longer
    code, output = _verify(runner)
    assert code == 1
    assert "1 transfers unsealed for longer than 0.01 s" in output
    _seal_and_witness(runner, db)
    assert _verify(runner)[0] == 0
    assert_ledger_clean(db)


def test_the_log_leaf_of_a_proof_is_the_transfer_itself(
    runner: CliRunner, db: Database, books: tuple[int, int, int]
) -> None:
    proof = json.loads(runner.invoke(cli.app, ["ledger", "proof", "t5"]).output)
    with db.uow(readonly=True) as uow:
        transfer = ledger.get_transfer(uow, transfer_id="t5")
        public_key = load_signer(uow, test_encryptor()).public_key
    assert transfer is not None
    assert proof["leaf_hash"] == transfer_leaf_hash(transfer.canonical()).hex()
    assert proof["log"]["leaf_index"] == 5
    assert proof["log"]["tree_size"] == 7
    verify_inclusion_proof(proof, public_key, transfer.canonical())
    proof["log"]["leaf_index"] = 4
    with pytest.raises(ValueError, match="log audit path"):
        verify_inclusion_proof(proof, public_key, transfer.canonical())
