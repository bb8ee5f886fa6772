"""Cross-provider transfer in a real browser at 375×667: the transfer page shows the other
provider's terms (masked name, provider, amount, fee, total) before the PIN, confirming
sends once, the receipt names the provider and the switch's transfer id, and the operator's
interoperability page lists it. The switch is scripted (tests/interop_support.py): it
answers through the server's /fspiop endpoints with requests signed by its test key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx2
import pytest
from playwright.sync_api import Page, expect

from citywallet.api.app import create_app
from citywallet.identity import attributes
from citywallet.interop.transport import Courier, Sender
from citywallet.platform.db import Database
from citywallet.runtime import Runtime
from tests.e2e.conftest import Shots, Site
from tests.identity_support import PASSWORD
from tests.interop_support import OTHER, FakeSwitch, interop_settings, outbox
from tests.ledger_checks import assert_ledger_clean, test_encryptor
from tests.redpacket_support import serve
from tests.wallet_support import PIN, Person, balance, platform_balance

FAR = "13700137001"
OVERFLOW = "() => document.documentElement.scrollWidth - window.innerWidth"


@pytest.fixture
def fake() -> FakeSwitch:
    return FakeSwitch(directory={FAR: (OTHER, "*明")})


@pytest.fixture
def connected(db: Database, tmp_path: Path, fake: FakeSwitch) -> Iterator[Site]:
    runtime = Runtime(interop_settings(tmp_path, db), db, test_encryptor())
    runtime.__dict__["interop_courier"] = Courier(
        db, Sender(runtime.interop_key, transport=fake.transport()), poll=0.05
    )
    with serve(create_app(runtime)) as url, httpx2.Client(base_url=url, timeout=30) as http:
        fake.client = cast(Any, http)  # the switch's callbacks reach the real server
        yield Site(url, runtime)


def log_in(page: Page, site: Site, phone: str, target: str) -> None:
    page.goto(f"{site.url}/login?next={target}")
    page.get_by_label("手机号").fill(phone)
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    page.wait_for_url(f"**{target}")


def test_a_resident_pays_someone_at_another_provider(
    connected: Site, phone: Page, shots: Shots
) -> None:
    site = connected
    with httpx2.Client(base_url=site.url, timeout=30) as http:
        alice = Person(cast(Any, http), 61)
        alice.money("/v1/wallet/topups", {"card_id": alice.card_id, "amount": 50_000, "pin": PIN})
    log_in(phone, site, alice.phone, "/app/transfer")
    phone.locator("#f-to").fill(FAR)
    phone.locator("#f-amount").fill("66.60")
    phone.get_by_role("button", name="转账", exact=True).click()

    expect(phone.get_by_test_id("interop-name")).to_have_text("*明")
    expect(phone.get_by_test_id("interop-provider")).to_have_text(OTHER)
    expect(phone.get_by_test_id("total")).to_have_text("¥66.60")
    assert phone.evaluate(OVERFLOW) <= 1
    assert balance(site.db, alice.user_id) == (50_000, 0, 0)  # nothing held before the PIN
    phone.locator("#f-pin").fill(PIN)
    phone.get_by_role("button", name="确认并转账").click()

    phone.wait_for_url("**/app/history/itf_*")
    expect(phone.get_by_test_id("receipt-status")).to_have_text("成功")
    switch_id = next(m for m in outbox(site.db) if m["path"] == "/transfers")["json"]["transferId"]
    expect(phone.get_by_test_id("receipt-switch-id")).to_have_text(switch_id)
    expect(phone.get_by_test_id("receipt-provider")).to_have_text(OTHER)
    assert phone.evaluate(OVERFLOW) <= 1
    shots(phone, "interop-receipt")
    assert balance(site.db, alice.user_id) == (50_000 - 6_660, 0, 0)
    assert platform_balance(site.db, "platform:interop_settlement") == 6_660

    site.db.transact(
        lambda uow: attributes.grant_operator(uow, user_id=alice.user_id, actor="test")
    )
    phone.goto(site.url + "/operator")
    phone.get_by_role("link", name="互联互通").click()
    expect(phone.get_by_test_id("participant-id")).to_have_text("provider-a")
    expect(phone.get_by_test_id("count-COMMITTED")).to_have_text("1")
    expect(phone.get_by_test_id("position")).to_have_text("¥66.60")
    shots(phone, "operator-interop")
    assert_ledger_clean(site.db)
