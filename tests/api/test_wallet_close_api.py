"""Restricted balances and closing a wallet over HTTP, on SQLite and PostgreSQL:
``GET /v1/wallet`` (``restricted_available``), ``GET /v1/wallet/restricted`` (own balances
only, cursor pages), a merchant payment that spends them first, and ``POST /v1/wallet/close``
(PIN, Idempotency-Key, refusals, what a closed account answers afterwards, cookies cleared)."""

from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response

from citywallet.ledger import service as ledger
from citywallet.ledger.types import AccountCode, AccountFlags, TransferCode, TransferSpec
from citywallet.platform.clock import now_us
from citywallet.platform.db import Database, UnitOfWork
from citywallet.runtime import Runtime
from citywallet.wallet import restricted
from citywallet.wallet.accounts import CURRENCY, bank_settlement_account
from citywallet.wallet.restricted import Grant, SourceSpec
from tests.identity_support import PASSWORD
from tests.ledger_checks import assert_ledger_clean, test_encryptor
from tests.merchant_support import ShopOwner
from tests.wallet_support import PIN, Person, wallet_settings

YUAN = 100
DAY_US = 24 * 3600 * 1_000_000


@pytest.fixture
def runtime(db: Database, tmp_path: Path) -> Runtime:
    """A runtime whose sandbox bank answers at once."""
    return Runtime(wallet_settings(tmp_path, db, bank_timeout_seconds=0.05), db, test_encryptor())


def _problem(response: Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    return body


def _source(
    runtime: Runtime, public_id: str, *, budget: int, valid_until: int, **scope: Any
) -> int:
    """A funded source (as a campaign makes one); returns its funder account."""

    def make(uow: UnitOfWork) -> int:
        funder = ledger.create_account(
            uow,
            ledger=CURRENCY,
            code=AccountCode.CAMPAIGN_FUNDS,
            flags=AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS,
            owner_ref=f"campaign:{public_id}",
        )
        ledger.post(
            uow,
            transfers=[
                TransferSpec(
                    id=f"{public_id}.fund",
                    debit_account_id=bank_settlement_account(uow),
                    credit_account_id=funder,
                    amount=budget,
                    ledger=CURRENCY,
                    code=TransferCode.CAMPAIGN_FUND,
                )
            ],
        )
        restricted.create_source(
            uow,
            spec=SourceSpec(
                public_id=public_id,
                name=f"消费红包 {public_id}",
                funder_account_id=funder,
                valid_from=now_us() - DAY_US,
                valid_until=valid_until,
                **scope,
            ),
        )
        return funder

    return runtime.db.transact(make)


def _grant(runtime: Runtime, public_id: str, person: Person, amount: int) -> None:
    def give(uow: UnitOfWork) -> None:
        source = restricted.source_by_ref(uow, public_id)
        assert source is not None
        grants = [Grant(person.user_id, amount, f"{public_id}.{person.user_id}")]
        restricted.grant(uow, source=source, grants=grants)

    runtime.db.transact(give)


def _funder_balance(runtime: Runtime, account_id: int) -> int:
    with runtime.db.uow(readonly=True) as uow:
        view = ledger.get_account(uow, account_id=account_id)
    assert view is not None
    return view.balance


def _close(person: Person, *, pin: str = PIN, key: str | None = None) -> Response:
    return person.post("/v1/wallet/close", {"pin": pin}, key=key or str(uuid.uuid4()))


def test_restricted_balances_show_in_the_wallet_and_pay_first(
    client: TestClient, runtime: Runtime
) -> None:
    shop = ShopOwner(client, runtime, 1)
    alice, bob = Person(client, 2), Person(client, 3)
    moment = now_us()
    assert alice.wallet()["restricted_available"] == 0
    assert alice.get("/v1/wallet/restricted").json() == {"items": [], "next_cursor": None}
    _source(
        runtime,
        "cmp_luohu",
        budget=200 * YUAN,
        valid_until=moment + 7 * DAY_US,
        merchant_ids=[shop.merchant_id],
        min_spend=10 * YUAN,
    )
    _source(runtime, "cmp_books", budget=50 * YUAN, valid_until=moment + DAY_US, mccs=["5942"])
    _grant(runtime, "cmp_luohu", alice, 200 * YUAN)
    _grant(runtime, "cmp_books", alice, 50 * YUAN)
    start = alice.wallet()
    assert (start["balance"], start["restricted_available"]) == (0, 250 * YUAN)

    listed = alice.get("/v1/wallet/restricted").json()
    assert [b["source_id"] for b in listed["items"]] == ["cmp_books", "cmp_luohu"]  # newest first
    luohu = listed["items"][1]
    assert luohu == luohu | {
        "name": "消费红包 cmp_luohu",
        "currency": "CNY",
        "granted": 200 * YUAN,
        "available": 200 * YUAN,
        "status": "active",
        "usable_now": True,
        "reclaimed": 0,
        "reclaim_reason": None,
        "merchant_ids": [shop.merchant_id],
        "districts": [],
        "mccs": [],
        "min_spend": 10 * YUAN,
    }
    assert datetime.fromisoformat(luohu["valid_until"]).timestamp() == pytest.approx(
        (moment + 7 * DAY_US) / 1e6, abs=1e-3
    )
    first = alice.get("/v1/wallet/restricted", limit=1).json()
    assert [b["source_id"] for b in first["items"]] == ["cmp_books"]
    rest = alice.get("/v1/wallet/restricted", limit=1, cursor=first["next_cursor"]).json()
    assert ([b["source_id"] for b in rest["items"]], rest["next_cursor"]) == (["cmp_luohu"], None)
    _problem(alice.get("/v1/wallet/restricted", cursor="cmp_nope"), 422, "invalid_cursor")
    assert bob.get("/v1/wallet/restricted").json()["items"] == []  # only one's own
    assert bob.wallet()["restricted_available"] == 0

    # at the listed merchant the red packet pays first; own money (none here) the rest
    payload = shop.order(120 * YUAN)["qr_payload"]
    shown = alice.post("/v1/payments/scan/preview", {"payload": payload}).json()
    assert shown["restricted_usable"] == 120 * YUAN
    paid = alice.money("/v1/payments/scan", {"payload": payload, "pin": PIN})
    assert (paid["status"], paid["restricted_amount"]) == ("paid", 120 * YUAN)
    after = alice.wallet()
    assert (after["balance"], after["restricted_available"]) == (0, 130 * YUAN)
    assert alice.get("/v1/wallet/restricted").json()["items"][1]["available"] == 80 * YUAN
    assert_ledger_clean(runtime.db)


def test_closing_a_wallet_over_http(client: TestClient, runtime: Runtime) -> None:
    alice, carol = Person(client, 1), Person(client, 2)
    second = client.post("/v1/auth/login", json={"phone": alice.phone, "password": PASSWORD})
    assert second.status_code == 200, second.text
    other_device = {"Authorization": f"Bearer {second.json()['session']['token']}"}
    funder = _source(runtime, "cmp_luohu", budget=300 * YUAN, valid_until=now_us() + DAY_US)
    _grant(runtime, "cmp_luohu", alice, 200 * YUAN)
    alice.money("/v1/wallet/topups", {"card_id": alice.card_id, "amount": 30 * YUAN, "pin": PIN})

    no_key = alice.post("/v1/wallet/close", {"pin": PIN})
    _problem(no_key, 400, "idempotency_key_required")
    wrong = _problem(_close(alice, pin="000000"), 403, "pin_incorrect")
    assert wrong["attempts_left"] == 4
    not_empty = _problem(_close(alice), 409, "wallet_not_empty")
    assert (not_empty["balance"], not_empty["currency"]) == (30 * YUAN, "CNY")
    assert alice.wallet()["restricted_available"] == 200 * YUAN
    alice.money(
        "/v1/wallet/withdrawals", {"card_id": alice.card_id, "amount": 30 * YUAN, "pin": PIN}
    )
    assert alice.wallet()["balance"] == 0

    key = str(uuid.uuid4())
    closed = _close(alice, key=key)
    assert closed.status_code == 200, closed.text
    body = closed.json()
    assert body == body | {
        "user_id": alice.user_id,
        "status": "closed",
        "currency": "CNY",
        "restricted_returned": 200 * YUAN,
        "restricted_balances": 1,
    }
    assert _funder_balance(runtime, funder) == 300 * YUAN

    # every session has ended, and says why; so does a retry of the same request
    _problem(alice.get("/v1/wallet"), 403, "account_closed")
    _problem(client.get("/v1/me", headers=other_device), 403, "account_closed")
    _problem(_close(alice, key=key), 403, "account_closed")
    login = client.post("/v1/auth/login", json={"phone": alice.phone, "password": PASSWORD})
    _problem(login, 403, "account_closed")
    wrong_password = client.post("/v1/auth/login", json={"phone": alice.phone, "password": "x" * 9})
    _problem(wrong_password, 401, "invalid_credentials")  # nothing said without the password
    sent = carol.post(
        "/v1/wallet/transfers",
        {"to": alice.phone, "amount": 1 * YUAN, "pin": PIN},
        key=str(uuid.uuid4()),
    )
    _problem(sent, 409, "recipient_unavailable")
    assert carol.wallet()["balance"] == 0
    assert_ledger_clean(runtime.db)


def test_closing_with_a_cookie_session_clears_the_cookies(
    client: TestClient, runtime: Runtime
) -> None:
    alice = Person(client, 1, card_ending=None)
    signed_in = client.post(
        "/v1/auth/login",
        json={"phone": alice.phone, "password": PASSWORD, "session": "cookie"},
    )
    assert signed_in.status_code == 200, signed_in.text
    csrf = signed_in.json()["session"]["csrf_token"]
    assert client.cookies.get("cw_session")
    headers = {"X-CSRF-Token": csrf, "Idempotency-Key": str(uuid.uuid4())}
    without_csrf = client.post(
        "/v1/wallet/close", json={"pin": PIN}, headers={"Idempotency-Key": "k-1"}
    )
    _problem(without_csrf, 403, "csrf_failed")
    closed = client.post("/v1/wallet/close", json={"pin": PIN}, headers=headers)
    assert closed.status_code == 200, closed.text
    assert closed.json()["restricted_returned"] == 0
    set_cookies = closed.headers.get_list("set-cookie")
    assert any(c.startswith("cw_session=") and "Max-Age=0" in c for c in set_cookies), set_cookies
    assert any(c.startswith("cw_csrf=") and "Max-Age=0" in c for c in set_cookies), set_cookies
    assert not client.cookies.get("cw_session")
    _problem(alice.get("/v1/wallet"), 403, "account_closed")
    assert_ledger_clean(runtime.db)
