"""Transfers, the receive code and account basics in a real browser: the payee's masked
real name before the PIN, a recent recipient tapped, a receive code scanned (a photo of it
uploaded) by another resident pays its owner, forgot password from the log-in page with the
resend countdown, and the payment PIN entered twice."""

from __future__ import annotations

from playwright.sync_api import Browser, Page, expect
from sqlalchemy import text

from tests.e2e.conftest import Shots, Site, new_context
from tests.e2e.test_app_pay_and_social import log_in
from tests.identity_support import PASSWORD, last_code
from tests.ledger_checks import assert_ledger_clean
from tests.redpacket_support import funded_resident
from tests.wallet_support import PIN, balance, make_resident, sandbox_bank


def test_transfer_shows_the_payee_first_and_a_receive_code_pays_its_owner(
    site: Site, phone: Page, browser: Browser, shots: Shots
) -> None:
    payer = funded_resident(
        site.db, site.runtime.settings, site.runtime.encryptor, sandbox_bank(), 81, 50_000
    )
    payee = make_resident(
        site.db, site.runtime.settings, site.runtime.encryptor, sandbox_bank(), 82
    )  # 82: 李娜
    log_in(phone, site, payer, "/app/transfer")
    phone.get_by_label("对方手机号").fill(payee.phone)
    phone.get_by_label("金额（元）").fill("12.30")
    shots(phone, "transfer")
    phone.get_by_role("button", name="转账").click()
    expect(phone.get_by_test_id("payee-name")).to_have_text("*娜")
    expect(phone.get_by_test_id("amount")).to_have_text("¥12.30")
    expect(phone.get_by_label("支付密码")).to_be_visible()
    assert balance(site.db, payee.user_id)[0] == 0  # nothing moved before the PIN
    phone.get_by_label("支付密码").fill(PIN)
    phone.get_by_role("button", name="确认并转账").click()
    expect(phone.get_by_test_id("receipt-amount")).to_have_text("−¥12.30")
    assert balance(site.db, payee.user_id)[0] == 1_230

    # a recent recipient: one tap fills the payee
    phone.goto(site.url + "/app/transfer")
    expect(phone.get_by_test_id("recent-recipient")).to_have_count(1)
    shots(phone, "recent-recipients")
    phone.get_by_test_id("recent-recipient").click()
    expect(phone.get_by_test_id("chosen-recipient")).to_contain_text("*娜")
    phone.get_by_label("金额（元）").fill("1")
    phone.get_by_role("button", name="转账").click()
    expect(phone.get_by_test_id("payee-name")).to_have_text("*娜")

    # the payee shows their receive code with an amount; the payer scans a photo of it
    other = new_context(browser, "phone")
    shown = other.new_page()
    log_in(shown, site, payee, "/app/receive")
    shown.get_by_label("设置收款金额（选填）").fill("8.88")
    shown.get_by_role("button", name="设置金额").click()
    expect(shown.get_by_test_id("receive-amount")).to_have_text("¥8.88")
    shots(shown, "receive-code")
    photo = shown.get_by_test_id("receive-qr").screenshot()
    other.close()

    phone.goto(site.url + "/app/scan")
    phone.get_by_label("二维码照片").set_input_files(
        {"name": "code.png", "mimeType": "image/png", "buffer": photo}
    )
    phone.get_by_role("button", name="识别二维码").click()
    phone.wait_for_url("**/app/receive/pay?payload=*")
    expect(phone.get_by_test_id("payee-name")).to_have_text("*娜")
    expect(phone.get_by_test_id("amount")).to_have_text("¥8.88")
    shots(phone, "receive-code-confirm")
    phone.get_by_label("支付密码").fill(PIN)
    phone.get_by_role("button", name="确认并转账").click()
    expect(phone.get_by_test_id("receipt-amount")).to_have_text("−¥8.88")
    assert balance(site.db, payee.user_id)[0] == 1_230 + 888
    assert balance(site.db, payer.user_id)[0] == 50_000 - 1_230 - 888
    assert_ledger_clean(site.db)


def test_forgot_password_with_the_countdown_and_the_pin_twice(
    site: Site, phone: Page, shots: Shots
) -> None:
    who = make_resident(
        site.db, site.runtime.settings, site.runtime.encryptor, sandbox_bank(), 83, pin=False
    )
    site.db.transact(  # the sign-up code's minute has passed
        lambda uow: uow.session.execute(
            text("DELETE FROM platform_rate_limits WHERE bucket LIKE 'sms_send_minute:%'")
        )
    )
    phone.goto(site.url + "/login")
    phone.get_by_test_id("forgot-password").click()
    phone.get_by_label("手机号").fill(who.phone)
    phone.get_by_role("button", name="发送验证码").click()
    resend = phone.get_by_test_id("resend")
    expect(resend).to_be_disabled()
    expect(resend).to_contain_text("秒后可重新发送")
    shots(phone, "forgot-password")
    code = last_code(site.db, site.runtime.encryptor, who.phone)
    phone.get_by_label("短信验证码").fill(code)
    new = "a brand new password 9"
    phone.get_by_label("新密码", exact=True).fill(new)
    phone.get_by_label("再次输入新密码").fill(new + "!")
    phone.get_by_role("button", name="保存新密码").click()
    expect(phone.locator("#e-new_password_again")).to_be_visible()
    phone.get_by_label("短信验证码").fill(code)
    phone.get_by_label("新密码", exact=True).fill(new)
    phone.get_by_label("再次输入新密码").fill(new)
    phone.get_by_role("button", name="保存新密码").click()
    phone.wait_for_url("**/login?done=*")
    expect(phone.locator(".flash")).to_have_text("密码已修改，请用新密码登录。")
    phone.get_by_label("手机号").fill(who.phone)
    phone.get_by_label("密码", exact=True).fill(PASSWORD)
    phone.get_by_role("button", name="登录").click()
    expect(phone.locator("[data-code=invalid_credentials]")).to_be_visible()  # the old one is gone
    phone.get_by_label("密码", exact=True).fill(new)
    phone.get_by_role("button", name="登录").click()
    phone.wait_for_url("**/app")

    # the payment PIN, entered twice
    phone.goto(site.url + "/app/me/pin")
    phone.get_by_label("登录密码").fill(new)
    phone.get_by_label("新支付密码", exact=True).fill("502817")
    phone.get_by_label("再次输入新支付密码").fill("502871")
    phone.get_by_role("button", name="保存支付密码").click()
    expect(phone.locator("#e-new_pin_again")).to_have_text("两次输入的支付密码不一致。")
    shots(phone, "pin-twice")
    phone.get_by_label("登录密码").fill(new)
    phone.get_by_label("新支付密码", exact=True).fill("502817")
    phone.get_by_label("再次输入新支付密码").fill("502817")
    phone.get_by_role("button", name="保存支付密码").click()
    expect(phone.locator(".flash")).to_have_text("支付密码已保存。")
