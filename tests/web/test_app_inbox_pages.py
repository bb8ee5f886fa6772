"""The residents' message centre over HTTP (SQLite and PostgreSQL): the unread badge on
the tab bar, the list, opening a message (read, then its object), "mark all read", other
residents' messages (404); and hiding the balance, remembered by a cookie."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from citywallet.inbox import service as inbox
from citywallet.runtime import Runtime
from citywallet.wallet import service as wallet
from tests.web.test_app_account_pages import post, resident, sign_in, token_of

BADGE = re.compile(r"data-unread-count>(\d+)<")


def _badge(client: TestClient, path: str = "/app") -> int:
    page = client.get(path)
    assert page.status_code == 200, page.text
    found = BADGE.search(page.text)
    assert found, "the tab bar has its badge"
    return int(found.group(1))


def test_the_badge_the_list_and_reading(client: TestClient, runtime: Runtime) -> None:
    alice, bob = resident(runtime, 51), resident(runtime, 52)
    split = runtime.db.transact(
        lambda uow: wallet.create_split(
            uow,
            user_id=bob.user_id,
            total=50_00,
            shares=[wallet.ShareRequest(alice.user_id)],
            encryptor=runtime.encryptor,
        )
    )
    sign_in(client, alice)  # a browser this account never used: a message too
    assert _badge(client) == 2
    listed = client.get("/app/messages")
    assert listed.status_code == 200
    assert listed.text.count('data-testid="message"') == 2
    assert 'data-kind="split_requested"' in listed.text
    assert 'data-kind="device_signin"' in listed.text
    assert "¥50.00" in listed.text

    with runtime.db.uow(readonly=True) as uow:
        mine = inbox.list_messages(uow, user_id=alice.user_id).items
        bobs = inbox.list_messages(uow, user_id=bob.user_id).items
    asked = next(m for m in mine if m.kind == "split_requested")
    opened = post(client, f"/app/messages/{asked.id}/open", {}, form_page="/app/messages")
    assert opened.status_code == 303
    assert opened.headers["location"] == f"/app/splits/{split.id}"
    assert _badge(client) == 1

    bob_sign_in = client.post(
        f"/app/messages/{bobs[0].id}/open" if bobs else "/app/messages/msg_nobody/open",
        data={"csrf_token": token_of(client, "/app/messages")},
    )
    assert bob_sign_in.status_code == 404  # not hers: nothing changes
    everything = post(client, "/app/messages/read-all", {}, form_page="/app/messages")
    assert everything.status_code == 303
    assert "/app/messages?done=" in everything.headers["location"]
    assert _badge(client) == 0
    with runtime.db.uow(readonly=True) as uow:
        assert inbox.unread_count(uow, user_id=alice.user_id) == 0


def test_messages_read_in_both_languages(client: TestClient, runtime: Runtime) -> None:
    carol = resident(runtime, 53)
    sign_in(client, carol)
    english = client.get("/app/messages", headers={"Accept-Language": "en"})
    assert "New device" in english.text
    assert "signed in on a new device" in english.text
    chinese = client.get("/app/messages", headers={"Accept-Language": "zh-CN"})
    assert "新设备登录" in chinese.text
    assert "您的账户在新设备" in chinese.text
    post(client, "/app/messages/read-all", {}, form_page="/app/messages")
    assert 'data-testid="read-all"' not in client.get("/app/messages").text


def test_hiding_the_balance_is_remembered(client: TestClient, runtime: Runtime) -> None:
    dave = resident(runtime, 54)
    sign_in(client, dave)
    assert 'data-testid="balance">¥0.00<' in client.get("/app").text
    hidden = post(client, "/app/balance/hide", {"next": "/app"}, form_page="/app")
    assert hidden.status_code == 303
    assert hidden.headers["location"] == "/app"
    home = client.get("/app")
    assert 'data-testid="balance"><span data-hidden-amount>****</span><' in home.text
    assert 'aria-pressed="true"' in home.text
    elsewhere = post(client, "/app/balance/show", {"next": "https://evil.example/"}, "/app")
    assert elsewhere.headers["location"] == "/app"  # only pages of this app
    assert 'data-testid="balance">¥0.00<' in client.get("/app").text
