"""The switch's operator console over the switch app: sign-in by an operator account of the
switch's database (made by `citywallet switch operators add`), participants, caps,
deactivation, windows and failed transfers, each action in the audit log."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from citywallet import cli
from citywallet.api.switch import create_switch_app
from citywallet.identity import audit
from citywallet.identity import service as identity
from citywallet.identity.attributes import grant_operator
from citywallet.platform.db import Database
from tests.cli_support import cli_runner
from tests.identity_support import PASSWORD
from tests.ledger_checks import test_encryptor
from tests.switch_support import (
    KEYS,
    SWITCH_SEED,
    add_participants,
    call,
    new_prepare,
    positions,
    public_b64,
    switch_runtime,
)

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
PHONE = "13700137000"


@pytest.fixture
def client(db: Database, tmp_path: Path) -> Iterator[TestClient]:
    add_participants(db)
    runtime = switch_runtime(db, tmp_path, session_cookie_secure=False)  # http://testserver
    app = create_switch_app(runtime, start_background=False)
    with TestClient(app, raise_server_exceptions=False, follow_redirects=False) as test_client:
        yield test_client


def token(client: TestClient, page: str) -> str:
    found = TOKEN.search(client.get(page).text)
    assert found is not None
    return found.group(1)


def sign_in(client: TestClient, db: Database) -> str:
    user = identity.provision_account(db, phone=PHONE, password=PASSWORD,
                                      encryptor=test_encryptor())  # fmt: skip
    db.transact(lambda uow: grant_operator(uow, user_id=user.id, actor="test"))
    answer = client.post("/login", data={"phone": PHONE, "password": PASSWORD,
                                         "csrf_token": token(client, "/login"),
                                         "next": "/console"})  # fmt: skip
    assert answer.status_code == 303, answer.text
    return user.id


def test_the_console_needs_an_operator(client: TestClient, db: Database) -> None:
    assert client.get("/").headers["location"] == "/console"
    answer = client.get("/console")
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/login")
    # FSPIOP endpoints are untouched by the pages' error handling
    assert call(client, "GET", "/parties/MSISDN/13900139000").status_code == 202


def test_an_operator_manages_participants_and_windows(client: TestClient, db: Database) -> None:
    operator = sign_in(client, db)
    page = client.get("/console", headers={"Accept-Language": "en"})
    assert page.status_code == 200
    assert "provider-a" in page.text
    assert "¥1,000.00" in page.text  # the cap and headroom of 100,000 fen

    zh = client.get("/console", headers={"Accept-Language": "zh-CN"})
    assert "净借记上限" in zh.text

    added = client.post("/console/participants", data={
        "id": "cell-1", "name": "Cell 1", "public_key": public_b64(KEYS["provider-c"]),
        "callback_url": "http://cell-1.test/fspiop", "cap": "500.00",
        "csrf_token": token(client, "/console"),
    })  # fmt: skip
    assert added.status_code == 303
    assert positions(db)["cell-1"] == (0, 0)
    refused = client.post("/console/participants", data={
        "id": "Bad Id", "name": "x", "public_key": "x", "callback_url": "x", "cap": "1",
        "csrf_token": token(client, "/console"),
    })  # fmt: skip
    assert refused.status_code == 400
    assert "participant_invalid" in refused.text

    cap = {"cap": "20.00", "csrf_token": token(client, "/console")}
    capped = client.post("/console/participants/provider-a/cap", data=cap)
    assert capped.status_code == 303
    prepare, _ = new_prepare(2_001)
    call(client, "POST", "/transfers", prepare)  # over the new cap of 2,000 fen
    assert positions(db)["provider-a"] == (0, 0)

    off = client.post("/console/participants/provider-b/deactivate",
                      data={"csrf_token": token(client, "/console")})  # fmt: skip
    assert off.status_code == 303
    client.app.state.switch.keys.clear()
    refused_call = call(client, "GET", "/parties/MSISDN/13900139000", source="provider-b")
    assert refused_call.status_code == 400

    failed = client.get("/console/transfers", headers={"Accept-Language": "en"})
    assert prepare.transfer_id in failed.text
    assert "4001" in failed.text

    closed = client.post("/console/windows/close",
                         data={"csrf_token": token(client, "/console/windows")})  # fmt: skip
    assert closed.status_code == 303
    listed = client.get("/console/windows", headers={"Accept-Language": "en"})
    assert "Closed window" in listed.text
    assert "Open window" in listed.text

    with db.uow(readonly=True) as uow:
        actions = [e.action for e in audit.list_entries(uow, actor_user_id=operator)[0]]
    assert sorted(actions) == [
        "switch.cap", "switch.close_window", "switch.deactivate", "switch.participant"
    ]  # fmt: skip


def test_operators_add_makes_an_account_that_signs_in(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CITYWALLET_INTEROP_KEY", base64.b64encode(SWITCH_SEED).decode())
    runner = next(cli_runner(db, tmp_path, monkeypatch))
    result = runner.invoke(
        cli.app, ["switch", "operators", "add", PHONE], input=f"{PASSWORD}\n{PASSWORD}\n"
    )
    assert result.exit_code == 0, result.output
    assert "may sign in" in result.output
    with db.uow(readonly=True) as uow:
        found = identity.find_user_by_phone(uow, phone=PHONE, encryptor=test_encryptor())
    assert found is not None
