"""The merchant console on a phone (issue 15): 今日收款 on the overview matches the day's
statement read from the ledger, the JSON the announcer polls names each new payment once,
and the statement shows the day's totals."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from citywallet.merchant import refunds, statements
from citywallet.platform.clock import now_us
from citywallet.runtime import Runtime
from citywallet.wallet.bank import SandboxBank
from citywallet.web.merchant.routes import spoken_yuan
from tests.ledger_checks import assert_ledger_clean
from tests.redpacket_support import funded_resident
from tests.wallet_support import sandbox_bank
from tests.web.test_merchant_pages import open_shop, paid_order, sign_in


@pytest.fixture
def bank() -> SandboxBank:
    return sandbox_bank()


@pytest.mark.parametrize(
    ("fen", "said"),
    [(8_800, "88"), (1_230, "12.3"), (5, "0.05"), (1_000_000, "10000"), (101, "1.01")],
)
def test_amounts_are_said_as_a_payment_speaker_says_them(fen: int, said: str) -> None:
    assert spoken_yuan(fen) == said


def test_todays_takings_match_the_ledger_and_each_payment_is_announced_once(
    client: TestClient, runtime: Runtime, bank: SandboxBank
) -> None:
    shop = open_shop(runtime, bank, 1)
    other = open_shop(runtime, bank, 3)
    payer = funded_resident(runtime.db, runtime.settings, runtime.encryptor, bank, 2, 50_000)
    sign_in(client, shop.owner)
    empty = client.get("/merchant", headers={"Accept-Language": "zh-CN"})
    assert "今日收款" in empty.text
    assert re.search(r'data-testid="takings-count"[^>]*>0<', empty.text)
    as_of = re.search(r'data-since="(\d+)"', empty.text)
    assert as_of is not None

    first = paid_order(runtime, shop, payer, 8_800, "TAKE-0001")
    paid_order(runtime, shop, payer, 1_230, "TAKE-0002")
    paid_order(runtime, other, payer, 999, "OTHER-0001")  # another merchant's payment is not ours
    runtime.db.transact(  # a refund does not lower the takings (the statement shows it)
        lambda uow: refunds.refund_order(
            uow, merchant_pk=shop.pk, order_id=first, out_refund_no="RFD-0001", amount=800
        )
    )

    polled = client.get("/merchant/takings.json", params={"since": as_of.group(1)}).json()
    assert [r["yuan"] for r in polled["received"]] == ["88", "12.3"]
    assert polled["received"][0]["order_id"] == first
    again = client.get(
        "/merchant/takings.json", params={"since": polled["received"][-1]["paid_at"]}
    ).json()
    assert again["received"] == []  # nothing is announced twice

    # the same as the statement, which reads the ledger
    with runtime.db.uow(readonly=True) as uow:
        day = statements.business_day(now_us(), statements.business_zone(runtime.settings))
        ledger = statements.statement(
            uow, merchant_id=shop.pk, day=day, settings=runtime.settings
        ).totals["payment"]
    assert (polled["count"], polled["amount"]) == (ledger.count, ledger.amount) == (2, 10_030)
    assert polled["amount_text"] == "¥100.30"
    page = client.get("/merchant", headers={"Accept-Language": "zh-CN"})
    assert re.search(r'data-testid="takings-amount"[^>]*>¥100.30<', page.text)
    assert re.search(r'data-testid="takings-count"[^>]*>2<', page.text)
    assert "收款 %(yuan)s 元" in page.text  # the phrase the script speaks

    # the statement's day totals: payments, the refund, and the day's net
    statement = client.get(f"/merchant/statements?day={day}", headers={"Accept-Language": "en"})
    assert "Day totals" in statement.text
    payments_row = re.search(r'data-total="payment">(.*?)</tr>', statement.text, re.S)
    assert payments_row is not None
    assert "¥100.30" in payments_row.group(1)
    assert re.search(r"data-count>2<", payments_row.group(1))
    assert 'data-total="refund"' in statement.text
    net = re.search(r'data-total="day">.*?data-net>([^<]+)<', statement.text, re.S)
    assert net is not None
    with runtime.db.uow(readonly=True) as uow:
        found = statements.statement(uow, merchant_id=shop.pk, day=day, settings=runtime.settings)
    assert net.group(1) == f"¥{(found.closing_balance - found.opening_balance) / 100:,.2f}"
    assert_ledger_clean(runtime.db)


def test_the_announcer_json_needs_a_merchant(client: TestClient, runtime: Runtime) -> None:
    anonymous = client.get("/merchant/takings.json", follow_redirects=False)
    assert anonymous.status_code in (303, 401)
