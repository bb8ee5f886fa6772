"""The identity HTTP surface on SQLite and PostgreSQL: sign-up with the code read from the
dev endpoint, login, sessions, CSRF, rate limits, PIN lockout, real name, freezing."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response
from sqlalchemy import text

from citywallet.api.app import create_app
from citywallet.identity import consent, service
from citywallet.platform.db import Database
from citywallet.platform.logging import configure_logging
from citywallet.runtime import Runtime
from tests.identity_support import PASSWORD, resident_id, test_settings
from tests.ledger_checks import test_encryptor

PHONE = "13800138000"
OTHER = "13912345678"


@pytest.fixture
def runtime(db: Database, tmp_path: Path) -> Runtime:
    """The shared runtime, without sandbox latency and with cookies over plain HTTP."""
    return Runtime(test_settings(tmp_path, db), db, test_encryptor())


def _problem(response: Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    return body


def _code_for(client: TestClient, phone: str) -> str:
    response = client.get("/v1/dev/sms", params={"phone": phone})
    assert response.status_code == 200
    items = response.json()["items"]
    assert items, f"no SMS to {phone}"
    match = re.search(r"\d{6}", items[0]["text"])
    assert match
    return match.group()


def _sign_up(client: TestClient, phone: str = PHONE, session: str = "bearer") -> dict[str, Any]:
    sent = client.post("/v1/auth/sms-codes", json={"phone": phone, "purpose": "register"})
    assert sent.status_code == 202, sent.text
    body = {
        "phone": phone,
        "code": _code_for(client, phone),
        "password": PASSWORD,
        "session": session,
        "device_name": "Pixel",
        "consent": consent.signup_body(),
    }
    response = client.post("/v1/auth/register", json=body)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


def _a_minute_passes(runtime: Runtime) -> None:
    """Forget the per-minute SMS limit (instead of sleeping for a minute)."""
    runtime.db.transact(
        lambda uow: uow.session.execute(
            text("DELETE FROM platform_rate_limits WHERE bucket LIKE 'sms_send_minute:%'")
        )
    )


def _bearer(signed: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {signed['session']['token']}"}


# --- sign-up and login --------------------------------------------------------------------


def test_sign_up_with_the_code_from_the_dev_outbox(client: TestClient) -> None:
    sent = client.post("/v1/auth/sms-codes", json={"phone": "+86 138 0013 8000"})
    assert sent.json() == {"phone_masked": "138****8000", "expires_in": 300, "resend_after": 60}
    outbox = client.get("/v1/dev/sms", params={"phone": PHONE}).json()["items"]
    assert outbox[0]["phone_masked"] == "138****8000"
    signed = _sign_up_with(client, _code_for(client, PHONE))
    user = signed["user"]
    assert user["id"].startswith("usr_")
    assert user["phone_masked"] == "138****8000"
    assert (user["tier"], user["real_name_verified"], user["pin_set"]) == (0, False, False)
    session = signed["session"]
    assert session["id"].startswith("ses_")
    assert session["token"].startswith("cws_")
    assert session["csrf_token"] is None
    me = client.get("/v1/me", headers=_bearer(signed))
    assert me.status_code == 200
    assert me.json() == user


def _sign_up_with(client: TestClient, code: str) -> dict[str, Any]:
    response = client.post(
        "/v1/auth/register",
        json={"phone": PHONE, "code": code, "password": PASSWORD, "consent": consent.signup_body()},
    )
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


def test_sign_up_refusals(client: TestClient) -> None:
    _problem(
        client.post("/v1/auth/sms-codes", json={"phone": "010 6552 9988"}), 422, "invalid_phone"
    )
    client.post("/v1/auth/sms-codes", json={"phone": PHONE})
    code = _code_for(client, PHONE)
    weak = {"phone": PHONE, "code": code, "password": "password", "consent": consent.signup_body()}
    _problem(client.post("/v1/auth/register", json=weak), 422, "weak_password")
    wrong = {
        "phone": PHONE,
        "code": f"{(int(code) + 1) % 10**6:06d}",
        "password": PASSWORD,
        "consent": consent.signup_body(),
    }
    body = _problem(client.post("/v1/auth/register", json=wrong), 422, "sms_code_invalid")
    assert body["attempts_left"] == 4
    _sign_up_with(client, code)
    _problem(client.post("/v1/auth/register", json=wrong | {"code": code}), 422, "sms_code_invalid")


def test_sms_sending_is_rate_limited_with_retry_after(client: TestClient) -> None:
    assert client.post("/v1/auth/sms-codes", json={"phone": PHONE}).status_code == 202
    response = client.post("/v1/auth/sms-codes", json={"phone": "+8613800138000"})
    body = _problem(response, 429, "sms_rate_limited")
    assert 55 <= int(response.headers["Retry-After"]) <= 60
    assert body["retry_after"] == int(response.headers["Retry-After"])


def test_login_logout_and_wrong_passwords_to_429(client: TestClient, runtime: Runtime) -> None:
    _sign_up(client)
    login = {"phone": "138-0013-8000", "password": PASSWORD, "device_name": "iPad"}
    response = client.post("/v1/auth/login", json=login)
    assert response.status_code == 200
    headers = _bearer(response.json())
    assert client.get("/v1/me", headers=headers).status_code == 200
    assert client.post("/v1/auth/logout", headers=headers).status_code == 204
    _problem(client.get("/v1/me", headers=headers), 401, "unauthorized")
    limit = runtime.settings.login_failures_per_phone
    for _ in range(limit):
        _problem(
            client.post("/v1/auth/login", json=login | {"password": "wrong horse 8"}),
            401,
            "invalid_credentials",
        )
    response = client.post("/v1/auth/login", json=login)
    _problem(response, 429, "login_rate_limited")
    assert int(response.headers["Retry-After"]) > 800


def test_requests_without_a_valid_session_are_401(client: TestClient) -> None:
    _problem(client.get("/v1/me"), 401, "unauthorized")
    _problem(client.get("/v1/me", headers={"Authorization": "Basic abc"}), 401, "unauthorized")
    _problem(
        client.get("/v1/me", headers={"Authorization": "Bearer cws_nope"}), 401, "unauthorized"
    )


# --- sessions and devices -----------------------------------------------------------------


def test_sessions_list_and_revoke_and_another_users_session_is_404(client: TestClient) -> None:
    alice = _sign_up(client)
    bob = _sign_up(client, OTHER)
    phone_login = client.post("/v1/auth/login", json={"phone": PHONE, "password": PASSWORD})
    second = phone_login.json()
    listed = client.get("/v1/me/sessions", headers=_bearer(alice)).json()
    assert [s["id"] for s in listed["items"]] == [second["session"]["id"], alice["session"]["id"]]
    assert [s["current"] for s in listed["items"]] == [False, True]
    assert listed["items"][1]["device_name"] == "Pixel"
    page = client.get("/v1/me/sessions", params={"limit": 1}, headers=_bearer(alice)).json()
    assert len(page["items"]) == 1
    assert page["next_cursor"]
    rest = client.get(
        "/v1/me/sessions",
        params={"limit": 1, "cursor": page["next_cursor"]},
        headers=_bearer(alice),
    ).json()
    assert rest["items"][0]["id"] == alice["session"]["id"]
    assert rest["next_cursor"] is None
    _problem(
        client.get("/v1/me/sessions", params={"cursor": "garbage!"}, headers=_bearer(alice)),
        422,
        "invalid_cursor",
    )
    # Bob cannot see or end Alice's session: 404, as if it did not exist.
    response = client.delete(f"/v1/me/sessions/{alice['session']['id']}", headers=_bearer(bob))
    _problem(response, 404, "session_not_found")
    assert client.get("/v1/me", headers=_bearer(alice)).status_code == 200
    revoke = client.delete(f"/v1/me/sessions/{second['session']['id']}", headers=_bearer(alice))
    assert revoke.status_code == 204
    _problem(client.get("/v1/me", headers=_bearer(second)), 401, "unauthorized")
    bob_sessions = client.get("/v1/me/sessions", headers=_bearer(bob)).json()["items"]
    assert [s["id"] for s in bob_sessions] == [bob["session"]["id"]]


def test_cookie_sessions_need_the_csrf_token_on_unsafe_methods(client: TestClient) -> None:
    signed = _sign_up(client, session="cookie")
    session = signed["session"]
    assert session["token"] is None  # never readable by scripts
    csrf = session["csrf_token"]
    assert csrf
    assert client.cookies.get("cw_session")
    assert client.cookies.get("cw_csrf") == csrf
    assert client.get("/v1/me").status_code == 200  # safe method: the cookie alone
    current = client.get("/v1/auth/session").json()
    assert current["csrf_token"] == csrf
    assert current["kind"] == "cookie"
    pin = {"pin": "502817", "password": PASSWORD}
    _problem(client.post("/v1/me/payment-pin", json=pin), 403, "csrf_failed")
    _problem(
        client.post("/v1/me/payment-pin", json=pin, headers={"X-CSRF-Token": "x" * 43}),
        403,
        "csrf_failed",
    )
    ok = client.post("/v1/me/payment-pin", json=pin, headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 204
    # A page's form post carries the token as a field instead.
    form = client.post("/v1/auth/logout", data={"csrf_token": csrf})
    assert form.status_code == 204
    _problem(client.get("/v1/me"), 401, "unauthorized")


def test_the_session_cookie_is_httponly_and_samesite(client: TestClient) -> None:
    sent = client.post("/v1/auth/sms-codes", json={"phone": PHONE})
    assert sent.status_code == 202
    body = {
        "phone": PHONE,
        "code": _code_for(client, PHONE),
        "password": PASSWORD,
        "session": "cookie",
        "consent": consent.signup_body(),
    }
    response = client.post("/v1/auth/register", json=body)
    cookies = response.headers.get_list("set-cookie")
    session_cookie = next(c for c in cookies if c.startswith("cw_session="))
    assert "HttpOnly" in session_cookie
    assert "samesite=lax" in session_cookie.lower()
    csrf_cookie = next(c for c in cookies if c.startswith("cw_csrf="))
    assert "HttpOnly" not in csrf_cookie


# --- real name and tiers ------------------------------------------------------------------


def test_real_name_masks_and_one_identity_per_person(client: TestClient) -> None:
    alice = _sign_up(client)
    bob = _sign_up(client, OTHER)
    body = {"name": "张三", "id_number": resident_id()}
    verified = client.post("/v1/me/real-name", json=body, headers=_bearer(alice))
    assert verified.status_code == 200, verified.text
    user = verified.json()
    assert user["tier"] == 1
    assert user["name_masked"] == "*三"
    assert user["id_number_masked"] == "1****************1"
    assert resident_id() not in verified.text
    assert "张三" not in verified.text
    _problem(
        client.post("/v1/me/real-name", json=body, headers=_bearer(bob)),
        409,
        "identity_already_used",
    )
    fake = {"name": "假名", "id_number": resident_id(sequence="005")}
    failed = _problem(
        client.post("/v1/me/real-name", json=fake, headers=_bearer(bob)),
        422,
        "identity_check_failed",
    )
    assert failed["reason"] == "name_mismatch"
    bad = {"name": "李四", "id_number": resident_id()[:-1] + "0"}
    if bad["id_number"] == resident_id():
        bad["id_number"] = resident_id()[:-1] + "2"
    _problem(
        client.post("/v1/me/real-name", json=bad, headers=_bearer(bob)), 422, "invalid_id_number"
    )
    outage = {"name": "李四", "id_number": resident_id(sequence="998")}
    response = client.post("/v1/me/real-name", json=outage, headers=_bearer(bob))
    _problem(response, 503, "identity_service_unavailable")
    assert response.headers["Retry-After"]
    upgraded = client.post("/v1/me/tier/upgrade", headers=_bearer(alice))
    assert upgraded.json() == {"tier": 1, "external_checks": 1, "checks_to_next_tier": 2}
    _problem(client.post("/v1/me/tier/upgrade", headers=_bearer(bob)), 409, "real_name_required")


def test_real_name_accepts_a_region_code_newer_than_the_birth_date(client: TestClient) -> None:
    alice = _sign_up(client)
    luohu_1980 = {"name": "张三", "id_number": resident_id("440303", "19800101", "012")}
    verified = client.post("/v1/me/real-name", json=luohu_1980, headers=_bearer(alice))
    assert verified.status_code == 200, verified.text
    assert verified.json()["tier"] == 1
    bob = _sign_up(client, OTHER)
    for region in ("440399", "999999"):  # no such region, though the check digit is right
        unknown = {"name": "张三", "id_number": resident_id(region, "19800101")}
        _problem(
            client.post("/v1/me/real-name", json=unknown, headers=_bearer(bob)),
            422,
            "invalid_id_number",
        )


# --- payment PIN --------------------------------------------------------------------------


def test_pin_set_change_lockout_and_reset(client: TestClient, runtime: Runtime) -> None:
    signed = _sign_up(client)
    headers = _bearer(signed)
    _problem(
        client.post(
            "/v1/me/payment-pin", json={"pin": "123456", "password": PASSWORD}, headers=headers
        ),
        422,
        "pin_weak",
    )
    _problem(
        client.post(
            "/v1/me/payment-pin", json={"pin": "502817", "password": "nope 1234"}, headers=headers
        ),
        422,
        "password_incorrect",
    )
    assert (
        client.post(
            "/v1/me/payment-pin", json={"pin": "502817", "password": PASSWORD}, headers=headers
        ).status_code
        == 204
    )
    assert client.get("/v1/me", headers=headers).json()["pin_set"] is True
    _problem(
        client.post(
            "/v1/me/payment-pin", json={"pin": "739164", "password": PASSWORD}, headers=headers
        ),
        409,
        "pin_already_set",
    )
    change = {"old_pin": "739164", "new_pin": "260419"}
    for left in (4, 3, 2, 1):
        body = _problem(
            client.put("/v1/me/payment-pin", json=change, headers=headers), 403, "pin_incorrect"
        )
        assert body["attempts_left"] == left
    response = client.put("/v1/me/payment-pin", json=change, headers=headers)
    _problem(response, 423, "pin_locked")
    assert int(response.headers["Retry-After"]) == 3 * 3600
    # The wallet's check sees the same lock.
    with pytest.raises(Exception, match="locked"):
        service.confirm_payment_pin(runtime.db, user_id=signed["user"]["id"], pin="502817")
    _problem(client.post("/v1/me/payment-pin/reset-code", headers=headers), 429, "sms_rate_limited")
    _a_minute_passes(runtime)
    sent = client.post("/v1/me/payment-pin/reset-code", headers=headers)
    assert sent.status_code == 202
    code = _code_for(client, PHONE)
    reset = client.post(
        "/v1/me/payment-pin/reset", json={"code": code, "new_pin": "918273"}, headers=headers
    )
    assert reset.status_code == 204
    service.confirm_payment_pin(runtime.db, user_id=signed["user"]["id"], pin="918273")
    changed = client.put(
        "/v1/me/payment-pin", json={"old_pin": "918273", "new_pin": "260419"}, headers=headers
    )
    assert changed.status_code == 204


# --- passwords ----------------------------------------------------------------------------


def test_password_change_ends_other_sessions_and_reset_ends_all(
    client: TestClient, runtime: Runtime
) -> None:
    first = _sign_up(client)
    second = client.post("/v1/auth/login", json={"phone": PHONE, "password": PASSWORD}).json()
    update = {"old_password": PASSWORD, "new_password": "battery staple 9"}
    assert client.put("/v1/me/password", json=update, headers=_bearer(first)).status_code == 204
    assert client.get("/v1/me", headers=_bearer(first)).status_code == 200
    _problem(client.get("/v1/me", headers=_bearer(second)), 401, "unauthorized")
    _problem(
        client.post("/v1/auth/login", json={"phone": PHONE, "password": PASSWORD}),
        401,
        "invalid_credentials",
    )
    # Forgotten password: a reset code, then every session ends.
    _a_minute_passes(runtime)
    asked = client.post("/v1/auth/sms-codes", json={"phone": PHONE, "purpose": "reset_password"})
    assert asked.status_code == 202
    reset = {"phone": PHONE, "code": _code_for(client, PHONE), "new_password": "new horse 10"}
    assert client.post("/v1/auth/password-reset", json=reset).status_code == 204
    _problem(client.get("/v1/me", headers=_bearer(first)), 401, "unauthorized")
    login = client.post("/v1/auth/login", json={"phone": PHONE, "password": "new horse 10"})
    assert login.status_code == 200


# --- freezing -----------------------------------------------------------------------------


def test_a_frozen_user_gets_403_account_frozen(client: TestClient, runtime: Runtime) -> None:
    signed = _sign_up(client)
    user_id = signed["user"]["id"]
    runtime.db.transact(
        lambda uow: service.freeze_user(
            uow, user_id=user_id, reason="fraud report", actor="operator:test"
        )
    )
    _problem(client.get("/v1/me", headers=_bearer(signed)), 403, "account_frozen")
    _problem(
        client.post("/v1/auth/login", json={"phone": PHONE, "password": PASSWORD}),
        403,
        "account_frozen",
    )
    runtime.db.transact(
        lambda uow: service.unfreeze_user(
            uow, user_id=user_id, reason="cleared", actor="operator:test"
        )
    )
    login = client.post("/v1/auth/login", json={"phone": PHONE, "password": PASSWORD})
    assert login.status_code == 200
    assert login.json()["user"]["status"] == "active"


# --- sandbox endpoint, logs ---------------------------------------------------------------


def test_the_dev_endpoint_exists_only_in_sandbox_mode(db: Database, tmp_path: Path) -> None:
    production = Runtime(test_settings(tmp_path, db, sandbox=False), db, test_encryptor())
    with TestClient(create_app(production), raise_server_exceptions=False) as prod_client:
        _problem(prod_client.get("/v1/dev/sms", params={"phone": PHONE}), 404, "not_found")
        assert "/v1/dev/sms" not in prod_client.get("/openapi.json").json()["paths"]


def test_logs_never_show_phone_or_id_numbers(
    client: TestClient, capfd: pytest.CaptureFixture[str]
) -> None:
    configure_logging(level="DEBUG")
    signed = _sign_up(client)
    client.post("/v1/auth/login", json={"phone": PHONE, "password": "wrong horse 1"})
    client.post(
        "/v1/me/real-name",
        json={"name": "张三", "id_number": resident_id()},
        headers=_bearer(signed),
    )
    client.post(
        "/v1/me/real-name",
        json={"name": "张三", "id_number": resident_id()},
        headers=_bearer(signed),
    )
    out, err = capfd.readouterr()
    logged = out + err
    for event in ("sms code issued", "user registered", "login failed", "real name verified"):
        assert event in logged
    assert "138****8000" in logged
    for secret in (PHONE, resident_id(), "张三", PASSWORD):
        assert secret not in logged
