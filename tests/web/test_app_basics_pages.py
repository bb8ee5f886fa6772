"""Transfers show the payee's masked real name before the PIN and remember recent
recipients; the personal receive code is paid through scan → preview → PIN; forgot
password from the log-in page; the SMS resend countdown; the payment PIN entered twice."""

from __future__ import annotations

import re
from urllib.parse import quote

from fastapi.testclient import TestClient
from sqlalchemy import text

from citywallet.identity import service as identity
from citywallet.runtime import Runtime
from citywallet.wallet import receive_code
from tests.identity_support import PASSWORD, last_code
from tests.ledger_checks import assert_ledger_clean
from tests.wallet_support import PIN, balance
from tests.web.test_app_account_pages import post, resident, sign_in, token_of
from tests.web.test_app_money_pages import key_of, top_up


def a_minute_passes(runtime: Runtime) -> None:
    """The per-minute SMS limit forgets (instead of sleeping)."""
    runtime.db.transact(
        lambda uow: uow.session.execute(
            text("DELETE FROM platform_rate_limits WHERE bucket LIKE 'sms_send_minute:%'")
        )
    )


CHIP = re.compile(r'href="/app/transfer\?to=([^"]+)" data-testid="recent-recipient"')
PAYLOAD = re.compile(r'data-testid="receive-payload">([^<]+)<')


def _confirm_form(page: str) -> dict[str, str]:
    """The hidden fields of the confirm form on ``page``."""
    return dict(re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)">', page))


def test_the_payee_is_shown_masked_before_the_pin_and_remembered(
    client: TestClient, runtime: Runtime
) -> None:
    payer, payee = resident(runtime, 40), resident(runtime, 41)  # 41: 王芳
    sign_in(client, payer)
    top_up(client, payer, "100")
    token, key = key_of(client, "/app/transfer")
    assert 'data-testid="recent-recipients"' not in client.get("/app/transfer").text
    confirm = client.post(
        "/app/transfer",
        data={"to": payee.phone, "amount": "12.5", "note": "tea", "key": key, "csrf_token": token},
    )
    assert confirm.status_code == 200
    assert 'data-testid="payee-name">*芳<' in confirm.text
    assert "王芳" not in confirm.text
    assert payee.phone not in confirm.text
    assert 'data-testid="amount">¥12.50<' in confirm.text
    form = _confirm_form(confirm.text)
    assert form["to"] == payee.user_id
    assert form["amount"] == "12.50"

    wrong = client.post("/app/transfer/confirm", data={**form, "pin": "111111"})
    assert wrong.status_code == 403
    assert 'id="e-pin"' in wrong.text
    assert "*芳" in wrong.text
    assert balance(runtime.db, payee.user_id)[0] == 0
    done = client.post("/app/transfer/confirm", data={**form, "pin": PIN})
    assert done.status_code == 303
    assert balance(runtime.db, payee.user_id)[0] == 1_250
    assert balance(runtime.db, payer.user_id)[0] == 10_000 - 1_250

    page = client.get("/app/transfer")
    chips = re.findall(
        r'href="/app/transfer\?to=([^"]+)" data-testid="recent-recipient"', page.text
    )
    assert chips == [payee.user_id]
    chosen = client.get(f"/app/transfer?to={payee.user_id}")
    assert 'data-testid="chosen-recipient"' in chosen.text
    assert "*芳" in chosen.text
    assert f'name="to" value="{payee.user_id}"' in chosen.text
    stranger = client.get("/app/transfer?to=usr_nobodyatall")
    assert 'data-testid="chosen-recipient"' not in stranger.text
    myself = post(client, "/app/transfer", {"to": payer.phone, "amount": "1", "key": "m" * 20})
    assert myself.status_code == 422
    assert 'id="e-to"' in myself.text
    assert_ledger_clean(runtime.db)


def test_recent_recipients_are_distinct_and_newest_first(
    client: TestClient, runtime: Runtime
) -> None:
    payer = resident(runtime, 42)
    first, second = resident(runtime, 43), resident(runtime, 44)
    sign_in(client, payer)
    top_up(client, payer, "100")
    for who in (first, second, first):
        token, key = key_of(client, "/app/transfer")
        sent = client.post(
            "/app/transfer/confirm",
            data={"to": who.user_id, "amount": "1", "note": "", "pin": PIN, "key": key,
                  "csrf_token": token},
        )  # fmt: skip
        assert sent.status_code == 303
    page = client.get("/app/transfer").text
    chips = CHIP.findall(page)
    assert chips == [first.user_id, second.user_id]
    assert_ledger_clean(runtime.db)


def test_a_receive_code_with_an_amount_is_paid_through_the_scan_preview(
    client: TestClient, runtime: Runtime
) -> None:
    payer, payee = resident(runtime, 45), resident(runtime, 46)  # 46: 赵敏
    sign_in(client, payee)
    mine = client.get("/app/receive", params={"amount": "8.80"})
    assert mine.status_code == 200
    found = PAYLOAD.search(mine.text)
    assert found is not None
    payload = found.group(1)
    assert receive_code.parse(payload) == receive_code.ReceiveCode(payee.user_id, 880)
    qr = client.get("/app/receive/qr.svg", params={"amount": "8.80"})
    assert qr.headers["content-type"].startswith("image/svg+xml")
    assert client.get("/app/receive", params={"amount": "x"}).status_code == 400

    sign_in(client, payer)
    top_up(client, payer, "50")
    preview = client.get(f"/app/scan/preview?payload={quote(payload, safe='')}")
    assert preview.status_code == 303
    assert preview.headers["location"].startswith("/app/receive/pay?payload=")
    confirm = client.get(preview.headers["location"])
    assert 'data-testid="payee-name">*敏<' in confirm.text
    assert 'data-testid="amount">¥8.80<' in confirm.text
    form = _confirm_form(confirm.text)
    assert form["amount_fixed"] == "1"
    paid = client.post("/app/transfer/confirm", data={**form, "amount": "0.01", "pin": PIN})
    assert paid.status_code == 303  # the hidden amount is the code's; a changed one is its own
    assert balance(runtime.db, payee.user_id)[0] == 1
    _token, key = key_of(client, "/app/transfer")
    paid = client.post("/app/transfer/confirm", data={**form, "key": key, "pin": PIN})
    assert paid.status_code == 303
    assert balance(runtime.db, payee.user_id)[0] == 881
    assert balance(runtime.db, payer.user_id)[0] == 5_000 - 881
    assert_ledger_clean(runtime.db)


def test_a_receive_code_without_an_amount_asks_for_it(client: TestClient, runtime: Runtime) -> None:
    payer, payee = resident(runtime, 47), resident(runtime, 48)
    payload = receive_code.build(receive_code.ReceiveCode(payee.user_id))
    sign_in(client, payer)
    top_up(client, payer, "20")
    confirm = client.get("/app/receive/pay", params={"payload": payload})
    assert confirm.status_code == 200
    assert 'name="amount" type="text"' in confirm.text
    form = _confirm_form(confirm.text)
    assert form["amount_fixed"] == "0"
    too_much = client.post(
        "/app/transfer/confirm", data={**form, "amount": "25", "note": "", "pin": PIN}
    )
    assert too_much.status_code == 409
    assert 'id="e-amount"' in too_much.text
    assert 'action="/app/transfer/confirm"' in too_much.text
    paid = client.post(
        "/app/transfer/confirm", data={**form, "amount": "3", "note": "", "pin": PIN}
    )
    assert paid.status_code == 303
    assert balance(runtime.db, payee.user_id)[0] == 300
    assert_ledger_clean(runtime.db)


def test_broken_and_own_receive_codes_are_refused_at_the_scan(
    client: TestClient, runtime: Runtime
) -> None:
    payer = resident(runtime, 49)
    sign_in(client, payer)
    own = receive_code.build(receive_code.ReceiveCode(payer.user_id, 100))
    mine = client.get("/app/receive/pay", params={"payload": own})
    assert mine.status_code == 422
    assert 'data-code="cannot_pay_self"' in mine.text
    tampered = own[:-4] + ("0000" if own[-4:] != "0000" else "0001")
    bad = client.get("/app/receive/pay", params={"payload": tampered})
    assert bad.status_code == 422
    assert 'data-code="qr_crc_mismatch"' in bad.text
    nobody = receive_code.build(receive_code.ReceiveCode("usr_nobodyatall", 100))
    missing = client.get("/app/receive/pay", params={"payload": nobody})
    assert missing.status_code == 404
    assert 'data-code="recipient_not_found"' in missing.text


def test_the_pin_is_entered_twice_and_a_mismatch_saves_nothing(
    client: TestClient, runtime: Runtime
) -> None:
    who = resident(runtime, 50, pin=False, card_ending=None)
    sign_in(client, who)
    page = client.get("/app/me/pin").text
    assert 'name="new_pin_again"' in page
    differ = post(
        client,
        "/app/me/pin",
        {"password": PASSWORD, "new_pin": "502817", "new_pin_again": "502871"},
    )
    assert differ.status_code == 422
    assert 'id="e-new_pin_again"' in differ.text
    assert 'data-code="pin_mismatch"' in differ.text
    with runtime.db.uow(readonly=True) as uow:
        assert not identity.get_profile(uow, user_id=who.user_id).pin_set
    same = post(
        client,
        "/app/me/pin",
        {"password": PASSWORD, "new_pin": "502817", "new_pin_again": "502817"},
    )
    assert same.status_code == 303
    with runtime.db.uow(readonly=True) as uow:
        assert identity.get_profile(uow, user_id=who.user_id).pin_set


def test_forgot_password_from_the_login_page(client: TestClient, runtime: Runtime) -> None:
    who = resident(runtime, 51)
    assert 'href="/app/password/forgot"' in client.get("/login").text
    a_minute_passes(runtime)  # since the sign-up code
    sent = post(client, "/app/password/forgot/code", {"phone": who.phone}, "/app/password/forgot")
    assert sent.status_code == 303
    assert sent.headers["location"].startswith("/app/password/forgot?sent=1&wait=60")
    step2 = client.get(sent.headers["location"])
    assert 'data-resend-after="60"' in step2.text
    assert f'value="{who.phone}"' in step2.text
    too_soon = client.post(
        "/app/password/forgot/code",
        data={"phone": who.phone, "again": "1", "csrf_token": token_of(client, "/login")},
    )
    assert too_soon.status_code == 429
    wait = re.search(r'data-resend-after="(\d+)"', too_soon.text)
    assert wait is not None
    assert 0 < int(wait.group(1)) <= 60
    assert 'name="code"' in too_soon.text  # still step 2

    code = last_code(runtime.db, runtime.encryptor, who.phone)
    new = "another good password 7"
    differ = post(
        client,
        "/app/password/forgot",
        {"phone": who.phone, "code": code, "new_password": new, "new_password_again": new + "x"},
        "/login",
    )
    assert differ.status_code == 422
    assert 'id="e-new_password_again"' in differ.text
    done = post(
        client,
        "/app/password/forgot",
        {"phone": who.phone, "code": code, "new_password": new, "new_password_again": new},
        "/login",
    )
    assert done.status_code == 303
    assert done.headers["location"].startswith("/login?done=")
    old = post(client, "/login", {"phone": who.phone, "password": PASSWORD})
    assert old.status_code == 401
    fresh = post(client, "/login", {"phone": who.phone, "password": new})
    assert fresh.status_code == 303


def test_every_sms_page_counts_down_before_a_new_code(client: TestClient, runtime: Runtime) -> None:
    sent = post(client, "/app/signup/code", {"phone": "13700137311"}, "/app/signup")
    assert sent.status_code == 303
    assert "&wait=60" in sent.headers["location"]
    step2 = client.get(sent.headers["location"])
    assert 'data-resend-after="60"' in step2.text
    assert "/static/js/resend.js" in step2.text
    again = client.post(
        "/app/signup/code",
        data={"phone": "13700137311", "again": "1", "csrf_token": token_of(client, "/login")},
    )
    assert again.status_code == 429
    assert 'name="code"' in again.text

    who = resident(runtime, 52)
    sign_in(client, who)
    a_minute_passes(runtime)
    code = post(client, "/app/me/pin/reset/code", {}, "/app/me/pin/reset")
    assert code.status_code == 303
    assert "&wait=60" in code.headers["location"]
    page = client.get(code.headers["location"])
    assert 'data-resend-after="60"' in page.text
