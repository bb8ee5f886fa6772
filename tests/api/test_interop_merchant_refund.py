"""Refunds of merchant payments back through the switch (issue 14), over HTTP on SQLite and
PostgreSQL against a scripted switch: the merchant's provider quotes the payer's MSISDN at
their provider, holds the merchant's receivable and prepares; COMMITTED posts it (the refund
succeeds once, the webhook queued), 3303 voids it (the amount is refundable again); a
refund over what is left is refused with nothing sent."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from citywallet.api import merchant as merchant_api
from citywallet.api.app import create_app
from citywallet.api.interop_merchants import MerchantRefunds
from citywallet.interop.messages import (
    ErrorCode,
    QuoteRequest,
    TransferFulfil,
    TransferPrepare,
    error,
)
from citywallet.interop.provider import service as interop
from citywallet.interop.transport import Courier, Sender
from citywallet.ledger import service as ledger
from citywallet.merchant.rules import fee_for
from citywallet.platform.db import Database
from citywallet.runtime import Runtime
from tests.identity_support import PASSWORD
from tests.interop_support import ME, OTHER, FakeSwitch, eventually, interop_settings, outbox
from tests.ledger_checks import assert_ledger_clean, test_encryptor
from tests.merchant_support import ShopOwner, merchant_row
from tests.wallet_support import PIN, count, platform_balance

RATE_BP = 38
PAYER = "13700137000"  # the other provider's resident who paid
SETTLEMENT = "platform:interop_settlement"
HOOK = "https://127.0.0.1/hook"


@pytest.fixture
def fake() -> FakeSwitch:
    return FakeSwitch()


@pytest.fixture
def runtime(db: Database, tmp_path: Path, fake: FakeSwitch) -> Runtime:
    settings = interop_settings(tmp_path, db, webhook_allow_hosts=["127.0.0.1"])
    runtime = Runtime(settings, db, test_encryptor())
    courier = Courier(db, Sender(runtime.interop_key, transport=fake.transport()), poll=0.05)
    runtime.__dict__["interop_courier"] = courier
    return runtime


@pytest.fixture
def client(
    runtime: Runtime, fake: FakeSwitch, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    monkeypatch.setattr(merchant_api, "REFUND_WAIT_SECONDS", 0.2)
    with TestClient(create_app(runtime), raise_server_exceptions=False) as test_client:
        fake.client = test_client
        yield test_client


@pytest.fixture
def shop(client: TestClient, runtime: Runtime) -> ShopOwner:
    return ShopOwner(client, runtime, 100)


def _paid_order(runtime: Runtime, fake: FakeSwitch, shop: ShopOwner, amount: int) -> str:
    """An order paid by the other provider's resident through the switch."""
    order = shop.order(amount, notify_url=HOOK)
    quote_id = str(uuid.uuid4())
    request = QuoteRequest.model_validate_json(
        json.dumps(
            {
                "quoteId": quote_id, "transactionId": str(uuid.uuid4()),
                "payer": {"partyIdType": "MSISDN", "partyIdentifier": PAYER, "fspId": OTHER},
                "payee": {"partyIdType": "BUSINESS", "partyIdentifier": shop.merchant_id,
                          "fspId": ME},
                "amountType": "SEND", "amount": {"amount": amount, "currency": "CNY"},
                "expiration": (datetime.now(UTC) + timedelta(seconds=60)).isoformat(),
                "qrPayload": order["qr_payload"],
            }
        )
    )  # fmt: skip
    assert fake.send("POST", "/quotes", request).status_code == 202
    (terms,) = [m["json"] for m in outbox(runtime.db) if m["path"] == f"/quotes/{quote_id}"]
    transfer_id = str(uuid.uuid4())
    prepare = TransferPrepare(
        transfer_id=transfer_id, payer_fsp=OTHER, payee_fsp=ME,
        amount={"amount": amount, "currency": "CNY"},  # type: ignore[arg-type]
        ilp_condition=terms["ilpCondition"],
        expiration=datetime.now(UTC) + timedelta(seconds=60),
    )  # fmt: skip
    assert fake.send("POST", "/transfers", prepare).status_code == 202
    (fulfil,) = [m["json"] for m in outbox(runtime.db) if m["path"] == f"/transfers/{transfer_id}"]
    committed = TransferFulfil(
        fulfilment=fulfil["fulfilment"], completed_timestamp=datetime.now(UTC),
        transfer_state="COMMITTED",
    )  # fmt: skip
    assert fake.send("PUT", f"/transfers/{transfer_id}", committed).status_code == 202
    assert _order(shop, order["id"])["status"] == "paid"
    return str(order["id"])


def _order(shop: ShopOwner, order_id: str) -> dict[str, Any]:
    got = shop.api.get(f"/v1/merchant/orders/{order_id}")
    assert got.status_code == 200, got.text
    data: dict[str, Any] = got.json()
    return data


def _refund(shop: ShopOwner, order_id: str, number: str, amount: int) -> Any:
    return shop.api.post(
        f"/v1/merchant/orders/{order_id}/refunds", {"out_refund_no": number, "amount": amount}
    )


def _refund_status(shop: ShopOwner, refund_id: str) -> str:
    got = shop.api.get(f"/v1/merchant/refunds/{refund_id}")
    assert got.status_code == 200, got.text
    return str(got.json()["status"])


def _final(shop: ShopOwner, refund_id: str) -> str:
    eventually(lambda: _refund_status(shop, refund_id) != "processing")
    return _refund_status(shop, refund_id)


def _receivable(runtime: Runtime, shop: ShopOwner) -> tuple[int, int]:
    """(posted balance, pending debits) of the merchant's receivable."""
    account_id = merchant_row(runtime.db, shop.merchant_id).receivable_account_id
    with runtime.db.uow(readonly=True) as uow:
        view = ledger.get_account(uow, account_id=account_id)
    assert view is not None
    return view.balance, view.debits_pending


def _seen(fake: FakeSwitch, method: str, path: str) -> list[Any]:
    return [m[2] for m in fake.seen if m[:2] == (method, path)]


def _webhooks(runtime: Runtime) -> int:
    sql = "SELECT COUNT(*) FROM merchant_webhook_events WHERE type = 'refund.succeeded'"
    return count(runtime.db, sql)


def test_a_full_refund_goes_back_through_the_switch_once(
    client: TestClient, runtime: Runtime, fake: FakeSwitch, shop: ShopOwner
) -> None:
    amount, fee = 123_45, fee_for(123_45, RATE_BP)
    order_id = _paid_order(runtime, fake, shop, amount)
    assert _receivable(runtime, shop) == (amount - fee, 0)
    made = _refund(shop, order_id, "RF-FULL-1", amount)
    assert made.status_code in (201, 202), made.text
    refund = made.json()
    assert (refund["amount"], refund["fee_back"]) == (amount, fee)
    assert _final(shop, refund["id"]) == "succeeded"
    (quote,) = _seen(fake, "POST", "/quotes")
    assert quote["payee"] == {"partyIdType": "MSISDN", "partyIdentifier": PAYER, "fspId": OTHER}
    assert quote["payer"] == {
        "partyIdType": "BUSINESS", "partyIdentifier": shop.merchant_id, "fspId": ME,
    }  # fmt: skip
    (prepare,) = _seen(fake, "POST", "/transfers")
    assert (prepare["payeeFsp"], prepare["amount"]["amount"]) == (OTHER, amount)
    # the receivable paid the whole amount less the fee that came back; the switch is square
    assert _receivable(runtime, shop) == (0, 0)
    assert platform_balance(runtime.db, SETTLEMENT) == 0
    assert _webhooks(runtime) == 1
    # duplicates: the same refund number answers the same refund; a repeated COMMITTED
    # changes nothing
    again = _refund(shop, order_id, "RF-FULL-1", amount)
    assert (again.status_code, again.json()["id"]) == (200, refund["id"])
    fulfil = TransferFulfil(
        fulfilment=fake.fulfilments[prepare["ilpCondition"]],
        completed_timestamp=datetime.now(UTC), transfer_state="COMMITTED",
    )  # fmt: skip
    assert fake.send("PUT", f"/transfers/{prepare['transferId']}", fulfil).status_code == 202
    assert len(_seen(fake, "POST", "/quotes")) == 1
    assert _receivable(runtime, shop) == (0, 0)
    assert _webhooks(runtime) == 1
    order = _order(shop, order_id)
    assert (order["refunded_amount"], order["refunded_fee"]) == (amount, fee)
    assert_ledger_clean(runtime.db)


def test_partial_refunds_and_one_over_what_is_left(
    client: TestClient, runtime: Runtime, fake: FakeSwitch, shop: ShopOwner
) -> None:
    amount, fee = 100_00, fee_for(100_00, RATE_BP)
    order_id = _paid_order(runtime, fake, shop, amount)
    first = _refund(shop, order_id, "RF-PART-1", 40_00)
    assert first.status_code in (201, 202), first.text
    assert _final(shop, first.json()["id"]) == "succeeded"
    fee_back = first.json()["fee_back"]
    assert 0 < fee_back < fee
    assert _receivable(runtime, shop) == (amount - fee - 40_00 + fee_back, 0)
    over = _refund(shop, order_id, "RF-PART-2", 60_01)
    assert (over.status_code, over.json()["code"]) == (409, "refund_exceeds_paid")
    assert len(_seen(fake, "POST", "/quotes")) == 1  # nothing sent for it
    rest = _refund(shop, order_id, "RF-PART-3", 60_00)
    assert _final(shop, rest.json()["id"]) == "succeeded"
    assert _receivable(runtime, shop) == (0, 0)
    assert platform_balance(runtime.db, SETTLEMENT) == 0
    assert _webhooks(runtime) == 2
    assert _order(shop, order_id)["refunded_amount"] == amount
    assert_ledger_clean(runtime.db)


def test_an_expired_refund_voids_and_the_amount_is_refundable_again(
    client: TestClient, runtime: Runtime, fake: FakeSwitch, shop: ShopOwner
) -> None:
    amount, fee = 50_00, fee_for(50_00, RATE_BP)
    order_id = _paid_order(runtime, fake, shop, amount)
    fake.on_prepare = "silent"  # the switch's word does not come with the prepare
    made = _refund(shop, order_id, "RF-EXP-1", amount)
    assert (made.status_code, made.json()["status"]) == (202, "processing"), made.text
    eventually(lambda: len(_seen(fake, "POST", "/transfers")) == 1)
    (prepare,) = _seen(fake, "POST", "/transfers")
    assert _receivable(runtime, shop) == (amount, amount)  # the fee back, the debit pending
    assert _order(shop, order_id)["refunded_amount"] == amount  # reserved meanwhile
    expired = error(ErrorCode.TRANSFER_EXPIRED)
    for _ in range(2):  # a duplicated expiry voids once
        assert fake.send("PUT", f"/transfers/{prepare['transferId']}/error", expired).status_code
    assert _refund_status(shop, made.json()["id"]) == "failed"
    assert _receivable(runtime, shop) == (amount - fee, 0)
    assert _order(shop, order_id)["refunded_amount"] == 0
    assert _webhooks(runtime) == 0
    fake.on_prepare = "commit"
    again = _refund(shop, order_id, "RF-EXP-2", amount)
    assert _final(shop, again.json()["id"]) == "succeeded"
    assert _receivable(runtime, shop) == (0, 0)
    assert platform_balance(runtime.db, SETTLEMENT) == 0
    assert_ledger_clean(runtime.db)


def test_the_console_refunds_through_the_switch(
    client: TestClient, runtime: Runtime, fake: FakeSwitch, shop: ShopOwner
) -> None:
    order_id = _paid_order(runtime, fake, shop, 30_00)
    client.cookies.clear()
    login = client.get("/login")
    client.post(
        "/login",
        data={"phone": shop.person.phone, "password": PASSWORD, "csrf_token": _token(login.text)},
    )
    fake.on_prepare = "silent"
    asked = client.get(
        f"/merchant/orders/{order_id}/refund",
        params={"amount": "10.00", "reason": "cold", "out_refund_no": "RF-WEB-1"},
    )
    assert asked.status_code == 200, asked.text[:500]
    fields = dict(re.findall(r'name="(\w+)" value="([^"]*)"', asked.text))
    fields["pin"] = PIN  # the owner confirms a refund with the payment PIN
    for _ in range(2):  # a double submit refunds once
        done = client.post(
            f"/merchant/orders/{order_id}/refund/confirmed", data=fields, follow_redirects=False
        )
        assert done.status_code == 303, done.text[:500]
    assert "through+the+switch" in done.headers["location"]
    page = client.get(done.headers["location"], headers={"Accept-Language": "en"})
    assert "Refund sent through the switch" in page.text
    assert "sent through the switch, waiting" in page.text
    eventually(lambda: len(_seen(fake, "POST", "/transfers")) == 1)
    assert len(_seen(fake, "POST", "/quotes")) == 1
    assert _order(shop, order_id)["refunded_amount"] == 10_00
    (prepare,) = _seen(fake, "POST", "/transfers")
    fake.send("PUT", f"/transfers/{prepare['transferId']}/error", error(ErrorCode.TRANSFER_EXPIRED))
    assert _order(shop, order_id)["refunded_amount"] == 0
    page = client.get(f"/merchant/orders/{order_id}", headers={"Accept-Language": "en"})
    assert "failed, refundable again" in page.text
    assert_ledger_clean(runtime.db)


def _token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found is not None, html[:500]
    return found.group(1)


def test_a_refund_whose_quote_never_comes_back_fails_at_the_sweep(
    client: TestClient,
    runtime: Runtime,
    fake: FakeSwitch,
    shop: ShopOwner,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    order_id = _paid_order(runtime, fake, shop, 20_00)
    monkeypatch.setattr(fake, "_quote", lambda body: None)  # the payee's provider is silent
    made = _refund(shop, order_id, "RF-LOST-1", 20_00)
    assert (made.status_code, made.json()["status"]) == (202, "processing"), made.text
    eventually(lambda: len(_seen(fake, "POST", "/quotes")) == 1)
    refunds = MerchantRefunds(runtime)
    now = datetime.now(UTC)
    runtime.db.transact(
        lambda uow: interop.sweep(uow, settings=runtime.settings, now=now, refunds=refunds)
    )
    assert _refund_status(shop, made.json()["id"]) == "processing"  # not late yet
    later = now + timedelta(seconds=runtime.settings.interop_transfer_seconds + 10)
    for _ in range(2):
        runtime.db.transact(
            lambda uow: interop.sweep(uow, settings=runtime.settings, now=later, refunds=refunds)
        )
    assert _refund_status(shop, made.json()["id"]) == "failed"
    assert _order(shop, order_id)["refunded_amount"] == 0
    assert not _seen(fake, "POST", "/transfers")
    assert_ledger_clean(runtime.db)
