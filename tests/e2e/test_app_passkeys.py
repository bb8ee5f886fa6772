"""Passkeys, the PIN pad and fingerprint/face pay in a real Chromium, with its virtual
authenticator (DevTools protocol ``WebAuthn.addVirtualAuthenticator``: an internal
platform authenticator with resident keys and user verification, the fingerprint always
accepted). A resident adds a passkey in settings, signs in with it, pays a static QR with
it in at most 3 taps after the scan (counted), a captured assertion replayed for another
amount is refused and moves nothing, and the PIN pad pays on the 6th digit.

Pages are opened at ``http://localhost:<port>``: WebAuthn needs a secure context and a
domain as relying party id (the default ``webauthn_rp_id`` is ``localhost``)."""

from __future__ import annotations

import io
import secrets
from typing import Any

import zxingcpp
from PIL import Image
from playwright.sync_api import Browser, BrowserContext, Page, expect

from citywallet.identity import passkeys
from citywallet.identity.service import get_user
from tests.e2e.conftest import Shots, Site, new_context
from tests.e2e.test_app_pay_and_social import shop
from tests.identity_support import PASSWORD
from tests.ledger_checks import assert_ledger_clean
from tests.redpacket_support import funded_resident
from tests.wallet_support import PIN, Resident, balance, sandbox_bank

ASSERT_FOR_ONE_YUAN = """
async (payload) => {
  const data = new FormData();
  data.set("csrf_token", document.querySelector("input[name=csrf_token]").value);
  data.set("intent", "scan"); data.set("payload", payload); data.set("amount", "1.00");
  const answer = await fetch("/app/passkeys/pay-options", {method: "POST", body: data});
  const options = await answer.json();
  const credential = await navigator.credentials.get({publicKey: window.cwRequestOptions(options)});
  return JSON.stringify(window.cwPasskeyJSON(credential));
}
"""


def local(site: Site) -> str:
    return site.url.replace("127.0.0.1", "localhost")


def with_authenticator(browser: Browser) -> tuple[BrowserContext, Page]:
    """A phone whose platform authenticator says yes to every fingerprint."""
    context = new_context(browser, "phone")
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return context, page


def log_in(page: Page, base: str, who: Resident, target: str) -> None:
    page.goto(f"{base}/login?next={target}")
    page.get_by_label("手机号").fill(who.phone)
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录", exact=True).click()
    page.wait_for_url(f"**{target}")


def test_passkey_sign_in_and_fingerprint_pay_in_three_taps(
    site: Site, browser: Browser, shots: Shots
) -> None:
    runtime, base = site.runtime, local(site)
    _owner, png = shop(site, 1)
    payload = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))[0].text
    payer = funded_resident(
        site.db, runtime.settings, runtime.encryptor, sandbox_bank(), 2, 100_000
    )
    context, page = with_authenticator(browser)

    # add this phone's passkey in settings (confirmed with the PIN)
    log_in(page, base, payer, "/app/me")
    page.get_by_test_id("passkeys-link").click()
    page.wait_for_url("**/app/me/passkeys")
    page.get_by_label("设备名称").fill("测试手机")
    page.locator("#f-passkey-pin").fill(PIN)
    page.get_by_role("button", name="添加本机指纹/面容").click()
    expect(page.locator("[data-passkey]")).to_have_count(1)
    expect(page.locator("[data-passkey] input[name=name]")).to_have_value("测试手机")
    shots(page, "passkeys")
    page.bring_to_front()
    with site.db.uow(readonly=True) as uow:
        assert len(passkeys.list_passkeys(uow, user_id=payer.user_id)) == 1

    # sign out, then sign in with the passkey alone
    context.clear_cookies()
    page.goto(f"{base}/login?next=/app")
    page.get_by_role("button", name="用指纹/面容进入钱包").click()
    page.wait_for_url(f"{base}/app")
    page.goto(f"{base}/app/me")
    with site.db.uow(readonly=True) as uow:
        masked = get_user(uow, user_id=payer.user_id).phone_masked
    expect(page.get_by_text(masked).first).to_be_visible()  # signed in as the payer

    # the scan is done (its result: the preview); then count every tap to "paid"
    taps = 0
    page.goto(f"{base}/app/scan/preview?payload={payload}")
    page.get_by_label("付款金额（元）").fill("12.30")  # typed: not a tap
    page.get_by_role("button", name="付款", exact=True).click()
    taps += 1
    expect(page.locator("[data-pinpad-sheet]")).to_be_visible()
    shots(page, "pin-pad")
    page.bring_to_front()  # back from the screenshots' tabs
    page.get_by_role("button", name="使用指纹/面容").click()
    taps += 1
    page.wait_for_url("**/app/scan/paid/*")
    expect(page.locator("[data-status]")).to_have_attribute("data-status", "paid")
    assert taps <= 3, taps
    assert balance(site.db, payer.user_id)[0] == 100_000 - 12_30

    # an assertion made for 1.00 yuan, sent with 99.00: refused, nothing moves
    page.goto(f"{base}/app/scan/preview?payload={payload}")
    captured = page.evaluate(ASSERT_FOR_ONE_YUAN, payload)
    form = {
        "csrf_token": page.locator("input[name=csrf_token]").first.input_value(),
        "payload": payload, "key": secrets.token_urlsafe(18), "amount": "99.00",
        "intent": "scan", "passkey": captured,
    }  # fmt: skip
    refused = page.request.post(f"{base}/app/scan/pay", form=form, max_redirects=0)
    assert refused.status == 403, refused.text()
    assert 'data-code="passkey_intent_mismatch"' in refused.text()
    assert balance(site.db, payer.user_id)[0] == 100_000 - 12_30
    # the same assertion for what it was made for pays once, then never again
    paid = page.request.post(
        f"{base}/app/scan/pay", form={**form, "amount": "1.00"}, max_redirects=0
    )
    assert paid.status == 303, paid.text()
    again = page.request.post(
        f"{base}/app/scan/pay",
        form={**form, "amount": "1.00", "key": secrets.token_urlsafe(18)},
        max_redirects=0,
    )
    assert again.status == 403
    assert 'data-code="passkey_challenge_invalid"' in again.text()
    assert balance(site.db, payer.user_id)[0] == 100_000 - 12_30 - 1_00
    context.close()
    assert_ledger_clean(site.db)


def test_the_pin_pad_pays_on_the_sixth_digit(site: Site, browser: Browser) -> None:
    runtime = site.runtime
    _owner, png = shop(site, 1)
    payload = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))[0].text
    payer = funded_resident(
        site.db, runtime.settings, runtime.encryptor, sandbox_bank(), 2, 100_000
    )
    context = new_context(browser, "phone")
    page = context.new_page()
    log_in(page, site.url, payer, "/app")
    page.goto(f"{site.url}/app/scan/preview?payload={payload}")
    page.get_by_label("付款金额（元）").fill("8.80")
    page.get_by_role("button", name="付款", exact=True).click()
    sheet = page.locator("[data-pinpad-sheet]")
    expect(sheet).to_be_visible()
    expect(page.get_by_role("button", name="使用指纹/面容")).to_be_hidden()  # no passkey
    submitted: list[Any] = []
    page.on("request", lambda r: submitted.append(r) if r.method == "POST" else None)
    for digit in PIN[:5]:
        sheet.get_by_role("button", name=digit, exact=True).click()
    expect(sheet.locator("[data-pinpad-dots] span.on")).to_have_count(5)
    assert submitted == []  # five digits: nothing sent yet
    sheet.get_by_role("button", name=PIN[5], exact=True).click()  # the 6th submits
    page.wait_for_url("**/app/scan/paid/*")
    expect(page.locator("[data-status]")).to_have_attribute("data-status", "paid")
    assert balance(site.db, payer.user_id)[0] == 100_000 - 8_80

    # a wrong PIN: refused, said on the form, nothing moved
    page.goto(f"{site.url}/app/scan/preview?payload={payload}")
    page.get_by_label("付款金额（元）").fill("1.00")
    page.get_by_role("button", name="付款", exact=True).click()
    for digit in "135790":
        sheet.get_by_role("button", name=digit, exact=True).click()
    expect(page.locator("[data-code=pin_incorrect]").first).to_be_visible()
    assert balance(site.db, payer.user_id)[0] == 100_000 - 8_80
    context.close()
    assert_ledger_clean(site.db)
