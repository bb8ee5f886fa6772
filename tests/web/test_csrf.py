"""CSRF on the pages (issue 12, item 6): the attacks of the report, replayed.

An operator's or a resident's browser holds a real session; the attacker plants
``cw_form=planted`` (a sibling subdomain or a plain-HTTP response can set cookies) and posts
``csrf_token=planted`` from his own site. Before the fix the signed-out cookie counted as a
fallback and the resident was frozen. Now only the session's token counts, and a post that
the browser marks as cross-site is refused before its token is even read.
"""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from citywallet.identity import service as identity
from citywallet.runtime import Runtime
from citywallet.web.session import FORM_COOKIE
from tests.identity_support import PASSWORD
from tests.ledger_checks import assert_ledger_clean
from tests.wallet_support import balance, make_resident, sandbox_bank
from tests.web.test_operator_pages import resident, sign_in_operator

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
EVIL = {"Origin": "https://evil.example"}


def token_of(client: TestClient, page: str) -> str:
    found = TOKEN.search(client.get(page).text)
    assert found is not None
    return found.group(1)


def code_of(html: str) -> set[str]:
    return set(re.findall(r'data-code="([a-z_]+)"', html))


def status_of(runtime: Runtime, user_id: str) -> str:
    with runtime.db.uow(readonly=True) as uow:
        return identity.get_user(uow, user_id=user_id).status


@pytest.mark.parametrize("headers", [{}, EVIL], ids=["no-origin", "evil-origin"])
def test_a_planted_form_cookie_does_not_freeze_a_resident(
    client: TestClient, runtime: Runtime, headers: dict[str, str]
) -> None:
    sign_in_operator(client, runtime)
    victim = resident(runtime, 3, card_ending=None)
    client.cookies.set(FORM_COOKIE, "planted")
    answer = client.post(
        f"/operator/residents/{victim.user_id}/freeze",
        data={"csrf_token": "planted", "reason": "csrf"},
        headers=headers,
    )
    assert answer.status_code == 403
    assert code_of(answer.text) == {"csrf_failed"}
    assert status_of(runtime, victim.user_id) == "active"


def groups(runtime: Runtime) -> int:
    with runtime.db.uow(readonly=True) as uow:
        found = uow.session.execute(text("SELECT COUNT(*) FROM redpacket_groups"))
        return int(found.scalar_one())


def sign_in(client: TestClient, phone: str) -> None:
    token = token_of(client, "/login")
    answer = client.post("/login", data={"phone": phone, "password": PASSWORD, "csrf_token": token})
    assert answer.status_code == 303


@pytest.mark.parametrize("headers", [{}, EVIL], ids=["no-origin", "evil-origin"])
def test_a_planted_form_cookie_does_not_make_a_group_or_move_money(
    client: TestClient, runtime: Runtime, headers: dict[str, str]
) -> None:
    bank = sandbox_bank()
    person = make_resident(runtime.db, runtime.settings, runtime.encryptor, bank, 1)
    payee = make_resident(runtime.db, runtime.settings, runtime.encryptor, bank, 2)
    sign_in(client, person.phone)
    client.cookies.set(FORM_COOKIE, "planted")
    made = client.post(
        "/app/redpackets/groups",
        data={"csrf_token": "planted", "name": "evil", "members": payee.phone},
        headers=headers,
    )
    assert made.status_code == 403
    assert code_of(made.text) == {"csrf_failed"}
    assert groups(runtime) == 0
    before = balance(runtime.db, person.user_id)
    sent = client.post(
        "/app/transfer",
        data={"csrf_token": "planted", "to": payee.phone, "amount": "1.00", "pin": "123456",
              "key": "k" * 20},
        headers=headers,
    )  # fmt: skip
    assert sent.status_code == 403
    assert balance(runtime.db, person.user_id) == before
    assert_ledger_clean(runtime.db)


CROSS_SITE = [
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},
    {"Sec-Fetch-Site": "cross-site", "Origin": "http://testserver"},
    EVIL,
    {"Origin": "null"},
    {"Origin": "http://testserver.evil.example"},
]
SAME_ORIGIN = [
    {"Sec-Fetch-Site": "same-origin", "Origin": "http://testserver"},
    {"Sec-Fetch-Site": "none"},
    {"Origin": "http://testserver"},
    {},
]


def test_cross_site_posts_are_refused_even_with_the_right_token(
    client: TestClient, runtime: Runtime
) -> None:
    """The second line: where the browser says a post comes from. Same-origin (or a
    browser that says nothing) leaves the decision to the token."""
    sign_in_operator(client, runtime)
    victim = resident(runtime, 3, card_ending=None)
    page = f"/operator/residents/{victim.user_id}"
    token = token_of(client, page)
    for headers in CROSS_SITE:
        answer = client.post(
            f"{page}/freeze", data={"csrf_token": token, "reason": "x"}, headers=headers
        )
        assert answer.status_code == 403, headers
        assert code_of(answer.text) == {"csrf_failed"}, headers
        assert status_of(runtime, victim.user_id) == "active"
    for headers in SAME_ORIGIN:
        search = client.post(
            "/operator/residents/search", data={"csrf_token": token, "q": victim.phone},
            headers=headers,
        )  # fmt: skip
        assert search.status_code == 200, headers
    frozen = client.post(
        f"{page}/freeze", data={"csrf_token": token, "reason": "checked"}, headers=SAME_ORIGIN[0]
    )
    assert frozen.status_code == 303
    assert status_of(runtime, victim.user_id) == "frozen"


def test_the_signed_out_token_is_keyed_by_the_server(client: TestClient, runtime: Runtime) -> None:
    """The log-in form's token is not the cookie's value (which a planted cookie would
    give away) but a keyed hash of it; a stale session cookie does not get in the way."""
    person = make_resident(runtime.db, runtime.settings, runtime.encryptor, sandbox_bank(), 1)
    token = token_of(client, "/login")
    nonce = client.cookies.get(FORM_COOKIE)
    assert nonce
    assert token != nonce
    login = {"phone": person.phone, "password": PASSWORD}
    assert client.post("/login", data={**login, "csrf_token": nonce}).status_code == 403
    client.cookies.set("cw_session", "ended-long-ago")
    signed_in = client.post("/login", data={**login, "csrf_token": token})
    assert signed_in.status_code == 303
    assert client.get("/app").status_code == 200
