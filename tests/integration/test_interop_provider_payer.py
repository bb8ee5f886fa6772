"""The payer's side, on SQLite and PostgreSQL: a pending debit is resolved only by the
switch's final word. Communication errors leave it pending; the sweep asks the switch about
it after its expiration (once a second at most); a 3208 after expiry voids it, a foreign
fulfilment is ignored, duplicates resolve nothing twice."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from citywallet.api import interop as interop_api
from citywallet.api.app import create_app
from citywallet.interop import conditions
from citywallet.interop.messages import ErrorCode, TransferFulfil, error
from citywallet.interop.provider import service as interop
from citywallet.platform.db import Database
from citywallet.runtime import Runtime
from tests.interop_support import OTHER, FakeSwitch, connected_runtime, outbox
from tests.ledger_checks import assert_ledger_clean
from tests.wallet_support import PIN, Person, balance

FAR_PHONE = "13700137001"


@pytest.fixture
def fake() -> FakeSwitch:
    return FakeSwitch(directory={FAR_PHONE: (OTHER, "*明")}, on_prepare="silent")


@pytest.fixture
def runtime(db: Database, tmp_path: Path, fake: FakeSwitch) -> Runtime:
    return connected_runtime(db, tmp_path, fake)


@pytest.fixture
def client(
    runtime: Runtime, fake: FakeSwitch, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    # Waits end when the answer is in; a generous bound keeps a loaded machine from failing.
    monkeypatch.setattr(interop_api, "WAIT_SECONDS", 30.0)
    with TestClient(create_app(runtime), raise_server_exceptions=False) as test_client:
        fake.client = test_client
        yield test_client


def _pending(
    client: TestClient, amount: int, monkeypatch: pytest.MonkeyPatch
) -> tuple[Person, dict[str, Any]]:
    alice = Person(client, 1)
    alice.money("/v1/wallet/topups", {"card_id": alice.card_id, "amount": 10_000, "pin": PIN})
    quote = alice.post("/v1/interop/quotes", {"phone": FAR_PHONE, "amount": amount})
    assert quote.status_code == 201, quote.text
    monkeypatch.setattr(interop_api, "WAIT_SECONDS", 0.2)  # the switch stays silent
    paid = alice.post(
        "/v1/interop/transfers",
        {"quote_id": quote.json()["quote_id"], "pin": PIN},
        key=str(uuid.uuid4()),
    )
    assert paid.status_code == 202, paid.text
    assert paid.json()["state"] == "processing"
    return alice, paid.json()


def _questions(db: Database, transfer_id: str) -> int:
    return sum(
        1 for m in outbox(db) if (m["method"], m["path"]) == ("GET", f"/transfers/{transfer_id}")
    )


def test_only_final_errors_void_and_the_sweep_asks_after_expiry(
    client: TestClient, runtime: Runtime, fake: FakeSwitch, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = runtime.db
    alice, transfer = _pending(client, 3_000, monkeypatch)
    switch_id = transfer["switch_transfer_id"]
    path = f"/transfers/{switch_id}"
    # Not final: a communication error, and a 3208 before the transfer expired.
    for code in (ErrorCode.DESTINATION_COMMUNICATION_ERROR, ErrorCode.TRANSFER_ID_NOT_FOUND):
        assert fake.send("PUT", f"{path}/error", error(code)).status_code == 202
    # A COMMITTED with a fulfilment that is not ours changes nothing either.
    foreign = TransferFulfil(
        fulfilment=conditions.new_fulfilment(), completed_timestamp=datetime.now(UTC),
        transfer_state="COMMITTED",
    )  # fmt: skip
    fake.send("PUT", path, foreign)
    assert balance(db, alice.user_id) == (10_000, 0, 3_000)

    now = datetime.now(UTC)
    asked = db.transact(lambda uow: interop.sweep(uow, settings=runtime.settings, now=now))
    assert (asked, _questions(db, switch_id)) == (0, 0)  # not expired yet
    later = now + timedelta(seconds=runtime.settings.interop_transfer_seconds + 5)
    for moment in (later, later + timedelta(milliseconds=300), later + timedelta(seconds=2)):
        db.transact(lambda uow, m=moment: interop.sweep(uow, settings=runtime.settings, now=m))
    assert _questions(db, switch_id) == 2  # at most once a second
    questions = [m for m in outbox(db) if m["method"] == "GET" and m["path"] == path]
    assert {q["destination"] for q in questions} == {OTHER}

    # The switch never stored it: after expiry, 3208 is final.
    with db.uow() as uow:
        state = interop.on_error(
            uow, transfer_id=switch_id, code=ErrorCode.TRANSFER_ID_NOT_FOUND, now=later
        )
        uow.commit()
    assert state == "ABORTED"
    assert balance(db, alice.user_id) == (10_000, 0, 0)
    again = db.transact(
        lambda uow: interop.on_error(
            uow, transfer_id=switch_id, code=ErrorCode.TRANSFER_EXPIRED, now=later
        )
    )
    assert again is None
    assert_ledger_clean(db)


def test_late_commit_after_query_posts_once(
    client: TestClient, runtime: Runtime, fake: FakeSwitch, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = runtime.db
    alice, transfer = _pending(client, 2_500, monkeypatch)
    switch_id = transfer["switch_transfer_id"]
    condition = next(m for m in outbox(db) if m["path"] == "/transfers")["json"]["ilpCondition"]
    commit = TransferFulfil(
        fulfilment=fake.fulfilments[condition], completed_timestamp=datetime.now(UTC),
        transfer_state="COMMITTED",
    )  # fmt: skip
    for _ in range(3):
        assert fake.send("PUT", f"/transfers/{switch_id}", commit).status_code == 202
    assert balance(db, alice.user_id) == (10_000 - 2_500, 0, 0)
    view = alice.get(f"/v1/interop/transfers/{transfer['id']}").json()
    assert view["state"] == "committed"
    later = datetime.now(UTC) + timedelta(seconds=600)
    asked = db.transact(lambda uow: interop.sweep(uow, settings=runtime.settings, now=later))
    assert asked == 0  # nothing left to ask about
    assert_ledger_clean(db)


def test_a_connected_worker_sweeps(runtime: Runtime) -> None:
    from citywallet.tasks import build_worker

    worker = build_worker(runtime, worker_id="interop")
    assert "interop.sweep" in worker.tasks
