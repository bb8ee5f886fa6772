"""``citywallet demo``'s seeding: residents, the restaurant, and an operator who can open
the operator console; the three web apps' URLs and logins; a second run changes nothing."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient
from rich.console import Console
from sqlalchemy import text

from citywallet import demo
from citywallet.api.app import create_app
from citywallet.campaign import service as campaigns
from citywallet.cli import demo_panel
from citywallet.identity import attributes
from citywallet.identity.service import find_user_by_phone
from citywallet.platform.db import Database
from citywallet.redpacket import service as redpackets
from citywallet.runtime import Runtime
from citywallet.wallet import restricted
from tests.ledger_checks import assert_ledger_clean, test_encryptor
from tests.wallet_support import wallet_settings


def _users(db: Database) -> int:
    with db.uow(readonly=True) as uow:
        return int(uow.session.execute(text("SELECT COUNT(*) FROM identity_users")).scalar_one())


def test_the_demo_seeds_an_operator_and_names_the_three_apps(db: Database, tmp_path: Path) -> None:
    runtime = Runtime(wallet_settings(tmp_path, db), db, test_encryptor())
    info = demo.seed(runtime)
    assert info.operator["phone"] == demo.OPERATOR.phone
    with db.uow(readonly=True) as uow:
        found = find_user_by_phone(uow, phone=demo.OPERATOR.phone, encryptor=runtime.encryptor)
        assert found is not None
        assert found.real_name_verified
        assert attributes.is_operator(uow, user_id=found.id)
        approver = find_user_by_phone(uow, phone=demo.APPROVER.phone)
        assert approver is not None  # the second operator of dual control
        assert attributes.is_operator(uow, user_id=approver.id)
        resident = find_user_by_phone(uow, phone=demo.RESIDENTS[0].phone)
        assert resident is not None
        assert not attributes.is_operator(uow, user_id=resident.id)
    users = _users(db)
    assert users == len(demo.RESIDENTS) + 2  # and two operators
    with db.uow(readonly=True) as uow:  # a drawn campaign whose winners hold red packets
        listed = {c.name: c for c in campaigns.list_campaigns(uow)}
        people = [
            find_user_by_phone(uow, phone=r.phone, encryptor=runtime.encryptor)
            for r in demo.RESIDENTS
        ]
        held = [restricted.balances_of(uow, user_id=p.id) for p in people if p is not None]
        sent = redpackets.list_packets(uow, user_id=people[0].id if people[0] else "")
    assert {c.status for c in listed.values()} == {"issued", "open"}
    assert [sum(b.available for b in h) for h in held] == [50_00, 50_00, 0]
    assert len(sent.items) == 1

    apps = demo.web_apps(info, "http://127.0.0.1:8000")
    assert [url for _, url, _ in apps] == [
        "http://127.0.0.1:8000/app",
        "http://127.0.0.1:8000/merchant",
        "http://127.0.0.1:8000/operator",
    ]
    printed = _panel(info, tmp_path)
    assert "seeded demo data" in printed
    assert f"{demo.OPERATOR.phone} / {demo.PASSWORD}" in printed
    assert "http://127.0.0.1:8000/app/signup" in printed  # new residents: the sign-up page
    assert "http://127.0.0.1:8000/v1/dev/sms" in printed
    assert str(tmp_path / "demo.log") in printed

    again = demo.seed(runtime)  # idempotent: nobody new, a fresh API key only
    assert _users(db) == users
    assert again.operator == info.operator
    assert not info.reused
    assert again.reused
    assert "reused the demo data" in _panel(again, tmp_path)

    with TestClient(create_app(runtime), follow_redirects=False) as client:
        form = client.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert token is not None
        signed = client.post(
            "/login",
            data={"phone": demo.OPERATOR.phone, "password": demo.PASSWORD,
                  "csrf_token": token.group(1), "next": "/operator"},
        )  # fmt: skip
        assert signed.headers["location"] == "/operator"
        assert client.get("/operator").status_code == 200
        for app in ("app", "merchant", "operator"):  # the addresses people guess
            guessed = client.get(f"/{app}/login")
            assert guessed.status_code == 303
            assert guessed.headers["location"] == f"/login?next=/{app}"
    assert_ledger_clean(db)


def _panel(info: demo.DemoInfo, tmp_path: Path) -> str:
    console = Console(record=True, width=200)
    console.print(demo_panel(info, "http://127.0.0.1:8000", "sqlite://", tmp_path / "demo.log"))
    return console.export_text()
