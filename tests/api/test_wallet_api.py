"""The wallet over HTTP on SQLite and PostgreSQL: the newcomer's whole path (register →
verify → bind card → top up → transfer → split → withdraw with the right fee → history),
Idempotency-Key replays, reuse and 100 concurrent duplicates, ownership (404), problems."""

from __future__ import annotations

import re
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response

from citywallet.ledger.blocks import seal_all
from citywallet.ledger.verifier import verify_inclusion_proof
from citywallet.platform.clock import now_us
from citywallet.platform.db import Database
from citywallet.runtime import Runtime
from citywallet.wallet import service as wallet
from citywallet.wallet.bank import sandbox_card_number
from citywallet.wallet.rules import CHINA
from tests.ledger_checks import assert_ledger_clean, test_encryptor
from tests.wallet_support import PIN, Person, count, wallet_settings

YUAN = 100


@pytest.fixture
def runtime(db: Database, tmp_path: Path) -> Runtime:
    """A runtime whose sandbox bank answers at once and times out after 50 ms."""
    settings = wallet_settings(tmp_path, db, bank_timeout_seconds=0.05)
    return Runtime(settings, db, test_encryptor())


def _problem(response: Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    return body


def test_newcomer_path(client: TestClient, runtime: Runtime) -> None:
    alice = Person(client, 1, card_ending=None)
    # A fresh resident: verified (tier 1), no card yet, an empty wallet.
    start = alice.wallet()
    assert (start["balance"], start["available"], start["tier"]) == (0, 0, 1)
    assert start["limits"]["lifetime"] == 1_000 * YUAN
    card = alice.bind(sandbox_card_number("1234", bin_="622700", serial=1))
    assert card["id"].startswith("card_")
    assert (card["bank_code"], card["sandbox"], card["status"]) == ("CCB", True, "active")
    assert re.fullmatch(r"622700\*{9}1234", card["number_masked"])
    assert alice.get("/v1/wallet/cards").json()["items"] == [card]
    assert alice.wallet()["tier"] == 2  # ID + the card's four elements

    topup = alice.money(
        "/v1/wallet/topups", {"card_id": card["id"], "amount": 2_000 * YUAN, "pin": PIN}
    )
    assert topup["id"].startswith("top_")
    assert (topup["status"], topup["amount"], topup["fee"]) == ("succeeded", 200_000, 0)

    bob, carol = Person(client, 2, card_ending=None), Person(client, 3, card_ending=None)
    sent = alice.money(
        "/v1/wallet/transfers",
        {"to": bob.phone, "amount": 100 * YUAN, "note": "welcome", "pin": PIN},
    )
    assert sent["id"].startswith("p2p_")
    assert (sent["to_user_id"], sent["note"]) == (bob.user_id, "welcome")
    assert sent["to_label"] == "**丰 (139****0002)"

    split = alice.post(
        "/v1/wallet/splits",
        {
            "total": 90 * YUAN,
            "note": "dinner",
            "shares": [{"to": alice.user_id}, {"to": bob.user_id}, {"to": carol.phone}],
        },
    )
    assert split.status_code == 201, split.text
    split_id = split.json()["id"]
    assert [s["amount"] for s in split.json()["shares"]] == [30 * YUAN] * 3
    assert bob.get(f"/v1/wallet/splits/{split_id}").json()["status"] == "open"
    paid = bob.money(f"/v1/wallet/splits/{split_id}/pay", {"pin": PIN})
    assert (paid["paid_amount"], paid["paid_count"]) == (60 * YUAN, 2)
    reminded = alice.post(f"/v1/wallet/splits/{split_id}/remind")
    assert (reminded.status_code, reminded.json()) == (202, {"reminded": 1})

    quote = alice.get("/v1/wallet/withdrawals/quote", amount=1_500 * YUAN).json()
    assert (quote["free_part"], quote["fee"]) == (1_000 * YUAN, 50)  # 0.1 % of 500 yuan
    assert (quote["free_quota_before"], quote["free_quota_after"]) == (1_000 * YUAN, 0)
    withdrawal = alice.money(
        "/v1/wallet/withdrawals", {"card_id": card["id"], "amount": 1_500 * YUAN, "pin": PIN}
    )
    assert withdrawal["id"].startswith("wdr_")
    assert (withdrawal["status"], withdrawal["fee"]) == ("succeeded", 50)

    final = alice.wallet()
    expected = 2_000 * YUAN - 100 * YUAN + 30 * YUAN - 1_500 * YUAN - 50
    assert (final["balance"], final["available"], final["free_withdrawal_left"]) == (
        expected,
        expected,
        0,
    )
    history = alice.get("/v1/wallet/transactions").json()
    assert [i["kind"] for i in history["items"]] == [
        "withdrawal",
        "split_collection",
        "transfer_out",
        "topup",
    ]
    assert history["items"][0]["fee"] == 50
    assert [i["kind"] for i in bob.get("/v1/wallet/transactions").json()["items"]] == [
        "split_payment",
        "transfer_in",
    ]
    outgoing = alice.get("/v1/wallet/transactions", kind=["transfer_out", "withdrawal"]).json()
    assert len(outgoing["items"]) == 2
    today = datetime.now(CHINA).date()
    assert len(alice.get("/v1/wallet/transactions", date_from=str(today)).json()["items"]) == 4
    yesterday = str(today - timedelta(days=1))
    assert alice.get("/v1/wallet/transactions", date_to=yesterday).json()["items"] == []
    page = alice.get("/v1/wallet/transactions", limit=3).json()
    rest = alice.get("/v1/wallet/transactions", limit=3, cursor=page["next_cursor"]).json()
    assert [i["kind"] for i in rest["items"]] == ["topup"]
    assert rest["next_cursor"] is None
    with_bob = alice.get("/v1/wallet/transactions", counterparty=bob.user_id).json()
    assert [i["kind"] for i in with_bob["items"]] == ["split_collection", "transfer_out"]

    receipt = alice.get(f"/v1/wallet/transactions/{withdrawal['id']}").json()
    assert receipt["proof_status"] == "not_sealed_yet"
    runtime.db.transact(lambda uow: seal_all(uow, runtime.ledger_signer()))
    receipt = alice.get(f"/v1/wallet/transactions/{withdrawal['id']}").json()
    assert receipt["proof_status"] == "sealed"
    assert [t["role"] for t in receipt["transfers"]] == ["hold", "hold", "post", "post"]
    key = bytes.fromhex(client.get("/v1/ledger/public-key").json()["public_key"])
    for transfer in receipt["transfers"]:
        verify_inclusion_proof(transfer["proof"], key, transfer["sealed_fields"])
    assert_ledger_clean(runtime.db)


def test_idempotency_key_replay_reuse_and_absence(client: TestClient, runtime: Runtime) -> None:
    alice, bob = Person(client, 1), Person(client, 2, card_ending=None)
    alice.money("/v1/wallet/topups", {"card_id": alice.card_id, "amount": 100 * YUAN, "pin": PIN})
    body = {"to": bob.user_id, "amount": 1_00, "pin": PIN}
    first = alice.post("/v1/wallet/transfers", body, key="k-1")
    assert first.status_code == 201, first.text
    again = alice.post("/v1/wallet/transfers", body, key="k-1")
    assert (again.status_code, again.content) == (201, first.content)
    assert again.headers["Idempotent-Replayed"] == "true"
    _problem(
        alice.post("/v1/wallet/transfers", {**body, "amount": 2_00}, key="k-1"),
        422,
        "idempotency_key_reused",
    )
    _problem(alice.post("/v1/wallet/transfers", body), 400, "idempotency_key_required")
    _problem(
        alice.post("/v1/wallet/transfers", body, key="x" * 129), 400, "idempotency_key_invalid"
    )
    # Keys belong to their user: Bob may use the same key for his own request.
    bob_body = {"to": alice.user_id, "amount": 50, "pin": PIN}
    assert bob.post("/v1/wallet/transfers", bob_body, key="k-1").status_code == 201
    assert bob.wallet()["balance"] == 50
    # A two-phase request (bank call in between) replays the same way.
    topup = {"card_id": alice.card_id, "amount": 7_00, "pin": PIN}
    made = alice.post("/v1/wallet/topups", topup, key="t-1")
    replayed = alice.post("/v1/wallet/topups", topup, key="t-1")
    assert (replayed.status_code, replayed.content) == (made.status_code, made.content)
    # A refusal stores nothing: the same key may be retried once the cause is fixed.
    too_much = {"to": bob.user_id, "amount": 1_000 * YUAN, "pin": PIN}
    _problem(alice.post("/v1/wallet/transfers", too_much, key="k-2"), 409, "insufficient_balance")
    wrong_pin = {**body, "pin": "111222"}
    _problem(alice.post("/v1/wallet/transfers", wrong_pin, key="k-3"), 403, "pin_incorrect")
    assert alice.post("/v1/wallet/transfers", body, key="k-3").status_code == 201
    assert alice.wallet()["balance"] == 100 * YUAN + 7_00 - 1_00 + 50 - 1_00
    assert count(runtime.db, "SELECT COUNT(*) FROM ledger_transfers WHERE code = 4") == 3
    assert_ledger_clean(runtime.db)


def test_hundred_concurrent_identical_requests_post_once(
    client: TestClient, runtime: Runtime
) -> None:
    alice, bob = Person(client, 1), Person(client, 2, card_ending=None)
    alice.money("/v1/wallet/topups", {"card_id": alice.card_id, "amount": 100 * YUAN, "pin": PIN})
    body = {"to": bob.user_id, "amount": 3_00, "note": "once", "pin": PIN}
    barrier = threading.Barrier(100)

    def send(_: int) -> tuple[int, bytes]:
        barrier.wait()
        response = alice.post("/v1/wallet/transfers", body, key="same-key")
        return response.status_code, response.content

    with ThreadPoolExecutor(100) as pool:
        results = list(pool.map(send, range(100)))
    assert {status for status, _ in results} == {201}
    assert len({content for _, content in results}) == 1
    assert bob.wallet()["balance"] == 3_00
    assert count(runtime.db, "SELECT COUNT(*) FROM ledger_transfers WHERE code = 4") == 1
    assert count(runtime.db, "SELECT COUNT(*) FROM wallet_activity WHERE kind = 'transfer_in'") == 1

    topup = {"card_id": alice.card_id, "amount": 5_00, "pin": PIN}

    def fund(_: int) -> tuple[int, str]:
        response = alice.post("/v1/wallet/topups", topup, key="same-topup")
        return response.status_code, response.json().get("id") or response.json()["code"]

    with ThreadPoolExecutor(20) as pool:
        outcomes = list(pool.map(fund, range(20)))
    made = {value for status, value in outcomes if status == 201}
    assert len(made) == 1  # every success is the same top-up
    assert {value for status, value in outcomes if status != 201} <= {"idempotency_key_in_progress"}
    assert count(runtime.db, "SELECT COUNT(*) FROM wallet_fundings WHERE kind = 'topup'") == 2
    assert alice.wallet()["balance"] == 100 * YUAN - 3_00 + 5_00
    assert_ledger_clean(runtime.db)


def test_bank_timeout_answers_202_then_reconciles(client: TestClient, runtime: Runtime) -> None:
    alice = Person(client, 1, card_ending="0009")
    body = {"card_id": alice.card_id, "amount": 88_00, "pin": PIN}
    response = alice.post("/v1/wallet/topups", body, key="slow")
    assert response.status_code == 202, response.text
    topup = response.json()
    assert topup["status"] == "unknown"
    state = alice.wallet()
    assert (state["balance"], state["pending_incoming"], state["available"]) == (0, 88_00, 0)
    report = wallet.reconcile_fundings(runtime.db, bank=runtime.bank, settings=runtime.settings)
    assert report.succeeded == 1  # even amount: the sandbox bank did move the money
    assert alice.get(f"/v1/wallet/topups/{topup['id']}").json()["status"] == "succeeded"
    assert alice.wallet()["balance"] == 88_00
    replay = alice.post("/v1/wallet/topups", body, key="slow")  # the first answer, stored
    assert (replay.status_code, replay.content) == (202, response.content)
    odd = alice.post("/v1/wallet/withdrawals", {**body, "amount": 11_01}, key="slow-2")
    assert odd.status_code == 202
    assert alice.wallet()["pending_outgoing"] == 11_01
    wallet.reconcile_fundings(runtime.db, bank=runtime.bank, settings=runtime.settings)
    withdrawal = alice.get(f"/v1/wallet/withdrawals/{odd.json()['id']}").json()
    assert (withdrawal["status"], withdrawal["failure_code"]) == ("failed", "card_declined")
    assert alice.wallet()["balance"] == 88_00
    _problem(alice.get(f"/v1/wallet/topups/{odd.json()['id']}"), 404, "transaction_not_found")
    assert_ledger_clean(runtime.db)


def test_cards_refuse_cvv_and_bad_numbers(client: TestClient, runtime: Runtime) -> None:
    alice = Person(client, 1, card_ending=None)
    number = sandbox_card_number("4444", serial=1)
    for field in ("cvv", "CVC", "cvv2", "security_code"):
        body = {"card_number": number, "phone": alice.phone, field: "123"}
        problem = _problem(alice.post("/v1/wallet/cards", body), 422, "cvv_not_accepted")
        assert "123" not in str(problem)
    _problem(
        alice.post("/v1/wallet/cards", {"card_number": number, "phone": alice.phone, "x": 1}),
        422,
        "validation_failed",
    )
    bad = {"card_number": number[:-1] + str((int(number[-1]) + 1) % 10), "phone": alice.phone}
    _problem(alice.post("/v1/wallet/cards", bad), 422, "invalid_card_number")
    _problem(
        alice.post("/v1/wallet/cards", {"card_number": number, "phone": "010 6552 9988"}),
        422,
        "invalid_phone",
    )
    assert count(runtime.db, "SELECT COUNT(*) FROM wallet_bank_cards") == 0
    card = alice.bind(number)
    _problem(
        alice.post("/v1/wallet/cards", {"card_number": number, "phone": alice.phone}),
        409,
        "card_already_bound",
    )
    gone = alice.client.delete(f"/v1/wallet/cards/{card['id']}", headers=alice.headers)
    assert (gone.status_code, gone.json()["status"]) == (200, "unbound")
    assert alice.get("/v1/wallet/cards").json()["items"] == []


def test_bad_input_is_a_problem_and_changes_nothing(client: TestClient, runtime: Runtime) -> None:
    alice, bob = Person(client, 1), Person(client, 2, card_ending=None)
    alice.money("/v1/wallet/topups", {"card_id": alice.card_id, "amount": 10 * YUAN, "pin": PIN})

    def transfer(**changes: Any) -> Response:
        body = {"to": bob.user_id, "amount": 100, "pin": PIN, **changes}
        return alice.post("/v1/wallet/transfers", body, key=str(uuid.uuid4()))

    _problem(transfer(amount=0), 422, "validation_failed")
    _problem(transfer(amount=1.5), 422, "validation_failed")
    _problem(transfer(amount="100"), 422, "validation_failed")
    _problem(transfer(currency="USD"), 422, "unsupported_currency")
    _problem(transfer(amount=10 * YUAN + 1), 409, "insufficient_balance")
    _problem(transfer(to="13700000000"), 404, "recipient_not_found")
    _problem(transfer(to=alice.phone), 422, "cannot_pay_self")
    _problem(transfer(pin="12345"), 422, "validation_failed")
    _problem(
        alice.post("/v1/wallet/topups", {"card_id": "card_nope", "amount": 1, "pin": PIN}, key="z"),
        404,
        "card_not_found",
    )
    _problem(
        alice.post(
            "/v1/wallet/splits",
            {
                "total": 100,
                "shares": [{"to": bob.user_id, "amount": 60}, {"to": alice.user_id, "amount": 30}],
            },
        ),
        422,
        "shares_do_not_sum_to_total",
    )
    _problem(alice.get("/v1/wallet/transactions", cursor="bogus"), 422, "invalid_cursor")
    _problem(alice.get("/v1/wallet/transactions", kind=["gifts"]), 422, "invalid_kind")
    assert alice.wallet()["balance"] == 10 * YUAN
    assert bob.wallet()["balance"] == 0
    assert count(runtime.db, "SELECT COUNT(*) FROM wallet_splits") == 0
    assert_ledger_clean(runtime.db)


def test_another_residents_objects_answer_404(client: TestClient, runtime: Runtime) -> None:
    alice, bob = Person(client, 1), Person(client, 2)
    topup = alice.money(
        "/v1/wallet/topups", {"card_id": alice.card_id, "amount": 50 * YUAN, "pin": PIN}
    )
    withdrawal = alice.money(
        "/v1/wallet/withdrawals", {"card_id": alice.card_id, "amount": 1 * YUAN, "pin": PIN}
    )
    split = alice.post(
        "/v1/wallet/splits", {"total": 200, "shares": [{"to": alice.user_id, "amount": 200}]}
    ).json()
    checks = [
        (bob.get(f"/v1/wallet/cards/{alice.card_id}"), "card_not_found"),
        (client.delete(f"/v1/wallet/cards/{alice.card_id}", headers=bob.headers), "card_not_found"),
        (bob.get(f"/v1/wallet/topups/{topup['id']}"), "transaction_not_found"),
        (bob.get(f"/v1/wallet/withdrawals/{withdrawal['id']}"), "transaction_not_found"),
        (bob.get(f"/v1/wallet/transactions/{topup['id']}"), "transaction_not_found"),
        (bob.get(f"/v1/wallet/splits/{split['id']}"), "split_not_found"),
        (bob.post(f"/v1/wallet/splits/{split['id']}/remind"), "split_not_found"),
        (bob.post(f"/v1/wallet/splits/{split['id']}/cancel"), "split_not_found"),
        (
            bob.post(f"/v1/wallet/splits/{split['id']}/pay", {"pin": PIN}, key="p"),
            "split_not_found",
        ),
        (
            bob.post(
                "/v1/wallet/withdrawals",
                {"card_id": alice.card_id, "amount": 100, "pin": PIN},
                key="w",
            ),
            "card_not_found",
        ),
    ]
    for response, code in checks:
        _problem(response, 404, code)
    assert alice.get(f"/v1/wallet/cards/{alice.card_id}").status_code == 200
    assert alice.wallet()["balance"] == 49 * YUAN
    assert_ledger_clean(runtime.db)


def test_every_wallet_route_needs_a_session(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    routes = [
        (method, path)
        for path, operations in paths.items()
        if path.startswith("/v1/wallet")
        for method in operations
    ]
    assert len(routes) >= 19
    for method, path in routes:
        url = re.sub(r"\{[^}]+\}", "x", path)
        response = client.request(method.upper(), url, headers={"Idempotency-Key": "k"})
        _problem(response, 401, "unauthorized")


def test_money_routes_document_the_idempotency_key(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    money = [
        ("/v1/wallet/topups", "post"),
        ("/v1/wallet/withdrawals", "post"),
        ("/v1/wallet/transfers", "post"),
        ("/v1/wallet/splits/{split_id}/pay", "post"),
    ]
    for path, method in money:
        names = [p["name"] for p in paths[path][method]["parameters"]]
        assert "Idempotency-Key" in names, path


def test_a_crash_between_hold_and_bank_is_recovered_by_the_next_duplicate(
    client: TestClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = Person(client, 1)
    body = {"card_id": alice.card_id, "amount": 9_00, "pin": PIN}

    def crash(*_args: object) -> None:
        raise RuntimeError("the process died here")

    monkeypatch.setattr(wallet, "ask_bank", crash)
    _problem(alice.post("/v1/wallet/topups", body, key="crashy"), 500, "internal_error")
    monkeypatch.undo()
    assert alice.wallet()["pending_incoming"] == 9_00  # the hold committed with the key
    busy = _problem(
        alice.post("/v1/wallet/topups", body, key="crashy"), 409, "idempotency_key_in_progress"
    )
    assert busy["retry_after"] == 2
    later = now_us() + 3600 * 1_000_000  # the bank never heard of it: voided after the grace
    report = wallet.reconcile_fundings(
        runtime.db, bank=runtime.bank, settings=runtime.settings, now=later
    )
    assert report.failed == 1
    recovered = alice.post("/v1/wallet/topups", body, key="crashy")
    assert recovered.status_code == 201, recovered.text
    assert (recovered.json()["status"], recovered.json()["failure_code"]) == (
        "failed",
        "bank_has_no_record",
    )
    again = alice.post("/v1/wallet/topups", body, key="crashy")
    assert again.content == recovered.content
    assert alice.wallet()["pending_incoming"] == 0
    assert_ledger_clean(runtime.db)
