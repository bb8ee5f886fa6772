"""The API before a transfer: the payee's masked name, recent recipients, the receive code
(收钱码) and reading a scanned one; a receive code paid through ``POST /v1/wallet/transfers``
moves exactly its amount from the payer to the code's owner."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response

from citywallet.platform.db import Database
from citywallet.runtime import Runtime
from citywallet.wallet import receive_code
from tests.ledger_checks import assert_ledger_clean, test_encryptor
from tests.wallet_support import PIN, Person, balance, wallet_settings


@pytest.fixture
def runtime(db: Database, tmp_path: Path) -> Runtime:
    return Runtime(wallet_settings(tmp_path, db), db, test_encryptor())


def _problem(response: Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code


def _ok(response: Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_a_scanned_receive_code_pays_its_owner_exactly(
    client: TestClient, runtime: Runtime
) -> None:
    payer, payee = Person(client, 61), Person(client, 62)
    card = payer.card_id
    payer.money("/v1/wallet/topups", {"card_id": card, "amount": 10_000, "pin": PIN})

    mine = _ok(payee.get("/v1/wallet/receive-code", amount=2_345))
    assert mine["amount"] == 2_345
    assert receive_code.parse(mine["payload"]) == receive_code.ReceiveCode(payee.user_id, 2_345)
    plain = _ok(payee.get("/v1/wallet/receive-code"))
    assert plain["amount"] is None

    scanned = _ok(payer.get("/v1/wallet/receive-codes/scanned", payload=mine["payload"]))
    assert scanned["amount"] == 2_345
    assert scanned["recipient"] == {
        "user_id": payee.user_id,
        "masked_name": "**丰",
        "phone_masked": "139****0062",
    }
    sent = payer.money(
        "/v1/wallet/transfers",
        {"to": scanned["recipient"]["user_id"], "amount": scanned["amount"], "pin": PIN},
    )
    assert sent["to_user_id"] == payee.user_id
    assert balance(runtime.db, payee.user_id)[0] == 2_345
    assert balance(runtime.db, payer.user_id)[0] == 10_000 - 2_345

    recent = _ok(payer.get("/v1/wallet/transfers/recent-recipients"))["data"]
    assert [r["user_id"] for r in recent] == [payee.user_id]
    assert recent[0]["label"] == "**丰 (139****0062)"
    assert _ok(payee.get("/v1/wallet/transfers/recent-recipients"))["data"] == []
    assert_ledger_clean(runtime.db)


def test_the_recipient_before_the_pin_and_refusals(client: TestClient, runtime: Runtime) -> None:
    payer, payee = Person(client, 63, card_ending=None), Person(client, 64, card_ending=None)
    found = _ok(payer.get("/v1/wallet/transfers/recipient", to=payee.phone))
    assert (found["user_id"], found["masked_name"]) == (payee.user_id, "**丰")
    assert _ok(payer.get("/v1/wallet/transfers/recipient", to=payee.user_id)) == found
    _problem(payer.get("/v1/wallet/transfers/recipient", to="13900009999"), 404,
             "recipient_not_found")  # fmt: skip
    _problem(payer.get("/v1/wallet/transfers/recipient", to=payer.phone), 422, "cannot_pay_self")
    own = _ok(payer.get("/v1/wallet/receive-code"))["payload"]
    _problem(payer.get("/v1/wallet/receive-codes/scanned", payload=own), 422, "cannot_pay_self")
    tampered = own[:-4] + ("0000" if own[-4:] != "0000" else "0001")
    _problem(payer.get("/v1/wallet/receive-codes/scanned", payload=tampered), 422,
             "qr_crc_mismatch")  # fmt: skip
    _problem(payer.get("/v1/wallet/receive-codes/scanned", payload="hello"), 422, "qr_malformed")
    _problem(payer.get("/v1/wallet/receive-code", amount=0), 422, "validation_failed")
    anonymous = client.get("/v1/wallet/receive-code")
    assert anonymous.status_code == 401
    assert balance(runtime.db, payee.user_id)[0] == 0
    key = str(uuid.uuid4())  # nothing above moved money; a transfer still needs its PIN
    wrong = payer.post("/v1/wallet/transfers", {"to": payee.user_id, "amount": 1, "pin": "111111"},
                       key=key)  # fmt: skip
    assert wrong.status_code in (403, 409)
