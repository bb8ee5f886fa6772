"""Passkeys through the API (issue 15): register with the PIN, sign in, pay a static code
and send a transfer confirmed by a passkey whose challenge is bound to the payment; a
captured assertion replayed for another amount or payee is refused and moves nothing;
step-up asks for a second factor above the thresholds. On SQLite and PostgreSQL."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from citywallet.api.app import create_app
from citywallet.merchant import paycode
from citywallet.platform.config import Settings
from citywallet.platform.db import Database
from citywallet.runtime import Runtime
from tests.ledger_checks import assert_ledger_clean, test_encryptor
from tests.merchant_support import ShopOwner, fund
from tests.passkey_support import SoftAuthenticator, b64url
from tests.wallet_support import PIN, Person, balance

STEP_UP = 300_00
NEW_PAYEE = 100_00


@pytest.fixture
def runtime(db: Database, tmp_path: Path) -> Runtime:
    settings = Settings(
        var_dir=tmp_path, database_url=db.url, step_up_amount=STEP_UP,
        step_up_new_payee_amount=NEW_PAYEE, sms_send_per_minute=10,
    )  # fmt: skip
    return Runtime(settings, db, test_encryptor())


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime), raise_server_exceptions=False) as test_client:
        yield test_client


def register(person: Person, device: SoftAuthenticator, name: str = "我的手机") -> dict[str, Any]:
    options = person.post("/v1/passkeys/registration-options")
    assert options.status_code == 200, options.text
    made = person.post(
        "/v1/passkeys", {"credential": device.create(options.json()), "name": name, "pin": PIN}
    )
    assert made.status_code == 201, made.text
    body: dict[str, Any] = made.json()
    return body


def pay_options(person: Person, intent: dict[str, Any]) -> dict[str, Any]:
    answer = person.post("/v1/passkeys/payment-options", intent)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def static_payload(client: TestClient, shop: ShopOwner) -> str:
    store = client.get(
        f"/v1/merchants/{shop.merchant_id}/stores/{shop.store_id}/code",
        headers=shop.person.headers,
    )
    assert store.status_code == 200, store.text
    payload: str = store.json()["payload"]
    return payload


def test_register_list_rename_remove(client: TestClient) -> None:
    alice = Person(client, 1)
    device = SoftAuthenticator()
    options = alice.post("/v1/passkeys/registration-options").json()
    assert options["authenticatorSelection"]["userVerification"] == "required"
    assert options["authenticatorSelection"]["residentKey"] == "required"
    wrong = alice.post(
        "/v1/passkeys", {"credential": device.create(options), "name": "x", "pin": "135790"}
    )
    assert wrong.status_code == 403
    assert wrong.json()["code"] == "pin_incorrect"
    assert alice.get("/v1/passkeys").json()["items"] == []

    made = register(alice, device)
    assert made["name"] == "我的手机"
    assert made["id"].startswith("pk_")
    again = alice.post("/v1/passkeys/registration-options").json()
    assert [c["id"] for c in again["excludeCredentials"]] == [b64url(device.credential_id)]

    renamed = alice.client.patch(
        f"/v1/passkeys/{made['id']}", json={"name": "工作手机"}, headers=alice.headers
    )
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "工作手机"
    bob = Person(client, 2)
    theirs = bob.client.delete(f"/v1/passkeys/{made['id']}", headers=bob.headers)
    assert theirs.status_code == 404
    assert theirs.json()["code"] == "passkey_not_found"
    gone = alice.client.delete(f"/v1/passkeys/{made['id']}", headers=alice.headers)
    assert gone.status_code == 204
    assert alice.get("/v1/passkeys").json()["items"] == []


def test_sign_in_with_a_passkey_once(client: TestClient) -> None:
    alice = Person(client, 1)
    device = SoftAuthenticator()
    register(alice, device)
    options = client.post("/v1/auth/passkey/options").json()
    assert options["userVerification"] == "required"
    assertion = device.get(options)
    signed = client.post("/v1/auth/passkey", json={"credential": assertion})
    assert signed.status_code == 200, signed.text
    assert signed.json()["user"]["id"] == alice.user_id
    token = signed.json()["session"]["token"]
    me = client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    assert me.json()["id"] == alice.user_id

    replayed = client.post("/v1/auth/passkey", json={"credential": assertion})
    assert replayed.status_code == 403
    assert replayed.json()["code"] == "passkey_challenge_invalid"

    unverified = device.get(client.post("/v1/auth/passkey/options").json(), verified=False)
    refused = client.post("/v1/auth/passkey", json={"credential": unverified})
    assert refused.status_code == 403
    assert refused.json()["code"] == "passkey_invalid"

    stranger = SoftAuthenticator()  # a passkey this site never registered
    stranger.user_handle = alice.user_id.encode()
    unknown = client.post(
        "/v1/auth/passkey",
        json={"credential": stranger.get(client.post("/v1/auth/passkey/options").json())},
    )
    assert unknown.status_code == 403
    assert unknown.json()["code"] == "passkey_invalid"


def test_pay_a_static_code_by_passkey_and_a_replay_for_another_amount_is_refused(
    client: TestClient, runtime: Runtime, db: Database
) -> None:
    shop = ShopOwner(client, runtime, 1)
    alice = Person(client, 2)
    fund(alice, 200_00)
    device = SoftAuthenticator()
    register(alice, device)
    payload = static_payload(client, shop)

    options = pay_options(alice, {"kind": "scan", "payload": payload, "amount": 5_00})
    assert [c["id"] for c in options["allowCredentials"]] == [b64url(device.credential_id)]
    assertion = device.get(options)
    before = balance(db, alice.user_id)[0]

    other = alice.post(
        "/v1/payments/scan",
        {"payload": payload, "amount": 50_00, "passkey": assertion},
        key=str(uuid.uuid4()),
    )
    assert other.status_code == 403, other.text
    assert other.json()["code"] == "passkey_intent_mismatch"
    assert balance(db, alice.user_id)[0] == before  # nothing moved

    paid = alice.post(
        "/v1/payments/scan",
        {"payload": payload, "amount": 5_00, "passkey": assertion},
        key=str(uuid.uuid4()),
    )
    assert paid.status_code == 201, paid.text
    assert paid.json()["status"] == "paid"
    assert paid.json()["amount"] == 5_00
    assert balance(db, alice.user_id)[0] == before - 5_00

    replay = alice.post(
        "/v1/payments/scan",
        {"payload": payload, "amount": 5_00, "passkey": assertion},
        key=str(uuid.uuid4()),
    )
    assert replay.status_code == 403
    assert replay.json()["code"] == "passkey_challenge_invalid"
    assert balance(db, alice.user_id)[0] == before - 5_00
    assert_ledger_clean(db)


def test_transfer_by_passkey_is_bound_to_payee_and_amount(client: TestClient, db: Database) -> None:
    alice, bob, carol = Person(client, 1), Person(client, 2), Person(client, 3)
    fund(alice, 100_00)
    fund(bob, 1_00)
    fund(carol, 1_00)
    device = SoftAuthenticator()
    register(alice, device)
    intent = {"kind": "transfer", "to": bob.user_id, "amount": 20_00}
    assertion = device.get(pay_options(alice, intent))
    for body in (
        {"to": carol.user_id, "amount": 20_00},  # another payee
        {"to": bob.user_id, "amount": 90_00},  # another amount
    ):
        refused = alice.post(
            "/v1/wallet/transfers", {**body, "passkey": assertion}, key=str(uuid.uuid4())
        )
        assert refused.status_code == 403
        assert refused.json()["code"] == "passkey_intent_mismatch"
    assert balance(db, alice.user_id)[0] == 100_00
    assert balance(db, carol.user_id)[0] == 1_00

    sent = alice.post(
        "/v1/wallet/transfers",
        {"to": bob.user_id, "amount": 20_00, "passkey": assertion},
        key=str(uuid.uuid4()),
    )
    assert sent.status_code == 201, sent.text
    assert balance(db, alice.user_id)[0] == 80_00
    assert balance(db, bob.user_id)[0] == 21_00

    # Another resident's passkey confirms nothing of alice's.
    both = alice.post(
        "/v1/wallet/transfers",
        {"to": bob.user_id, "amount": 1_00, "pin": PIN, "passkey": assertion},
        key=str(uuid.uuid4()),
    )
    assert both.status_code == 422  # the PIN or a passkey, not both
    assert_ledger_clean(db)


def _sms_code(client: TestClient, person: Person) -> str:
    sent = person.post("/v1/step-up/sms-codes")
    assert sent.status_code == 202, sent.text
    text = client.get("/v1/dev/sms", params={"phone": person.phone}).json()["items"][0]["text"]
    found = re.search(r"\d{6}", text)
    assert found
    return found.group()


def test_step_up_asks_for_a_second_factor_above_the_thresholds(
    client: TestClient, db: Database
) -> None:
    alice, bob = Person(client, 1), Person(client, 2)
    fund(alice, 1_000_00)
    fund(bob, 1_00)
    transfer = {"to": bob.user_id, "pin": PIN}

    small = alice.post("/v1/wallet/transfers", {**transfer, "amount": NEW_PAYEE - 1}, key="a")
    assert small.status_code == 201, small.text  # below every threshold: the PIN alone

    large = alice.post("/v1/wallet/transfers", {**transfer, "amount": STEP_UP}, key="b")
    assert large.status_code == 403, large.text
    problem = large.json()
    assert problem["code"] == "step_up_required"
    assert problem["factors"] == ["sms"]
    assert problem["reasons"] == ["amount"]
    assert balance(db, alice.user_id)[0] == 1_000_00 - (NEW_PAYEE - 1)

    code = _sms_code(client, alice)
    wrong = alice.post(
        "/v1/wallet/transfers", {**transfer, "amount": STEP_UP, "sms_code": "000000"}, key="c"
    )
    assert wrong.status_code == 422
    assert wrong.json()["code"] == "sms_code_invalid"
    done = alice.post(
        "/v1/wallet/transfers", {**transfer, "amount": STEP_UP, "sms_code": code}, key="d"
    )
    assert done.status_code == 201, done.text
    used = alice.post(
        "/v1/wallet/transfers", {**transfer, "amount": STEP_UP, "sms_code": code}, key="e"
    )
    assert used.status_code == 422  # a code steps up one payment
    assert balance(db, alice.user_id)[0] == 1_000_00 - (NEW_PAYEE - 1) - STEP_UP

    device = SoftAuthenticator()
    register(alice, device)
    listed = alice.post("/v1/wallet/transfers", {**transfer, "amount": STEP_UP}, key="f")
    assert listed.json()["factors"] == ["passkey", "sms"]
    intent = {"kind": "transfer", "to": bob.user_id, "amount": STEP_UP}
    by_passkey = alice.post(
        "/v1/wallet/transfers",
        {"to": bob.user_id, "amount": STEP_UP, "passkey": device.get(pay_options(alice, intent))},
        key="g",
    )
    assert by_passkey.status_code == 201, by_passkey.text  # a passkey is two factors
    assert_ledger_clean(db)


def test_a_new_payee_with_a_large_amount_steps_up(
    client: TestClient, runtime: Runtime, db: Database
) -> None:
    shop = ShopOwner(client, runtime, 1)
    alice, carol = Person(client, 2), Person(client, 3)
    fund(alice, 1_000_00)
    fund(carol, 1_00)
    new = alice.post(
        "/v1/wallet/transfers", {"to": carol.user_id, "amount": NEW_PAYEE, "pin": PIN}, key="a"
    )
    assert new.status_code == 403
    assert new.json()["reasons"] == ["new_payee"]
    first = alice.post(
        "/v1/wallet/transfers", {"to": carol.user_id, "amount": 1_00, "pin": PIN}, key="b"
    )
    assert first.status_code == 201, first.text
    known = alice.post(
        "/v1/wallet/transfers", {"to": carol.user_id, "amount": NEW_PAYEE, "pin": PIN}, key="c"
    )
    assert known.status_code == 201, known.text  # paid before: no longer new

    payload = static_payload(client, shop)
    scan = {"payload": payload, "amount": NEW_PAYEE, "pin": PIN}
    refused = alice.post("/v1/payments/scan", scan, key="d")
    assert refused.status_code == 403
    assert refused.json()["reasons"] == ["new_payee"]
    small = alice.post("/v1/payments/scan", {**scan, "amount": 10_00}, key="e")
    assert small.status_code == 201, small.text
    again = alice.post("/v1/payments/scan", scan, key="f")
    assert again.status_code == 201, again.text
    assert balance(db, alice.user_id)[0] == 1_000_00 - 1_00 - NEW_PAYEE - 10_00 - NEW_PAYEE
    assert_ledger_clean(db)


def test_a_payment_code_charge_confirmed_by_passkey_is_bound_to_its_order(
    client: TestClient, runtime: Runtime, db: Database
) -> None:
    shop = ShopOwner(client, runtime, 1)
    alice = Person(client, 2)
    fund(alice, 2000_00)
    device = SoftAuthenticator()
    register(alice, device)
    made = alice.post("/v1/paycode/devices", {"label": "phone"}).json()
    step = int(time.time() // paycode.STEP_SECONDS)

    def charge(slot_step: int, amount: int, no: str) -> str:
        code = paycode.generate(made["secret"], made["slot"], slot_step * paycode.STEP_SECONDS)
        answer = shop.api.post(
            "/v1/merchant/payments/code", {"code": code, "amount": amount, "out_trade_no": no}
        )
        assert answer.json()["status"] == "awaiting_confirmation", answer.text
        order_id: str = answer.json()["id"]
        return order_id

    first = charge(step, 800_00, "POS-000001")
    second = charge(step + 1, 900_00, "POS-000002")
    assertion = device.get(pay_options(alice, {"kind": "charge", "order_id": first}))
    wrong = alice.post(f"/v1/payments/{second}/confirm", {"passkey": assertion}, key="a")
    assert wrong.status_code == 403, wrong.text
    assert wrong.json()["code"] == "passkey_intent_mismatch"
    assert balance(db, alice.user_id)[0] == 2000_00
    paid = alice.post(f"/v1/payments/{first}/confirm", {"passkey": assertion}, key="b")
    assert paid.status_code == 200, paid.text
    assert paid.json()["status"] == "paid"
    assert balance(db, alice.user_id)[0] == 2000_00 - 800_00
    assert_ledger_clean(db)
