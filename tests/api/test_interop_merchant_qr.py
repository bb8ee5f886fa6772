"""Any provider's wallet pays any provider's merchant QR (issue 14), over HTTP on SQLite and
PostgreSQL against a scripted switch. As the merchant's provider: a quote for a BUSINESS
payee authenticates the scanned payload with our key (a forged MAC, another amount, a closed
order: an error callback, nothing changes), the prepare credits the merchant pending, the
switch's COMMITTED posts it once under duplicates, 3303 voids it. As the payer's provider:
a resident scanning another provider's code pays it through the switch, the quote carrying
the payload."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from citywallet.api.app import create_app
from citywallet.interop.messages import (
    ErrorCode,
    QuoteRequest,
    TransferFulfil,
    TransferPrepare,
    error,
)
from citywallet.interop.provider import service as interop
from citywallet.merchant import emv
from citywallet.merchant.rules import fee_for
from citywallet.platform.db import Database
from citywallet.runtime import Runtime
from tests.interop_support import ME, OTHER, FakeSwitch, connected_runtime, outbox
from tests.ledger_checks import assert_ledger_clean
from tests.merchant_support import ShopOwner, merchant_row
from tests.wallet_support import PIN, Person, balance, count, platform_balance

RATE_BP = 38
PAYER = "13700137000"  # the other provider's resident
SETTLEMENT = "platform:interop_settlement"
THEIR_KEY = bytes(range(100, 132))  # the other provider's QR key: we cannot check its MACs


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


@pytest.fixture
def shop(client: TestClient, runtime: Runtime) -> ShopOwner:
    return ShopOwner(client, runtime, 100)


def _quote_request(merchant_id: str, payload: str, amount: int) -> tuple[str, QuoteRequest]:
    quote_id = str(uuid.uuid4())
    body = {
        "quoteId": quote_id,
        "transactionId": str(uuid.uuid4()),
        "payer": {"partyIdType": "MSISDN", "partyIdentifier": PAYER, "fspId": OTHER},
        "payee": {"partyIdType": "BUSINESS", "partyIdentifier": merchant_id, "fspId": ME},
        "amountType": "SEND",
        "amount": {"amount": amount, "currency": "CNY"},
        "expiration": (datetime.now(UTC) + timedelta(seconds=60)).isoformat(),
        "qrPayload": payload,
    }
    return quote_id, QuoteRequest.model_validate_json(json.dumps(body))


def _sent(runtime: Runtime, path: str) -> list[dict[str, Any]]:
    return [m for m in outbox(runtime.db) if m["path"] == path]


def _receivable(runtime: Runtime, shop: ShopOwner) -> tuple[int, int]:
    """(posted balance, pending credits) of the merchant's receivable."""
    from citywallet.ledger import service as ledger

    account_id = merchant_row(runtime.db, shop.merchant_id).receivable_account_id
    with runtime.db.uow(readonly=True) as uow:
        view = ledger.get_account(uow, account_id=account_id)
    assert view is not None
    return view.balance, view.credits_pending


def _order_status(shop: ShopOwner, order_id: str) -> tuple[str, str | None]:
    got = shop.api.get(f"/v1/merchant/orders/{order_id}")
    assert got.status_code == 200, got.text
    return got.json()["status"], got.json()["channel"]


def _prepare(fake: FakeSwitch, terms: dict[str, Any], amount: int, seconds: int = 60) -> str:
    transfer_id = str(uuid.uuid4())
    prepare = TransferPrepare(
        transfer_id=transfer_id, payer_fsp=OTHER, payee_fsp=ME,
        amount={"amount": amount, "currency": "CNY"},  # type: ignore[arg-type]
        ilp_condition=terms["ilpCondition"],
        expiration=datetime.now(UTC) + timedelta(seconds=seconds),
    )  # fmt: skip
    for _ in range(2):  # a duplicated prepare credits once (and gets the fulfilment again)
        assert fake.send("POST", "/transfers", prepare).status_code == 202
    return transfer_id


def test_merchant_paid_through_the_switch_once(
    client: TestClient, runtime: Runtime, fake: FakeSwitch, shop: ShopOwner
) -> None:
    order = shop.order(123_45)
    payload = order["qr_payload"]
    assert emv.parse_public(payload).provider == ME  # our codes name us
    quote_id, request = _quote_request(shop.merchant_id, payload, 123_45)
    for _ in range(2):  # a duplicated quote request gets the same terms
        assert fake.send("POST", "/quotes", request).status_code == 202
    answers = _sent(runtime, f"/quotes/{quote_id}")
    assert len(answers) == 2
    assert answers[0]["json"] == answers[1]["json"]
    terms = answers[0]["json"]
    fee = fee_for(123_45, RATE_BP)
    assert terms["transferAmount"]["amount"] == 123_45
    assert (terms["payeeFee"]["amount"], terms["payeeReceiveAmount"]["amount"]) == (
        fee, 123_45 - fee,
    )  # fmt: skip
    assert _receivable(runtime, shop) == (0, 0)

    transfer_id = _prepare(fake, terms, 123_45)
    fulfil, again = _sent(runtime, f"/transfers/{transfer_id}")
    assert fulfil["json"]["transferState"] == "COMMITTED"
    assert again["json"]["fulfilment"] == fulfil["json"]["fulfilment"]
    assert _receivable(runtime, shop) == (0, 123_45)
    assert _order_status(shop, order["id"]) == ("awaiting_confirmation", "interop_qr")

    committed = TransferFulfil(
        fulfilment=fulfil["json"]["fulfilment"], completed_timestamp=datetime.now(UTC),
        transfer_state="COMMITTED",
    )  # fmt: skip
    for _ in range(3):  # duplicated notices post once
        assert fake.send("PUT", f"/transfers/{transfer_id}", committed).status_code == 202
    assert _receivable(runtime, shop) == (123_45 - fee, 0)
    assert _order_status(shop, order["id"]) == ("paid", "interop_qr")
    assert platform_balance(runtime.db, SETTLEMENT) == -123_45  # the switch owes us
    sql = "SELECT COUNT(*) FROM interop_transfers WHERE transfer_id = :t AND state = 'COMMITTED'"
    assert count(runtime.db, sql, t=transfer_id) == 1
    assert_ledger_clean(runtime.db)


def test_a_refused_quote_changes_nothing(
    client: TestClient, runtime: Runtime, fake: FakeSwitch, shop: ShopOwner
) -> None:
    order = shop.order(30_00)
    payload = order["qr_payload"]
    forged = emv.build(emv.parse_public(payload), key=THEIR_KEY)  # names us, another MAC
    closed = shop.order(40_00)
    assert shop.api.post(f"/v1/merchant/orders/{closed['id']}/close").status_code == 200
    cases = [
        (forged, 30_00, "qr_tampered"),
        (payload, 29_99, "amount_mismatch"),
        (closed["qr_payload"], 40_00, "order_closed"),
    ]
    for bad, amount, code in cases:
        quote_id, request = _quote_request(shop.merchant_id, bad, amount)
        assert fake.send("POST", "/quotes", request).status_code == 202
        (refusal,) = _sent(runtime, f"/quotes/{quote_id}/error")
        information = refusal["json"]["errorInformation"]
        assert (information["errorCode"], information["errorDescription"]) == ("5103", code)
    assert count(runtime.db, "SELECT COUNT(*) FROM merchant_interop_payments") == 0
    assert count(runtime.db, "SELECT COUNT(*) FROM interop_payee_quotes") == 0
    assert _receivable(runtime, shop) == (0, 0)


def test_expiry_voids_and_the_order_is_open_again(
    client: TestClient, runtime: Runtime, fake: FakeSwitch, shop: ShopOwner
) -> None:
    order = shop.order(20_00)
    quote_id, request = _quote_request(shop.merchant_id, order["qr_payload"], 20_00)
    fake.send("POST", "/quotes", request)
    (answer,) = _sent(runtime, f"/quotes/{quote_id}")
    transfer_id = _prepare(fake, answer["json"], 20_00)
    assert _receivable(runtime, shop) == (0, 20_00)
    expired = error(ErrorCode.TRANSFER_EXPIRED)
    for _ in range(2):
        assert fake.send("PUT", f"/transfers/{transfer_id}/error", expired).status_code == 202
    assert _receivable(runtime, shop) == (0, 0)
    assert _order_status(shop, order["id"]) == ("created", None)
    assert platform_balance(runtime.db, SETTLEMENT) == 0
    assert_ledger_clean(runtime.db)


def test_a_merchant_transfer_left_waiting_is_asked_about_and_voided(
    client: TestClient, runtime: Runtime, fake: FakeSwitch, shop: ShopOwner
) -> None:
    order = shop.order(15_00)
    quote_id, request = _quote_request(shop.merchant_id, order["qr_payload"], 15_00)
    fake.send("POST", "/quotes", request)
    (answer,) = _sent(runtime, f"/quotes/{quote_id}")
    transfer_id = _prepare(fake, answer["json"], 15_00, seconds=-10)  # its word never came
    asked = runtime.db.transact(
        lambda uow: interop.sweep(uow, settings=runtime.settings, now=datetime.now(UTC))
    )
    assert asked == 1
    sent = [m["method"] for m in _sent(runtime, f"/transfers/{transfer_id}")]
    assert sent == ["PUT", "PUT", "GET"]  # the fulfilment (twice: a duplicated prepare), asked
    # the switch's answer: expired; the merchant's credit is voided, the order open again
    fake.send("PUT", f"/transfers/{transfer_id}/error", error(ErrorCode.TRANSFER_EXPIRED))
    assert _receivable(runtime, shop) == (0, 0)
    assert _order_status(shop, order["id"]) == ("created", None)
    assert_ledger_clean(runtime.db)


def _their_code(amount: int | None) -> str:
    code = emv.MerchantCode(
        merchant_id="mch_TheirShop0000000001",
        store_id="sto_TheirStore000000001",
        mcc="5812",
        merchant_name="THEIR NOODLES",
        merchant_city="SHENZHEN",
        name_zh="他们的面馆",
        amount=amount,
        order_ref=None if amount is None else "ord_TheirOrder00000001",
        provider=OTHER,
    )
    return emv.build(code, key=THEIR_KEY)


def test_a_resident_pays_another_providers_code_through_the_switch(
    client: TestClient, runtime: Runtime, fake: FakeSwitch
) -> None:
    alice = Person(client, 1)
    alice.money("/v1/wallet/topups", {"card_id": alice.card_id, "amount": 500_00, "pin": PIN})
    payload = _their_code(88_00)
    preview = alice.post("/v1/payments/scan/preview", {"payload": payload})
    assert preview.status_code == 200, preview.text
    shown = preview.json()
    assert (shown["provider"], shown["amount"], shown["merchant_name"]) == (
        OTHER, 88_00, "他们的面馆",
    )  # fmt: skip
    paid = alice.post("/v1/payments/scan", {"payload": payload, "pin": PIN}, key="scan-1")
    assert paid.status_code == 201, paid.text
    body = paid.json()
    assert (body["status"], body["channel"], body["provider"], body["amount"]) == (
        "paid", "interop_qr", OTHER, 88_00,
    )  # fmt: skip
    assert body["order_id"] == "ord_TheirOrder00000001"
    # our transfer's id: its state can be polled while the switch decides
    state = alice.get(f"/v1/interop/transfers/{body['transfer_id']}")
    assert (state.status_code, state.json()["switch_transfer_id"], state.json()["state"]) == (
        200, body["switch_transfer_id"], "committed",
    )  # fmt: skip
    (quote,) = [m[2] for m in fake.seen if m[:2] == ("POST", "/quotes")]
    assert quote["payee"] == {
        "partyIdType": "BUSINESS", "partyIdentifier": "mch_TheirShop0000000001", "fspId": OTHER,
    }  # fmt: skip
    assert quote["qrPayload"] == payload
    prepares = [m[2] for m in fake.seen if m[:2] == ("POST", "/transfers")]
    assert [p["transferId"] for p in prepares] == [body["switch_transfer_id"]]
    assert balance(runtime.db, alice.user_id) == (500_00 - 88_00, 0, 0)
    assert platform_balance(runtime.db, SETTLEMENT) == 88_00
    # a replay answers the same without paying again
    again = alice.post("/v1/payments/scan", {"payload": payload, "pin": PIN}, key="scan-1")
    assert (again.status_code, again.json()["switch_transfer_id"]) == (
        201, body["switch_transfer_id"],
    )  # fmt: skip
    assert balance(runtime.db, alice.user_id) == (500_00 - 88_00, 0, 0)
    assert_ledger_clean(runtime.db)


def test_a_foreign_static_code_needs_an_amount_and_a_wrong_pin_moves_nothing(
    client: TestClient, runtime: Runtime, fake: FakeSwitch
) -> None:
    alice = Person(client, 1)
    alice.money("/v1/wallet/topups", {"card_id": alice.card_id, "amount": 100_00, "pin": PIN})
    payload = _their_code(None)
    missing = alice.post("/v1/payments/scan", {"payload": payload, "pin": PIN}, key="s-1")
    assert (missing.status_code, missing.json()["code"]) == (422, "amount_required")
    wrong = alice.post(
        "/v1/payments/scan", {"payload": payload, "pin": "000000", "amount": 12_00}, key="s-2"
    )
    assert (wrong.status_code, wrong.json()["code"]) == (403, "pin_incorrect"), wrong.text
    assert not [m for m in fake.seen if m[:2] == ("POST", "/transfers")]
    assert balance(runtime.db, alice.user_id) == (100_00, 0, 0)
    paid = alice.post(
        "/v1/payments/scan", {"payload": payload, "pin": PIN, "amount": 12_00}, key="s-3"
    )
    assert (paid.status_code, paid.json()["status"]) == (201, "paid"), paid.text
    assert balance(runtime.db, alice.user_id) == (100_00 - 12_00, 0, 0)
    assert_ledger_clean(runtime.db)
