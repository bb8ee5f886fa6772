"""Each failpoint of the money flows is safe to crash at (issue 17, platform/failpoints.py):
a real ``citywallet serve`` is SIGKILLed there in the middle of a P2P transfer or a
withdrawal; restarted without failpoints, the client sends the same request with the same
Idempotency-Key until it has an answer, the funding reconciliation runs (as its job would),
and then: the money moved exactly once or not at all, the bank acted at most once, and
``citywallet ledger verify`` is clean. On SQLite and PostgreSQL, a fresh database each."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx2
import pytest

from citywallet.platform.db import Database
from tests.backup_support import fresh_database
from tests.server_support import SRC, serve
from tests.wallet_support import PIN, Person

P2P_POINTS = ("ledger.post.before", "ledger.post.after", "commit.before", "commit.after",
              "response.before")  # fmt: skip
BANK_POINTS = ("bank.call.before", "bank.call.after")
AMOUNT = 1_234


def _env(tmp_path: Path, url: str) -> dict[str, str]:
    return {"CITYWALLET_DATABASE_URL": url, "CITYWALLET_SANDBOX": "true"}


def _cli(tmp_path: Path, url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CITYWALLET_")},
        "PYTHONPATH": str(SRC),
        "CITYWALLET_VAR_DIR": str(tmp_path / "var"),
        **_env(tmp_path, url),
        **env,
    }
    command = [sys.executable, "-c", "from citywallet.cli import app; app()", *args]
    return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=300)


def _balance(person: Person) -> int:
    return int(person.wallet()["balance"])


def _send_until_answered(call: Callable[[], httpx2.Response]) -> httpx2.Response:
    """The client's retry: the same request (same key) until an answer that is not 'still
    running'."""
    deadline = time.monotonic() + 60
    while True:
        answer = call()
        if answer.status_code != 409 or "in_progress" not in answer.text:
            return answer
        assert time.monotonic() < deadline, answer.text
        time.sleep(0.2)


def _crash_at(
    tmp_path: Path, url: str, point: str, request: Callable[[httpx2.Client], Any]
) -> None:
    """Start a server with ``point`` armed, send ``request``: the server must die."""
    # serve()'s readiness probe is the first response: the request's is the second
    nth = 2 if point == "response.before" else 1
    env = {**_env(tmp_path, url), "CITYWALLET_FAILPOINTS": f"{point}=crash@{nth}"}
    with (
        serve(tmp_path, **env) as base,
        httpx2.Client(base_url=base, timeout=30) as http,
        pytest.raises(httpx2.TransportError),  # the connection dies with the process
    ):
        request(http)


def _bank_operations(tmp_path: Path, reference: str) -> list[tuple[str, str, int]]:
    with closing(sqlite3.connect(tmp_path / "var" / "sandbox-bank.sqlite3")) as bank:
        rows = bank.execute(
            "SELECT kind, status, amount FROM operations WHERE reference = ?", (reference,)
        ).fetchall()
    return [(str(k), str(s), int(a)) for k, s, a in rows]


def test_every_failpoint_is_safe_to_crash_at(db: Database, tmp_path: Path) -> None:
    with fresh_database(db, tmp_path, "failpoints") as url:
        with (
            serve(tmp_path, **_env(tmp_path, url)) as base,
            httpx2.Client(base_url=base, timeout=30) as http,
        ):
            alice, bob = Person(http, 1), Person(http, 2)  # type: ignore[arg-type]
            alice.money(
                "/v1/wallet/topups", {"card_id": alice.card_id, "amount": 100_000, "pin": PIN}
            )
            balances = (_balance(alice), _balance(bob))
        tokens = (alice.headers, bob.headers)

        def as_(http: httpx2.Client, who: int) -> Person:
            person = alice if who == 0 else bob
            person.client = http  # type: ignore[assignment]
            person.headers = tokens[who]
            return person

        for point in P2P_POINTS:
            key = str(uuid.uuid4())
            body = {"to": bob.phone, "amount": AMOUNT, "pin": PIN}

            def pay(http: httpx2.Client, key: str = key, body: dict[str, Any] = body) -> Any:
                return http.post("/v1/wallet/transfers", json=body,
                                 headers={**tokens[0], "Idempotency-Key": key})  # fmt: skip

            _crash_at(tmp_path, url, point, pay)
            with (
                serve(tmp_path, **_env(tmp_path, url)) as base,
                httpx2.Client(base_url=base) as http,
            ):
                answer = _send_until_answered(lambda http=http: pay(http))
                assert answer.status_code in (200, 201), (point, answer.text)
                again = pay(http)  # and once more: the same answer, nothing moves twice
                assert again.json()["id"] == answer.json()["id"]
                after = (_balance(as_(http, 0)), _balance(as_(http, 1)))
            assert after == (balances[0] - AMOUNT, balances[1] + AMOUNT), point
            balances = after

        for point in BANK_POINTS:
            key = str(uuid.uuid4())
            body = {"card_id": alice.card_id, "amount": AMOUNT, "pin": PIN}

            def withdraw(http: httpx2.Client, key: str = key, body: dict[str, Any] = body) -> Any:
                return http.post("/v1/wallet/withdrawals", json=body,
                                 headers={**tokens[0], "Idempotency-Key": key})  # fmt: skip

            before_balance = balances[0]
            _crash_at(tmp_path, url, point, withdraw)
            # the reconciliation job's pass, its grace period over (as it would be by then)
            reconciled = _cli(
                tmp_path, url, "wallet", "reconcile",
                CITYWALLET_FUNDING_RECONCILE_AFTER_SECONDS="0",
                CITYWALLET_BANK_TIMEOUT_SECONDS="0.01",
            )  # fmt: skip
            assert reconciled.returncode == 0, reconciled.stderr
            with (
                serve(tmp_path, **_env(tmp_path, url)) as base,
                httpx2.Client(base_url=base) as http,
            ):
                answer = _send_until_answered(lambda http=http: withdraw(http))
                assert answer.status_code in (200, 201), (point, answer.text)
                seen = http.get(f"/v1/wallet/withdrawals/{answer.json()['id']}", headers=tokens[0])
                funding = seen.json()  # now, not as first answered
                after_balance = _balance(as_(http, 0))
                balances = (after_balance, _balance(as_(http, 1)))
            operations = _bank_operations(tmp_path, funding["id"])
            assert len(operations) <= 1, operations  # the bank acted at most once
            paid = [op for op in operations if op[1] == "succeeded"]
            if funding["status"] == "succeeded":
                assert paid == [("credit", "succeeded", AMOUNT)], point
                assert after_balance == before_balance - AMOUNT - int(funding["fee"]), point
            else:
                assert funding["status"] == "failed", (point, funding)
                assert paid == [], point
                assert after_balance == before_balance, point

        sealed = _cli(tmp_path, url, "ledger", "seal")  # the worker's job (off in these servers)
        assert sealed.returncode == 0, sealed.stdout + sealed.stderr
        verified = _cli(tmp_path, url, "ledger", "verify")
        assert verified.returncode == 0, verified.stdout + verified.stderr
