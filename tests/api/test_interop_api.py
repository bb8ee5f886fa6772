"""The provider over HTTP, on SQLite and PostgreSQL, against a scripted switch: aliases on
verification and closing, a resident paying another provider's resident (lookup → quote →
transfer, committed or refused), refusals that send nothing, and the FSPIOP endpoints'
checks of the switch's signature and of the bodies."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response

from citywallet.api import interop as interop_api
from citywallet.api.app import create_app
from citywallet.interop.messages import ErrorCode, error
from citywallet.platform.db import Database
from citywallet.runtime import Runtime
from tests.interop_support import (
    ME,
    OTHER,
    FakeSwitch,
    connected_runtime,
    eventually,
    new_quote,
    outbox,
    signed,
)
from tests.ledger_checks import assert_ledger_clean
from tests.wallet_support import PIN, Person, balance, count, platform_balance

YUAN = 100
FAR_PHONE = "13700137001"


@pytest.fixture
def fake() -> FakeSwitch:
    return FakeSwitch(directory={FAR_PHONE: (OTHER, "*明")})


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


def _problem(response: Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    return body


def _funded(client: TestClient, n: int, amount: int) -> Person:
    person = Person(client, n)
    person.money("/v1/wallet/topups", {"card_id": person.card_id, "amount": amount, "pin": PIN})
    return person


def _pay(person: Person, amount: int, *, pin: str = PIN) -> Response:
    quote = person.post("/v1/interop/quotes", {"phone": FAR_PHONE, "amount": amount})
    assert quote.status_code == 201, quote.text
    return person.post(
        "/v1/interop/transfers",
        {"quote_id": quote.json()["quote_id"], "pin": pin, "note": "rent"},
        key=str(uuid.uuid4()),
    )


def test_verification_registers_the_alias_and_closing_removes_it(
    client: TestClient, runtime: Runtime, fake: FakeSwitch
) -> None:
    alice = Person(client, 1, card_ending=None)
    registered = [m for m in outbox(runtime.db) if m["method"] == "POST"]
    assert [(m["path"], m["json"]) for m in registered] == [
        (f"/participants/MSISDN/{alice.phone}", {"fspId": ME, "maskedName": "**丰"})
    ]
    closed = alice.post("/v1/wallet/close", {"pin": PIN}, key="close-1")
    assert closed.status_code == 200, closed.text
    removed = [m for m in outbox(runtime.db) if m["method"] == "DELETE"]
    assert [m["path"] for m in removed] == [f"/participants/MSISDN/{alice.phone}"]
    eventually(lambda: alice.phone not in fake.aliases)


def test_lookup_found_and_not_found(client: TestClient, fake: FakeSwitch) -> None:
    alice = Person(client, 1, card_ending=None)
    found = alice.get(f"/v1/interop/parties/{FAR_PHONE}")
    assert (found.status_code, found.json()) == (
        200,
        {"participant": OTHER, "masked_name": "*明", "participant_name": OTHER},
    )  # fmt: skip  (no display name from this switch: the id)
    _problem(alice.get("/v1/interop/parties/13700137999"), 404, "party_not_found")
    _problem(alice.get("/v1/interop/parties/12345"), 422, "invalid_phone")


def test_lookup_times_out_when_the_switch_is_silent(
    client: TestClient, fake: FakeSwitch, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = Person(client, 1, card_ending=None)
    monkeypatch.setattr(fake, "_party", lambda phone: None)
    monkeypatch.setattr(interop_api, "WAIT_SECONDS", 0.2)
    _problem(alice.get(f"/v1/interop/parties/{FAR_PHONE}"), 504, "interop_timeout")


def test_payer_happy_path_posts_the_hold(
    client: TestClient, runtime: Runtime, fake: FakeSwitch
) -> None:
    alice = _funded(client, 1, 1_000 * YUAN)
    quote = alice.post("/v1/interop/quotes", {"phone": FAR_PHONE, "amount": 120 * YUAN})
    assert quote.status_code == 201, quote.text
    terms = quote.json()
    assert (terms["participant"], terms["masked_name"]) == (OTHER, "*明")
    assert (terms["amount"], terms["payer_fee"], terms["total"]) == (12_000, 0, 12_000)
    paid = alice.post(
        "/v1/interop/transfers",
        {"quote_id": terms["quote_id"], "pin": PIN, "note": "rent"},
        key="pay-1",
    )
    assert paid.status_code == 201, paid.text
    transfer = paid.json()
    assert (transfer["state"], transfer["amount"], transfer["participant"]) == (
        "committed", 12_000, OTHER,
    )  # fmt: skip
    assert balance(runtime.db, alice.user_id) == (1_000 * YUAN - 120 * YUAN, 0, 0)
    # Credit side: this deployment owes the switch what it sent, until settlement.
    assert platform_balance(runtime.db, "platform:interop_settlement") == 12_000
    prepares = [m for m in fake.seen if m[:2] == ("POST", "/transfers")]
    assert [p[2]["transferId"] for p in prepares] == [transfer["switch_transfer_id"]]
    line = alice.get("/v1/wallet/transactions").json()["items"][0]
    assert (line["kind"], line["status"], line["amount"]) == ("transfer_out", "succeeded", 12_000)
    assert line["counterparty_label"] == f"*明 ({OTHER})"
    assert line["reference"] == transfer["switch_transfer_id"]
    # A replay answers the same; another resident cannot see it.
    again = alice.post(
        "/v1/interop/transfers",
        {"quote_id": terms["quote_id"], "pin": PIN, "note": "rent"},
        key="pay-1",
    )
    assert (again.status_code, again.json()) == (201, transfer)
    assert again.headers["Idempotent-Replayed"] == "true"
    bob = Person(client, 2, card_ending=None)
    _problem(bob.get(f"/v1/interop/transfers/{transfer['id']}"), 404, "interop_transfer_not_found")
    assert alice.get(f"/v1/interop/transfers/{transfer['id']}").json() == transfer
    # The quote is spent.
    reused = alice.post(
        "/v1/interop/transfers", {"quote_id": terms["quote_id"], "pin": PIN}, key="pay-2"
    )
    _problem(reused, 409, "interop_quote_used")
    assert_ledger_clean(runtime.db)


def test_rejected_transfer_is_voided_and_gives_the_limit_back(
    client: TestClient, runtime: Runtime, fake: FakeSwitch
) -> None:
    alice = _funded(client, 1, 1_000 * YUAN)
    left_before = alice.wallet()["left"]
    fake.on_prepare = "reject"
    paid = _pay(alice, 300 * YUAN)
    assert paid.status_code == 201, paid.text
    assert (paid.json()["state"], paid.json()["error_code"]) == ("aborted", "5105")
    assert balance(runtime.db, alice.user_id) == (1_000 * YUAN, 0, 0)
    assert alice.wallet()["left"] == left_before
    line = alice.get("/v1/wallet/transactions").json()["items"][0]
    assert (line["kind"], line["status"]) == ("transfer_out", "failed")
    assert platform_balance(runtime.db, "platform:interop_settlement") == 0
    assert_ledger_clean(runtime.db)


def test_silent_switch_answers_processing_then_expiry_voids(
    client: TestClient, runtime: Runtime, fake: FakeSwitch, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = _funded(client, 1, 1_000 * YUAN)
    fake.on_prepare = "silent"
    quote = alice.post("/v1/interop/quotes", {"phone": FAR_PHONE, "amount": 100 * YUAN})
    assert quote.status_code == 201, quote.text
    monkeypatch.setattr(interop_api, "WAIT_SECONDS", 0.2)  # the switch stays silent
    paid = alice.post(
        "/v1/interop/transfers", {"quote_id": quote.json()["quote_id"], "pin": PIN}, key="silent"
    )
    assert paid.status_code == 202, paid.text
    transfer = paid.json()
    assert transfer["state"] == "processing"
    assert balance(runtime.db, alice.user_id) == (1_000 * YUAN, 0, 100 * YUAN)
    path = f"/transfers/{transfer['switch_transfer_id']}/error"
    for _ in range(2):  # the switch's expiry notice, and a duplicate of it
        assert fake.send("PUT", path, error(ErrorCode.TRANSFER_EXPIRED)).status_code == 202
    view = alice.get(f"/v1/interop/transfers/{transfer['id']}").json()
    assert (view["state"], view["error_code"]) == ("expired", "3303")
    assert balance(runtime.db, alice.user_id) == (1_000 * YUAN, 0, 0)
    assert count(runtime.db, "SELECT COUNT(*) FROM ledger_transfers WHERE id LIKE '%.void'") == 1
    assert_ledger_clean(runtime.db)


def test_refusals_send_nothing(client: TestClient, runtime: Runtime, fake: FakeSwitch) -> None:
    alice = _funded(client, 1, 100 * YUAN)
    quote = alice.post("/v1/interop/quotes", {"phone": FAR_PHONE, "amount": 500 * YUAN}).json()
    sent_before = len(outbox(runtime.db))

    def attempt(pin: str, key: str) -> Response:
        return alice.post(
            "/v1/interop/transfers", {"quote_id": quote["quote_id"], "pin": pin}, key=key
        )

    _problem(attempt("000000", "k1"), 403, "pin_incorrect")
    _problem(attempt(PIN, "k2"), 409, "insufficient_balance")
    _problem(
        alice.post("/v1/interop/transfers", {"quote_id": "iqt_nope", "pin": PIN}, key="k3"),
        404,
        "interop_quote_not_found",
    )
    _problem(
        alice.post("/v1/interop/transfers", {"quote_id": quote["quote_id"], "pin": PIN}),
        400,
        "idempotency_key_required",
    )
    big = alice.post("/v1/interop/quotes", {"phone": FAR_PHONE, "amount": 150_000 * YUAN}).json()
    over = alice.post("/v1/interop/transfers", {"quote_id": big["quote_id"], "pin": PIN}, key="k4")
    assert over.status_code == 409, over.text
    assert over.json()["code"].endswith("_limit_exceeded")
    # Only the second quote's ask (the party found a moment ago is reused); no prepare.
    assert [m["path"] for m in outbox(runtime.db)[sent_before:]] == ["/quotes"]
    assert balance(runtime.db, alice.user_id) == (100 * YUAN, 0, 0)
    assert count(runtime.db, "SELECT COUNT(*) FROM interop_transfers") == 0
    assert_ledger_clean(runtime.db)


def test_fspiop_refuses_bad_signatures_and_bodies(
    client: TestClient, runtime: Runtime, fake: FakeSwitch
) -> None:
    body = new_quote(str(uuid.uuid4()), 100, phone="13900130001").wire()
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    forged = signed("POST", "/quotes", body, key=Ed25519PrivateKey.generate())
    answer = client.post("/fspiop/quotes", content=body, headers=forged)
    assert answer.status_code == 400
    assert answer.json()["errorInformation"]["errorCode"] == "3105"
    stranger = signed("POST", "/quotes", body, source=OTHER)
    answer = client.post("/fspiop/quotes", content=body, headers=stranger)
    assert answer.json()["errorInformation"]["errorCode"] == "3201"
    bad = b"{not json"
    answer = client.post("/fspiop/quotes", content=bad, headers=signed("POST", "/quotes", bad))
    assert answer.json()["errorInformation"]["errorCode"] == "3101"
    partial = b'{"quoteId": "x"}'
    answer = client.post(
        "/fspiop/quotes", content=partial, headers=signed("POST", "/quotes", partial)
    )
    assert answer.json()["errorInformation"]["errorCode"] == "3102"
    assert [m for m in outbox(runtime.db) if m["path"] == "/quotes"] == []


def test_resident_routes_need_a_session(client: TestClient) -> None:
    for method, path in (
        ("GET", f"/v1/interop/parties/{FAR_PHONE}"),
        ("POST", "/v1/interop/quotes"),
        ("POST", "/v1/interop/transfers"),
        ("GET", "/v1/interop/transfers/itf_x"),
    ):
        _problem(client.request(method, path, json={}), 401, "unauthorized")


def _lookups(fake: FakeSwitch) -> list[str]:
    return [path for method, path, _ in fake.seen if method == "GET" and "/parties/" in path]


def test_a_number_found_here_lately_needs_no_lookup_until_a_quote_says_3204(
    client: TestClient, fake: FakeSwitch, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bob = Person(client, 1, card_ending=None), Person(client, 2, card_ending=None)
    answer = alice.get(f"/v1/interop/parties/{FAR_PHONE}").json()
    assert (answer["participant"], answer["masked_name"]) == (OTHER, "*明")
    assert bob.get(f"/v1/interop/parties/{FAR_PHONE}").json() == answer
    assert _lookups(fake) == [f"/parties/MSISDN/{FAR_PHONE}"]  # Bob's came from here
    # The number moved away from OTHER: its provider refuses the quote with 3204.
    refuse = lambda body: fake.send(  # noqa: E731
        "PUT", f"/quotes/{body['quoteId']}/error", error(ErrorCode.PARTY_NOT_FOUND)
    )
    monkeypatch.setattr(fake, "_quote", refuse)
    quote = bob.post("/v1/interop/quotes", {"phone": FAR_PHONE, "amount": 1 * YUAN})
    _problem(quote, 404, "party_not_found")
    assert bob.get(f"/v1/interop/parties/{FAR_PHONE}").json() == answer
    assert len(_lookups(fake)) == 2  # asked the switch again


def test_lookups_that_reach_the_switch_are_limited_per_resident(
    db: Database, tmp_path: Path, fake: FakeSwitch, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(interop_api, "WAIT_SECONDS", 30.0)
    runtime = connected_runtime(db, tmp_path, fake, interop_lookups_per_hour=2)
    with TestClient(create_app(runtime), raise_server_exceptions=False) as client:
        fake.client = client
        alice, bob = Person(client, 1, card_ending=None), Person(client, 2, card_ending=None)
        assert alice.get(f"/v1/interop/parties/{FAR_PHONE}").status_code == 200  # 1 of 2
        _problem(alice.get("/v1/interop/parties/13700137998"), 404, "party_not_found")  # 2
        _problem(alice.get("/v1/interop/parties/13700137997"), 429, "interop_lookups_exceeded")
        assert alice.get(f"/v1/interop/parties/{FAR_PHONE}").status_code == 200  # known here
        _problem(bob.get("/v1/interop/parties/13700137997"), 404, "party_not_found")
    assert len(_lookups(fake)) == 3
