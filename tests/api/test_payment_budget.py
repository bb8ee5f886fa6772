"""The payments' transaction and statement budget (issue 13), counted on SQLite and
PostgreSQL through the real HTTP API: a count, never a timing (tests/statement_count.py).

A successful scan payment (dynamic or static code) or P2P transfer is **one** write
transaction of at most ``BUDGET`` statements: the idempotency key claimed, the payer (and
payee) read with the PIN state and the wallets locked, the order moved to paid, the limit
usage upsert, the ledger's account lock and write, the history line(s), the response stored.
PostgreSQL writes the ledger in one statement, SQLite in two: its budget is one more. The
common case is measured: a payer without restricted money, a merchant without a webhook
URL, caches warm (the merchant's facts and the QR key are read once per process).

A wrong PIN rolls the payment back (nothing of it is written) and adds **one** small write
transaction that counts the try. A replay of the same ``Idempotency-Key`` writes nothing.
Authentication adds at most one read-only transaction (none when its cache is warm).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from citywallet.merchant import paycode
from citywallet.platform.db import Database
from citywallet.runtime import Runtime
from tests.ledger_checks import assert_ledger_clean
from tests.merchant_support import PIN, ShopOwner, fund
from tests.statement_count import Tally, counted
from tests.wallet_support import Person

BUDGET = {"postgresql": 8, "sqlite": 9}
AUTH_READS = 1


@dataclass
class World:
    shop: ShopOwner
    alice: Person
    bob: Person


@pytest.fixture
def world(client: TestClient, runtime: Runtime) -> World:
    shop = ShopOwner(client, runtime, 1)
    alice, bob = Person(client, 2), Person(client, 3)
    fund(alice, 1_000_00)
    fund(bob, 1_00)  # opens bob's wallet: a first payment to a new wallet costs more
    return World(shop, alice, bob)


def _post(db: Database, person: Person, path: str, body: dict[str, object], key: str):  # type: ignore[no-untyped-def]
    with counted(db) as tally:
        response = person.post(path, body, key=key)
    return tally, response


def _one_payment(tally: Tally, dialect: str) -> None:
    assert len(tally.read) <= AUTH_READS, [t.statements for t in tally.read]
    [write] = tally.write
    assert len(write.statements) <= BUDGET[dialect], "\n".join(write.statements)


def _scan(world: World, payload: str, **extra: object) -> dict[str, object]:
    return {"payload": payload, "pin": PIN, **extra}


def test_scan_payments_are_one_transaction_within_budget(
    world: World, runtime: Runtime, db: Database
) -> None:
    shop, alice = world.shop, world.alice
    first = shop.order(10_00)  # warms the merchant's cached facts and the QR key
    warm = alice.post("/v1/payments/scan", _scan(world, first["qr_payload"]), key="w1")
    assert warm.status_code == 201, warm.text

    order = shop.order(12_34)
    tally, paid = _post(db, alice, "/v1/payments/scan", _scan(world, order["qr_payload"]), "k1")
    assert paid.status_code == 201, paid.text
    assert paid.json()["status"] == "paid"
    _one_payment(tally, db.dialect)

    store = alice.client.get(
        f"/v1/merchants/{shop.merchant_id}/stores/{shop.store_id}/code",
        headers=shop.person.headers,
    )
    assert store.status_code == 200, store.text
    payload = store.json()["payload"]
    tally, static = _post(db, alice, "/v1/payments/scan", _scan(world, payload, amount=5_00), "k2")
    assert static.status_code == 201, static.text
    _one_payment(tally, db.dialect)

    tally, again = _post(db, alice, "/v1/payments/scan", _scan(world, order["qr_payload"]), "k1")
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == paid.json()
    assert all(
        not s.lstrip().upper().startswith(("UPDATE", "DELETE"))
        for t in tally.write
        for s in t.statements
    )
    assert alice.wallet()["balance"] == 1_000_00 - 10_00 - 12_34 - 5_00
    assert_ledger_clean(db)


def test_a_transfer_is_one_transaction_within_budget(world: World, db: Database) -> None:
    alice, bob = world.alice, world.bob
    body = {"to": bob.phone, "amount": 3_00, "pin": PIN, "note": "午饭"}
    tally, sent = _post(db, alice, "/v1/wallet/transfers", body, str(uuid.uuid4()))
    assert sent.status_code == 201, sent.text
    _one_payment(tally, db.dialect)
    assert bob.wallet()["balance"] == 1_00 + 3_00
    assert_ledger_clean(db)


def test_a_payment_code_charge_is_one_transaction_within_budget(world: World, db: Database) -> None:
    alice, shop = world.alice, world.shop
    device = alice.post("/v1/paycode/devices", {"label": "phone"}).json()
    secret, slot = device["secret"], device["slot"]

    def charge(step: int, amount: int, no: str):  # type: ignore[no-untyped-def]
        code = paycode.generate(secret, slot, step * paycode.STEP_SECONDS)
        body = {"code": code, "amount": amount, "out_trade_no": no}
        with counted(db) as tally:
            response = shop.api.post("/v1/merchant/payments/code", body)
        return tally, response

    step = int(time.time() // paycode.STEP_SECONDS)
    warm = charge(step - 1, 1_00, "POS-WARM-1")[1]  # warms the key, device, merchant caches
    assert warm.json()["status"] == "paid", warm.text
    tally, paid = charge(step, 2_50, "POS-000001")
    assert paid.status_code == 200, paid.text
    assert paid.json()["status"] == "paid"
    assert tally.read == [], [t.statements for t in tally.read]
    [write] = tally.write
    assert len(write.statements) <= BUDGET[db.dialect], "\n".join(write.statements)

    tally, retry = charge(step, 2_50, "POS-000001")  # the POS lost the answer
    assert retry.json()["id"] == paid.json()["id"]
    tally, used = charge(step, 2_50, "POS-000002")  # the same code again
    assert (used.status_code, used.json()["reason"]) == (402, "paycode_used")
    assert alice.wallet()["balance"] == 1_000_00 - 1_00 - 2_50
    assert_ledger_clean(db)


def test_a_wrong_pin_rolls_back_and_is_counted_in_one_small_transaction(
    world: World, db: Database
) -> None:
    alice, bob, shop = world.alice, world.bob, world.shop
    order = shop.order(8_00)
    cases = [
        ("/v1/payments/scan", {"payload": order["qr_payload"], "pin": "000000"}),
        ("/v1/wallet/transfers", {"to": bob.phone, "amount": 1_00, "pin": "000000"}),
    ]
    for n, (path, body) in enumerate(cases):
        tally, refused = _post(db, alice, path, body, str(uuid.uuid4()))
        assert refused.status_code == 403, refused.text
        assert refused.json()["code"] == "pin_incorrect"
        assert refused.json()["attempts_left"] == 4 - n
        _payment, counting = tally.write  # the payment (rolled back), then the count
        assert len(counting.statements) <= 3, counting.statements
    assert alice.wallet()["balance"] == 1_000_00
    assert shop.api.get(f"/v1/merchant/orders/{order['id']}").json()["status"] == "created"
    history = alice.get("/v1/wallet/transactions").json()["items"]
    assert [h["kind"] for h in history] == ["topup"]
    assert_ledger_clean(db)
