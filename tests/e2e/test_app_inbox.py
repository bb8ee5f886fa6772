"""The message centre, server push, hidden balance and bills in a real browser: the unread
badge counts a red packet and a new-device sign-in; a payment-code charge above the
password-free limit appears on the resident's screen within 2 s without a reload (server-sent
events) and leaves when it is confirmed; without EventSource the page polls and still shows
it within ~2 s; opening a message marks it read; hiding the balance survives a reload; the
history's month totals agree with the ledger."""

from __future__ import annotations

import re
import time
from typing import Any, cast

import httpx2
from playwright.sync_api import Browser, Page, expect

from citywallet.merchant import service as merchants
from citywallet.redpacket import service as redpackets
from citywallet.wallet.spending import current_month
from tests.e2e.conftest import Shots, Site, new_context
from tests.e2e.test_app_pay_and_social import log_in
from tests.ledger_checks import assert_ledger_clean
from tests.merchant_support import ShopOwner
from tests.redpacket_support import funded_resident
from tests.wallet_support import PIN, Resident, balance, sandbox_bank

NO_EVENT_SOURCE = "Object.defineProperty(window, 'EventSource', { value: undefined });"


def _fen(text: str) -> int:
    digits = re.sub(r"[^0-9]", "", text)
    return int(digits)


def _charge(site: Site, shop: ShopOwner, who: Resident, amount: int, no: str) -> str:
    """The shop scans ``who``'s payment code for ``amount``: the order id (waiting)."""
    runtime = site.runtime
    devices = site.db.transact(lambda uow: merchants.list_devices(uow, user_id=who.user_id))
    device = devices[0].id if devices else None
    if device is None:
        made = site.db.transact(
            lambda uow: merchants.register_device(
                uow, user_id=who.user_id, label="phone", encryptor=runtime.encryptor
            )
        )
        device = made.device.id
    code = site.db.transact(
        lambda uow: merchants.current_code(
            uow, user_id=who.user_id, device_id=device, encryptor=runtime.encryptor
        )
    ).code
    answer = shop.api.post(
        "/v1/merchant/payments/code", {"code": code, "amount": amount, "out_trade_no": no}
    )
    assert answer.json()["status"] == "awaiting_confirmation", answer.text
    return str(answer.json()["id"])


def _badge(page: Page) -> str:
    return page.locator("[data-unread-count]").text_content() or ""


def test_badge_push_fallback_hidden_balance_and_bills(
    site: Site, browser: Browser, phone: Page, shots: Shots
) -> None:
    runtime, bank = site.runtime, sandbox_bank()
    shop = ShopOwner(cast(Any, httpx2.Client(base_url=site.url, timeout=30)), runtime, 1)
    alice = funded_resident(site.db, runtime.settings, runtime.encryptor, bank, 2, 2_000_00)
    bob = funded_resident(site.db, runtime.settings, runtime.encryptor, bank, 3, 100_00)
    packet = site.db.transact(
        lambda uow: redpackets.send_packet(
            uow, user_id=bob.user_id, amount=8_88, to=alice.phone, encryptor=runtime.encryptor
        )
    )

    # the badge: the red packet, and this browser is a device she never used
    log_in(phone, site, alice, "/app")
    expect(phone.locator("[data-unread]")).to_be_visible()
    assert _badge(phone) == "2"
    expect(phone.locator("html")).to_have_attribute("data-live", "stream")

    # a charge above the password-free limit shows up at once, without a reload
    asked = time.monotonic()
    order_id = _charge(site, shop, alice, 600_00, "POS-INBOX-1")
    bar = phone.locator("[data-charge-alert]")
    expect(bar).to_be_visible(timeout=2_000)
    shown_after = time.monotonic() - asked
    expect(phone.locator("[data-charge-what]")).to_contain_text("¥600.00")
    expect(phone.locator("[data-unread-count]")).to_have_text("3", timeout=2_000)
    assert phone.locator("[data-charge-link]").get_attribute("href") == (
        f"/app/paycode/confirm/{order_id}"
    )
    shots(phone, "charge-pushed")
    assert shown_after < 5  # generous: the expect above already held it to 2 s
    site.db.transact(
        lambda uow: merchants.confirm_charge(
            uow,
            user_id=alice.user_id,
            order_id=order_id,
            settings=runtime.settings,
            pin=PIN,
            encryptor=runtime.encryptor,
        )
    )
    expect(bar).to_be_hidden(timeout=2_000)  # paid: the bar leaves by itself

    # a browser without EventSource polls every 2 s and still sees the next charge
    plain = new_context(browser, "phone")
    plain.add_init_script(NO_EVENT_SOURCE)
    polling = plain.new_page()
    log_in(polling, site, alice, "/app/history")
    expect(polling.locator("html")).to_have_attribute("data-live", "poll")
    second = _charge(site, shop, alice, 700_00, "POS-INBOX-2")
    expect(polling.locator("[data-charge-alert]")).to_be_visible(timeout=3_000)
    polling.locator("[data-charge-link]").click()
    polling.wait_for_url(f"**/app/paycode/confirm/{second}")
    plain.close()
    site.db.transact(
        lambda uow: merchants.decline_charge(uow, user_id=alice.user_id, order_id=second)
    )

    # the message centre: opening the red packet's message reads it and shows the packet
    phone.get_by_test_id("messages-tab").click()
    phone.wait_for_url("**/app/messages")
    expect(phone.get_by_test_id("message")).to_have_count(4)
    shots(phone, "messages")
    before = int(_badge(phone))
    phone.locator("[data-kind='redpacket_received'] button").click()
    phone.wait_for_url(f"**/app/redpackets/{packet.id}")
    assert int(_badge(phone)) == before - 1

    # hide the balance: it stays hidden after a reload, until shown again
    phone.goto(site.url + "/app")
    expect(phone.get_by_test_id("balance")).to_have_text("¥1,400.00")
    phone.get_by_test_id("balance-toggle").click()
    phone.wait_for_url("**/app")
    expect(phone.get_by_test_id("balance")).to_have_text("****")
    phone.reload()
    expect(phone.get_by_test_id("balance")).to_have_text("****")
    shots(phone, "balance-hidden")
    phone.get_by_test_id("balance-toggle").click()
    expect(phone.get_by_test_id("balance")).to_have_text("¥1,400.00")

    # bills: this month's totals, against the ledger's balance
    phone.goto(site.url + "/app/history")
    month = phone.locator(f"[data-month='{current_month()}']")
    income = _fen(month.get_by_test_id("month-income").text_content() or "")
    spending = _fen(month.get_by_test_id("month-spending").text_content() or "")
    assert (income, spending) == (2_000_00, 600_00)
    assert balance(site.db, alice.user_id)[0] == income - spending
    payment = month.locator("[data-testid='tx']", has_text="¥600.00")
    expect(payment.get_by_test_id("tx-own")).to_have_text("¥600.00")
    shots(phone, "bills")
    assert_ledger_clean(site.db)
