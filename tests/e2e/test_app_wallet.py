"""The residents' wallet in a real browser: a newcomer signs up with the SMS code from the
sandbox outbox, verifies their real name, sets a PIN, binds a card, tops up, sends money to
another resident, opens the receipt and checks its ledger proof in the browser (WebCrypto
SHA-256 and Ed25519 against the published key): it verifies, and a tampered proof does not."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from citywallet.identity import service as identity
from citywallet.ledger.blocks import seal_block
from citywallet.wallet.bank import sandbox_card_number
from tests.e2e.conftest import Shots, Site
from tests.identity_support import PASSWORD, last_code, resident_id
from tests.integration.test_wallet_spending import open_merchant, pay
from tests.ledger_checks import assert_ledger_clean
from tests.wallet_support import balance, make_resident, sandbox_bank

PIN = "730418"


def sign_up(site: Site, page: Page, phone: str, shots: Shots) -> None:
    page.goto(site.url + "/app/signup")
    expect(page.get_by_test_id("sandbox-note")).to_be_visible()
    page.get_by_label("手机号").fill(phone)
    page.get_by_role("button", name="发送验证码").click()
    expect(page.get_by_label("短信验证码")).to_be_visible()
    shots(page, "signup-code")
    code = last_code(site.db, site.runtime.encryptor, phone)
    page.get_by_label("短信验证码").fill(code)
    page.get_by_label("设置登录密码").fill(PASSWORD)
    page.locator("#f-consent-wallet").check()
    page.get_by_role("button", name="同意并注册", exact=True).click()
    page.wait_for_url("**/app/me?welcome=1")


def test_newcomer_signs_up_tops_up_sends_and_verifies_the_receipt(
    site: Site, phone: Page, shots: Shots
) -> None:
    friend = make_resident(
        site.db, site.runtime.settings, site.runtime.encryptor, sandbox_bank(), 2
    )
    me = "13700137001"
    sign_up(site, phone, me, shots)
    expect(phone.get_by_text("欢迎！完成实名认证后即可使用钱包。")).to_be_visible()
    # the installable app: the service worker registers for /app
    expect(phone.locator("html")).to_have_attribute("data-sw", site.url + "/app")
    shots(phone, "me-new")

    # real name
    phone.get_by_role("link", name="立即认证").click()
    phone.get_by_label("身份证上的姓名").fill("王芳")
    phone.get_by_label("居民身份证号").fill("12345")
    phone.get_by_role("button", name="验证", exact=True).click()
    expect(phone.locator("#e-id_number")).to_be_visible()
    phone.get_by_label("居民身份证号").fill(resident_id(sequence="777"))
    phone.get_by_role("button", name="验证", exact=True).click()
    expect(phone.get_by_test_id("real-name")).to_contain_text("已认证")
    shots(phone, "me-verified")

    # payment PIN
    phone.goto(site.url + "/app/me/pin")
    phone.get_by_label("登录密码").fill(PASSWORD)
    phone.get_by_label("新支付密码", exact=True).fill(PIN)
    phone.get_by_label("再次输入新支付密码").fill(PIN)
    phone.get_by_role("button", name="保存支付密码").click()
    expect(phone.locator(".flash")).to_have_text("支付密码已保存。")

    # bind a card: shown masked afterwards
    number = sandbox_card_number("0000", bin_="622202", serial=7001)
    phone.goto(site.url + "/app/me/cards")
    phone.get_by_label("卡号").fill(number)
    phone.get_by_label("银行预留手机号").fill(me)
    phone.get_by_role("button", name="绑定", exact=True).click()
    expect(phone.get_by_test_id("card")).to_have_count(1)
    assert number not in phone.content()
    expect(phone.get_by_test_id("card")).to_contain_text(number[-4:])
    shots(phone, "cards")

    # top up ¥500
    phone.goto(site.url + "/app")
    phone.get_by_role("link", name="充值").first.click()
    phone.get_by_label("金额（元）").fill("500")
    phone.get_by_label("支付密码").fill(PIN)
    phone.get_by_role("button", name="充值").click()
    expect(phone.get_by_test_id("receipt-status")).to_have_text("成功")
    phone.goto(site.url + "/app")
    expect(phone.get_by_test_id("balance")).to_have_text("¥500.00")
    shots(phone, "home")

    # transfer ¥120.50 to the friend's phone number
    phone.get_by_role("link", name="转账", exact=True).click()
    phone.get_by_label("对方手机号").fill(friend.phone)
    phone.get_by_label("金额（元）").fill("120.50")
    phone.get_by_label("备注（选填）").fill("午饭")
    phone.get_by_role("button", name="转账").click()
    expect(phone.get_by_test_id("payee-name")).to_have_text("*娜")  # before the PIN
    assert balance(site.db, friend.user_id)[0] == 0
    phone.get_by_label("支付密码").fill(PIN)
    phone.get_by_role("button", name="确认并转账").click()
    expect(phone.get_by_test_id("receipt-amount")).to_have_text("−¥120.50")
    assert balance(site.db, friend.user_id)[0] == 12_050

    # the receipt's proof, once the transfer is sealed into a signed block
    signer = site.runtime.ledger_signer()
    site.db.transact(lambda uow: seal_block(uow, signer))
    phone.reload()
    verify = phone.get_by_role("button", name="验证", exact=True)
    verify.click()
    result = phone.locator("#verify-result")
    expect(result).to_have_attribute("data-state", "ok", timeout=20_000)
    expect(result).to_contain_text("✓")
    expect(phone.locator("[data-verdict-for]").first).to_have_text("✓")
    shots(phone, "receipt")

    # a tampered proof: one hash changed in the page's data → ✗
    phone.evaluate(
        """() => {
        const data = document.getElementById("receipt-proofs");
        const items = JSON.parse(data.textContent);
        const proof = items[0].proof;
        const flip = (h) => (h[0] === "0" ? "1" : "0") + h.slice(1);
        if (proof.audit_path.length) proof.audit_path[0] = flip(proof.audit_path[0]);
        else proof.block.merkle_root = flip(proof.block.merkle_root);
        data.textContent = JSON.stringify(items);
    }"""
    )
    verify.click()
    expect(result).to_have_attribute("data-state", "bad", timeout=20_000)
    expect(result).to_contain_text("✗")

    # a forged signature alone also fails (the hashes all still match)
    phone.reload()
    phone.evaluate(
        """() => {
        const data = document.getElementById("receipt-proofs");
        const items = JSON.parse(data.textContent);
        const s = items[0].proof.signature;
        items[0].proof.signature = (s[0] === "a" ? "b" : "a") + s.slice(1);
        data.textContent = JSON.stringify(items);
    }"""
    )
    phone.get_by_role("button", name="验证", exact=True).click()
    expect(phone.locator("#verify-result")).to_have_attribute("data-state", "bad", timeout=20_000)

    # a meal at a restaurant (paid through the merchant service), then history and spending
    runtime = site.runtime
    diner, _ = open_merchant(
        site.db, runtime.settings, runtime.encryptor, sandbox_bank(), 3, "5812", "好味道",
        "Good Taste",
    )  # fmt: skip
    with site.db.uow(readonly=True) as uow:
        user = identity.find_user_by_phone(uow, phone=me)
    assert user is not None
    pay(site.db, runtime.settings, runtime.encryptor, diner, user.id, 4_800)
    phone.goto(site.url + "/app/history")
    expect(phone.get_by_test_id("tx")).to_have_count(3)
    shots(phone, "history")
    phone.goto(site.url + "/app/spending")
    expect(phone.get_by_test_id("spent-total")).to_have_text("¥48.00")
    expect(phone.get_by_test_id("merchant")).to_contain_text("好味道")
    expect(phone.get_by_test_id("trend")).to_have_count(6)
    shots(phone, "spending")
    assert balance(site.db, friend.user_id)[0] == 12_050
    assert balance(site.db, user.id)[0] == 50_000 - 12_050 - 4_800
    assert_ledger_clean(site.db)


def test_withdrawal_shows_the_fee_before_the_pin(site: Site, phone: Page, shots: Shots) -> None:
    who = make_resident(site.db, site.runtime.settings, site.runtime.encryptor, sandbox_bank(), 5)
    phone.goto(site.url + "/login?next=/app/topup")
    phone.get_by_label("手机号").fill(who.phone)
    phone.get_by_label("密码").fill(PASSWORD)
    phone.get_by_role("button", name="登录").click()
    phone.wait_for_url("**/app/topup")
    phone.get_by_label("金额（元）").fill("3000")
    phone.get_by_label("支付密码").fill("502817")
    phone.get_by_role("button", name="充值").click()
    expect(phone.get_by_test_id("receipt-status")).to_have_text("成功")

    phone.goto(site.url + "/app/withdraw")
    phone.get_by_label("金额（元）").fill("2000")
    phone.get_by_role("button", name="下一步：查看手续费").click()
    expect(phone.get_by_test_id("fee")).to_have_text("¥1.00")
    expect(phone.get_by_test_id("total")).to_have_text("¥2,001.00")
    shots(phone, "withdraw-confirm")
    phone.get_by_label("支付密码").fill("111111")
    phone.get_by_role("button", name="提现").click()
    expect(phone.locator("#e-pin")).to_be_visible()
    phone.get_by_label("支付密码").fill("502817")
    phone.get_by_role("button", name="提现").click()
    expect(phone.get_by_test_id("receipt-amount")).to_have_text("−¥2,000.00")
    assert balance(site.db, who.user_id)[0] == 300_000 - 200_100

    # offline, the installed app shows its offline page, never a stored page with money
    phone.goto(site.url + "/app")
    expect(phone.locator("html")).to_have_attribute("data-sw", site.url + "/app")
    phone.wait_for_function("navigator.serviceWorker.controller !== null")
    phone.context.set_offline(True)
    try:
        phone.goto(site.url + "/app/history")
        expect(phone.get_by_role("heading", name="网络未连接")).to_be_visible()
        assert "¥" not in phone.content()
    finally:
        phone.context.set_offline(False)
    assert_ledger_clean(site.db)
