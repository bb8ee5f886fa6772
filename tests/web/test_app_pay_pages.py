"""The residents' scan-to-pay and payment-code pages (TestClient): preview, PIN, one payment
per form, field errors, photo upload decoding, payment-code refresh and the confirmation of
a charge above the password-free limit; another resident's objects answer 404."""

from __future__ import annotations

import re
import secrets

from fastapi.testclient import TestClient

from citywallet.merchant import images, paycodes
from citywallet.platform.db import Database
from citywallet.runtime import Runtime
from tests.identity_support import PASSWORD
from tests.ledger_checks import assert_ledger_clean
from tests.merchant_support import ShopOwner
from tests.redpacket_support import funded_resident
from tests.wallet_support import Resident, balance, sandbox_bank


def sign_in(client: TestClient, phone: str) -> None:
    """Log ``client`` in through the log-in page."""
    client.cookies.clear()
    form = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None
    answer = client.post(
        "/login", data={"phone": phone, "password": PASSWORD, "csrf_token": token.group(1)}
    )
    assert answer.status_code == 303, answer.text


def hidden(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found is not None, name
    return found.group(1).replace("&amp;", "&").replace("&#34;", '"').replace("&#39;", "'")


def resident(runtime: Runtime, n: int, amount: int = 100_000) -> Resident:
    return funded_resident(
        runtime.db, runtime.settings, runtime.encryptor, sandbox_bank(), n, amount
    )


def static_payload(client: TestClient, shop: ShopOwner) -> str:
    got = shop.person.get(f"/v1/merchants/{shop.merchant_id}/stores/{shop.store_id}/code")
    assert got.status_code == 200, got.text
    payload: str = got.json()["payload"]
    return payload


def test_scan_a_static_code_type_the_amount_and_pay_once(
    client: TestClient, runtime: Runtime, db: Database
) -> None:
    shop = ShopOwner(client, runtime, 1)
    payer = resident(runtime, 2)
    payload = static_payload(client, shop)
    sign_in(client, payer.phone)

    page = client.get("/app/scan")
    assert page.status_code == 200
    assert "data-scan-camera" in page.text
    assert 'action="/app/scan/image"' in page.text

    preview = client.get("/app/scan/preview", params={"payload": payload})
    assert preview.status_code == 200
    assert "罗湖好味道餐厅" in preview.text
    assert 'name="amount"' in preview.text  # static code: the resident types it
    form = {
        "csrf_token": hidden(preview.text, "csrf_token"),
        "payload": payload,
        "key": hidden(preview.text, "key"),
        "amount": "12.3a",
        "pin": "502817",
    }
    bad = client.post("/app/scan/pay", data=form)
    assert bad.status_code == 422
    assert 'id="e-amount"' in bad.text
    assert 'data-code="invalid_amount"' in bad.text

    form["amount"] = "25.50"
    form["pin"] = "000000"
    wrong = client.post("/app/scan/pay", data=form)
    assert wrong.status_code == 403
    assert 'id="e-pin"' in wrong.text
    assert 'data-code="pin_incorrect"' in wrong.text
    assert balance(db, payer.user_id)[0] == 100_000

    form["pin"] = "502817"
    paid = client.post("/app/scan/pay", data=form)
    assert paid.status_code == 303
    target = paid.headers["location"]
    assert target.startswith("/app/scan/paid/")
    again = client.post("/app/scan/pay", data=form)  # a double submit
    assert again.status_code == 303
    assert again.headers["location"] == target
    assert balance(db, payer.user_id)[0] == 100_000 - 2_550

    result = client.get(target)
    assert result.status_code == 200
    assert "¥25.50" in result.text
    assert 'data-status="paid"' in result.text

    other = resident(runtime, 3)
    sign_in(client, other.phone)
    assert client.get(target.split("?")[0]).status_code == 404
    assert_ledger_clean(db)


def test_a_dynamic_code_shows_its_amount_and_a_foreign_code_is_refused(
    client: TestClient, runtime: Runtime, db: Database
) -> None:
    shop = ShopOwner(client, runtime, 1)
    order = shop.order(8_800, description="午餐")
    payer = resident(runtime, 2)
    sign_in(client, payer.phone)

    preview = client.get("/app/scan/preview", params={"payload": order["qr_payload"]})
    assert preview.status_code == 200
    assert "¥88.00" in preview.text
    assert 'name="amount"' not in preview.text
    paid = client.post(
        "/app/scan/pay",
        data={
            "csrf_token": hidden(preview.text, "csrf_token"),
            "payload": order["qr_payload"],
            "key": hidden(preview.text, "key"),
            "pin": "502817",
        },
    )
    assert paid.status_code == 303
    assert balance(db, payer.user_id)[0] == 100_000 - 8_800

    foreign = client.get("/app/scan/preview", params={"payload": "https://example.com/pay"})
    assert foreign.status_code in (400, 422)
    assert 'id="e-payload"' in foreign.text
    empty = client.get("/app/scan/preview", params={"payload": " "})
    assert empty.status_code == 400
    assert_ledger_clean(db)


def test_a_photo_of_the_code_is_decoded_on_the_server(
    client: TestClient, runtime: Runtime, db: Database
) -> None:
    shop = ShopOwner(client, runtime, 1)
    payer = resident(runtime, 2)
    payload = static_payload(client, shop)
    sign_in(client, payer.phone)
    page = client.get("/app/scan")
    token = hidden(page.text, "csrf_token")

    uploaded = client.post(
        "/app/scan/image",
        data={"csrf_token": token},
        files={"image": ("qr.png", images.qr_png(payload), "image/png")},
    )
    assert uploaded.status_code == 303
    assert uploaded.headers["location"].startswith("/app/scan/preview?payload=")
    preview = client.get(uploaded.headers["location"])
    assert "罗湖好味道餐厅" in preview.text

    junk = client.post(
        "/app/scan/image",
        data={"csrf_token": token},
        files={"image": ("x.png", b"not a picture", "image/png")},
    )
    assert junk.status_code == 422
    assert 'data-code="image_unreadable"' in junk.text
    no_csrf = client.post(
        "/app/scan/image", files={"image": ("qr.png", images.qr_png(payload), "image/png")}
    )
    assert no_csrf.status_code == 403
    assert_ledger_clean(db)


def test_the_payment_code_refreshes_and_a_large_charge_waits_for_the_pin(
    client: TestClient, runtime: Runtime, db: Database
) -> None:
    shop = ShopOwner(client, runtime, 1)
    payer = resident(runtime, 2, 500_000)
    sign_in(client, payer.phone)
    page = client.get("/app/paycode")
    assert page.status_code == 200
    turned_on = client.post(
        "/app/paycode/device", data={"csrf_token": hidden(page.text, "csrf_token")}
    )
    assert turned_on.status_code == 303
    page = client.get("/app/paycode")
    device = re.search(r'data-device="([^"]+)"', page.text)
    assert device is not None
    device_id = device.group(1)
    code = client.get(f"/app/paycode/{device_id}/code.json").json()
    assert re.fullmatch(r"\d{16,20}", code["code"])
    assert code["valid_until_ms"] > 0
    assert code["pending"] == []
    svg = client.get(code["barcode_url"])
    assert svg.headers["content-type"].startswith("image/svg+xml")
    assert client.get(code["qr_url"]).status_code == 200

    # the merchant charges more than the password-free limit
    charged = shop.api.post(
        "/v1/merchant/payments/code",
        {"code": code["code"], "amount": 300_000, "out_trade_no": f"T{secrets.token_hex(6)}"},
    )
    assert charged.status_code in (200, 201, 202), charged.text
    with db.uow(readonly=True) as uow:
        (waiting,) = paycodes.pending_confirmations(uow, user_id=payer.user_id)
    again = client.get(f"/app/paycode/{device_id}/code.json").json()
    assert again["pending"] == [f"/app/paycode/confirm/{waiting.order_id}"]
    assert f"/app/paycode/confirm/{waiting.order_id}" in client.get("/app/paycode").text

    prompt = client.get(f"/app/paycode/confirm/{waiting.order_id}")
    assert "¥3,000.00" in prompt.text
    form = {
        "csrf_token": hidden(prompt.text, "csrf_token"),
        "key": hidden(prompt.text, "key"),
        "pin": "111111",
    }
    wrong = client.post(f"/app/paycode/confirm/{waiting.order_id}", data=form)
    assert wrong.status_code == 403
    assert 'id="e-pin"' in wrong.text
    form["pin"] = "502817"
    confirmed = client.post(f"/app/paycode/confirm/{waiting.order_id}", data=form)
    assert confirmed.status_code == 303
    assert client.post(f"/app/paycode/confirm/{waiting.order_id}", data=form).status_code == 303
    assert balance(db, payer.user_id)[0] == 500_000 - 300_000

    other = resident(runtime, 3)
    sign_in(client, other.phone)
    assert client.get(f"/app/paycode/{device_id}/code.json").status_code == 404
    assert client.get(f"/app/paycode/confirm/{waiting.order_id}").status_code == 404
    assert_ledger_clean(db)


def test_a_large_charge_can_be_declined(client: TestClient, runtime: Runtime, db: Database) -> None:
    shop = ShopOwner(client, runtime, 1)
    payer = resident(runtime, 2, 500_000)
    new = runtime.db.transact(
        lambda uow: paycodes.register_device(
            uow, user_id=payer.user_id, label="phone", encryptor=runtime.encryptor
        )
    )
    with db.uow(readonly=True) as uow:
        code = paycodes.current_code(
            uow, user_id=payer.user_id, device_id=new.device.id, encryptor=runtime.encryptor
        )
    charged = shop.api.post(
        "/v1/merchant/payments/code",
        {"code": code.code, "amount": 300_000, "out_trade_no": f"T{secrets.token_hex(6)}"},
    )
    assert charged.status_code in (200, 201, 202), charged.text
    with db.uow(readonly=True) as uow:
        (waiting,) = paycodes.pending_confirmations(uow, user_id=payer.user_id)
    sign_in(client, payer.phone)
    prompt = client.get(f"/app/paycode/confirm/{waiting.order_id}")
    declined = client.post(
        f"/app/paycode/decline/{waiting.order_id}",
        data={"csrf_token": hidden(prompt.text, "csrf_token")},
    )
    assert declined.status_code == 303
    assert (
        client.get(f"/app/paycode/confirm/{waiting.order_id}").text.count('data-status="closed"')
        == 1
    )
    assert balance(db, payer.user_id)[0] == 500_000
    assert_ledger_clean(db)
