"""The pages' common ground in a real browser: language negotiation and the switch, the
log-in form's field errors, an error page without a stack trace, security headers."""

from __future__ import annotations

from playwright.sync_api import Browser, Page

from tests.e2e.conftest import Shots, Site, new_context
from tests.identity_support import PASSWORD
from tests.wallet_support import make_resident, sandbox_bank


def test_login_speaks_the_browsers_language_and_switches(
    site: Site, browser: Browser, shots: Shots
) -> None:
    english = new_context(browser, "desktop", "en").new_page()
    english.goto(site.url + "/login")
    assert english.locator("html").get_attribute("lang") == "en"
    assert english.get_by_role("heading", name="Log in").is_visible()

    chinese = new_context(browser, "phone", "zh_CN").new_page()
    response = chinese.goto(site.url + "/login")
    assert response is not None
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert chinese.locator("html").get_attribute("lang") == "zh-CN"
    assert chinese.get_by_role("heading", name="登录").is_visible()
    chinese.get_by_role("link", name="English").click()
    assert chinese.get_by_role("heading", name="Log in").is_visible()
    assert chinese.url.endswith("/login")
    shots(chinese, "login")


def test_a_wrong_password_is_shown_next_to_the_field_and_the_right_one_signs_in(
    site: Site, phone: Page
) -> None:
    person = make_resident(
        site.db, site.runtime.settings, site.runtime.encryptor, sandbox_bank(), 1
    )
    phone.goto(site.url + "/login?next=/app")
    phone.get_by_label("手机号").fill(person.phone)
    phone.get_by_label("密码").fill("not the password")
    phone.get_by_role("button", name="登录").click()
    error = phone.locator("#e-password")
    assert error.get_attribute("data-code") == "invalid_credentials"
    assert phone.locator("#f-password").get_attribute("aria-invalid") == "true"
    assert phone.locator("#f-phone").input_value() == person.phone  # kept

    phone.get_by_label("密码").fill(PASSWORD)
    phone.get_by_role("button", name="登录").click()
    phone.wait_for_url(site.url + "/app")
    cookies = {c["name"]: c for c in phone.context.cookies()}
    assert cookies["cw_session"]["httpOnly"]
    assert cookies["cw_session"]["sameSite"] == "Lax"


def test_an_unknown_page_is_a_page_not_a_stack_trace(site: Site, phone: Page) -> None:
    response = phone.goto(site.url + "/app/no/such/page")
    assert response is not None
    assert response.status == 404
    assert phone.locator("[data-code=http_404]").is_visible()
    assert "Traceback" not in phone.content()


def test_a_form_without_its_csrf_token_changes_nothing(site: Site, phone: Page) -> None:
    answer = phone.request.post(site.url + "/login", form={"phone": "13800000000", "password": "x"})
    assert answer.status == 403
    assert "csrf_failed" in answer.text()


def test_the_keyboard_alone_signs_in(site: Site, phone: Page) -> None:
    person = make_resident(
        site.db, site.runtime.settings, site.runtime.encryptor, sandbox_bank(), 2
    )
    phone.goto(site.url + "/login?next=/app")
    focused = []
    for _ in range(8):  # skip link, language switch, then the form
        phone.keyboard.press("Tab")
        focused.append(
            phone.evaluate("document.activeElement.id || document.activeElement.tagName")
        )
        if focused[-1] == "f-phone":
            break
    assert focused[-1] == "f-phone", focused
    phone.keyboard.type(person.phone)
    phone.keyboard.press("Tab")
    assert phone.evaluate("document.activeElement.id") == "f-password"
    phone.keyboard.type(PASSWORD)
    phone.keyboard.press("Enter")
    phone.wait_for_url(site.url + "/app")
    assert any(c["name"] == "cw_session" for c in phone.context.cookies())
