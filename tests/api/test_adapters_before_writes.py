"""A request that needs an outside service that is not configured (production without an
SMS gateway or bank) answers 503 ``adapter_unavailable`` before anything is written
(issue 12, item 3)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response
from sqlalchemy import text

from citywallet.api.app import create_app
from citywallet.identity.keys import install_encryptor
from citywallet.platform.config import Settings
from citywallet.platform.db import Database
from citywallet.runtime import Runtime
from tests.identity_support import sign_up, test_settings
from tests.ledger_checks import assert_ledger_clean, test_encryptor

TABLES = (
    "identity_sms_codes",
    "platform_outbox",
    "platform_rate_limits",
    "identity_payment_pins",
    "platform_idempotency_keys",
    "wallet_fundings",
    "ledger_transfers",
)


@pytest.fixture
def production(db: Database, tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """A production-mode app with no SMS gateway and no bank, and a resident's bearer token."""
    encryptor = test_encryptor()
    install_encryptor(encryptor)
    signed = sign_up(db, test_settings(tmp_path, db), encryptor, "13800138000")
    db.transact(lambda uow: uow.session.execute(text("DELETE FROM platform_rate_limits")))
    settings = Settings(var_dir=tmp_path, database_url=db.url, sandbox=False)
    runtime = Runtime(settings, db, encryptor)
    with TestClient(create_app(runtime), raise_server_exceptions=False) as client:
        yield client, {"Authorization": f"Bearer {signed.session.token}"}


def _rows(db: Database) -> dict[str, int]:
    with db.engine.connect() as conn:
        return {
            t: int(conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()) for t in TABLES
        }


def _unavailable(response: Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "adapter_unavailable"


def test_an_sms_code_without_a_gateway_is_503_and_nothing_is_written(
    production: tuple[TestClient, dict[str, str]], db: Database
) -> None:
    client, bearer = production
    before = _rows(db)
    _unavailable(client.post("/v1/auth/sms-codes", json={"phone": "13912345678"}))
    _unavailable(client.post("/v1/me/payment-pin/reset-code", headers=bearer))
    assert _rows(db) == before


def test_a_top_up_without_a_bank_is_503_before_the_pin_is_checked(
    production: tuple[TestClient, dict[str, str]], db: Database
) -> None:
    client, bearer = production
    db.transact(
        lambda uow: uow.session.execute(
            text(
                "INSERT INTO identity_payment_pins (user_id, pin_hash, key_id, failed_attempts, "
                "updated_at) SELECT id, 'x', 't1', 0, 0 FROM identity_users"
            )
        )
    )
    before = _rows(db)
    body = {"card_id": "card_x", "amount": 100, "currency": "CNY", "pin": "000000"}
    headers = {**bearer, "Idempotency-Key": "k-topup-1"}
    _unavailable(client.post("/v1/wallet/topups", json=body, headers=headers))
    assert _rows(db) == before
    with db.engine.connect() as conn:  # the wrong PIN was never tried
        assert conn.execute(text("SELECT failed_attempts FROM identity_payment_pins")).scalar() == 0
    assert_ledger_clean(db)
