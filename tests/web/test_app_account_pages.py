"""The residents' wallet, account pages: the installable app's files, sign-up with the
sandbox SMS code, real name, tier and limits, payment PIN, bank cards, devices, login
password, PIN reset by SMS, closing the wallet."""

from __future__ import annotations

import json
import re
from io import BytesIO

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import text

from citywallet.identity import service as identity
from citywallet.identity import sessions
from citywallet.platform.errors import DomainError
from citywallet.runtime import Runtime
from citywallet.wallet import service as wallet
from citywallet.wallet.bank import sandbox_card_number
from tests.identity_support import PASSWORD, last_code, resident_id
from tests.integration.test_restricted_money import Env, account, grant, make_source
from tests.ledger_checks import assert_ledger_clean
from tests.wallet_support import PIN, Resident, balance, make_resident, sandbox_bank

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def token_of(client: TestClient, path: str) -> str:
    """The CSRF token of the form on ``path``."""
    page = client.get(path)
    assert page.status_code == 200, (path, page.status_code)
    found = TOKEN.search(page.text)
    assert found is not None, path
    return found.group(1)


def sign_in(client: TestClient, who: Resident) -> None:
    """Log ``who`` in through the log-in form (cookie session)."""
    client.cookies.clear()
    answer = client.post(
        "/login",
        data={"phone": who.phone, "password": PASSWORD, "csrf_token": token_of(client, "/login")},
    )
    assert answer.status_code == 303, answer.text


def resident(runtime: Runtime, n: int, **options: object) -> Resident:
    return make_resident(
        runtime.db,
        runtime.settings,
        runtime.encryptor,
        sandbox_bank(),
        n,
        **options,  # type: ignore[arg-type]
    )


def post(client: TestClient, path: str, data: dict[str, str], form_page: str | None = None):  # type: ignore[no-untyped-def]
    """Post a form with the CSRF token of ``form_page`` (default: ``path``)."""
    return client.post(path, data={**data, "csrf_token": token_of(client, form_page or path)})


# --- the installable app ------------------------------------------------------------------


def test_manifest_speaks_the_visitors_language(client: TestClient) -> None:
    chinese = client.get("/app/manifest.webmanifest", headers={"Accept-Language": "zh-CN"})
    assert chinese.status_code == 200
    assert chinese.headers["content-type"].startswith("application/manifest+json")
    body = json.loads(chinese.text)
    assert body["name"] == "城市钱包"
    assert body["start_url"] == "/app"
    assert body["display"] == "standalone"
    assert body["theme_color"] == "#c8102e"
    assert {i["sizes"] for i in body["icons"]} == {"192x192", "512x512"}
    english = client.get("/app/manifest.webmanifest", headers={"Accept-Language": "en"})
    assert json.loads(english.text)["name"] == "CityWallet"


def test_service_worker_is_allowed_the_whole_app_and_caches_no_pages(client: TestClient) -> None:
    answer = client.get("/app/sw.js")
    assert answer.status_code == 200
    assert answer.headers["service-worker-allowed"] == "/app"
    assert "javascript" in answer.headers["content-type"]
    assert "/app/offline" in answer.text
    assert "caches" in answer.text
    assert '"/app"' not in answer.text  # the home page (money) is not in the shell
    offline = client.get("/app/offline")
    assert offline.status_code == 200
    assert "/app" in offline.text


def test_icons_are_pngs_of_their_size(client: TestClient) -> None:
    for size in (192, 512):
        answer = client.get(f"/app/icons/{size}.png")
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "image/png"
        image = Image.open(BytesIO(answer.content))
        assert image.size == (size, size)
        corner = image.convert("RGB").getpixel((2, 2))
        assert corner == (0xC8, 0x10, 0x2E)  # the city red
    assert client.get("/app/icons/100.png").status_code == 404


# --- sign-up ------------------------------------------------------------------------------

CONSENT_FORM = {"agreement_version": "1", "privacy_version": "1", "consent_wallet": "1"}


def test_sign_up_with_the_sandbox_code(client: TestClient, runtime: Runtime) -> None:
    page = client.get("/app/signup")
    assert page.status_code == 200
    assert 'data-testid="sandbox-note"' in page.text
    phone = "13900139001"
    sent = post(client, "/app/signup/code", {"phone": phone}, "/app/signup")
    assert sent.status_code == 303
    assert sent.headers["location"].startswith("/app/signup?sent=1")
    assert phone not in sent.headers["location"]  # the number stays out of URLs and logs
    step2 = client.get(sent.headers["location"])
    assert 'name="code"' in step2.text
    assert phone in step2.text
    code = last_code(runtime.db, runtime.encryptor, phone)

    # sign-up requires the wallet's consent: refused next to the consents, nothing spent
    unconsented = post(
        client,
        "/app/signup",
        {"phone": phone, "code": code, "password": PASSWORD, "agreement_version": "1"},
        sent.headers["location"],
    )
    assert unconsented.status_code == 422
    assert 'id="e-consent"' in unconsented.text
    assert 'data-code="consent_required"' in unconsented.text
    assert 'href="/app/legal/privacy_policy"' in unconsented.text

    wrong = "000000" if code != "000000" else "111111"
    refused = post(
        client,
        "/app/signup",
        {"phone": phone, "code": wrong, "password": PASSWORD, **CONSENT_FORM},
        sent.headers["location"],
    )
    assert refused.status_code >= 400
    assert 'id="e-code"' in refused.text

    done = post(
        client,
        "/app/signup",
        {"phone": phone, "code": code, "password": PASSWORD, **CONSENT_FORM},
        sent.headers["location"],
    )
    assert done.status_code == 303
    assert done.headers["location"].startswith("/app/me")
    assert "cw_session" in done.cookies or "cw_session" in client.cookies
    me = client.get("/app/me")
    assert me.status_code == 200
    assert "139****9001" in me.text
    with runtime.db.uow(readonly=True) as uow:
        assert identity.find_user_by_phone(uow, phone=phone) is not None


def test_sign_up_refuses_a_bad_phone_next_to_the_field(client: TestClient) -> None:
    answer = post(client, "/app/signup/code", {"phone": "12345"}, "/app/signup")
    assert answer.status_code == 422
    assert 'id="e-phone"' in answer.text
    assert 'data-code="invalid_phone"' in answer.text


def test_signup_without_csrf_is_refused(client: TestClient) -> None:
    answer = client.post("/app/signup/code", data={"phone": "13900139002"})
    assert answer.status_code == 403
    assert "csrf_failed" in answer.text


# --- real name, tier, PIN -----------------------------------------------------------------


def test_verify_real_name_then_tier_and_limits_show(client: TestClient, runtime: Runtime) -> None:
    who = resident(runtime, 21, verify=False, pin=False)
    sign_in(client, who)
    me = client.get("/app/me")
    assert "/app/me/verify" in me.text
    assert 'data-testid="tier"' in me.text
    bad = post(client, "/app/me/verify", {"name": "张伟", "id_number": "12345"})
    assert bad.status_code == 422
    assert 'id="e-id_number"' in bad.text
    done = post(
        client, "/app/me/verify", {"name": "张伟", "id_number": resident_id(sequence="321")}
    )
    assert done.status_code == 303, done.text
    me = client.get("/app/me")
    assert "张*" in me.text or "*伟" in me.text
    with runtime.db.uow(readonly=True) as uow:
        view = wallet.wallet_view(uow, user_id=who.user_id, settings=runtime.settings)
    assert view.tier >= 1
    assert f"<strong>{view.tier}</strong>" in me.text
    if view.left.today is not None:
        assert f"¥{view.left.today / 100:,.2f}" in me.text
    upgraded = post(client, "/app/me/tier", {}, "/app/me")
    assert upgraded.status_code == 303


def test_set_and_change_the_payment_pin(client: TestClient, runtime: Runtime) -> None:
    who = resident(runtime, 22, pin=False, card_ending=None)
    sign_in(client, who)
    wrong = post(
        client,
        "/app/me/pin",
        {"password": "nope nope 1", "new_pin": "502817", "new_pin_again": "502817"},
    )
    assert wrong.status_code >= 400
    assert 'id="e-password"' in wrong.text
    weak = post(
        client,
        "/app/me/pin",
        {"password": PASSWORD, "new_pin": "123456", "new_pin_again": "123456"},
    )
    assert weak.status_code >= 400
    assert 'id="e-new_pin"' in weak.text
    done = post(
        client,
        "/app/me/pin",
        {"password": PASSWORD, "new_pin": "502817", "new_pin_again": "502817"},
    )
    assert done.status_code == 303
    page = client.get("/app/me/pin")
    assert 'name="old_pin"' in page.text
    bad_old = post(
        client, "/app/me/pin", {"old_pin": "740193", "new_pin": "730418", "new_pin_again": "730418"}
    )
    assert bad_old.status_code >= 400
    assert 'id="e-old_pin"' in bad_old.text
    changed = post(
        client, "/app/me/pin", {"old_pin": "502817", "new_pin": "730418", "new_pin_again": "730418"}
    )
    assert changed.status_code == 303


# --- cards --------------------------------------------------------------------------------


def test_bind_shows_the_card_masked_and_unbind(client: TestClient, runtime: Runtime) -> None:
    who = resident(runtime, 23, card_ending=None)
    sign_in(client, who)
    number = sandbox_card_number("0000", bin_="622202", serial=23)
    bad = post(client, "/app/me/cards", {"card_number": "1234", "card_phone": who.phone})
    assert bad.status_code >= 400
    assert 'id="e-card_number"' in bad.text
    done = post(client, "/app/me/cards", {"card_number": number, "card_phone": who.phone})
    assert done.status_code == 303, done.text
    page = client.get("/app/me/cards")
    assert number not in page.text
    assert number[-4:] in page.text
    assert number[:6] in page.text
    with runtime.db.uow(readonly=True) as uow:
        [card] = wallet.list_cards(uow, user_id=who.user_id)

    stranger = resident(runtime, 24)
    sign_in(client, stranger)
    theirs = post(client, f"/app/me/cards/{card.id}/unbind", {}, "/app/me/cards")
    assert theirs.status_code == 404

    sign_in(client, who)
    gone = post(client, f"/app/me/cards/{card.id}/unbind", {}, "/app/me/cards")
    assert gone.status_code == 303
    with runtime.db.uow(readonly=True) as uow:
        assert [
            c for c in wallet.list_cards(uow, user_id=who.user_id) if c.status == "active"
        ] == []


# --- devices ------------------------------------------------------------------------------


def test_devices_list_and_sign_out_another(client: TestClient, runtime: Runtime) -> None:
    who = resident(runtime, 25, card_ending=None)  # has a bearer session from sign-up
    sign_in(client, who)
    page = client.get("/app/me/devices")
    assert page.status_code == 200
    ids = re.findall(r'/app/me/devices/([^/"]+)/revoke', page.text)
    assert len(ids) == 2
    assert page.text.count('class="badge ok">本设备<') == 1  # this one is marked
    other = ids[-1]  # the oldest: the sign-up session
    done = post(client, f"/app/me/devices/{other}/revoke", {}, "/app/me/devices")
    assert done.status_code == 303
    assert len(re.findall(r"/revoke", client.get("/app/me/devices").text)) == 1

    stranger = resident(runtime, 26, card_ending=None)
    sign_in(client, stranger)
    mine = re.findall(r'/app/me/devices/([^/"]+)/revoke', client.get("/app/me/devices").text)
    sign_in(client, who)
    refused = post(client, f"/app/me/devices/{mine[0]}/revoke", {}, "/app/me/devices")
    assert refused.status_code == 404


def test_pin_needed_for_money_is_on_me(client: TestClient, runtime: Runtime) -> None:
    who = resident(runtime, 27)
    sign_in(client, who)
    me = client.get("/app/me")
    assert me.status_code == 200
    assert PIN not in me.text


# --- login password -----------------------------------------------------------------------


def test_change_password_ends_the_other_sessions(client: TestClient, runtime: Runtime) -> None:
    who = resident(runtime, 28, card_ending=None)  # has a bearer session from sign-up
    sign_in(client, who)
    assert "/app/me/password" in client.get("/app/me").text
    wrong = post(
        client, "/app/me/password", {"old_password": "not it 123", "new_password": "fresh pass 92"}
    )
    assert wrong.status_code == 422
    assert 'id="e-old_password"' in wrong.text
    assert 'data-code="password_incorrect"' in wrong.text
    weak = post(client, "/app/me/password", {"old_password": PASSWORD, "new_password": "123"})
    assert weak.status_code == 422
    assert 'id="e-new_password"' in weak.text
    with runtime.db.uow(readonly=True) as uow:
        before, _ = sessions.list_sessions(uow, user_id=who.user_id, limit=100)
    assert len(before) == 2

    done = post(
        client, "/app/me/password", {"old_password": PASSWORD, "new_password": "fresh pass 92"}
    )
    assert done.status_code == 303
    assert done.headers["location"].startswith("/app/me?done=")
    assert client.get("/app/me").status_code == 200  # this device stays signed in
    with runtime.db.uow(readonly=True) as uow:
        after, _ = sessions.list_sessions(uow, user_id=who.user_id, limit=100)
    assert len(after) == 1
    with pytest.raises(DomainError) as old:
        identity.check_password(runtime.db, user_id=who.user_id, password=PASSWORD)
    assert old.value.code == "password_incorrect"
    identity.check_password(runtime.db, user_id=who.user_id, password="fresh pass 92")


# --- payment PIN reset by SMS -------------------------------------------------------------


def test_reset_the_payment_pin_with_the_sms_code(client: TestClient, runtime: Runtime) -> None:
    who = resident(runtime, 29, card_ending=None)
    sign_in(client, who)
    assert "/app/me/pin/reset" in client.get("/app/me").text
    page = client.get("/app/me/pin/reset")
    assert page.status_code == 200
    assert 'data-testid="sandbox-note"' in page.text
    assert 'action="/app/me/pin/reset/code"' in page.text
    too_soon = post(client, "/app/me/pin/reset/code", {}, "/app/me/pin/reset")
    assert too_soon.status_code == 429  # the sign-up code went out this minute
    assert 'data-code="sms_rate_limited"' in too_soon.text
    runtime.db.transact(  # a minute passes (instead of sleeping)
        lambda uow: uow.session.execute(
            text("DELETE FROM platform_rate_limits WHERE bucket LIKE 'sms_send_minute:%'")
        )
    )
    sent = post(client, "/app/me/pin/reset/code", {}, "/app/me/pin/reset")
    assert sent.status_code == 303
    step2 = sent.headers["location"]
    assert step2.startswith("/app/me/pin/reset?sent=1")
    assert 'name="new_pin_again"' in client.get(step2).text
    code = last_code(runtime.db, runtime.encryptor, who.phone)

    mismatch = post(
        client,
        "/app/me/pin/reset",
        {"code": code, "new_pin": "730418", "new_pin_again": "730419"},
        step2,
    )
    assert mismatch.status_code == 422
    assert 'id="e-new_pin_again"' in mismatch.text
    assert 'data-code="pin_mismatch"' in mismatch.text
    wrong = "000000" if code != "000000" else "111111"
    bad_code = post(
        client,
        "/app/me/pin/reset",
        {"code": wrong, "new_pin": "730418", "new_pin_again": "730418"},
        step2,
    )
    assert bad_code.status_code >= 400
    assert 'id="e-code"' in bad_code.text
    done = post(
        client,
        "/app/me/pin/reset",
        {"code": code, "new_pin": "730418", "new_pin_again": "730418"},
        step2,
    )
    assert done.status_code == 303, done.text
    assert done.headers["location"].startswith("/app/me?done=")
    with pytest.raises(DomainError) as old:
        identity.confirm_payment_pin(
            runtime.db,
            user_id=who.user_id,
            pin=PIN,
            settings=runtime.settings,
            encryptor=runtime.encryptor,
        )
    assert old.value.code == "pin_incorrect"
    identity.confirm_payment_pin(
        runtime.db,
        user_id=who.user_id,
        pin="730418",
        settings=runtime.settings,
        encryptor=runtime.encryptor,
    )


# --- closing the wallet -------------------------------------------------------------------


def _status(runtime: Runtime, who: Resident) -> str:
    with runtime.db.uow(readonly=True) as uow:
        return identity.get_user(uow, user_id=who.user_id).status


def test_close_is_refused_while_the_wallet_holds_money(
    client: TestClient, runtime: Runtime
) -> None:
    who = resident(runtime, 30)
    sign_in(client, who)
    topup = client.get("/app/topup")
    key = re.search(r'name="key" value="([^"]+)"', topup.text)
    assert key is not None
    topped = post(
        client,
        "/app/topup",
        {"amount": "12.34", "card_id": who.card_id or "", "pin": PIN, "key": key.group(1)},
    )
    assert topped.status_code == 303, topped.text
    before = balance(runtime.db, who.user_id)

    page = client.get("/app/me/close")
    assert page.status_code == 200
    assert 'data-testid="close-balance">¥12.34<' in page.text
    wrong_pin = post(client, "/app/me/close", {"pin": "740193"})
    assert wrong_pin.status_code == 403
    assert 'id="e-pin"' in wrong_pin.text
    refused = post(client, "/app/me/close", {"pin": PIN})
    assert refused.status_code == 409
    assert 'data-code="wallet_not_empty"' in refused.text
    assert "钱包中还有余额" in refused.text
    assert 'href="/app/withdraw"' in refused.text
    assert balance(runtime.db, who.user_id) == before
    assert _status(runtime, who) == "active"
    assert client.get("/app/me").status_code == 200
    assert_ledger_clean(runtime.db)


def test_close_an_empty_wallet_signs_out_for_good(client: TestClient, runtime: Runtime) -> None:
    who = resident(runtime, 32)
    env = Env(runtime.db, runtime.settings, runtime.encryptor, sandbox_bank())
    source = make_source(env, "cmp_close", budget=5000)
    grant(env, source, [who], 3000)  # ¥30 of campaign money, unused
    assert account(env, source.funder) == 2000
    sign_in(client, who)
    assert "/app/me/close" in client.get("/app/me").text
    page = client.get("/app/me/close")
    assert page.status_code == 200
    assert 'data-testid="close-balance">¥0.00<' in page.text
    assert 'data-testid="close-restricted">¥30.00<' in page.text
    assert 'data-testid="close-withdraw"' not in page.text
    done = post(client, "/app/me/close", {"pin": PIN})
    assert done.status_code == 303, done.text
    assert done.headers["location"] == "/app/closed"
    closed = client.get("/app/closed")
    assert closed.status_code == 200
    assert 'data-testid="closed"' in closed.text
    assert "¥30.00" in closed.text
    assert account(env, source.funder) == 5000  # the campaign money went back
    assert _status(runtime, who) == "closed"
    me = client.get("/app/me")
    assert me.status_code == 303
    assert me.headers["location"].startswith("/login?next=")
    with runtime.db.uow(readonly=True) as uow:
        left, _ = sessions.list_sessions(uow, user_id=who.user_id, limit=100)
    assert left == []
    login = client.post(
        "/login",
        data={"phone": who.phone, "password": PASSWORD, "csrf_token": token_of(client, "/login")},
    )
    assert login.status_code != 303
    assert_ledger_clean(runtime.db)
