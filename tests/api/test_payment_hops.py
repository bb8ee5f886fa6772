"""A payment request hands work to the thread pool once (issue 13, design item 6): the
route's own hop. Authentication with a warm cache (sessions, merchants' API keys) runs on
the event loop, and the route renders its own response, so FastAPI does not validate it
again in a second hop. A count of hand-offs, never a timing."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio.to_thread
import pytest
from fastapi.testclient import TestClient

from citywallet.merchant import paycode
from citywallet.platform.config import Settings
from citywallet.platform.db import Database
from citywallet.runtime import Runtime
from tests.ledger_checks import assert_ledger_clean, test_encryptor
from tests.merchant_support import PIN, ShopOwner, fund
from tests.wallet_support import Person


@pytest.fixture
def runtime(db: Database, tmp_path: Path) -> Runtime:
    """As the API tests' runtime, with a session cache that outlives a slow machine's test
    (the default trusts a looked-up session for 5 s: a count must not depend on speed)."""
    settings = Settings(var_dir=tmp_path, database_url=db.url, session_cache_seconds=3600)
    return Runtime(settings, db, test_encryptor())


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The functions handed to the thread pool while the test runs."""
    seen: list[str] = []
    real = anyio.to_thread.run_sync

    async def counting(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        seen.append(getattr(fn, "__qualname__", repr(fn))[:80])
        return await real(fn, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counting)
    return seen


def _twice(hops: list[str], pay: Callable[[int], Any]) -> list[str]:
    """Pay twice (the first warms the caches); the hops of the second."""
    pay(0)
    hops.clear()
    answer = pay(1)
    assert answer.status_code in (200, 201), answer.text
    return list(hops)


def test_each_payment_route_hops_to_the_thread_pool_once(
    client: TestClient, runtime: Runtime, hops: list[str]
) -> None:
    shop = ShopOwner(client, runtime, 1)
    alice, bob = Person(client, 2), Person(client, 3)
    fund(alice, 100_00)
    fund(bob, 1_00)

    def scan(_i: int) -> Any:
        payload = shop.order(1_00)["qr_payload"]
        hops.clear()  # creating the order is not the payment
        return alice.post(
            "/v1/payments/scan", {"payload": payload, "pin": PIN}, key=str(uuid.uuid4())
        )

    def transfer(_i: int) -> Any:
        body = {"to": bob.user_id, "amount": 1_00, "pin": PIN}
        return alice.post("/v1/wallet/transfers", body, key=str(uuid.uuid4()))

    device = alice.post("/v1/paycode/devices", {"label": "phone"}).json()
    step = int(time.time() // paycode.STEP_SECONDS)

    def charge(i: int) -> Any:
        code = paycode.generate(
            device["secret"], device["slot"], (step - 1 + i) * paycode.STEP_SECONDS
        )
        body = {"code": code, "amount": 1_00, "out_trade_no": f"POS-HOPS-{i}"}
        return shop.api.post("/v1/merchant/payments/code", body)

    assert len(_twice(hops, scan)) == 1, hops
    assert len(_twice(hops, transfer)) == 1, hops
    assert len(_twice(hops, charge)) == 1, hops
    assert alice.wallet()["balance"] == 100_00 - 2 * 1_00 - 2 * 1_00 - 2 * 1_00
    assert_ledger_clean(runtime.db)
