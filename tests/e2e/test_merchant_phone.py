"""The merchant console on a 375 px phone in a real browser: 今日收款 on the overview
follows each payment and equals the day's statement from the ledger; with announcements
turned on (and remembered), each payment is spoken as "收款 88 元" (speechSynthesis is
stubbed to record what would be said); the orders are cards."""

from __future__ import annotations

from playwright.sync_api import Browser, Page, expect

from citywallet.merchant import statements
from citywallet.platform.clock import now_us
from tests.e2e.conftest import Shots, Site, new_context
from tests.identity_support import PASSWORD
from tests.ledger_checks import assert_ledger_clean
from tests.redpacket_support import funded_resident
from tests.wallet_support import sandbox_bank
from tests.web.test_merchant_pages import open_shop, paid_order

# Records each utterance instead of speaking it.
SPEECH = """
window.__spoken = [];
window.SpeechSynthesisUtterance = class { constructor(text) { this.text = text; } };
Object.defineProperty(window, "speechSynthesis", { configurable: true, value: {
  speak: (u) => window.__spoken.push(u.text), cancel: () => {} } });
"""


def spoken(page: Page, count: int) -> list[str]:
    """What was said, once ``count`` utterances were (wait_for_function would eval a string,
    which the pages' CSP forbids)."""
    for _ in range(100):
        said: list[str] = page.evaluate("() => window.__spoken")
        if len(said) >= count:
            return said
        page.wait_for_timeout(100)
    return page.evaluate("() => window.__spoken")  # type: ignore[no-any-return]


def test_todays_takings_and_a_spoken_announcement_on_a_phone(
    site: Site, browser: Browser, shots: Shots
) -> None:
    runtime = site.runtime
    bank = sandbox_bank()
    shop = open_shop(runtime, bank, 1)
    payer = funded_resident(site.db, runtime.settings, runtime.encryptor, bank, 2, 50_000)
    context = new_context(browser, "phone")
    context.add_init_script(SPEECH)
    page = context.new_page()
    page.goto(site.url + "/login?next=/merchant")
    page.get_by_label("手机号").fill(shop.owner.phone)
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    page.wait_for_url("**/merchant")
    expect(page.get_by_role("heading", name="今日收款")).to_be_visible()
    expect(page.get_by_test_id("takings-count")).to_have_text("0")

    # turn announcements on: said at once, and remembered after a reload
    toggle = page.get_by_label("收款语音播报")
    toggle.check()
    assert spoken(page, 1) == ["收款语音播报已开启。"]
    page.reload()
    expect(page.get_by_label("收款语音播报")).to_be_checked()
    assert page.evaluate("() => window.__spoken") == []  # the reload said nothing

    paid_order(runtime, shop, payer, 8_800, "SPEAK-0001")
    expect(page.get_by_test_id("takings-amount")).to_have_text("¥88.00", timeout=10_000)
    expect(page.get_by_test_id("takings-count")).to_have_text("1")
    assert spoken(page, 1) == ["收款 88 元"]
    paid_order(runtime, shop, payer, 1_230, "SPEAK-0002")
    assert spoken(page, 2) == ["收款 88 元", "收款 12.3 元"]
    expect(page.get_by_test_id("takings-amount")).to_have_text("¥100.30")
    shots(page, "overview")

    # the overview's figures are the ledger's: the statement of the business day
    with site.db.uow(readonly=True) as uow:
        day = statements.business_day(now_us(), statements.business_zone(runtime.settings))
        found = statements.statement(uow, merchant_id=shop.pk, day=day, settings=runtime.settings)
    assert (found.totals["payment"].count, found.totals["payment"].amount) == (2, 10_030)

    # turned off, a payment is shown but not said
    page.get_by_label("收款语音播报").uncheck()
    paid_order(runtime, shop, payer, 500, "SPEAK-0003")
    expect(page.get_by_test_id("takings-count")).to_have_text("3", timeout=10_000)
    assert len(page.evaluate("() => window.__spoken")) == 2

    # orders as cards on the phone, not a table
    page.goto(site.url + "/merchant/orders")
    expect(page.locator("[data-order-card]")).to_have_count(3)
    expect(page.locator("[data-order-card]").first).to_be_visible()
    expect(page.locator("table.merchant-orders")).to_be_hidden()
    shots(page, "orders")
    context.close()
    assert_ledger_clean(site.db)
