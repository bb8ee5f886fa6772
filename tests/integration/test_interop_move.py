"""Moving a resident, in one process on SQLite and PostgreSQL, against the scripted switch of
``tests/interop_support.py``: the old cell's steps one by one (freeze, the package, the
answer, the balance as one switch transfer, the alias handover, closed as moved), the new
cell's import of a package (PII under this cell's key, the same password, the old history
read-only), and refusals that change nothing."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from citywallet.api.app import create_app
from citywallet.interop.messages import ErrorCode, error
from citywallet.interop.moves import MoveAnswer, MovePackage
from citywallet.interop.provider import moving
from citywallet.platform.db import Database
from citywallet.platform.errors import DomainError
from citywallet.runtime import Runtime
from tests.interop_support import (
    ME,
    OTHER,
    FakeSwitch,
    connected_runtime,
    eventually,
    outbox,
    sent,
)
from tests.ledger_checks import assert_ledger_clean
from tests.wallet_support import PASSWORD, PIN, Person, balance, count
from tests.web.test_app_account_pages import token_of


@pytest.fixture
def fake() -> FakeSwitch:
    return FakeSwitch()


@pytest.fixture
def runtime(db: Database, tmp_path: Path, fake: FakeSwitch) -> Runtime:
    return connected_runtime(db, tmp_path, fake)


@pytest.fixture
def client(runtime: Runtime, fake: FakeSwitch) -> Iterator[TestClient]:
    with TestClient(create_app(runtime), raise_server_exceptions=False) as test_client:
        fake.client = test_client
        yield test_client


def _step(runtime: Runtime, fn: Any, **kw: Any) -> str:
    state: str = runtime.db.transact(lambda uow: fn(uow, **kw))
    sent(runtime.db)  # what the step queued reached the (fake) switch
    return state


def _login(client: TestClient, phone: str) -> Any:
    return client.post("/v1/auth/login", json={"phone": phone, "password": PASSWORD})


def _sent(db: Database, path: str) -> list[dict[str, Any]]:
    return [m for m in outbox(db) if m["path"] == path]


def test_a_resident_moves_out_step_by_step(
    client: TestClient, runtime: Runtime, fake: FakeSwitch
) -> None:
    db, settings, enc = runtime.db, runtime.settings, runtime.encryptor
    ann = Person(client, 1)
    ann.money("/v1/wallet/topups", {"card_id": ann.card_id, "amount": 30_000, "pin": PIN})
    fake.directory[ann.phone] = (OTHER, "*三丰")  # what the switch answers once handed over

    # refusals change nothing
    with pytest.raises(DomainError) as unknown:
        db.transact(lambda uow: moving.start_move(
            uow, phone="13700000000", to=OTHER, settings=settings, encryptor=enc))  # fmt: skip
    assert unknown.value.code == "move_resident_not_found"
    with pytest.raises(DomainError) as here:
        db.transact(lambda uow: moving.start_move(
            uow, phone=ann.phone, to=ME, settings=settings, encryptor=enc))  # fmt: skip
    assert here.value.extra["reason"] == "same_cell"
    assert _login(client, ann.phone).status_code == 200

    view = db.transact(lambda uow: moving.start_move(
        uow, phone=ann.phone, to=OTHER, settings=settings, encryptor=enc))  # fmt: skip
    assert (view.state, view.balance, view.line_count) == ("frozen", 30_000, 1)
    assert _login(client, ann.phone).json()["code"] == "account_frozen"
    move_id = view.move_id
    assert _step(runtime, moving.send_package, move_id=move_id, settings=settings,
                 encryptor=enc) == "sent"  # fmt: skip
    [posted] = [m for m in fake.seen if m[1] == "/moves"]
    package = MovePackage.model_validate(posted[2])
    assert (package.to_fsp, package.balance.amount, len(package.history)) == (OTHER, 30_000, 1)
    assert package.profile.id_number == ann.id_number
    assert package.cards

    # the new cell's answer; the package's PII leaves our outbox
    answer = MoveAnswer(user_id="usr_there")
    assert fake.send("PUT", f"/moves/{move_id}", answer).status_code == 202
    assert fake.send("PUT", f"/moves/{move_id}/error", error(ErrorCode.GENERIC_VALIDATION_ERROR))
    assert db.transact(lambda uow: moving.move_of(uow, move_id=move_id)).state == "accepted"
    assert [m["body"] for m in _sent(db, "/moves")] == [None]

    # the balance: one switch transfer, no PIN, no fee, no limits
    assert _step(runtime, moving.ask_quote, move_id=move_id, settings=settings, encryptor=enc,
                 now=datetime.now(UTC)) == "quoting"  # fmt: skip
    eventually(lambda: _step(runtime, moving.prepare_transfer, move_id=move_id,
                             settings=settings) == "transferring")  # fmt: skip
    eventually(lambda: _step(runtime, moving.check_transfer, move_id=move_id) == "transferred")
    assert balance(db, ann.user_id) == (0, 0, 0)
    assert _step(runtime, moving.hand_over_alias, move_id=move_id, settings=settings,
                 encryptor=enc) == "alias_sent"  # fmt: skip
    handover = [m for m in fake.seen if m[1] == f"/participants/MSISDN/{ann.phone}"][-1]
    assert handover[2]["fspId"] == OTHER  # (the first one: the verification's registration)
    eventually(lambda: _step(runtime, moving.confirm_alias, move_id=move_id, settings=settings,
                             encryptor=enc, retry=False) == "done")  # fmt: skip

    # closed as moved; the sign-in says where (API and page)
    refused = _login(client, ann.phone)
    assert (refused.status_code, refused.json()["code"], refused.json()["cell"]) == (
        403, "account_moved", OTHER,
    )  # fmt: skip
    client.cookies.clear()
    token = token_of(client, "/login")
    form = client.post("/login", data={"phone": ann.phone, "password": PASSWORD,
                                       "csrf_token": token, "next": "/app"})  # fmt: skip
    assert form.status_code == 403
    assert f'data-moved-to="{OTHER}"' in form.text
    # the same command again changes nothing
    again = db.transact(lambda uow: moving.start_move(
        uow, phone=ann.phone, to=OTHER, settings=settings, encryptor=enc))  # fmt: skip
    assert (again.move_id, again.state) == (move_id, "done")
    assert count(db, "SELECT COUNT(*) FROM interop_transfers") == 1
    assert_ledger_clean(db)


def _package_for(runtime: Runtime, donor: Person, phone: str, id_number: str) -> MovePackage:
    """A package as another cell would send it: ``donor``'s password hash (the test's
    password), another resident."""
    with runtime.db.uow(readonly=True) as uow:
        password_hash = uow.session.execute(
            text("SELECT password_hash FROM identity_users WHERE public_id = :u"),
            {"u": donor.user_id},
        ).scalar_one()
    body = {
        "moveId": str(uuid.uuid4()), "fromFsp": OTHER, "toFsp": ME, "userId": "usr_old",
        "balance": {"amount": 12_345, "currency": "CNY"},
        "profile": {"phone": phone, "passwordHash": password_hash, "name": "李四",
                    "idNumber": id_number, "providerRef": "sandbox", "verifiedAt": 5,
                    "registeredAt": 1, "checks": [{"kind": "resident_id", "count": 1}]},
        "cards": [{"cardNumber": "6222020200112233445", "bankCode": "ICBC",
                   "bankName": "中国工商银行", "checkRef": "chk", "boundAt": 3}],
        "history": [{"objectId": "top_old", "kind": "topup", "amount": 20_000, "fee": 0,
                     "currency": "CNY", "status": "succeeded", "counterpartyLabel": "",
                     "note": "", "createdAt": 10}],
    }  # fmt: skip
    return MovePackage.model_validate_json(json.dumps(body))


def test_a_resident_moves_in(client: TestClient, runtime: Runtime, fake: FakeSwitch) -> None:
    db = runtime.db
    local = Person(client, 8)
    # refused: the number has an account here (nothing written)
    taken = _package_for(runtime, local, local.phone, "110101196001011005")
    fake.send("POST", "/moves", taken)
    [refusal] = _sent(db, f"/moves/{taken.move_id}/error")
    assert refusal["json"]["errorInformation"]["errorDescription"] == "phone_taken"
    users = count(db, "SELECT COUNT(*) FROM identity_users")

    package = _package_for(runtime, local, "13600136000", "110101196001011013")
    for _ in range(2):  # the package and a duplicate of it
        assert fake.send("POST", "/moves", package).status_code == 202
    answers = _sent(db, f"/moves/{package.move_id}")
    assert len(answers) == 2
    assert answers[0]["json"] == answers[1]["json"]
    assert count(db, "SELECT COUNT(*) FROM identity_users") == users + 1
    user_id = answers[0]["json"]["userId"]

    # signs in with the same password; PII stored under this cell's key (no clear text)
    signed = _login(client, "13600136000")
    assert signed.status_code == 200, signed.text
    headers = {"Authorization": f"Bearer {signed.json()['session']['token']}"}
    with db.uow(readonly=True) as uow:
        row = uow.session.execute(
            text("SELECT r.id_number_enc, r.name_enc FROM identity_real_names r "
                 "JOIN identity_users u ON u.id = r.user_id WHERE u.public_id = :u"),
            {"u": user_id},
        ).one()  # fmt: skip
    assert "110101196001011013" not in row[0]
    assert "李四" not in row[1]
    me = client.get("/v1/me", headers=headers).json()
    assert me["tier"] >= 1
    assert me["real_name_verified"]
    lines = client.get("/v1/wallet/transactions", headers=headers).json()["items"]
    assert [(x["id"], x["origin"]) for x in lines] == [("top_old", OTHER)]
    cards = client.get("/v1/wallet/cards", headers=headers).json()["items"]
    assert [c["last4"] for c in cards] == ["3445"]
    assert count(db, "SELECT COUNT(*) FROM interop_moves WHERE direction = 'in'") == 1
    assert_ledger_clean(db)
