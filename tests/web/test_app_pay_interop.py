"""The scan page pays another provider's merchant code through the switch (issue 14): the
preview names the provider, the PIN form pays once per form, the result page shows the
switch's transfer; against a scripted switch, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from citywallet.api.app import create_app
from citywallet.interop.transport import Courier, Sender
from citywallet.merchant import emv
from citywallet.platform.db import Database
from citywallet.runtime import Runtime
from tests.interop_support import OTHER, FakeSwitch, interop_settings
from tests.ledger_checks import assert_ledger_clean, test_encryptor
from tests.wallet_support import balance
from tests.web.test_app_pay_pages import hidden, resident, sign_in

THEIR_CODE = emv.build(
    emv.MerchantCode(
        merchant_id="mch_TheirShop0000000001",
        store_id="sto_TheirStore000000001",
        mcc="5812",
        merchant_name="THEIR NOODLES",
        merchant_city="SHENZHEN",
        name_zh="他们的面馆",
        amount=66_00,
        order_ref="ord_TheirOrder00000001",
        provider=OTHER,
    ),
    key=bytes(range(100, 132)),  # the other provider's key
)


@pytest.fixture
def fake() -> FakeSwitch:
    return FakeSwitch()


@pytest.fixture
def runtime(db: Database, tmp_path: Path, fake: FakeSwitch) -> Runtime:
    runtime = Runtime(interop_settings(tmp_path, db), db, test_encryptor())
    courier = Courier(db, Sender(runtime.interop_key, transport=fake.transport()), poll=0.05)
    runtime.__dict__["interop_courier"] = courier
    return runtime


@pytest.fixture
def client(runtime: Runtime, fake: FakeSwitch) -> Iterator[TestClient]:
    with TestClient(
        create_app(runtime), raise_server_exceptions=False, follow_redirects=False
    ) as test_client:
        fake.client = test_client
        yield test_client


def test_scan_another_providers_code_and_pay_once(
    client: TestClient, runtime: Runtime, db: Database, fake: FakeSwitch
) -> None:
    payer = resident(runtime, 2)
    sign_in(client, payer.phone)
    preview = client.get("/app/scan/preview", params={"payload": THEIR_CODE})
    assert preview.status_code == 200, preview.text
    assert "他们的面馆" in preview.text
    assert f"data-provider>{OTHER}<" in preview.text
    assert "data-switch" in preview.text
    assert 'name="amount"' not in preview.text  # a dynamic code fixes it
    form = {
        "csrf_token": hidden(preview.text, "csrf_token"),
        "payload": THEIR_CODE,
        "key": hidden(preview.text, "key"),
        "pin": "000000",
    }
    wrong = client.post("/app/scan/pay", data=form)
    assert wrong.status_code == 403
    assert 'data-code="pin_incorrect"' in wrong.text
    assert not [m for m in fake.seen if m[:2] == ("POST", "/transfers")]

    form["pin"] = "502817"
    paid = client.post("/app/scan/pay", data=form)
    assert paid.status_code == 303, paid.text
    target = paid.headers["location"]
    assert target.startswith("/app/scan/paid/itf_")
    again = client.post("/app/scan/pay", data=form)  # a double submit pays once
    assert (again.status_code, again.headers["location"]) == (303, target)
    assert balance(db, payer.user_id)[0] == 100_000 - 66_00
    assert len([m for m in fake.seen if m[:2] == ("POST", "/transfers")]) == 1

    result = client.get(target)
    assert result.status_code == 200
    assert "¥66.00" in result.text
    assert 'data-status="paid"' in result.text
    (prepare,) = [m[2] for m in fake.seen if m[:2] == ("POST", "/transfers")]
    assert f"data-switch-transfer>{prepare['transferId']}<" in result.text

    other = resident(runtime, 3)
    sign_in(client, other.phone)
    assert client.get(target.split("?")[0]).status_code == 404
    assert_ledger_clean(db)
