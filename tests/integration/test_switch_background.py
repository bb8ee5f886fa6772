"""The switch app's own threads: the courier delivers signed messages, the sweep expires a
transfer nobody fulfilled, and the window closes by itself (delivery through a mock HTTP
transport; no timings asserted, only what arrives before a generous deadline)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx2
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from citywallet.api.switch import create_switch_app
from citywallet.interop.messages import TransferFulfil
from citywallet.interop.transport import check_request
from citywallet.platform.db import Database
from tests.switch_support import (
    SWITCH_SEED,
    add_participants,
    call,
    new_prepare,
    positions,
    switch_runtime,
)

SWITCH_KEY = Ed25519PrivateKey.from_private_bytes(SWITCH_SEED).public_key()


def wait_for(condition: Callable[[], bool], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "not delivered in time"
        time.sleep(0.05)


def test_sweep_window_and_courier_run_in_the_app(db: Database, tmp_path: Path) -> None:
    add_participants(db)
    received: list[tuple[str, str, str, dict]] = []
    lock = threading.Lock()

    def provider(request: httpx2.Request) -> httpx2.Response:
        body = request.content
        path = request.url.path.removeprefix("/fspiop")
        source = check_request(
            request.headers, method=request.method, path=path, body=body,
            key_of={"switch": SWITCH_KEY}.get, now=datetime.now(UTC),
        )  # fmt: skip
        assert source == "switch"
        with lock:
            received.append(
                (request.url.host, request.method, path, json.loads(body) if body else {})
            )
        return httpx2.Response(202)

    runtime = switch_runtime(db, tmp_path, switch_window_seconds=2)
    app = create_switch_app(runtime, transport=httpx2.MockTransport(provider))
    prepare, _ = new_prepare(4_000, seconds=1)
    with TestClient(app) as client:
        assert call(client, "POST", "/transfers", prepare).status_code == 202

        def expired() -> bool:
            with lock:
                return sum(1 for r in received if r[2].endswith("/error")) == 2

        wait_for(expired)

        def settled() -> bool:
            with lock:
                return any(r[2].startswith("/settlementWindows/") for r in received)

        prepare2, fulfilment = new_prepare(1_500)
        call(client, "POST", "/transfers", prepare2)
        body = TransferFulfil(
            fulfilment=fulfilment, completed_timestamp=datetime.now(UTC),
            transfer_state="COMMITTED",
        )  # fmt: skip
        call(client, "PUT", f"/transfers/{prepare2.transfer_id}", body, source="provider-b")
        wait_for(settled)
    with lock:
        got = list(received)
    errors = sorted((host, r["errorInformation"]["errorCode"]) for host, _m, p, r in got
                    if p == f"/transfers/{prepare.transfer_id}/error")  # fmt: skip
    assert errors == [("provider-a.test", "3303"), ("provider-b.test", "3303")]
    notices = sorted((host, r["netAmount"]) for host, _m, p, r in got
                     if p.startswith("/settlementWindows/") and r["transferCount"])  # fmt: skip
    assert notices == [("provider-a.test", 1_500), ("provider-b.test", -1_500)]
    assert positions(db)["provider-a"] == (0, 0)
