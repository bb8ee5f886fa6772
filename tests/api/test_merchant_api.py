"""Merchant payments end to end through the HTTP API (SQLite and PostgreSQL): onboarding,
signed requests, dynamic and static QR, payment codes, refunds, closing and expiry."""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient

from citywallet.merchant import emv, paycode
from citywallet.merchant.payments import close_expired_orders, qr_key
from citywallet.merchant.rules import fee_for
from citywallet.merchant.settlement import run_settlements
from citywallet.runtime import Runtime
from tests.ledger_checks import assert_ledger_clean
from tests.merchant_support import PIN, ShopOwner, application, fund
from tests.wallet_support import Person, count, platform_balance


def pay(person: Person, payload: str, amount: int | None = None, key: str | None = None):  # type: ignore[no-untyped-def]
    body: dict[str, object] = {"payload": payload, "pin": PIN}
    if amount is not None:
        body["amount"] = amount
    return person.post("/v1/payments/scan", body, key=key or str(uuid.uuid4()))


def test_onboarding_review_and_validation(client: TestClient, runtime: Runtime) -> None:
    owner = Person(client, 1)
    bad = owner.post("/v1/merchants", application(owner, uscc="91110108551385082A"))
    assert (bad.status_code, bad.json()["code"]) == (422, "invalid_uscc")
    bad_mcc = owner.post("/v1/merchants", application(owner, mcc="0001"))
    assert bad_mcc.json()["code"] == "invalid_mcc"
    no_card = owner.post("/v1/merchants", application(owner, settlement_card_id="card_nope"))
    assert no_card.json()["code"] == "card_not_found"
    private_hook = owner.post(
        "/v1/merchants", application(owner, notify_url="https://127.0.0.1/hook")
    )
    assert private_hook.json()["code"] == "notify_url_forbidden"
    assert count(runtime.db, "SELECT COUNT(*) FROM merchant_merchants") == 0

    made = owner.post("/v1/merchants", application(owner))
    assert made.status_code == 201, made.text
    merchant = made.json()
    assert merchant["status"] == "pending_review"
    assert merchant["fee_rate_bp"] == 38
    assert merchant["settle_days"] == 1
    assert merchant["settlement_card"].endswith(owner.card_number[-4:])
    again = owner.post("/v1/merchants", application(owner))
    assert again.json()["code"] == "merchant_exists"

    # a pending merchant cannot be paid
    key = owner.post(f"/v1/merchants/{merchant['id']}/api-keys", {}).json()
    assert key["secret"].startswith("cwsk_")
    stranger = Person(client, 2)
    assert stranger.get(f"/v1/merchants/{merchant['id']}").status_code == 404
    assert stranger.get(f"/v1/merchants/{merchant['id']}/balance").status_code == 404
    listed = owner.get(f"/v1/merchants/{merchant['id']}/api-keys").json()["items"]
    assert [k["id"] for k in listed] == [key["key"]["id"]]
    assert "secret" not in listed[0]


def test_dynamic_qr_payment_end_to_end(client: TestClient, runtime: Runtime) -> None:
    shop = ShopOwner(client, runtime, 1)
    alice = Person(client, 2)
    fund(alice, 100_00)
    order = shop.order(12_34, out_trade_no="ORDER-0001", description="两碗牛肉面", expires_in=600)
    assert order["status"] == "created"
    assert order["qr_payload"].startswith("000201")

    preview = alice.post("/v1/payments/scan/preview", {"payload": order["qr_payload"]})
    assert preview.status_code == 200, preview.text
    assert preview.json()["amount"] == 12_34
    assert preview.json()["kind"] == "dynamic"
    assert preview.json()["merchant_name"] == "罗湖好味道餐厅"

    key = str(uuid.uuid4())
    paid = pay(alice, order["qr_payload"], key=key)
    assert paid.status_code == 201, paid.text
    assert paid.json()["status"] == "paid"
    assert paid.json()["order_id"] == order["id"]
    assert pay(alice, order["qr_payload"], key=key).json() == paid.json()  # replay
    twice = pay(alice, order["qr_payload"])
    assert (twice.status_code, twice.json()["code"]) == (409, "order_paid")

    fee = fee_for(12_34, 38)
    assert alice.wallet()["balance"] == 100_00 - 12_34
    assert shop.balance()["receivable"] == 12_34 - fee
    assert platform_balance(runtime.db, f"{shop.merchant_id}:fees") == fee

    by_id = shop.api.get(f"/v1/merchant/orders/{order['id']}").json()
    by_no = shop.api.get("/v1/merchant/orders/by-out-trade-no/ORDER-0001").json()
    assert by_id["status"] == by_no["status"] == "paid"
    assert by_id["fee"] == fee
    assert by_id["channel"] == "dynamic_qr"
    assert by_id["qr_payload"] is None
    history = alice.get("/v1/wallet/transactions").json()["items"]
    assert history[0]["kind"] == "merchant_payment"
    assert history[0]["amount"] == 12_34
    assert_ledger_clean(runtime.db)


def test_order_numbers_are_idempotent_and_unique(client: TestClient, runtime: Runtime) -> None:
    shop = ShopOwner(client, runtime, 1)
    first = shop.api.post("/v1/merchant/orders", {"out_trade_no": "SAME-0001", "amount": 500})
    again = shop.api.post("/v1/merchant/orders", {"out_trade_no": "SAME-0001", "amount": 500})
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    other = shop.api.post("/v1/merchant/orders", {"out_trade_no": "SAME-0001", "amount": 501})
    assert (other.status_code, other.json()["code"]) == (409, "out_trade_no_exists")
    missing = shop.api.get("/v1/merchant/orders/ord_missing")
    assert (missing.status_code, missing.json()["code"]) == (404, "order_not_found")
    # another merchant cannot see it
    rival = ShopOwner(client, runtime, 2)
    hidden = rival.api.get(f"/v1/merchant/orders/{first.json()['id']}")
    assert hidden.status_code == 404


def test_static_code_with_daily_cap(client: TestClient, runtime: Runtime) -> None:
    shop = ShopOwner(client, runtime, 1)
    alice = Person(client, 2)
    fund(alice, 1000_00)
    code = shop.person.get(f"/v1/merchants/{shop.merchant_id}/stores/{shop.store_id}/code")
    payload = code.json()["payload"]
    png = shop.person.get(f"/v1/merchants/{shop.merchant_id}/stores/{shop.store_id}/code.png")
    assert png.headers["content-type"] == "image/png"
    assert png.content[:4] == b"\x89PNG"
    preview = alice.post("/v1/payments/scan/preview", {"payload": payload}).json()
    assert preview["kind"] == "static"
    assert preview["amount"] is None

    missing = pay(alice, payload)
    assert missing.json()["code"] == "amount_required"
    first = pay(alice, payload, 300_00)
    assert first.status_code == 201, first.text
    over = pay(alice, payload, 200_01)  # 500 yuan a day through static codes
    assert (over.status_code, over.json()["code"]) == (409, "static_code_limit_exceeded")
    exact = pay(alice, payload, 200_00)
    assert exact.status_code == 201
    assert alice.wallet()["balance"] == 1000_00 - 500_00
    orders = shop.api.get("/v1/merchant/orders").json()["items"]
    assert {o["channel"] for o in orders} == {"static_qr"}
    assert len(orders) == 2
    assert_ledger_clean(runtime.db)


def test_foreign_and_tampered_codes_change_nothing(client: TestClient, runtime: Runtime) -> None:
    shop = ShopOwner(client, runtime, 1)
    alice = Person(client, 2)
    fund(alice, 100_00)
    order = shop.order(50_00)
    payload = order["qr_payload"]
    broken_crc = payload[:-1] + ("0" if payload[-1] != "0" else "1")
    assert pay(alice, broken_crc).json()["code"] == "qr_crc_mismatch"
    assert pay(alice, payload[:40]).json()["code"] in {"qr_truncated", "qr_crc_mismatch"}
    assert pay(alice, "https://example.com/pay?x=1").json()["code"] == "qr_not_emv"
    # a cheaper amount with a correct CRC: the MAC catches it
    with runtime.db.uow() as uow:
        key = qr_key(uow, runtime.encryptor)
    decoded = emv.parse(payload, key=key)
    forged = emv.build(replace(decoded, amount=1), key=b"not the platform key")
    tampered = pay(alice, forged)
    assert (tampered.status_code, tampered.json()["code"]) == (422, "qr_tampered")
    assert alice.wallet()["balance"] == 100_00
    assert shop.api.get(f"/v1/merchant/orders/{order['id']}").json()["status"] == "created"
    assert_ledger_clean(runtime.db)


def test_signed_requests_are_checked(client: TestClient, runtime: Runtime) -> None:
    shop = ShopOwner(client, runtime, 1)
    body = {"out_trade_no": "SIGN-0001", "amount": 100}
    unsigned = client.post("/v1/merchant/orders", json=body)
    assert (unsigned.status_code, unsigned.json()["code"]) == (401, "signature_missing")
    stale = shop.api.post("/v1/merchant/orders", body, timestamp=int(time.time()) - 301)
    assert stale.json()["code"] == "signature_expired"
    ok = shop.api.post("/v1/merchant/orders", body, nonce="fixed-nonce-0001")
    assert ok.status_code == 201
    replay = shop.api.post("/v1/merchant/orders", body, nonce="fixed-nonce-0001")
    assert (replay.status_code, replay.json()["code"]) == (401, "nonce_reused")
    # a body changed after signing
    raw = b'{"out_trade_no": "SIGN-0002", "amount": 100}'
    header = shop.api.authorization("POST", "/v1/merchant/orders", raw)
    forged = client.post(
        "/v1/merchant/orders",
        content=raw.replace(b"100", b"999"),
        headers={"Authorization": header, "Content-Type": "application/json"},
    )
    assert (forged.status_code, forged.json()["code"]) == (401, "signature_mismatch")
    # revoked keys stop working at once
    revoked = shop.person.client.delete(
        f"/v1/merchants/{shop.merchant_id}/api-keys/{shop.api.key_id}",
        headers=shop.person.headers,
    )
    assert revoked.json()["status"] == "revoked"
    after = shop.api.get("/v1/merchant/orders")
    assert (after.status_code, after.json()["code"]) == (401, "api_key_invalid")


def test_ed25519_keys_sign_requests(client: TestClient, runtime: Runtime) -> None:
    shop = ShopOwner(client, runtime, 1, scheme="ed25519")
    made = shop.api.post("/v1/merchant/orders", {"out_trade_no": "ED-00001", "amount": 100})
    assert made.status_code == 201, made.text
    with runtime.db.uow(readonly=True) as uow:
        stored = uow.session.execute(
            __import__("sqlalchemy").text("SELECT secret_enc, public_key FROM merchant_api_keys")
        ).one()
    assert stored[0] is None
    assert stored[1]


def test_refunds_partial_full_and_idempotent(client: TestClient, runtime: Runtime) -> None:
    shop = ShopOwner(client, runtime, 1)
    alice = Person(client, 2)
    fund(alice, 500_00)
    order = shop.order(100_00)
    assert pay(alice, order["qr_payload"]).status_code == 201
    fee = fee_for(100_00, 38)
    path = f"/v1/merchant/orders/{order['id']}/refunds"
    first = shop.api.post(path, {"out_refund_no": "RF-000001", "amount": 30_00})
    assert first.status_code == 201, first.text
    again = shop.api.post(path, {"out_refund_no": "RF-000001", "amount": 30_00})
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    clash = shop.api.post(path, {"out_refund_no": "RF-000001", "amount": 31_00})
    assert clash.json()["code"] == "out_refund_no_exists"
    over = shop.api.post(path, {"out_refund_no": "RF-000002", "amount": 70_01})
    assert (over.status_code, over.json()["code"]) == (409, "refund_exceeds_paid")
    rest = shop.api.post(path, {"out_refund_no": "RF-000003", "amount": 70_00})
    assert rest.status_code == 201
    refunds = shop.api.get(path).json()["items"]
    assert sum(r["amount"] for r in refunds) == 100_00
    assert sum(r["fee_back"] for r in refunds) == fee  # the whole fee comes back
    assert alice.wallet()["balance"] == 500_00
    assert shop.balance()["receivable"] == 0
    assert platform_balance(runtime.db, f"{shop.merchant_id}:fees") == 0
    done = shop.api.get(f"/v1/merchant/orders/{order['id']}").json()
    assert (done["refunded_amount"], done["refunded_fee"]) == (100_00, fee)
    unpaid = shop.order(1_00)
    not_paid = shop.api.post(
        f"/v1/merchant/orders/{unpaid['id']}/refunds", {"out_refund_no": "RF-000004", "amount": 1}
    )
    assert not_paid.json()["code"] == "order_not_paid"
    kinds = [t["kind"] for t in alice.get("/v1/wallet/transactions").json()["items"]]
    assert kinds.count("merchant_refund") == 2
    assert_ledger_clean(runtime.db)


def test_close_and_expiry(client: TestClient, runtime: Runtime) -> None:
    shop = ShopOwner(client, runtime, 1)
    alice = Person(client, 2)
    fund(alice, 10_00)
    order = shop.order(1_00)
    closed = shop.api.post(f"/v1/merchant/orders/{order['id']}/close")
    assert closed.json()["status"] == "closed"
    assert pay(alice, order["qr_payload"]).json()["code"] == "order_closed"
    late = shop.order(2_00, expires_in=60)
    ran = runtime.db.transact(
        lambda uow: close_expired_orders(uow, now=time.time_ns() // 1000 + 61_000_000)
    )
    assert ran == 1
    assert shop.api.get(f"/v1/merchant/orders/{late['id']}").json()["status"] == "closed"
    assert alice.wallet()["balance"] == 10_00
    assert_ledger_clean(runtime.db)


def test_payment_codes(client: TestClient, runtime: Runtime) -> None:
    shop = ShopOwner(client, runtime, 1)
    alice = Person(client, 2)
    fund(alice, 2000_00)
    device = alice.post("/v1/paycode/devices", {"label": "phone"}).json()
    secret, slot = device["secret"], device["slot"]
    shown = alice.get(f"/v1/paycode/devices/{device['device']['id']}/code").json()
    assert shown["code"].startswith(paycode.PREFIX)
    assert len(shown["code"]) == 19
    svg = alice.get(shown["barcode_svg_url"])
    assert svg.headers["content-type"].startswith("image/svg+xml")

    def charge(code: str, amount: int, no: str):  # type: ignore[no-untyped-def]
        return shop.api.post(
            "/v1/merchant/payments/code", {"code": code, "amount": amount, "out_trade_no": no}
        )

    small = charge(shown["code"], 20_00, "POS-000001")
    assert small.status_code == 200, small.text
    assert small.json()["status"] == "paid"
    assert small.json()["channel"] == "paycode"
    retry = charge(shown["code"], 20_00, "POS-000001")  # the POS lost the answer
    assert retry.json()["id"] == small.json()["id"]
    reused = charge(shown["code"], 20_00, "POS-000002")
    assert (reused.status_code, reused.json()["reason"]) == (402, "paycode_used")

    # the app computes the next code offline from its secret
    step = int(time.time() // paycode.STEP_SECONDS)
    offline = paycode.generate(secret, slot, (step + 1) * paycode.STEP_SECONDS)
    large = charge(offline, 800_00, "POS-000003")  # above 500 yuan: the resident confirms
    assert large.json()["status"] == "awaiting_confirmation"
    pending = alice.get("/v1/payments/pending").json()["items"]
    assert [p["order_id"] for p in pending] == [large.json()["id"]]
    confirmed = alice.post(
        f"/v1/payments/{large.json()['id']}/confirm", {"pin": PIN}, key=str(uuid.uuid4())
    )
    assert confirmed.status_code == 200, confirmed.text
    assert shop.api.get(f"/v1/merchant/orders/{large.json()['id']}").json()["status"] == "paid"
    assert alice.wallet()["balance"] == 2000_00 - 820_00

    foreign = charge("134567890123456789", 1_00, "POS-000004")  # WeChat Pay's shape
    assert (foreign.status_code, foreign.json()["code"]) == (422, "paycode_foreign")
    wrong = paycode.generate(paycode.new_secret(), slot, time.time())
    for n in range(5):
        refused = charge(wrong, 1_00, f"POS-1000{n:02d}")
        assert refused.json()["reason"] == "paycode_invalid"
    good_now = paycode.generate(secret, slot, (step + 1) * paycode.STEP_SECONDS)
    locked = charge(good_now, 1_00, "POS-000005")
    assert locked.json()["reason"] == "paycode_locked"
    assert alice.wallet()["balance"] == 2000_00 - 820_00
    assert_ledger_clean(runtime.db)


def test_declined_and_refused_confirmation(client: TestClient, runtime: Runtime) -> None:
    shop = ShopOwner(client, runtime, 1)
    alice = Person(client, 2)
    fund(alice, 10_00)
    device = alice.post("/v1/paycode/devices", {}).json()
    code = alice.get(f"/v1/paycode/devices/{device['device']['id']}/code").json()["code"]
    poor = shop.api.post(
        "/v1/merchant/payments/code", {"code": code, "amount": 50_00, "out_trade_no": "POS-1"}
    )
    assert (poor.status_code, poor.json()["code"]) == (422, "validation_failed")
    poor = shop.api.post(
        "/v1/merchant/payments/code",
        {"code": code, "amount": 50_00, "out_trade_no": "POS-000001"},
    )
    assert (poor.status_code, poor.json()["reason"]) == (402, "insufficient_balance")
    put = alice.client.put(
        "/v1/paycode/prefs",
        json={"enabled": False, "per_payment": 0, "per_day": 0, "pin": PIN},
        headers=alice.headers,
    )
    assert put.status_code == 200
    assert put.json()["enabled"] is False
    code = alice.get(f"/v1/paycode/devices/{device['device']['id']}/code").json()["code"]
    asked = shop.api.post(
        "/v1/merchant/payments/code", {"code": code, "amount": 1_00, "out_trade_no": "POS-000002"}
    ).json()
    assert asked["status"] == "awaiting_confirmation"
    refused = alice.post(f"/v1/payments/{asked['id']}/decline")
    assert refused.status_code == 200
    order = shop.api.get(f"/v1/merchant/orders/{asked['id']}").json()
    assert (order["status"], order["decline_code"]) == ("closed", "payer_declined")
    assert alice.wallet()["balance"] == 10_00
    assert_ledger_clean(runtime.db)


def test_settlement_and_statement(client: TestClient, runtime: Runtime) -> None:
    shop = ShopOwner(client, runtime, 1)
    alice = Person(client, 2)
    fund(alice, 500_00)
    order = shop.order(100_00, out_trade_no="STMT-00001")
    assert pay(alice, order["qr_payload"]).status_code == 201
    refund = shop.api.post(
        f"/v1/merchant/orders/{order['id']}/refunds",
        {"out_refund_no": "STMT-RF-01", "amount": 30_00},
    )
    assert refund.status_code == 201, refund.text
    fee, back = fee_for(100_00, 38), refund.json()["fee_back"]
    net = 100_00 - fee - 30_00 + back
    today = datetime.now(ZoneInfo(runtime.settings.business_timezone)).date()

    csv = shop.api.get(f"/v1/merchant/statements/{today}.csv")
    assert csv.status_code == 200, csv.text
    assert csv.headers["content-type"].startswith("text/csv")
    rows = [line.split(",") for line in csv.text.strip().splitlines()]
    assert rows[0] == ["time", "type", "order_no", "refund_no", "amount", "fee", "net", "balance"]
    assert [r[1:4] for r in rows[1:]] == [
        ["payment", "STMT-00001", ""],
        ["refund", "STMT-00001", "STMT-RF-01"],
    ]
    assert rows[-1][-1] == f"{net // 100}.{net % 100:02d}"  # the closing balance

    report = run_settlements(
        runtime.db,
        bank=runtime.bank,
        settings=runtime.settings,
        encryptor=runtime.encryptor,
        today=today + timedelta(days=1),
    )
    assert (report.created, report.paid, report.amount_paid) == (1, 1, net)
    listed = shop.api.get("/v1/merchant/settlements").json()["items"]
    assert [(s["status"], s["amount"], s["business_date"]) for s in listed] == [
        ("paid", net, str(today))
    ]
    one = shop.api.get(f"/v1/merchant/settlements/{listed[0]['id']}")
    assert one.json()["bank_ref"]
    assert shop.balance() == {"currency": "CNY", "receivable": 0, "in_settlement": 0}
    rival = ShopOwner(client, runtime, 3)
    assert rival.api.get(f"/v1/merchant/settlements/{listed[0]['id']}").status_code == 404
    assert_ledger_clean(runtime.db)
