"""Consent (PIPL) and "download my data" through the API, on SQLite and PostgreSQL:
sign-up requires the wallet's consent under the current documents, consents are recorded
with their versions and time and audited, optional ones are withdrawn and given again, and
the export holds the resident's own data only, matching the ledger."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import text

from citywallet.identity import consent
from citywallet.ledger import service as ledger
from citywallet.runtime import Runtime
from tests.identity_support import PASSWORD
from tests.ledger_checks import assert_ledger_clean
from tests.wallet_support import PIN, Person, balance, count

YUAN = 100


def _problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    return body


def _code(client: TestClient, phone: str) -> str:
    client.post("/v1/auth/sms-codes", json={"phone": phone})
    text_ = client.get("/v1/dev/sms", params={"phone": phone}).json()["items"][0]["text"]
    return "".join(ch for ch in text_ if ch.isdigit())[:6]


def test_the_documents_are_public_versioned_and_in_both_languages(client: TestClient) -> None:
    listed = client.get("/v1/legal/documents")
    assert listed.status_code == 200
    by_name = {d["name"]: d for d in listed.json()}
    assert set(by_name) == {"service_agreement", "privacy_policy"}
    assert by_name["privacy_policy"]["version"] == consent.current_versions()["privacy_policy"]
    assert by_name["privacy_policy"]["title_zh"] == "城市钱包隐私政策"
    zh = client.get("/v1/legal/documents/privacy_policy").json()
    en = client.get("/v1/legal/documents/privacy_policy", params={"lang": "en"}).json()
    assert (zh["lang"], en["lang"]) == ("zh_CN", "en")
    assert "个人信息保护法" in zh["text"]
    assert "PIPL" in en["text"]
    _problem(
        client.get("/v1/legal/documents/privacy_policy", params={"version": "99"}),
        404,
        "document_not_found",
    )


def test_sign_up_requires_the_wallets_consent_under_the_current_documents(
    client: TestClient, runtime: Runtime
) -> None:
    phone = "13900139100"
    code = _code(client, phone)
    base = {"phone": phone, "code": code, "password": PASSWORD}
    missing = client.post("/v1/auth/register", json=base)
    assert missing.status_code == 422  # the consent member is required
    without_wallet = base | {"consent": consent.signup_body(("offers",))}
    _problem(client.post("/v1/auth/register", json=without_wallet), 422, "consent_required")
    stale = base | {"consent": consent.signup_body() | {"privacy_version": "0"}}
    body = _problem(client.post("/v1/auth/register", json=stale), 409, "consent_outdated")
    assert body["current_versions"] == consent.current_versions()
    assert count(runtime.db, "SELECT COUNT(*) FROM identity_users") == 0
    # the code was not spent by the refusals
    signed = client.post(
        "/v1/auth/register", json=base | {"consent": consent.signup_body(("wallet", "offers"))}
    )
    assert signed.status_code == 201, signed.text
    headers = {"Authorization": f"Bearer {signed.json()['session']['token']}"}
    listed = client.get("/v1/me/consents", headers=headers).json()
    states = {c["purpose"]: c for c in listed["items"]}
    assert {p: c["granted"] for p, c in states.items()} == {
        "wallet": True,
        "offers": True,
        "merchant_sharing": False,
    }
    assert states["wallet"]["required"] is True
    assert states["wallet"]["agreement_version"] == "1"
    assert states["wallet"]["privacy_version"] == "1"
    assert states["wallet"]["source"] == "api"
    assert states["wallet"]["updated_at"] is not None
    assert len(listed["history"]) == 3  # every purpose offered is on the record
    events = count(
        runtime.db,
        "SELECT COUNT(*) FROM identity_user_events WHERE kind IN ('consent_given', "
        "'consent_withdrawn')",
    )
    assert events == 3


def test_optional_consents_are_withdrawn_and_given_again_and_the_wallets_is_not(
    client: TestClient, runtime: Runtime
) -> None:
    alice = Person(client, 1, card_ending=None)
    withdrawn = client.put(
        "/v1/me/consents", json={"purpose": "offers", "granted": False}, headers=alice.headers
    )
    assert withdrawn.status_code == 200, withdrawn.text
    assert withdrawn.json()["granted"] is False  # never given: unchanged, nothing recorded
    given = client.put(
        "/v1/me/consents", json={"purpose": "offers", "granted": True}, headers=alice.headers
    )
    assert (given.json()["granted"], given.json()["privacy_version"]) == (True, "1")
    again = client.put(
        "/v1/me/consents", json={"purpose": "offers", "granted": False}, headers=alice.headers
    )
    assert again.json()["granted"] is False
    _problem(
        client.put(
            "/v1/me/consents", json={"purpose": "wallet", "granted": False}, headers=alice.headers
        ),
        422,
        "consent_required",
    )
    assert (
        client.put(
            "/v1/me/consents", json={"purpose": "nope", "granted": True}, headers=alice.headers
        ).status_code
        == 422
    )
    history = alice.get("/v1/me/consents").json()["history"]
    offers = [(h["granted"], h["source"]) for h in history if h["purpose"] == "offers"]
    assert offers == [(False, "api"), (True, "api"), (False, "api")]  # sign-up, give, withdraw
    with runtime.db.uow(readonly=True) as uow:
        kinds = [
            row[0]
            for row in uow.session.execute(
                text(
                    "SELECT e.kind FROM identity_user_events e JOIN identity_users u "
                    "ON u.id = e.user_id WHERE u.public_id = :u AND e.kind LIKE 'consent_%' "
                    "ORDER BY e.id"
                ),
                {"u": alice.user_id},
            )
        ]
    assert kinds[-2:] == ["consent_given", "consent_withdrawn"]
    assert client.get("/v1/me/consents").status_code == 401


def test_my_data_holds_my_own_rows_and_matches_the_ledger(
    client: TestClient, runtime: Runtime
) -> None:
    alice, bob = Person(client, 1), Person(client, 2)
    alice.money("/v1/wallet/topups", {"card_id": alice.card_id, "amount": 500 * YUAN, "pin": PIN})
    alice.money(
        "/v1/wallet/transfers", {"to": bob.phone, "amount": 120 * YUAN, "note": "午饭", "pin": PIN}
    )
    alice.money(
        "/v1/wallet/withdrawals",
        {"card_id": alice.card_id, "amount": 100 * YUAN, "pin": PIN},
    )
    bob.money("/v1/wallet/topups", {"card_id": bob.card_id, "amount": 7 * YUAN, "pin": PIN})

    answer = alice.get("/v1/me/export")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/json")
    data = answer.json()
    assert data["format"] == "citywallet.mydata"
    assert data["profile"]["id"] == alice.user_id
    assert data["profile"]["phone_masked"] == "139****0001"
    assert alice.phone not in answer.text  # masked everywhere
    assert alice.card_number not in answer.text
    assert [c["id"] for c in data["cards"]] == [alice.card_id]
    assert data["cards"][0]["number_masked"].endswith(alice.card_number[-4:])
    assert {c["purpose"] for c in data["consents"]} == {"wallet", "offers", "merchant_sharing"}
    assert data["devices"]
    assert bob.user_id not in json.dumps(data["profile"])
    kinds = [t["kind"] for t in data["transactions"]]
    assert kinds == ["topup", "transfer_out", "withdrawal"]

    # the lines add up to the ledger's balance, and each names real ledger transfers
    net = sum(
        t["amount"] if t["direction"] == "in" else -(t["amount"] + t["fee"])
        for t in data["transactions"]
        if t["status"] == "succeeded"
    )
    assert net == balance(runtime.db, alice.user_id)[0] == 280 * YUAN
    with runtime.db.uow(readonly=True) as uow:
        for line in data["transactions"]:
            assert line["ledger_transfer_ids"], line
            found = ledger.get_transfers(uow, ids=line["ledger_transfer_ids"])
            assert set(found) == set(line["ledger_transfer_ids"])
            assert line["amount"] in {t.amount for t in found.values()}

    csv_answer = alice.get("/v1/me/export", format="csv", headers="zh")
    assert csv_answer.status_code == 200
    assert csv_answer.headers["content-type"].startswith("text/csv")
    assert csv_answer.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(csv_answer.text.lstrip("\ufeff"), newline="")))
    assert ["交易记录"] in rows
    header = rows[rows.index(["交易记录"]) + 1]
    assert header[:4] == ["交易编号", "类型", "收支", "金额（元）"]
    ids = {r[0] for r in rows if r}
    assert {t["id"] for t in data["transactions"]} <= ids
    assert any(
        r[:4] == [data["transactions"][1]["id"], "transfer_out", "out", "120.00"] for r in rows
    )
    assert client.get("/v1/me/export").status_code == 401
    assert_ledger_clean(runtime.db)
