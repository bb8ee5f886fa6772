"""PostgreSQL failover loses no acknowledged payment (issue 17, docs/operations.md,
"PostgreSQL high availability").

A primary and a synchronous standby (``tests/pg_failover_support.py``: ``initdb``,
``pg_basebackup`` through a replication slot, ``synchronous_commit = on``) on free local
ports; ``citywallet serve`` as a real process (uvicorn, real HTTP) on the two-host URL with
``target_session_attrs=read-write``; verified residents seeded through the API; several
client threads send P2P transfers, each with its own ``Idempotency-Key``, retrying a
failed request (a 5xx answer or a broken connection) with the SAME key and body until it is
answered 201. Mid-run the primary is stopped with ``pg_ctl stop -m immediate`` and the
standby promoted. Then:

- every client was answered 201 after the promotion (the server followed the new primary);
- 0 lost: every transfer a client saw acknowledged is in the new primary's ledger, with its
  amount, and those acknowledged before the crash are among them;
- 0 duplicated: the new primary holds exactly one P2P transfer per key (each stored once),
  nothing else;
- every resident's balance (through the API, on the new primary) is the top-up less what
  they were acknowledged to send plus what they were acknowledged to receive;
- the worker seals every transfer on the new primary and ``citywallet ledger verify`` there
  is clean;
- while no host accepted writes the clients saw only ``503 database_unavailable`` (or a
  connection the server had closed), and the server's log holds no traceback and no
  ``unhandled_error``;
- the start-up migration (what ``serve`` runs first) on the two-host URL, with the old
  primary still down, succeeds.

Needs PostgreSQL 15's server binaries (``CITYWALLET_TEST_PG_BIN``, default Debian's
``/usr/lib/postgresql/15/bin``): without them the test is skipped with the reason, and
fails under ``CI=true``, like the rest of the PostgreSQL half (tests/conftest.py). It starts
two clusters and a server of its own, so it lives alone in this file (``make test`` runs
with ``--dist loadfile``: one worker runs it, beside the others' files).
"""

from __future__ import annotations

import os
import random
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
import pytest
from sqlalchemy import create_engine, text

from citywallet.interop.cells import (
    Cell,
    Process,
    Resident,
    cli_command,
    free_port,
    seed_resident,
)
from citywallet.ledger.types import TransferCode
from citywallet.schema import upgrade
from tests.conftest import IN_CI
from tests.pg_failover_support import ReplicatedPair, missing_tools

pytestmark = pytest.mark.slow

RESIDENTS = 5
CLIENTS = 4  # residents 0..3 send, to anyone else
TOP_UP = 50_000
BEFORE_CRASH = 5  # acknowledged transfers per client before the primary is stopped
AFTER_PROMOTION = 4  # … and after the standby is promoted
OUTAGE_SECONDS = 1.0  # no writable primary: between the crash and the promotion
RETRY_SECONDS = 45.0  # a client gives one transfer up after this long
RETRY_PAUSE = 0.05
RETRYABLE = {500, 502, 503, 504}  # the outcome is unknown or nothing happened: same key again
# A keep-alive connection the server closed as the client reused it (after an error answer).
TRANSPORT_ERRORS = {"ReadError", "RemoteProtocolError", "WriteError"}


@dataclass
class Sent:
    """One transfer a client asked for, under one key, and what it saw."""

    key: str
    payer: int
    payee: int
    amount: int
    transfer_id: str | None = None
    acked_at: float | None = None
    replayed: bool = False
    failures: list[str] = field(default_factory=list)  # each failed attempt, before the 201
    refused: str | None = None  # an answer that is neither 201 nor retryable


@pytest.fixture
def pair() -> Iterator[ReplicatedPair]:
    """A running primary with its synchronous standby."""
    missing = missing_tools()
    if missing:
        message = f"PostgreSQL server tools missing: {', '.join(missing)}"
        if IN_CI:
            pytest.fail(message + " (CI=true: the failover test must run)", pytrace=False)
        pytest.skip(message)
    with ReplicatedPair() as replicated:
        replicated.wait_synchronous()
        yield replicated


def _env(var_dir: Path, database_url: str) -> dict[str, str]:
    """The server's environment: sandbox, quiet, rate limits off for the seeding, and
    sealing every half second (so the check after the run waits little)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYWALLET_")}
    env.update(
        {
            "CITYWALLET_DATABASE_URL": database_url,
            "CITYWALLET_VAR_DIR": str(var_dir),
            "CITYWALLET_SANDBOX": "true",
            "CITYWALLET_LOG_LEVEL": "WARNING",
            "CITYWALLET_DB_POOL_SIZE": "5",
            "CITYWALLET_SANDBOX_VERIFIER_LATENCY_MS": "0",
            "CITYWALLET_SANDBOX_BANK_LATENCY_MS": "0",
            "CITYWALLET_SMS_SEND_PER_IP_PER_HOUR": "1000000",
            "CITYWALLET_SMS_VERIFY_PER_IP_PER_HOUR": "1000000",
            "CITYWALLET_SEAL_INTERVAL_SECONDS": "0.5",
        }
    )
    return env


class Clients:
    """``CLIENTS`` threads sending P2P transfers until told to stop; every transfer started
    is retried with its key until acknowledged (or given up after ``RETRY_SECONDS``)."""

    def __init__(self, url: str, residents: list[Resident]) -> None:
        self.url = url
        self.residents = residents
        self.sent: list[list[Sent]] = [[] for _ in range(CLIENTS)]
        self.stopping = threading.Event()
        self.threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(CLIENTS)
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=RETRY_SECONDS + 15)
        assert not any(t.is_alive() for t in self.threads), "a client did not finish"

    def acked(self, client: int, *, after: float = 0.0) -> int:
        """How many of ``client``'s transfers were acknowledged after ``after``."""
        return sum(
            1 for s in list(self.sent[client]) if s.acked_at is not None and s.acked_at > after
        )

    def all(self) -> list[Sent]:
        return [s for sent in self.sent for s in sent]

    def _run(self, client: int) -> None:
        rng = random.Random(client)
        payer = self.residents[client]
        with httpx2.Client(base_url=self.url, timeout=10.0) as http:
            while not self.stopping.is_set():
                payee = rng.choice([i for i in range(RESIDENTS) if i != client])
                sent = Sent(uuid.uuid4().hex, client, payee, rng.randint(1, 99))
                self.sent[client].append(sent)
                self._send(http, payer, sent)
                if sent.acked_at is None:
                    return  # refused or given up: the test fails on it

    def _send(self, http: httpx2.Client, payer: Resident, sent: Sent) -> None:
        body = {"to": self.residents[sent.payee].user_id, "amount": sent.amount, "pin": payer.pin}
        headers = {**payer.headers, "Idempotency-Key": sent.key}
        deadline = time.monotonic() + RETRY_SECONDS
        while True:
            try:
                answer = http.post("/v1/wallet/transfers", json=body, headers=headers)
            except httpx2.TransportError as exc:
                sent.failures.append(exc.__class__.__name__)
            else:
                if answer.status_code == 201:
                    sent.transfer_id = str(answer.json()["id"])
                    sent.replayed = answer.headers.get("Idempotent-Replayed") == "true"
                    sent.acked_at = time.monotonic()
                    return
                if answer.status_code not in RETRYABLE:
                    sent.refused = f"{answer.status_code} {answer.text[:300]}"
                    return
                sent.failures.append(str(answer.status_code))
            if time.monotonic() > deadline:
                return
            time.sleep(RETRY_PAUSE)


def _wait(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_failover_to_the_synchronous_standby_loses_and_duplicates_nothing(
    pair: ReplicatedPair, tmp_path: Path
) -> None:
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    port = free_port()
    env = _env(var_dir, pair.multi_host_url)
    server = Process("server", cli_command("serve", "--port", str(port)), env, port,
                     tmp_path / "server.log")  # fmt: skip
    began = time.monotonic()
    phases: dict[str, float] = {}

    def mark(phase: str) -> None:
        phases[phase] = round(time.monotonic() - began, 1)

    server.start()
    try:
        server.wait_ready()
        mark("server ready")
        cell = Cell(1, "failover", server, pair.multi_host_url, var_dir, "")
        with (
            httpx2.Client(base_url=server.url, timeout=30.0) as http,
            ThreadPoolExecutor(RESIDENTS) as pool,
        ):
            residents = list(
                pool.map(lambda i: seed_resident(http, cell, i, TOP_UP), range(1, RESIDENTS + 1))
            )
        mark("residents seeded")
        clients = Clients(server.url, residents)
        clients.start()
        try:
            _wait(lambda: all(clients.acked(c) >= BEFORE_CRASH for c in range(CLIENTS)), 60,
                  "the first transfers")  # fmt: skip
            assert pair.sync_state() == "sync"
            mark("primary stopped")
            crashed_at = time.monotonic()
            pair.crash_primary()
            time.sleep(OUTAGE_SECONDS)
            pair.promote()
            promoted_at = time.monotonic()
            mark("standby promoted")
            _wait(
                lambda: all(
                    clients.acked(c, after=promoted_at) >= AFTER_PROMOTION for c in range(CLIENTS)
                ),
                RETRY_SECONDS,
                "transfers after the promotion",
            )
        finally:
            clients.stop()
        mark("clients done")
        sent = clients.all()
        _check_clients(sent, crashed_at, promoted_at, server)
        assert server.popen is not None
        assert server.popen.poll() is None  # the same server process: no restart needed
        assert pair.is_primary(pair.standby_port)
        new_primary = pair.url(pair.standby_port)
        _check_ledger_holds_exactly_the_acknowledged(new_primary, sent)
        _check_balances(server.url, residents, sent)
        _check_sealed_and_verified(new_primary, env)
        # What `serve` does first on start-up, with the old primary still down: the two-host
        # URL finds the new primary and the migrations, already current, change nothing.
        upgrade(pair.multi_host_url)
        mark("verified")
        print(f"phases (s): {phases}")
    finally:
        server.kill()


def _check_clients(
    sent: list[Sent], crashed_at: float, promoted_at: float, server: Process
) -> None:
    refused = [s.refused for s in sent if s.refused]
    assert not refused, f"answers that are neither 201 nor retryable: {refused[:5]}"
    lost = [s.key for s in sent if s.acked_at is None]
    assert not lost, f"transfers never acknowledged in {RETRY_SECONDS} s: {lost}\n{server.tail()}"
    failures = Counter(f for s in sent for f in s.failures)
    assert failures, "no request failed: the primary was not stopped under load"
    # While no host accepted writes the server said so (503 database_unavailable), once per
    # request in its log, never a 500 with a traceback.
    assert set(failures) <= {"503"} | TRANSPORT_ERRORS, failures
    log = server.tail(1_000_000)
    assert "Traceback" not in log
    assert "unhandled_error" not in log
    before = [s for s in sent if s.acked_at is not None and s.acked_at < crashed_at]
    after = [s for s in sent if s.acked_at is not None and s.acked_at > promoted_at]
    assert len(before) >= CLIENTS * BEFORE_CRASH
    resumed = min(s.acked_at for s in after if s.acked_at is not None) - promoted_at
    for client in range(CLIENTS):  # every client continued on the new primary
        assert sum(1 for s in after if s.payer == client) >= AFTER_PROMOTION
    print(  # the run's story, shown with -s or on failure
        f"\nfailover: {len(sent)} transfers, {len(before)} acknowledged before the crash, "
        f"{len(after)} after the promotion (the first {resumed:.2f} s after it); "
        f"failed attempts retried: {dict(failures)}; "
        f"answered as replays: {sum(s.replayed for s in sent)}"
    )


def _check_ledger_holds_exactly_the_acknowledged(url: str, sent: list[Sent]) -> None:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT id, amount FROM ledger_transfers WHERE code = :code"),
                {"code": int(TransferCode.P2P)},
            ).all()
            p2p = {str(transfer_id): int(amount) for transfer_id, amount in rows}
            keys = Counter(
                str(key)
                for (key,) in conn.execute(text("SELECT key FROM platform_idempotency_keys"))
            )
    finally:
        engine.dispose()
    acknowledged = {str(s.transfer_id): s.amount for s in sent}  # every one was (checked)
    lost = set(acknowledged) - set(p2p)
    assert not lost, f"acknowledged transfers missing on the new primary: {sorted(lost)[:10]}"
    extra = set(p2p) - set(acknowledged)  # a retry that ran again instead of replaying
    assert not extra, f"transfers nobody was acknowledged for (duplicates): {sorted(extra)[:10]}"
    assert p2p == acknowledged  # the same amounts too
    assert len(p2p) == len(sent)  # one transfer per key
    for s in sent:
        assert keys[s.key] == 1, f"key {s.key} stored {keys[s.key]} times"


def _check_balances(url: str, residents: list[Resident], sent: list[Sent]) -> None:
    expected = [TOP_UP] * RESIDENTS
    for s in sent:
        expected[s.payer] -= s.amount
        expected[s.payee] += s.amount
    with httpx2.Client(base_url=url, timeout=30.0) as http:
        balances = [
            http.get("/v1/wallet", headers=r.headers).raise_for_status().json()["balance"]
            for r in residents
        ]
    assert balances == expected
    assert sum(balances) == TOP_UP * RESIDENTS


def _check_sealed_and_verified(url: str, env: dict[str, str]) -> None:
    engine = create_engine(url)
    try:

        def all_sealed() -> bool:
            with engine.connect() as conn:
                unsealed = conn.execute(
                    text("SELECT count(*) FROM ledger_transfers WHERE block_height IS NULL")
                ).scalar_one()
            return int(unsealed) == 0

        _wait(all_sealed, 30, "the worker to seal every transfer on the new primary")
    finally:
        engine.dispose()
    done = subprocess.run(
        cli_command("ledger", "verify"),
        env={**env, "CITYWALLET_DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ledger verified" in done.stdout
