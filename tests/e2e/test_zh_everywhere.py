"""Chinese everywhere and privacy in a real browser on a phone: sign-up requires the
agreement and privacy consent (the documents open from the form), consents are withdrawn
in settings, "download my data" and the history download as CSV starting with the UTF-8
BOM, and merchant categories and cards read in Chinese (餐饮, 工商银行(0000))."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from zoneinfo import ZoneInfo

from playwright.sync_api import Page, expect

from citywallet.identity import consent
from tests.e2e.conftest import Shots, Site
from tests.identity_support import PASSWORD, last_code
from tests.integration.test_wallet_spending import open_merchant, pay
from tests.ledger_checks import assert_ledger_clean
from tests.redpacket_support import funded_resident
from tests.wallet_support import sandbox_bank

BOM = b"\xef\xbb\xbf"


def test_sign_up_requires_consent_which_settings_show_and_withdraw(
    site: Site, phone: Page, shots: Shots
) -> None:
    me = "13700137101"
    phone.goto(site.url + "/app/signup")
    phone.get_by_label("手机号").fill(me)
    phone.get_by_role("button", name="发送验证码").click()
    phone.get_by_label("短信验证码").fill(last_code(site.db, site.runtime.encryptor, me))
    phone.get_by_label("设置登录密码").fill(PASSWORD)
    expect(phone.get_by_role("link", name="隐私政策")).to_have_attribute(
        "href", "/app/legal/privacy_policy"
    )
    shots(phone, "signup-consent")
    # without ticking the agreement: refused next to it, no account
    phone.get_by_role("button", name="同意并注册", exact=True).click()
    expect(phone.locator("#e-consent")).to_have_text("请同意服务协议和隐私政策后再开通钱包。")
    expect(phone.locator("#f-consent-wallet")).to_have_attribute("aria-invalid", "true")
    # the code is still good: fill again, agree, and one optional purpose
    phone.get_by_label("短信验证码").fill(last_code(site.db, site.runtime.encryptor, me))
    phone.get_by_label("设置登录密码").fill(PASSWORD)
    phone.locator("#f-consent-wallet").check()
    phone.get_by_label("根据我的消费推荐个性化优惠（可选）").check()
    phone.get_by_role("button", name="同意并注册", exact=True).click()
    phone.wait_for_url("**/app/me?welcome=1")

    phone.get_by_role("link", name="隐私与授权").click()
    wallet = phone.locator("[data-purpose=wallet]")
    expect(wallet).to_have_attribute("data-granted", "yes")
    expect(wallet.get_by_test_id("consent-when")).to_contain_text("服务协议 第 1 版")
    expect(wallet.get_by_test_id("consent-toggle")).to_have_count(0)  # not withdrawable
    offers = phone.locator("[data-purpose=offers]")
    expect(offers).to_have_attribute("data-granted", "yes")
    shots(phone, "privacy")
    offers.get_by_role("button", name="撤回授权").click()
    expect(phone.locator(".flash")).to_have_text("已撤回您的授权。")
    expect(phone.locator("[data-purpose=offers]")).to_have_attribute("data-granted", "no")
    expect(phone.get_by_test_id("consent-record")).to_have_count(4)  # 3 at sign-up, 1 now

    # the privacy policy itself, in Chinese, fits the phone
    phone.goto(site.url + "/app/legal/privacy_policy")
    expect(phone.get_by_role("heading", level=1)).to_have_text("城市钱包隐私政策")
    assert phone.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 1
    shots(phone, "privacy-policy")

    # download my data: a CSV that starts with the BOM, with Chinese headers on request
    phone.goto(site.url + "/app/me/data")
    shots(phone, "my-data")
    with phone.expect_download() as downloading:
        phone.get_by_test_id("data-csv-zh").click()
    raw = downloading.value.path().read_bytes()
    assert raw.startswith(BOM)
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    assert rows[0] == ["个人资料"]
    assert ["授权记录"] in rows
    with phone.expect_download() as downloading:
        phone.get_by_test_id("data-json").click()
    assert b'"purpose": "offers"' in downloading.value.path().read_bytes()
    with site.db.uow(readonly=True) as uow:
        from citywallet.identity.service import find_user_by_phone

        user = find_user_by_phone(uow, phone=me, encryptor=site.runtime.encryptor)
        assert user is not None
        history = consent.consent_history(uow, user_id=user.id)
    assert [(r.purpose, r.granted, r.source) for r in history][-1] == ("offers", False, "settings")


def test_categories_cards_and_the_history_csv_read_in_chinese(
    site: Site, phone: Page, shots: Shots
) -> None:
    runtime, bank = site.runtime, sandbox_bank()
    diner, _ = open_merchant(
        site.db, runtime.settings, runtime.encryptor, bank, 41, "5812", "东门小馆", "Dongmen Bistro"
    )
    payer = funded_resident(site.db, runtime.settings, runtime.encryptor, bank, 42, 20_000)
    pay(site.db, runtime.settings, runtime.encryptor, diner, payer.user_id, 6_600)

    phone.goto(site.url + "/login?next=/app/spending")
    phone.locator("#f-phone").fill(payer.phone)
    phone.locator("#f-password").fill(PASSWORD)
    phone.locator("form[action='/login'] button[type=submit]").click()
    phone.wait_for_url("**/app/spending*")
    expect(phone.get_by_test_id("category").first).to_contain_text("餐饮")
    expect(phone.get_by_test_id("merchant-category")).to_have_text("餐厅")
    shots(phone, "spending")

    phone.goto(site.url + "/app/me/cards")
    assert payer.card_number is not None
    expect(phone.get_by_test_id("card-label")).to_have_text(f"工商银行({payer.card_number[-4:]})")
    shots(phone, "cards")

    month = datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m")
    phone.goto(site.url + f"/app/history?month={month}")
    with phone.expect_download() as downloading:
        phone.get_by_test_id("history-csv-zh").click()
    raw = downloading.value.path().read_bytes()
    assert raw.startswith(BOM)
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    assert rows[0][:3] == ["时间", "交易编号", "类型"]
    assert any(r[3] == "支出" and r[4] == "66.00" for r in rows[1:]), rows
    assert_ledger_clean(site.db)
