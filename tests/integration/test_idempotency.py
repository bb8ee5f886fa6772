"""Idempotency keys: replay, reuse with another body, and concurrent identical requests."""

from __future__ import annotations

import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import text

from citywallet.ledger import service as ledger
from citywallet.ledger.types import AccountCode, AccountFlags, Result, TransferSpec
from citywallet.platform import idempotency
from citywallet.platform.db import Database, UnitOfWork
from citywallet.platform.idempotency import (
    IdempotencyKeyReused,
    StoredResponse,
    begin,
    finish,
    request_fingerprint,
)
from tests.ledger_checks import assert_ledger_clean

SCOPE = "usr_alice"


def _accounts(db: Database) -> tuple[int, int]:
    def setup(uow: UnitOfWork) -> tuple[int, int]:
        bank = ledger.create_account(uow, ledger="CNY", code=AccountCode.BANK_SETTLEMENT)
        alice = ledger.create_account(
            uow,
            ledger="CNY",
            code=AccountCode.CUSTOMER_WALLET,
            flags=AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS,
        )
        return bank, alice

    return db.transact(setup)


def _top_up(
    db: Database, bank: int, alice: int, *, key: str, body: bytes, hold_seconds: float = 0.0
) -> StoredResponse:
    """What an API route does: key first, effect, response stored, one commit."""

    def use_case(uow: UnitOfWork) -> StoredResponse:
        fingerprint = request_fingerprint("POST", "/v1/topups", body)
        stored = begin(uow, scope=SCOPE, key=key, request_hash=fingerprint)
        if stored is not None:
            return stored
        time.sleep(hold_seconds)  # widen the window for concurrent duplicates
        amount = json.loads(body)["amount"]
        transfer_id = "txf_" + uuid.uuid4().hex  # a new id per execution: a rerun would show
        [result] = ledger.post(
            uow, transfers=[TransferSpec(transfer_id, bank, alice, amount, "CNY", 1)]
        )
        assert result is Result.OK
        response = StoredResponse(201, json.dumps({"transfer": transfer_id}).encode())
        finish(uow, scope=SCOPE, key=key, status_code=response.status_code, body=response.body)
        return response

    return db.transact(use_case)


def _balance(db: Database, account: int) -> int:
    with db.uow(readonly=True) as uow:
        view = ledger.get_account(uow, account_id=account)
    assert view is not None
    return int(view.balance)


def _transfer_count(db: Database) -> int:
    with db.uow(readonly=True) as uow:
        return int(uow.session.execute(text("SELECT COUNT(*) FROM ledger_transfers")).scalar_one())


def test_request_fingerprint() -> None:
    base = request_fingerprint("POST", "/v1/topups", b'{"amount":1}')
    assert base == request_fingerprint("post", "/v1/topups", b'{"amount":1}')
    assert len(base) == 64
    assert base != request_fingerprint("POST", "/v1/topups", b'{"amount":2}')
    assert base != request_fingerprint("POST", "/v1/payouts", b'{"amount":1}')
    assert base != request_fingerprint("PUT", "/v1/topups", b'{"amount":1}')
    # Field boundaries are unambiguous: moving bytes between path and body changes the hash.
    assert request_fingerprint("POST", "/a", b"b") != request_fingerprint("POST", "/ab", b"")


def test_replay_returns_the_stored_response_without_a_second_effect(db: Database) -> None:
    bank, alice = _accounts(db)
    first = _top_up(db, bank, alice, key="k-1", body=b'{"amount":500}')
    again = _top_up(db, bank, alice, key="k-1", body=b'{"amount":500}')
    assert again == first
    assert first.status_code == 201
    assert _balance(db, alice) == 500
    assert _transfer_count(db) == 1
    # Another key, or the same key in another scope, is a new request.
    _top_up(db, bank, alice, key="k-2", body=b'{"amount":500}')
    assert _balance(db, alice) == 1000
    assert_ledger_clean(db)


def test_scopes_are_separate(db: Database) -> None:
    def store(uow: UnitOfWork, scope: str) -> StoredResponse | None:
        stored = begin(uow, scope=scope, key="same", request_hash="h")
        if stored is None:
            finish(uow, scope=scope, key="same", status_code=200, body=scope.encode())
        return stored

    assert db.transact(lambda uow: store(uow, "usr_a")) is None
    assert db.transact(lambda uow: store(uow, "usr_b")) is None
    assert db.transact(lambda uow: store(uow, "usr_a")) == StoredResponse(200, b"usr_a")


def test_same_key_with_a_different_body_is_refused(db: Database) -> None:
    bank, alice = _accounts(db)
    _top_up(db, bank, alice, key="k-1", body=b'{"amount":500}')
    with pytest.raises(IdempotencyKeyReused) as caught:
        _top_up(db, bank, alice, key="k-1", body=b'{"amount":900}')
    assert caught.value.code == "idempotency_key_reused"
    assert caught.value.status == 422
    assert _balance(db, alice) == 500
    assert_ledger_clean(db)


def test_a_failed_request_leaves_no_key_behind(db: Database) -> None:
    def failing(uow: UnitOfWork) -> None:
        assert begin(uow, scope=SCOPE, key="k-f", request_hash="h") is None
        raise RuntimeError("use case failed")

    with pytest.raises(RuntimeError):
        db.transact(failing)
    # The key rolled back with the effects: the retry runs for real.
    assert db.transact(lambda uow: begin(uow, scope=SCOPE, key="k-f", request_hash="h")) is None


def test_finish_without_begin_is_a_bug(db: Database) -> None:
    with pytest.raises(RuntimeError, match="without begin"):
        db.transact(lambda uow: finish(uow, scope=SCOPE, key="nope", status_code=200, body=b""))


def test_purge_expired_keys(db: Database) -> None:
    db.transact(lambda uow: begin(uow, scope=SCOPE, key="old", request_hash="h"))
    with db.uow(readonly=True) as uow:
        created = uow.session.execute(
            text("SELECT created_at FROM platform_idempotency_keys WHERE key = 'old'")
        ).scalar_one()
    one_day = 24 * 3600 * 1_000_000
    assert db.transact(lambda uow: idempotency.purge_expired(uow, now=created + one_day)) == 0
    assert db.transact(lambda uow: idempotency.purge_expired(uow, now=created + one_day + 1)) == 1


def test_concurrent_identical_requests_take_effect_once(db: Database) -> None:
    bank, alice = _accounts(db)
    threads = 8
    barrier = threading.Barrier(threads)

    def client(_: int) -> StoredResponse:
        barrier.wait()
        return _top_up(db, bank, alice, key="k-race", body=b'{"amount":700}', hold_seconds=0.3)

    with ThreadPoolExecutor(threads) as pool:
        responses = list(pool.map(client, range(threads)))
    assert len(set(responses)) == 1  # every client got the same (first) response
    assert responses[0].status_code == 201
    assert _balance(db, alice) == 700
    assert _transfer_count(db) == 1
    assert_ledger_clean(db)
