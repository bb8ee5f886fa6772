"""The message centre over the API (SQLite and PostgreSQL): messages appear with the red
packets, splits, payment-code charges and sign-ins that raise them, link to their objects,
count as unread until read, and stay their owner's (another resident's id is 404)."""

from __future__ import annotations

import time
import uuid

from fastapi.testclient import TestClient

from citywallet.merchant import paycode
from citywallet.runtime import Runtime
from tests.ledger_checks import assert_ledger_clean
from tests.merchant_support import PIN, ShopOwner, fund
from tests.wallet_support import PASSWORD, Person


def _messages(person: Person, **params: object) -> dict:  # type: ignore[type-arg]
    listed = person.get("/v1/messages", **params)
    assert listed.status_code == 200, listed.text
    body: dict = listed.json()  # type: ignore[type-arg]
    return body


def _unread(person: Person) -> int:
    counted = person.get("/v1/messages/unread-count")
    assert counted.status_code == 200, counted.text
    return int(counted.json()["unread"])


def test_red_packets_and_splits_leave_messages(client: TestClient, runtime: Runtime) -> None:
    alice, bob, carol = Person(client, 1), Person(client, 2), Person(client, 3)
    fund(alice, 500_00)
    single = alice.money("/v1/redpackets", {"to": bob.phone, "amount": 8_88, "pin": PIN})
    group = alice.post(
        "/v1/redpacket-groups", {"name": "家人", "members": [bob.phone, carol.phone]}
    )
    assert group.status_code == 201, group.text
    lucky = alice.money(
        "/v1/redpackets",
        {"group_id": group.json()["id"], "amount": 20_00, "shares": 2, "pin": PIN},
    )
    split = alice.post(
        "/v1/wallet/splits",
        {
            "total": 90_00,
            "shares": [{"to": alice.user_id}, {"to": bob.user_id}, {"to": carol.phone}],
        },
    )
    assert split.status_code == 201, split.text

    mine = _messages(bob)
    assert mine["unread"] == 3
    assert [(m["kind"], m["object"]["id"]) for m in mine["items"]] == [
        ("split_requested", split.json()["id"]),
        ("redpacket_received", lucky["id"]),
        ("redpacket_received", single["id"]),
    ]
    asked, _, got = mine["items"]
    assert asked["link"] == f"/app/splits/{split.json()['id']}"
    assert asked["params"]["amount"] == 30_00
    assert got["object"]["type"] == "redpacket"
    assert got["link"] == f"/app/redpackets/{single['id']}"
    assert got["params"]["amount"] == 8_88
    assert got["read"] is False
    assert _unread(carol) == 2
    assert _unread(alice) == 0  # the sender and the split's creator are not told

    # another resident's message: 404, and nothing changes
    stranger = carol.post(f"/v1/messages/{got['id']}/read")
    assert (stranger.status_code, stranger.json()["code"]) == (404, "message_not_found")
    assert stranger.headers["content-type"].startswith("application/problem+json")
    assert _unread(bob) == 3

    read = bob.post(f"/v1/messages/{got['id']}/read")
    assert read.status_code == 200, read.text
    assert read.json()["read"] is True
    assert _unread(bob) == 2
    assert [m["id"] for m in _messages(bob, unread="true")["items"]] == [
        asked["id"],
        mine["items"][1]["id"],
    ]
    page = _messages(bob, limit=2)
    assert page["next_cursor"]
    rest = _messages(bob, limit=2, cursor=page["next_cursor"])
    assert [m["id"] for m in page["items"] + rest["items"]] == [m["id"] for m in mine["items"]]

    everything = bob.post("/v1/messages/read-all")
    assert everything.json() == {"marked": 2}
    assert _unread(bob) == 0
    assert _unread(carol) == 2
    assert_ledger_clean(runtime.db)


def test_payment_code_charges_waiting_and_refused(client: TestClient, runtime: Runtime) -> None:
    shop = ShopOwner(client, runtime, 1)
    alice = Person(client, 2)
    fund(alice, 1_000_00)
    device = alice.post("/v1/paycode/devices", {"label": "phone"}).json()
    secret, slot = device["secret"], device["slot"]
    step = int(time.time() // paycode.STEP_SECONDS)

    def charge(offset: int, amount: int, no: str):  # type: ignore[no-untyped-def]
        code = paycode.generate(secret, slot, (step + offset) * paycode.STEP_SECONDS)
        return shop.api.post(
            "/v1/merchant/payments/code", {"code": code, "amount": amount, "out_trade_no": no}
        )

    assert alice.get("/v1/messages/state").json() == {"unread": 0, "charges": []}
    large = charge(0, 800_00, "POS-000001")  # above the password-free limit
    assert large.json()["status"] == "awaiting_confirmation", large.text
    order_id = large.json()["id"]
    [waiting] = _messages(alice)["items"]
    assert (waiting["kind"], waiting["object"]) == (
        "charge_waiting",
        {"type": "order", "id": order_id},
    )
    assert waiting["link"] == f"/app/paycode/confirm/{order_id}"
    assert waiting["params"]["amount"] == 800_00
    live = alice.get("/v1/messages/state").json()
    assert live["unread"] == 1
    assert [(c["order_id"], c["amount"], c["link"]) for c in live["charges"]] == [
        (order_id, 800_00, f"/app/paycode/confirm/{order_id}")
    ]
    confirmed = alice.post(f"/v1/payments/{order_id}/confirm", {"pin": PIN}, key=str(uuid.uuid4()))
    assert confirmed.status_code == 200, confirmed.text
    assert alice.get("/v1/messages/state").json()["charges"] == []

    # a charge the balance cannot cover is refused, and the resident is told
    refused = charge(1, 300_00, "POS-000002")
    assert (refused.status_code, refused.json()["reason"]) == (402, "insufficient_balance")
    newest = _messages(alice)["items"][0]
    assert newest["kind"] == "payment_refused"
    assert newest["object"]["type"] == "merchant"
    assert (newest["params"]["amount"], newest["params"]["reason"]) == (
        300_00,
        "insufficient_balance",
    )
    assert alice.wallet()["balance"] == 1_000_00 - 800_00
    assert_ledger_clean(runtime.db)


def test_a_sign_in_from_a_new_device_is_a_message(client: TestClient) -> None:
    alice = Person(client, 1)

    def login(agent: str) -> None:
        done = client.post(
            "/v1/auth/login",
            json={"phone": alice.phone, "password": PASSWORD},
            headers={"User-Agent": agent},
        )
        assert done.status_code in (200, 201), done.text

    phone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)"
    login(phone)
    [message] = _messages(alice)["items"]
    assert message["kind"] == "device_signin"
    assert message["params"]["device"] == "iPhone"
    assert message["link"] == "/app/me/devices"
    login(phone)  # the same device again: nothing new
    assert _unread(alice) == 1
    login("Mozilla/5.0 (Linux; Android 14)")
    assert _unread(alice) == 2


def test_messages_need_a_session(client: TestClient) -> None:
    for path in ("/v1/messages", "/v1/messages/unread-count", "/v1/messages/state"):
        assert client.get(path).status_code == 401
    assert client.post("/v1/messages/read-all").status_code == 401
