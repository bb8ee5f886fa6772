"""The switch over HTTP with real signatures, on SQLite and PostgreSQL: what it stores, what it
queues to send (the outbox) and the positions it keeps (docs/interop.md)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from citywallet.api.switch import create_switch_app
from citywallet.interop.conditions import new_fulfilment
from citywallet.interop.messages import (
    AliasRegistration,
    Amount,
    ErrorCode,
    PartyRef,
    QuoteRequest,
    QuoteResponse,
    TransferFulfil,
    error,
)
from citywallet.interop.switch import service, windows
from citywallet.platform.db import Database
from tests.switch_support import (
    CAP,
    KEYS,
    add_participants,
    call,
    new_prepare,
    outbox,
    positions,
    switch_runtime,
    transfer_state,
)


@pytest.fixture
def client(db: Database, tmp_path: Path) -> Iterator[TestClient]:
    add_participants(db)
    app = create_switch_app(switch_runtime(db, tmp_path), start_background=False)
    with TestClient(app, raise_server_exceptions=True) as test_client:
        yield test_client


def fulfil_body(fulfilment: str) -> TransferFulfil:
    return TransferFulfil(
        fulfilment=fulfilment, completed_timestamp=datetime.now(UTC), transfer_state="COMMITTED"
    )


def count(db: Database, table: str) -> int:
    with db.uow(readonly=True) as uow:
        return int(uow.session.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


# ---- discovery --------------------------------------------------------------------------


def test_an_alias_is_found_at_its_holder_and_only_the_holder_moves_it(
    client: TestClient, db: Database
) -> None:
    path = "/participants/MSISDN/13900139000"
    registration = AliasRegistration(fsp_id="provider-b", masked_name="*小明")
    assert call(client, "POST", path, registration, source="provider-b").json() == {}

    stolen = call(client, "POST", path, AliasRegistration(fsp_id="provider-a", masked_name="x"))
    assert stolen.status_code == 400
    assert stolen.json()["errorInformation"]["errorCode"] == "3100"
    forged = call(client, "POST", path, registration)  # provider-a claiming to be provider-b
    assert forged.status_code == 400

    answer = call(client, "GET", "/parties/MSISDN/13900139000")
    assert answer.status_code == 202
    assert answer.content == b""
    [found] = outbox(db)
    assert (found.to, found.method, found.path) == (
        "provider-a",
        "PUT",
        "/parties/MSISDN/13900139000",
    )
    assert found.body == {
        "party": {"partyIdType": "MSISDN", "partyIdentifier": "13900139000",
                  "fspId": "provider-b", "maskedName": "*小明", "fspName": "PROVIDER-B"}
    }  # fmt: skip

    assert call(client, "DELETE", path).status_code == 400  # not the holder
    assert call(client, "DELETE", path, source="provider-b").json() == {}
    assert call(client, "DELETE", path, source="provider-b").json() == {}  # idempotent
    call(client, "GET", "/parties/MSISDN/13900139000", source="provider-c")
    missing = outbox(db)[-1]
    assert (missing.to, missing.path, missing.code) == (
        "provider-c",
        "/parties/MSISDN/13900139000/error",
        "3204",
    )


# ---- agreement --------------------------------------------------------------------------

QUOTE_ID = "7c23e80c-d078-4077-8263-2c047876fcf6"


def quote_request(amount: int = 10_000) -> QuoteRequest:
    return QuoteRequest(
        quote_id=QUOTE_ID, transaction_id="85feac2f-39b2-491b-817e-4a03203d4f14",
        payer=PartyRef(party_identifier="13800138000", fsp_id="provider-a"),
        payee=PartyRef(party_identifier="13900139000", fsp_id="provider-b"),
        amount_type="SEND", amount=Amount(amount=amount),
        expiration=datetime.now(UTC) + timedelta(minutes=1),
    )  # fmt: skip


def test_a_quote_goes_to_the_payee_and_its_answer_back_to_the_payer(
    client: TestClient, db: Database
) -> None:
    request = quote_request()
    assert call(client, "POST", "/quotes", request, destination="provider-b").status_code == 202
    assert call(client, "POST", "/quotes", request, destination="provider-b").status_code == 202
    [forwarded] = outbox(db)  # the resend forwarded nothing more
    assert (forwarded.to, forwarded.method, forwarded.path) == ("provider-b", "POST", "/quotes")
    assert forwarded.body == request.model_dump(mode="json", by_alias=True, exclude_none=True)

    call(client, "POST", "/quotes", quote_request(20_000), destination="provider-b")
    assert (outbox(db)[-1].to, outbox(db)[-1].code) == ("provider-a", "3106")

    fulfilment = new_fulfilment()
    answer = QuoteResponse(
        transfer_amount=Amount(amount=10_000), payee_receive_amount=Amount(amount=10_000),
        payer_fee=Amount(amount=0), payee_fee=Amount(amount=0),
        expiration=datetime.now(UTC) + timedelta(minutes=1),
        ilp_condition=new_prepare(fulfilment=fulfilment)[0].ilp_condition,
    )  # fmt: skip
    path = f"/quotes/{QUOTE_ID}"
    call(client, "PUT", path, answer, source="provider-c", destination="provider-a")
    assert (outbox(db)[-1].to, outbox(db)[-1].code) == ("provider-c", "3205")
    call(client, "PUT", path, answer, source="provider-b", destination="provider-a")
    back = outbox(db)[-1]
    assert (back.to, back.method, back.path) == ("provider-a", "PUT", path)
    assert back.body["ilpCondition"] == answer.ilp_condition
    before = len(outbox(db))
    call(client, "PUT", path, answer, source="provider-b", destination="provider-a")
    assert len(outbox(db)) == before  # a duplicated answer is forwarded once
    # the payer resends its request (the answer was lost on its way back): the answer again
    call(client, "POST", "/quotes", request, destination="provider-b")
    again = outbox(db)[-1]
    assert (again.to, again.path, again.body) == ("provider-a", path, back.body)
    assert len(outbox(db)) == before + 1  # and nothing to the payee


def test_a_resent_quote_after_the_payees_refusal_gets_the_refusal_again(
    client: TestClient, db: Database
) -> None:
    request = quote_request()
    call(client, "POST", "/quotes", request, destination="provider-b")
    path = f"/quotes/{QUOTE_ID}/error"
    refusal = error(ErrorCode.PAYEE_FSP_REJECTED_QUOTE, "order_paid")
    call(client, "PUT", path, refusal, source="provider-b", destination="provider-a")
    call(client, "POST", "/quotes", request, destination="provider-b")
    sent = outbox(db)
    assert [(m.to, m.method, m.path) for m in sent] == [
        ("provider-b", "POST", "/quotes"), ("provider-a", "PUT", path), ("provider-a", "PUT", path)
    ]  # fmt: skip
    assert sent[1].body == sent[2].body == refusal.model_dump(mode="json", by_alias=True)


def test_a_quote_to_an_unknown_payee_gets_3203(client: TestClient, db: Database) -> None:
    request = quote_request().model_copy(
        update={"payee": PartyRef(party_identifier="13900139000", fsp_id="provider-z")}
    )
    assert call(client, "POST", "/quotes", request).status_code == 202
    [refused] = outbox(db)
    assert (refused.to, refused.path, refused.code) == (
        "provider-a",
        f"/quotes/{QUOTE_ID}/error",
        "3203",
    )
    assert count(db, "switch_quotes") == 0


# ---- transfers --------------------------------------------------------------------------


def test_prepare_then_fulfil_commits_and_moves_the_positions(
    client: TestClient, db: Database
) -> None:
    prepare, fulfilment = new_prepare(10_000)
    sent = call(client, "POST", "/transfers", prepare, destination="provider-b")
    assert sent.status_code == 202
    assert sent.content == b""
    [forwarded] = outbox(db)
    assert (forwarded.to, forwarded.method, forwarded.path) == ("provider-b", "POST", "/transfers")
    assert forwarded.body["transferId"] == prepare.transfer_id
    assert transfer_state(db, prepare.transfer_id) == "RESERVED"
    assert positions(db)["provider-a"] == (0, 10_000)

    path = f"/transfers/{prepare.transfer_id}"
    answer = call(client, "PUT", path, fulfil_body(fulfilment), source="provider-b",
                  destination="provider-a")  # fmt: skip
    assert answer.status_code == 202
    notices = outbox(db)[1:]
    assert sorted(n.to for n in notices) == ["provider-a", "provider-b"]
    for notice in notices:
        assert (notice.method, notice.path) == ("PUT", path)
        assert notice.body["transferState"] == "COMMITTED"
        assert notice.body["fulfilment"] == fulfilment
    assert transfer_state(db, prepare.transfer_id) == "COMMITTED"
    assert positions(db) == {
        "provider-a": (10_000, 0), "provider-b": (-10_000, 0), "provider-c": (0, 0)
    }  # fmt: skip

    # the fulfil again: the state to the payee, nothing moves twice
    call(client, "PUT", path, fulfil_body(fulfilment), source="provider-b")
    again = outbox(db)[-1]
    assert (again.to, again.body["transferState"]) == ("provider-b", "COMMITTED")
    assert positions(db)["provider-a"] == (10_000, 0)
    # a query from the payer gets the state; from a third participant, 3208
    call(client, "GET", path)
    assert (outbox(db)[-1].to, outbox(db)[-1].body["transferState"]) == ("provider-a", "COMMITTED")
    call(client, "GET", path, source="provider-c")
    assert (outbox(db)[-1].to, outbox(db)[-1].code) == ("provider-c", "3208")


def test_a_duplicate_prepare_reserves_once_and_a_modified_one_gets_3106(
    client: TestClient, db: Database
) -> None:
    prepare, _ = new_prepare(10_000)
    call(client, "POST", "/transfers", prepare)
    call(client, "POST", "/transfers", prepare)
    assert len(outbox(db)) == 1  # in flight: nothing more to say
    assert positions(db)["provider-a"] == (0, 10_000)

    modified = prepare.model_copy(update={"amount": Amount(amount=20_000)})
    call(client, "POST", "/transfers", modified)
    last = outbox(db)[-1]
    assert (last.to, last.path, last.code) == (
        "provider-a",
        f"/transfers/{prepare.transfer_id}/error",
        "3106",
    )
    assert positions(db)["provider-a"] == (0, 10_000)
    assert count(db, "switch_transfers") == 1


def test_a_fulfilment_that_does_not_match_gets_3100_and_changes_nothing(
    client: TestClient, db: Database
) -> None:
    prepare, _ = new_prepare(10_000)
    call(client, "POST", "/transfers", prepare)
    path = f"/transfers/{prepare.transfer_id}"
    call(client, "PUT", path, fulfil_body(new_fulfilment()), source="provider-b")
    last = outbox(db)[-1]
    assert (last.to, last.path, last.code) == ("provider-b", path + "/error", "3100")
    assert transfer_state(db, prepare.transfer_id) == "RESERVED"
    assert positions(db)["provider-a"] == (0, 10_000)
    assert positions(db)["provider-b"] == (0, 0)


def test_a_wrong_signature_is_refused_and_nothing_is_stored(
    client: TestClient, db: Database
) -> None:
    prepare, _ = new_prepare()
    answer = call(client, "POST", "/transfers", prepare, key=KEYS["provider-b"])
    assert answer.status_code == 400
    assert answer.json()["errorInformation"]["errorCode"] == "3105"
    assert count(db, "switch_transfers") == 0
    assert outbox(db) == []
    assert positions(db)["provider-a"] == (0, 0)


def test_an_unknown_sender_is_refused_and_an_unknown_payee_gets_3203(
    client: TestClient, db: Database
) -> None:
    prepare, _ = new_prepare(payer="provider-z")
    answer = call(client, "POST", "/transfers", prepare, source="provider-z",
                  key=KEYS["provider-a"])  # fmt: skip
    assert answer.status_code == 400
    assert answer.json()["errorInformation"]["errorCode"] == "3201"

    prepare, _ = new_prepare(payee="provider-z")
    assert call(client, "POST", "/transfers", prepare).status_code == 202
    [refused] = outbox(db)
    assert (refused.to, refused.code) == ("provider-a", "3203")

    prepare, _ = new_prepare()
    call(client, "POST", "/transfers", prepare, destination="provider-y")
    assert (outbox(db)[-1].to, outbox(db)[-1].code) == ("provider-a", "3201")
    assert count(db, "switch_transfers") == 0
    assert positions(db)["provider-a"] == (0, 0)


@pytest.mark.parametrize(
    ("body", "code"),
    [(b"{not json", "3101"), (b'{"transferId": "b51ec534-ee48-4575-b6a9-ead2955b8069"}', "3102")],
    ids=["malformed", "missing"],
)
def test_a_body_that_does_not_fit_is_refused(
    client: TestClient, db: Database, body: bytes, code: str
) -> None:
    answer = call(client, "POST", "/transfers", body)
    assert answer.status_code == 400
    assert answer.json()["errorInformation"]["errorCode"] == code
    assert count(db, "switch_transfers") == 0


def test_over_the_net_debit_cap_gets_4001_and_reserves_nothing(
    client: TestClient, db: Database
) -> None:
    first, _ = new_prepare(CAP - 1_000)
    call(client, "POST", "/transfers", first)
    over, _ = new_prepare(1_001)
    call(client, "POST", "/transfers", over)
    last = outbox(db)[-1]
    assert (last.to, last.path, last.code) == (
        "provider-a",
        f"/transfers/{over.transfer_id}/error",
        "4001",
    )
    assert transfer_state(db, over.transfer_id) == "ABORTED"
    assert positions(db)["provider-a"] == (0, CAP - 1_000)
    assert [m.to for m in outbox(db)].count("provider-b") == 1  # only the first was forwarded


def test_an_expired_prepare_gets_3303_and_is_not_stored(client: TestClient, db: Database) -> None:
    prepare, _ = new_prepare(seconds=-1)
    call(client, "POST", "/transfers", prepare)
    [refused] = outbox(db)
    assert (refused.to, refused.code) == ("provider-a", "3303")
    assert count(db, "switch_transfers") == 0
    assert positions(db)["provider-a"] == (0, 0)


def test_the_sweep_expires_a_reserved_transfer_and_a_late_fulfil_changes_nothing(
    client: TestClient, db: Database
) -> None:
    prepare, fulfilment = new_prepare(10_000, seconds=30)
    call(client, "POST", "/transfers", prepare)
    assert db.transact(lambda uow: service.expire_due(uow, now=datetime.now(UTC))) == 0
    later = prepare.expiration + timedelta(seconds=1)
    assert db.transact(lambda uow: service.expire_due(uow, now=later)) == 1
    assert transfer_state(db, prepare.transfer_id) == "EXPIRED"
    assert positions(db)["provider-a"] == (0, 0)
    errors = outbox(db)[1:]
    assert sorted((e.to, e.code) for e in errors) == [
        ("provider-a", "3303"),
        ("provider-b", "3303"),
    ]
    assert db.transact(lambda uow: service.expire_due(uow, now=later)) == 0

    path = f"/transfers/{prepare.transfer_id}"
    call(client, "PUT", path, fulfil_body(fulfilment), source="provider-b")
    late = outbox(db)[-1]
    assert (late.to, late.path, late.code) == ("provider-b", path + "/error", "3303")
    assert transfer_state(db, prepare.transfer_id) == "EXPIRED"
    assert positions(db) == dict.fromkeys(KEYS, (0, 0))


def test_the_payee_rejects_and_the_payer_is_told(client: TestClient, db: Database) -> None:
    prepare, _ = new_prepare(10_000)
    call(client, "POST", "/transfers", prepare)
    path = f"/transfers/{prepare.transfer_id}/error"
    call(client, "PUT", path, error(ErrorCode.PAYEE_REJECTED_TRANSACTION), source="provider-b")
    last = outbox(db)[-1]
    assert (last.to, last.path, last.code) == ("provider-a", path, "5104")
    assert transfer_state(db, prepare.transfer_id) == "ABORTED"
    assert positions(db)["provider-a"] == (0, 0)


# ---- settlement -------------------------------------------------------------------------


def commit(client: TestClient, amount: int, payer: str, payee: str) -> None:
    prepare, fulfilment = new_prepare(amount, payer=payer, payee=payee)
    call(client, "POST", "/transfers", prepare, source=payer)
    path = f"/transfers/{prepare.transfer_id}"
    call(client, "PUT", path, fulfil_body(fulfilment), source=payee)
    assert transfer_state(client.app.state.switch.db, prepare.transfer_id) == "COMMITTED"


def test_closing_a_window_nets_to_zero_equals_the_positions_and_notifies(
    client: TestClient, db: Database
) -> None:
    commit(client, 300, "provider-a", "provider-b")
    commit(client, 100, "provider-b", "provider-a")
    commit(client, 50, "provider-a", "provider-c")
    pending, _ = new_prepare(70)  # reserved, not committed: stays out of the window
    call(client, "POST", "/transfers", pending)
    before = positions(db)
    first = outbox(db)

    closed = db.transact(lambda uow: windows.close_window(uow, now=datetime.now(UTC)))
    assert closed.state == "CLOSED"
    assert closed.report is not None
    nets = closed.report["positions"]
    assert nets == {"provider-a": 250, "provider-b": -200, "provider-c": -50}
    assert sum(nets.values()) == 0
    assert nets == {p: before[p][0] for p in nets}
    assert closed.report["transfer_count"] == 3
    assert positions(db) == {"provider-a": (0, 70), "provider-b": (0, 0), "provider-c": (0, 0)}

    notices = outbox(db)[len(first) :]
    assert sorted((n.to, n.body["netAmount"], n.body["transferCount"]) for n in notices) == [
        ("provider-a", 250, 3), ("provider-b", -200, 2), ("provider-c", -50, 1)
    ]  # fmt: skip
    assert {n.path for n in notices} == {f"/settlementWindows/{closed.id}"}

    # the next window starts empty; the old one's transfers are never counted again
    again = db.transact(lambda uow: windows.close_window(uow, now=datetime.now(UTC)))
    assert again.id != closed.id
    assert again.report == {"positions": {}, "total_amount": 0, "transfer_count": 0}
    with db.uow(readonly=True) as uow:
        listed = windows.windows(uow)
    assert [w.state for w in listed].count("OPEN") == 1
