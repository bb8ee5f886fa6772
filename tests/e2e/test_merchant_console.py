"""The merchant console in a real browser: a resident applies through the form, an
operator approves, the owner opens a store and downloads its code, shows a code for an
amount at the cashier, a customer pays it and the screen turns to paid, the owner refunds
part of it after confirming, and downloads the day's statement."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime
from zoneinfo import ZoneInfo

import zxingcpp
from PIL import Image
from playwright.sync_api import Browser, expect

from citywallet.merchant import onboarding, paycodes, payments
from tests.e2e.conftest import Shots, Site, new_context
from tests.identity_support import PASSWORD
from tests.ledger_checks import assert_ledger_clean
from tests.merchant_support import USCCS
from tests.redpacket_support import funded_resident
from tests.wallet_support import PIN, balance, make_resident, sandbox_bank


def test_a_merchant_onboards_sells_refunds_and_downloads_a_statement(
    site: Site, browser: Browser, shots: Shots
) -> None:
    runtime = site.runtime
    bank = sandbox_bank()
    owner = make_resident(site.db, runtime.settings, runtime.encryptor, bank, 1)
    customer = funded_resident(site.db, runtime.settings, runtime.encryptor, bank, 2, 100_000)
    context = new_context(browser, "desktop", "en")
    page = context.new_page()

    # log in and apply through the form
    page.goto(site.url + "/login?next=/merchant")
    page.get_by_label("Mobile number").fill(owner.phone)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/merchant/apply")
    page.get_by_label("Name in Chinese").fill("东门好味道")
    page.get_by_label("Name in Latin letters").fill("Dongmen Good Taste")
    page.get_by_label("City in Chinese").fill("深圳")
    page.get_by_label("City in Latin letters").fill("Shenzhen")
    page.get_by_label("Unified social credit code").fill(USCCS[0])
    page.get_by_label("Merchant category code (MCC)").fill("5812")
    page.get_by_label("District").fill("罗湖区")
    page.get_by_label("Address", exact=True).fill("东门中路1号")
    page.get_by_label("Contact name").fill("张伟")
    page.get_by_label("Contact phone").fill(owner.phone)
    shots(page, "apply")
    page.get_by_role("button", name="Send the application").click()
    page.wait_for_url("**/merchant?done=*")
    expect(page.locator("#merchant-status")).to_have_text("Pending review")
    shots(page, "pending")

    # the operator approves (the service the operator console uses)
    with site.db.uow(readonly=True) as uow:
        (mine,) = onboarding.list_merchants(uow, user_id=owner.user_id)
    site.db.transact(
        lambda uow: onboarding.review_merchant(uow, merchant_id=mine.id, action="approve")
    )
    page.reload()
    expect(page.locator("#merchant-status")).to_have_text("Approved")

    # a new store and its printable code
    page.get_by_role("link", name="Stores and QR").click()
    page.get_by_label("Store name").fill("东门分店")
    page.get_by_role("button", name="Open the store").click()
    row = page.locator("tr", has_text="东门分店")
    expect(row).to_be_visible()
    store_id = row.get_attribute("data-store")
    assert store_id
    shots(page, "stores")
    with page.expect_download() as downloading:
        row.get_by_role("link", name="PNG").click()
    png = downloading.value.path().read_bytes()
    (decoded,) = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    with site.db.uow(readonly=True) as uow:
        pk = onboarding.owned_merchant(uow, user_id=owner.user_id, merchant_id=mine.id).id
    expected = site.db.transact(
        lambda uow: payments.static_code(
            uow, merchant_pk=pk, store_id=store_id, encryptor=runtime.encryptor
        )
    )
    assert decoded.text == expected
    assert decoded.text.startswith("000201")  # an EMVCo merchant-presented payload
    row.get_by_role("link", name="Print page").click()
    expect(page.get_by_text("Scan with CityWallet to pay")).to_be_visible()
    shots(page, "print")

    # the cashier shows a code for 36.80; the customer pays it; the screen turns to paid
    page.get_by_role("link", name="Cashier").click()
    page.get_by_label("Amount (yuan)").first.fill("36.80")
    shots(page, "cashier")
    page.get_by_role("button", name="Show the code").click()
    page.wait_for_url(re.compile(r".*/merchant/cashier/orders/ord_[\w-]+$"))
    expect(page.locator("#order-status")).to_have_text("Waiting for payment")
    expect(page.locator("img.merchant-qr")).to_be_visible()
    shots(page, "cashier-code")
    order_id = page.url.rsplit("/", 1)[1]
    view = site.db.transact(
        lambda uow: payments.get_order(
            uow, merchant_pk=pk, order_id=order_id, encryptor=runtime.encryptor
        )
    )
    assert view.qr_payload is not None
    payload = view.qr_payload
    site.db.transact(
        lambda uow: payments.pay_scan(
            uow,
            user_id=customer.user_id,
            payload=payload,
            encryptor=runtime.encryptor,
            settings=runtime.settings,
        )
    )
    expect(page.locator("#order-status")).to_have_text("Paid", timeout=15_000)
    shots(page, "cashier-paid")

    # refund 6.80 of it, after confirming
    page.get_by_role("link", name="Order details").click()
    page.get_by_label("Refund amount (yuan)").fill("6.80")
    page.get_by_label("Reason").fill("one dish missing")
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", name="Confirm the refund")).to_be_visible()
    assert balance(site.db, customer.user_id)[0] == 100_000 - 3_680  # nothing moved yet
    shots(page, "refund-confirm")
    page.get_by_label("Payment PIN").fill(PIN)
    page.get_by_role("button", name="Refund ¥6.80").click()
    expect(page.locator(".flash")).to_have_text("Refunded")
    expect(page.locator("#order-refunded")).to_have_text("¥6.80")
    assert balance(site.db, customer.user_id)[0] == 100_000 - 3_680 + 680
    shots(page, "order-refunded")

    # today's statement: the payment and the refund
    page.get_by_role("link", name="Settlements").click()
    shots(page, "settlements")
    page.get_by_role("button", name="Show the statement").click()
    expect(page.locator("tr[data-type=refund]")).to_be_visible()
    shots(page, "statement")
    with page.expect_download() as downloading:
        page.get_by_role("link", name="Download CSV", exact=True).click()
    rows = list(csv.reader(io.StringIO(downloading.value.path().read_text("utf-8"))))
    today = datetime.now(ZoneInfo(runtime.settings.business_timezone)).date()
    assert downloading.value.suggested_filename == f"{mine.id}-{today}.csv"
    assert [r[1] for r in rows[1:]] == ["payment", "refund"]
    assert rows[1][4] == "36.80"
    assert rows[2][4] == "-6.80"
    assert rows[1][2] == rows[2][2] == view.out_trade_no
    # 36.80 less its fee 0.14 (38 bp), less 6.80 with 0.03 of the fee given back
    assert rows[2][7] == "29.89"

    # a scanned payment code above the customer's password-free limit waits for them
    device = site.db.transact(
        lambda uow: paycodes.register_device(
            uow, user_id=customer.user_id, label="phone", encryptor=runtime.encryptor
        )
    )
    code = site.db.transact(
        lambda uow: paycodes.current_code(
            uow,
            user_id=customer.user_id,
            device_id=device.device.id,
            encryptor=runtime.encryptor,
        )
    ).code
    page.get_by_role("link", name="Cashier").click()
    charge = page.locator("form[action='/merchant/cashier/charge']")
    charge.get_by_label("Amount (yuan)").fill("520.00")
    charge.get_by_label("Payment code").fill(code)
    charge.get_by_label("Payment code").press("Enter")  # as a USB scanner does
    expect(page.locator("#order-status")).to_have_text("Waiting for the customer to confirm")
    shots(page, "cashier-confirming")
    charged = page.url.rsplit("/", 1)[1]
    site.db.transact(
        lambda uow: paycodes.confirm_charge(
            uow, user_id=customer.user_id, order_id=charged, settings=runtime.settings
        )
    )
    expect(page.locator("#order-status")).to_have_text("Paid", timeout=15_000)
    assert balance(site.db, customer.user_id)[0] == 100_000 - 3_680 + 680 - 52_000

    page.get_by_role("link", name="API keys and webhooks").click()
    page.get_by_label("Label").fill("till 1")
    page.get_by_role("button", name="Create a key").click()
    expect(page.locator("#key-secret")).to_contain_text("cwsk_")
    page.get_by_role("link", name="I have saved it").click()
    expect(page.locator("tr", has_text="till 1")).to_be_visible()
    shots(page, "developers")
    context.close()
    assert_ledger_clean(site.db)
