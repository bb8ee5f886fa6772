"""The merchant console's pages (``/merchant``) through a TestClient on the real app:
applying, status, stores and their codes, the cashier (dynamic code, payment code), orders
with search and paging, refunds with a confirmation step, settlements and statements,
API keys and webhooks; every page only for the merchant's owner."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import zxingcpp
from fastapi.testclient import TestClient
from httpx2 import Response
from PIL import Image

from citywallet.merchant import onboarding, paycodes, payments, refunds
from citywallet.merchant import settlement as settlements
from citywallet.merchant.models import Merchant
from citywallet.platform.clock import now_us
from citywallet.platform.db import UnitOfWork
from citywallet.runtime import Runtime
from citywallet.wallet.bank import SandboxBank
from tests.identity_support import PASSWORD
from tests.ledger_checks import assert_ledger_clean
from tests.merchant_support import application
from tests.redpacket_support import funded_resident
from tests.wallet_support import PIN, Resident, balance, make_resident, sandbox_bank

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def token_of(html: str) -> str:
    found = TOKEN.search(html)
    assert found is not None, html[:500]
    return found.group(1)


def sign_in(client: TestClient, who: Resident) -> None:
    client.cookies.clear()
    form = client.get("/login")
    answer = client.post(
        "/login",
        data={"phone": who.phone, "password": PASSWORD, "csrf_token": token_of(form.text)},
    )
    assert answer.status_code == 303, answer.text


def post(client: TestClient, form_page: str, action: str, data: dict[str, str]) -> Response:
    """Post ``data`` to ``action`` with the CSRF token of ``form_page``."""
    page = client.get(form_page)
    assert page.status_code == 200, page.text[:500]
    fields = {"csrf_token": token_of(page.text), **data}
    return client.post(action, data=fields)


@dataclass
class Shop:
    owner: Resident
    merchant_id: str
    pk: int
    store_id: str


def open_shop(runtime: Runtime, bank: SandboxBank, n: int, *, approve: bool = True) -> Shop:
    owner = make_resident(runtime.db, runtime.settings, runtime.encryptor, bank, n)
    body = application(owner, n)  # type: ignore[arg-type]
    body.setdefault("city_zh", "深圳")
    body.setdefault("city_en", "Shenzhen")

    def register(uow: UnitOfWork) -> onboarding.MerchantView:
        return onboarding.register_merchant(
            uow,
            user_id=owner.user_id,
            application=onboarding.MerchantApplication(**body),
            encryptor=runtime.encryptor,
            settings=runtime.settings,
        )

    view = runtime.db.transact(register)
    if approve:
        runtime.db.transact(
            lambda uow: onboarding.review_merchant(uow, merchant_id=view.id, action="approve")
        )
    with runtime.db.uow(readonly=True) as uow:
        row = onboarding.owned_merchant(uow, user_id=owner.user_id, merchant_id=view.id)
        store = onboarding.list_stores(uow, merchant_pk=row.id)[0]
        return Shop(owner, view.id, row.id, store.id)


def paid_order(runtime: Runtime, shop: Shop, payer: Resident, amount: int, number: str) -> str:
    """An order of ``shop`` paid by ``payer`` through its dynamic code; returns its id."""
    enc, settings = runtime.encryptor, runtime.settings
    view, _ = runtime.db.transact(
        lambda uow: payments.create_order(
            uow,
            merchant_pk=shop.pk,
            out_trade_no=number,
            amount=amount,
            encryptor=enc,
            settings=settings,
        )
    )
    assert view.qr_payload
    payload = view.qr_payload
    runtime.db.transact(
        lambda uow: payments.pay_scan(
            uow, user_id=payer.user_id, payload=payload, encryptor=enc, settings=settings
        )
    )
    return view.id


@pytest.fixture
def bank() -> SandboxBank:
    return sandbox_bank()


# --- applying and status ------------------------------------------------------------------


def test_a_newcomer_applies_through_the_form_and_sees_each_status(
    client: TestClient, runtime: Runtime, bank: SandboxBank
) -> None:
    owner = make_resident(runtime.db, runtime.settings, runtime.encryptor, bank, 1)
    sign_in(client, owner)
    first = client.get("/merchant")
    assert first.status_code == 303
    assert first.headers["location"] == "/merchant/apply"
    body = application(owner, 0)  # type: ignore[arg-type]
    form = {k: str(v) for k, v in body.items()} | {"city_zh": "深圳", "city_en": "Shenzhen"}

    bad = post(client, "/merchant/apply", "/merchant/apply", form | {"uscc": "123"})
    assert bad.status_code == 422
    assert 'id="e-uscc"' in bad.text
    assert 'value="罗湖好味道餐厅"' in bad.text  # kept
    latin = post(client, "/merchant/apply", "/merchant/apply", form | {"name_en": "好"})
    assert 'id="e-name_en"' in latin.text

    sent = post(client, "/merchant/apply", "/merchant/apply", form)
    assert sent.status_code == 303
    page = client.get("/merchant", headers={"Accept-Language": "en"})
    assert "Pending review" in page.text
    with runtime.db.uow(readonly=True) as uow:
        (mine,) = onboarding.list_merchants(uow, user_id=owner.user_id)
    assert mine.status == "pending_review"
    assert mine.settlement_card.endswith("0000")

    again = post(client, "/merchant/apply", "/merchant/apply", form)
    assert again.status_code == 409
    assert 'data-code="merchant_exists"' in again.text

    runtime.db.transact(
        lambda uow: onboarding.review_merchant(
            uow, merchant_id=mine.id, action="reject", reason="licence unreadable"
        )
    )
    rejected = client.get("/merchant", headers={"Accept-Language": "en"})
    assert "Rejected" in rejected.text
    assert "licence unreadable" in rejected.text
    chinese = client.get("/merchant", headers={"Accept-Language": "zh-CN"})
    assert "已拒绝" in chinese.text


def test_suspended_and_several_merchants_one_at_a_time(
    client: TestClient, runtime: Runtime, bank: SandboxBank
) -> None:
    shop = open_shop(runtime, bank, 1)
    other = open_shop(runtime, bank, 2)
    sign_in(client, shop.owner)
    approved = client.get("/merchant", headers={"Accept-Language": "en"}).text
    assert "Approved" in approved
    assert "0.38%" in approved  # the fee rate, 38 basis points
    runtime.db.transact(
        lambda uow: onboarding.review_merchant(
            uow, merchant_id=shop.merchant_id, action="suspend", reason="complaints"
        )
    )
    page = client.get("/merchant", headers={"Accept-Language": "en"})
    assert "Suspended" in page.text
    assert "complaints" in page.text
    # another resident's merchant answers 404 and is not shown
    refused = post(client, "/merchant", "/merchant/select", {"merchant_id": other.merchant_id})
    assert refused.status_code == 404
    client.cookies.set("cw_merchant", other.merchant_id, path="/merchant")
    assert shop.merchant_id in client.get("/merchant").text
    assert other.merchant_id not in client.get("/merchant").text


def test_an_owner_of_two_merchants_switches_between_them(
    client: TestClient, runtime: Runtime, bank: SandboxBank
) -> None:
    shop = open_shop(runtime, bank, 1)
    body = application(shop.owner, 2)  # type: ignore[arg-type]
    body.update(city_zh="深圳", city_en="Shenzhen", name_zh="第二家店", name_en="Second")
    second = runtime.db.transact(
        lambda uow: onboarding.register_merchant(
            uow,
            user_id=shop.owner.user_id,
            application=onboarding.MerchantApplication(**body),
            encryptor=runtime.encryptor,
            settings=runtime.settings,
        )
    )
    sign_in(client, shop.owner)
    page = client.get("/merchant")
    assert 'name="merchant_id"' in page.text
    assert second.id in page.text
    moved = post(client, "/merchant", "/merchant/select", {"merchant_id": second.id})
    assert moved.status_code == 303
    assert "<h1>第二家店</h1>" in client.get("/merchant").text


# --- stores and codes ---------------------------------------------------------------------


def test_stores_open_and_their_codes_download_as_png_svg_pdf_and_print(
    client: TestClient, runtime: Runtime, bank: SandboxBank
) -> None:
    shop = open_shop(runtime, bank, 1)
    sign_in(client, shop.owner)
    empty = post(client, "/merchant/stores", "/merchant/stores", {"name": "  "})
    assert empty.status_code == 422
    assert 'id="e-name"' in empty.text
    made = post(client, "/merchant/stores", "/merchant/stores", {"name": "东门分店"})
    assert made.status_code == 303
    with runtime.db.uow(readonly=True) as uow:
        stores = onboarding.list_stores(uow, merchant_pk=shop.pk)
    assert [s.name for s in stores][-1] == "东门分店"
    store_id = stores[-1].id
    assert "东门分店" in client.get("/merchant/stores").text

    png = client.get(f"/merchant/stores/{store_id}/code.png")
    assert png.status_code == 200
    assert png.headers["content-type"] == "image/png"
    assert "attachment" in png.headers["content-disposition"]
    (decoded,) = zxingcpp.read_barcodes(Image.open(io.BytesIO(png.content)))
    expected = runtime.db.transact(
        lambda uow: payments.static_code(
            uow, merchant_pk=shop.pk, store_id=store_id, encryptor=runtime.encryptor
        )
    )
    assert decoded.text == expected
    svg = client.get(f"/merchant/stores/{store_id}/code.svg")
    assert svg.headers["content-type"].startswith("image/svg+xml")
    assert b"<svg" in svg.content
    pdf = client.get(f"/merchant/stores/{store_id}/code.pdf")
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    printable = client.get(f"/merchant/stores/{store_id}/print")
    assert printable.status_code == 200
    assert "东门分店" in printable.text
    assert "data-print" in printable.text
    assert "<script>" not in printable.text


def test_another_merchants_store_order_key_and_event_answer_404(
    client: TestClient, runtime: Runtime, bank: SandboxBank
) -> None:
    mine, theirs = open_shop(runtime, bank, 1), open_shop(runtime, bank, 2)
    payer = funded_resident(runtime.db, runtime.settings, runtime.encryptor, bank, 3, 10_000)
    order_id = paid_order(runtime, theirs, payer, 1_000, "THEIRS1")
    key = runtime.db.transact(
        lambda uow: onboarding.create_api_key(
            uow,
            merchant_pk=theirs.pk,
            scheme="hmac-sha256",
            label="pos",
            encryptor=runtime.encryptor,
        )
    )
    sign_in(client, mine.owner)
    for path in (
        f"/merchant/stores/{theirs.store_id}/code.png",
        f"/merchant/stores/{theirs.store_id}/print",
        f"/merchant/orders/{order_id}",
        f"/merchant/cashier/orders/{order_id}",
        f"/merchant/cashier/orders/{order_id}/status",
    ):
        assert client.get(path).status_code == 404, path
    revoke = post(
        client, "/merchant/developers", f"/merchant/developers/keys/{key.key.id}/revoke", {}
    )
    assert revoke.status_code == 404
    refund = post(
        client,
        "/merchant/orders",
        f"/merchant/orders/{order_id}/refund/confirmed",
        {"amount": "1.00", "out_refund_no": "R1"},
    )
    assert refund.status_code == 404
    with runtime.db.uow(readonly=True) as uow:
        assert onboarding.list_api_keys(uow, merchant_pk=theirs.pk)[0].status == "active"
        assert (
            payments.get_order(uow, merchant_pk=theirs.pk, order_id=order_id).refunded_amount == 0
        )
    assert_ledger_clean(runtime.db)


def test_a_resident_without_a_merchant_gets_404_on_console_pages(
    client: TestClient, runtime: Runtime, bank: SandboxBank
) -> None:
    nobody = make_resident(runtime.db, runtime.settings, runtime.encryptor, bank, 4)
    sign_in(client, nobody)
    answer = client.get("/merchant/orders")
    assert answer.status_code == 404
    assert 'data-code="no_merchant"' in answer.text


# --- the cashier --------------------------------------------------------------------------


def test_the_cashier_shows_a_code_for_an_amount_and_follows_it_until_paid(
    client: TestClient, runtime: Runtime, bank: SandboxBank
) -> None:
    shop = open_shop(runtime, bank, 1)
    payer = funded_resident(runtime.db, runtime.settings, runtime.encryptor, bank, 2, 10_000)
    sign_in(client, shop.owner)
    bad = post(client, "/merchant/cashier", "/merchant/cashier/orders", {"amount": "abc"})
    assert bad.status_code == 422
    assert 'id="e-amount"' in bad.text

    page = client.get("/merchant/cashier")
    key = re.search(r'name="out_trade_no" value="([^"]+)"', page.text)
    assert key is not None
    data = {"csrf_token": token_of(page.text), "amount": "12.50", "out_trade_no": key.group(1)}
    made = client.post("/merchant/cashier/orders", data=data)
    twice = client.post("/merchant/cashier/orders", data=data)  # a double submit
    assert made.status_code == twice.status_code == 303
    assert made.headers["location"] == twice.headers["location"]
    order_id = made.headers["location"].rsplit("/", 1)[1]
    shown = client.get(made.headers["location"], headers={"Accept-Language": "en"})
    assert "¥12.50" in shown.text
    assert "Waiting for payment" in shown.text
    assert 'data-poll="/merchant/cashier/orders/' in shown.text
    code = client.get(f"/merchant/cashier/orders/{order_id}/code.svg")
    assert code.status_code == 200
    assert b"<svg" in code.content
    assert client.get(f"/merchant/cashier/orders/{order_id}/status").json()["status"] == "created"

    with runtime.db.uow() as uow:
        view = payments.get_order(
            uow, merchant_pk=shop.pk, order_id=order_id, encryptor=runtime.encryptor
        )
    assert view.qr_payload is not None
    payload = view.qr_payload
    runtime.db.transact(
        lambda uow: payments.pay_scan(
            uow,
            user_id=payer.user_id,
            payload=payload,
            encryptor=runtime.encryptor,
            settings=runtime.settings,
        )
    )
    assert client.get(f"/merchant/cashier/orders/{order_id}/status").json()["status"] == "paid"
    paid = client.get(f"/merchant/cashier/orders/{order_id}", headers={"Accept-Language": "en"})
    assert "Paid" in paid.text
    assert "data-poll" not in paid.text
    assert balance(runtime.db, payer.user_id)[0] == 10_000 - 1_250
    with runtime.db.uow(readonly=True) as uow:
        found = payments.list_orders(uow, merchant_pk=shop.pk)
    assert [o.amount for o in found] == [1_250]  # the double submit made one order
    assert_ledger_clean(runtime.db)


def test_the_cashier_charges_a_scanned_payment_code_or_waits_for_confirmation(
    client: TestClient, runtime: Runtime, bank: SandboxBank
) -> None:
    shop = open_shop(runtime, bank, 1)
    payer = funded_resident(runtime.db, runtime.settings, runtime.encryptor, bank, 2, 100_000)
    device = runtime.db.transact(
        lambda uow: paycodes.register_device(
            uow, user_id=payer.user_id, label="phone", encryptor=runtime.encryptor
        )
    )

    def code(at: float) -> str:
        return runtime.db.transact(
            lambda uow: paycodes.current_code(
                uow,
                user_id=payer.user_id,
                device_id=device.device.id,
                encryptor=runtime.encryptor,
                at=at,
            )
        ).code

    sign_in(client, shop.owner)
    wrong = post(
        client, "/merchant/cashier", "/merchant/cashier/charge",
        {"charge_amount": "5.00", "code": "1234"},
    )  # fmt: skip
    assert wrong.status_code == 422
    assert 'id="e-code"' in wrong.text

    now = datetime.now().timestamp()
    small = post(
        client, "/merchant/cashier", "/merchant/cashier/charge",
        {"charge_amount": "30.00", "code": code(now)},
    )  # fmt: skip
    assert small.status_code == 303
    page = client.get(small.headers["location"], headers={"Accept-Language": "en"})
    assert "Paid" in page.text
    assert "¥30.00" in page.text

    large = post(
        client, "/merchant/cashier", "/merchant/cashier/charge",
        {"charge_amount": "600.00", "code": code(now + 60)},
    )  # fmt: skip
    assert large.status_code == 303
    waiting = client.get(large.headers["location"], headers={"Accept-Language": "en"})
    assert "Waiting for the customer to confirm" in waiting.text
    assert "data-poll" in waiting.text
    assert balance(runtime.db, payer.user_id)[0] == 100_000 - 3_000
    assert_ledger_clean(runtime.db)


# --- orders and refunds -------------------------------------------------------------------


def test_orders_are_searched_and_paged(
    client: TestClient, runtime: Runtime, bank: SandboxBank
) -> None:
    shop = open_shop(runtime, bank, 1)
    payer = funded_resident(runtime.db, runtime.settings, runtime.encryptor, bank, 2, 100_000)
    paid = paid_order(runtime, shop, payer, 500, "PAID-1")

    def open_orders(uow: UnitOfWork) -> None:
        for n in range(22):
            payments.create_order(
                uow,
                merchant_pk=shop.pk,
                out_trade_no=f"OPEN-{n:02d}",
                amount=100 + n,
                encryptor=runtime.encryptor,
                settings=runtime.settings,
            )

    runtime.db.transact(open_orders)
    sign_in(client, shop.owner)
    first = client.get("/merchant/orders", headers={"Accept-Language": "en"})
    assert "Orders found: 23" in first.text
    assert "Page 1 of 2" in first.text
    assert first.text.count("data-order=") == 20
    assert "OPEN-21" in first.text
    second = client.get("/merchant/orders?page=2")
    assert second.text.count("data-order=") == 3
    assert "PAID-1" in second.text

    assert client.get("/merchant/orders?status=paid").text.count("data-order=") == 1
    by_id = client.get(f"/merchant/orders?q={paid}")
    assert by_id.text.count("data-order=") == 1
    assert "PAID-1" in by_id.text
    assert client.get("/merchant/orders?q=OPEN-1").text.count("data-order=") == 10
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    same_day = client.get(f"/merchant/orders?since={today}&until={today}")
    assert same_day.text.count("data-order=") == 20
    before = client.get("/merchant/orders?until=2020-01-01")
    assert before.text.count("data-order=") == 0
    assert client.get("/merchant/orders?since=garbage").status_code == 200
    assert_ledger_clean(runtime.db)


def test_a_partial_refund_is_confirmed_first_and_a_double_submit_refunds_once(
    client: TestClient, runtime: Runtime, bank: SandboxBank
) -> None:
    shop = open_shop(runtime, bank, 1)
    payer = funded_resident(runtime.db, runtime.settings, runtime.encryptor, bank, 2, 10_000)
    order_id = paid_order(runtime, shop, payer, 2_000, "MEAL-1")
    sign_in(client, shop.owner)
    detail = client.get(f"/merchant/orders/{order_id}", headers={"Accept-Language": "en"})
    assert "Paid" in detail.text
    assert "¥20.00" in detail.text

    key = re.search(r'name="out_refund_no" value="([^"]+)"', detail.text)
    assert key is not None
    refund = f"/merchant/orders/{order_id}/refund"
    too_much = client.get(refund, params={"amount": "25.00", "out_refund_no": key.group(1)})
    assert too_much.status_code == 409
    assert 'id="e-amount"' in too_much.text

    asked = client.get(
        refund, params={"amount": "5.00", "reason": "cold soup", "out_refund_no": key.group(1)}
    )
    assert asked.status_code == 200
    assert "¥5.00" in asked.text
    assert "cold soup" in asked.text
    assert balance(runtime.db, payer.user_id)[0] == 8_000  # nothing moved yet
    fields = dict(re.findall(r'name="(\w+)" value="([^"]*)"', asked.text))
    assert 'name="pin"' in asked.text  # the owner confirms with the payment PIN
    wrong = client.post(
        f"/merchant/orders/{order_id}/refund/confirmed", data={**fields, "pin": "000000"}
    )
    assert wrong.status_code == 403
    assert 'id="e-pin"' in wrong.text
    assert balance(runtime.db, payer.user_id)[0] == 8_000  # a wrong PIN refunds nothing
    fields["pin"] = PIN
    done = client.post(f"/merchant/orders/{order_id}/refund/confirmed", data=fields)
    again = client.post(f"/merchant/orders/{order_id}/refund/confirmed", data=fields)
    assert done.status_code == again.status_code == 303
    assert balance(runtime.db, payer.user_id)[0] == 8_500
    page = client.get(done.headers["location"], headers={"Accept-Language": "en"})
    assert "Refunded" in page.text
    assert "cold soup" in page.text
    assert "Up to ¥15.00 can be refunded" in page.text
    assert_ledger_clean(runtime.db)


# --- settlements and statements -----------------------------------------------------------


def test_settlements_balance_and_the_days_statement_as_csv(
    client: TestClient, runtime: Runtime, bank: SandboxBank
) -> None:
    shop = open_shop(runtime, bank, 1)
    payer = funded_resident(runtime.db, runtime.settings, runtime.encryptor, bank, 2, 10_000)
    order_id = paid_order(runtime, shop, payer, 10_000, "BIG-0001")
    runtime.db.transact(
        lambda uow: refunds.refund_order(
            uow, merchant_pk=shop.pk, order_id=order_id, out_refund_no="RFD-0001", amount=2_000
        )
    )
    sign_in(client, shop.owner)
    page = client.get("/merchant/settlements", headers={"Accept-Language": "en"})
    # 100.00 paid, fee 0.38 (38 bp), 20.00 refunded with 0.08 of the fee back
    assert "¥79.70" in page.text
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    shown = client.get(f"/merchant/statements?day={today}")
    assert "BIG-0001" in shown.text
    assert "RFD-0001" in shown.text
    got = client.get(f"/merchant/statements/{today}.csv")
    assert got.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(got.text)))
    assert [r[1] for r in rows[1:]] == ["payment", "refund"]
    assert rows[1][2] == "BIG-0001"
    assert rows[1][4] == "100.00"
    assert rows[2][3] == "RFD-0001"
    assert rows[2][7] == "79.70"
    assert (
        "Refund given"
        in client.get(f"/merchant/statements?day={today}", headers={"Accept-Language": "en"}).text
    )

    # the next day's run pays the day out to the owner's card
    report = settlements.run_settlements(
        runtime.db,
        bank=bank,
        settings=runtime.settings,
        today=today + timedelta(days=1),
        now=now_us() + 86_400 * 10**6,
        encryptor=runtime.encryptor,
    )
    assert report is not None
    paid_out = client.get("/merchant/settlements", headers={"Accept-Language": "en"})
    row = re.search(r"<tr>\s*<td>" + str(today) + r"</td>(.*?)</tr>", paid_out.text, re.S)
    assert row is not None, paid_out.text
    assert "¥79.70" in row.group(1)
    assert "Paid out" in row.group(1)
    assert 'id="receivable">¥0.00<' in paid_out.text
    assert_ledger_clean(runtime.db)


# --- API keys and webhooks ----------------------------------------------------------------


def test_an_api_keys_secret_is_shown_once_and_keys_can_be_revoked(
    client: TestClient, runtime: Runtime, bank: SandboxBank
) -> None:
    shop = open_shop(runtime, bank, 1)
    sign_in(client, shop.owner)
    made = post(
        client, "/merchant/developers", "/merchant/developers/keys",
        {"label": "till 1", "scheme": "hmac-sha256"},
    )  # fmt: skip
    assert made.status_code == 201
    secret = re.search(r'id="key-secret"[^>]*>([^<]+)<', made.text)
    key_id = re.search(r'id="key-id">([^<]+)<', made.text)
    assert secret is not None
    assert key_id is not None
    assert secret.group(1).startswith("cwsk_")
    listed = client.get("/merchant/developers")
    assert key_id.group(1) in listed.text
    assert "till 1" in listed.text
    assert secret.group(1) not in listed.text  # never again
    revoked = post(
        client, "/merchant/developers", f"/merchant/developers/keys/{key_id.group(1)}/revoke", {}
    )
    assert revoked.status_code == 303
    with runtime.db.uow(readonly=True) as uow:
        (key,) = onboarding.list_api_keys(uow, merchant_pk=shop.pk)
    assert key.status == "revoked"


def test_webhook_url_secret_events_and_redelivery(
    client: TestClient, runtime: Runtime, bank: SandboxBank
) -> None:
    shop = open_shop(runtime, bank, 1)
    payer = funded_resident(runtime.db, runtime.settings, runtime.encryptor, bank, 2, 10_000)
    sign_in(client, shop.owner)
    bad = post(
        client, "/merchant/developers", "/merchant/developers/webhook",
        {"notify_url": "http://127.0.0.1/hook"},
    )  # fmt: skip
    assert bad.status_code == 422
    assert 'id="e-notify_url"' in bad.text
    page = client.get("/merchant/developers")
    secret = re.search(r'id="webhook-secret">([^<]+)<', page.text)
    assert secret is not None
    assert secret.group(1).startswith("whsec_")
    rotated = post(client, "/merchant/developers", "/merchant/developers/webhook/secret", {})
    assert rotated.status_code == 303
    assert secret.group(1) not in client.get("/merchant/developers").text

    cleared = post(
        client, "/merchant/developers", "/merchant/developers/webhook", {"notify_url": ""}
    )
    assert cleared.status_code == 303

    def hook(uow: UnitOfWork) -> None:  # as if set to a public https server
        row = uow.session.get(Merchant, shop.pk)
        assert row is not None
        row.notify_url = "https://hooks.shop.example/cw"
        uow.session.flush()

    runtime.db.transact(hook)
    paid_order(runtime, shop, payer, 300, "HOOK-1")
    events = client.get("/merchant/developers/events")
    found = re.search(r'data-event="([^"]+)"', events.text)
    assert found is not None
    assert "payment.succeeded" in events.text
    event_id = found.group(1)
    detail = client.get(f"/merchant/developers/events/{event_id}")
    assert "HOOK-1" in detail.text
    again = post(
        client,
        f"/merchant/developers/events/{event_id}",
        f"/merchant/developers/events/{event_id}/redeliver",
        {},
    )
    assert again.status_code == 303
    assert_ledger_clean(runtime.db)


def test_the_console_pages_render_in_both_languages(
    client: TestClient, runtime: Runtime, bank: SandboxBank
) -> None:
    shop = open_shop(runtime, bank, 1)
    sign_in(client, shop.owner)
    for path in (
        "/merchant",
        "/merchant/apply",
        "/merchant/stores",
        "/merchant/cashier",
        "/merchant/orders",
        "/merchant/settlements",
        "/merchant/statements",
        "/merchant/developers",
        "/merchant/developers/events",
    ):
        for lang in ("en", "zh-CN"):
            answer = client.get(path, headers={"Accept-Language": lang})
            assert answer.status_code == 200, (path, lang)
            assert "<script>" not in answer.text
            assert "style=" not in answer.text
