"""Red-packet grabs per second and a Luohu-scale campaign: ``citywallet bench redpackets``.

Part A (grabs): one hot packet (200 shares, 1,000 claimants racing for it) and many packets
(1,000 packets of 10 shares, every share claimed), on SQLite and PostgreSQL, in-process
(``redpacket.grab``: read-only checks, then one ``Database.transact``; from a thread pool)
and through the HTTP API (``POST /v1/redpackets/{id}/claims`` against a real uvicorn server,
from a thread pool of keep-alive ``http.client`` connections: wrk is not installed here). In
the same run, the classic Redis design as a baseline: a Lua script pops a pre-split share
from a list and records the claimer in a hash, atomically, one ``EVALSHA`` per grab.

Part B (campaign, PostgreSQL): registrations through ``campaign.service.register_many`` in
batches, close, draw, issue into restricted balances (``issue_batch``), reclaim
(``reclaim_batch`` after ``valid_until``), each step timed.

Residents are made cheaply: one argon2 hash shared by all, users inserted in chunks, tier
through identity's ``record_external_checks``, a wallet (``ensure_wallet``) and a bearer
session (``sessions.create_session``), as tests/redpacket_support.py does. The sender's wallet
is funded by a ledger transfer from a bank settlement account (what a top-up posts). The set-up
sends without a PIN (the API checks it inside the send's transaction; sends are not
measured). The HTTP grabs are reported beside ``GET /healthz`` of the same server, run from
the same client threads before and after them (issue 13's target: ≥ 0.3 × healthz). See
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.client
import json
import os
import platform
import random
import re
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from sqlalchemy import create_engine, insert, select, text
from sqlalchemy.engine import URL, make_url

from bench import tools
from citywallet.campaign import service as campaigns
from citywallet.campaign.rules import Applicant, Eligibility
from citywallet.identity import sessions
from citywallet.identity.keys import phone_hash
from citywallet.identity.models import RealName, User
from citywallet.identity.queries import new_public_id
from citywallet.identity.rules import mask_phone, normalize_phone
from citywallet.identity.service import record_external_checks
from citywallet.ledger import service as ledger
from citywallet.ledger.types import AccountCode, Result, TransferCode, TransferSpec
from citywallet.platform.clock import now_us
from citywallet.platform.config import Settings
from citywallet.platform.crypto import Encryptor, parse_keyring
from citywallet.platform.db import Database, UnitOfWork
from citywallet.platform.errors import DomainError
from citywallet.platform.logging import configure_logging
from citywallet.redpacket import service as redpacket
from citywallet.schema import metadata
from citywallet.wallet.accounts import CURRENCY, ensure_wallet
from citywallet.wallet.bank import SandboxBank, sandbox_card_number

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
LUA_GRAB = BENCH_DIR / "lua" / "grab.lua"
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/citywallet_bench_redpackets"
DEFAULT_CAMPAIGN_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/citywallet_bench_campaign"
DEFAULT_SQLITE_PATH = "var/bench/redpackets.db"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
APP_FACTORY = "citywallet.api.app:create_app_from_env"
PASSWORD = "Bench-wallet-2026"
SHARE_FEN = 10  # every share is 0.10 yuan on average (lucky split), so no tier limit bites
CHUNK = 250
HOUR = 3_600_000_000

TARGET_REGISTRATIONS_PER_S = 5_000.0
TARGET_DRAW_ISSUE_S = 30.0  # issue 13: draw + issuance at 2,000,000 / 50,000
TARGET_RECLAIM_S = 30.0
TARGET_HTTP_REGISTRATION_RATIO = 0.4  # HTTP registrations/s ÷ GET /healthz of the same run
TARGET_HTTP_GRAB_RATIO = 0.3  # issue 13: HTTP claims/s ÷ GET /healthz of the same run
WRK_REGISTER = BENCH_DIR / "wrk" / "campaign_register.lua"
WRK_HEALTHZ = BENCH_DIR / "wrk" / "healthz.lua"


# --- results --------------------------------------------------------------------------------


@dataclass
class GrabResult:
    """One grab case: a packet shape on one backend through one path."""

    backend: str  # sqlite | postgresql | redis
    path: str  # in-process | http | lua
    shape: str  # hot | many
    packets: int
    shares: int  # per packet
    attempts: int
    claimed: int
    empty: int
    errors: int
    seconds: float
    claims_per_s: float
    attempts_per_s: float
    p50_ms: float
    p99_ms: float
    concurrency: int
    error_sample: str = ""
    redis_ratio: float | None = None  # redis claims/s ÷ these claims/s
    ratio_vs_redis: float | None = None  # these claims/s ÷ redis claims/s (issue 13's form)
    profile: str | None = None  # --profile: py-spy during this case
    check: str = ""  # what the database (or Redis) says after the run
    healthz_per_s: float | None = None  # HTTP: GET /healthz of the same server, same run
    ratio_vs_healthz: float | None = None  # HTTP: these claims/s ÷ healthz_per_s
    healthz_target_met: bool | None = None  # HTTP: ratio_vs_healthz ≥ TARGET_HTTP_GRAB_RATIO


@dataclass
class CampaignStep:
    """One step of the campaign run."""

    step: str
    items: int
    seconds: float
    per_s: float
    note: str = ""


@dataclass
class CampaignResult:
    """The campaign run on PostgreSQL."""

    registrations: int
    winners: int
    batch: int
    steps: list[CampaignStep] = field(default_factory=list)
    registration_per_s: float = 0.0
    draw_issue_s: float = 0.0
    registration_target_met: bool | None = None
    draw_issue_target_met: bool | None = None
    campaign_balance_after: int = 0
    budget: int = 0
    reclaim_s: float = 0.0
    reclaim_target_met: bool | None = None
    http: HttpRegistration | None = None


@dataclass
class HttpRegistration:
    """Registrations through ``POST /v1/campaigns/{id}/registrations`` (uvicorn, wrk), beside
    ``GET /healthz`` of the same server in the same run."""

    residents: int
    connections: int
    seconds: float
    created: int
    non_expected: int
    exhausted: int
    registrations_per_s: float
    p50_ms: float
    p99_ms: float
    healthz_per_s: float
    ratio: float
    target_met: bool
    sample: str = ""


# --- keys, databases ------------------------------------------------------------------------


@dataclass(frozen=True)
class Keys:
    """The data-encryption and lookup keys shared by the set-up and the server."""

    master: str
    lookup: str

    @property
    def encryptor(self) -> Encryptor:
        """An encryptor over these keys."""
        return Encryptor(parse_keyring(self.master, self.lookup))

    @classmethod
    def new(cls) -> Keys:
        """Fresh random keys (the database is thrown away with them)."""
        return cls(
            master="k1:" + base64.b64encode(secrets.token_bytes(32)).decode(),
            lookup=base64.b64encode(secrets.token_bytes(32)).decode(),
        )


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _pg_admin(url: URL, statement: str) -> None:
    engine = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(statement)
    finally:
        engine.dispose()


def fresh_database(backend: str, pg_url: str, sqlite_path: str) -> str:
    """Drop and create the benchmark database with every table; returns its URL."""
    if backend == "postgresql":
        parsed = make_url(pg_url)
        name = str(parsed.database)
        _pg_admin(parsed, f"DROP DATABASE IF EXISTS {_quoted(name)} WITH (FORCE)")
        _pg_admin(parsed, f"CREATE DATABASE {_quoted(name)}")
        url = parsed.render_as_string(hide_password=False)
    else:
        path = (REPO_ROOT / sqlite_path).resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        url = f"sqlite:///{path}"
    # The models, not the migrations: migrations/ does not create the red-packet and campaign
    # tables yet (as tests/conftest.py, which uses create_all too).
    engine = create_engine(url)
    try:
        metadata.create_all(engine)
    finally:
        engine.dispose()
    return url


def drop_database(backend: str, url: str) -> None:
    """Remove what :func:`fresh_database` made."""
    if backend == "postgresql":
        parsed = make_url(url)
        _pg_admin(parsed, f"DROP DATABASE IF EXISTS {_quoted(str(parsed.database))} WITH (FORCE)")
    else:
        path = make_url(url).database or ""
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(str(path) + suffix).unlink(missing_ok=True)


def bench_settings(url: str, var_dir: Path, keys: Keys, claimants: int, shares: int) -> Settings:
    """Settings for the set-up; the server gets the same through its environment."""
    return Settings(
        var_dir=var_dir,
        database_url=url,
        master_keys=keys.master,
        lookup_key=keys.lookup,
        log_level="WARNING",
        run_worker_in_server=False,
        sandbox=True,
        sandbox_bank_latency_ms=0,
        redpacket_max_shares=max(100, shares),
        redpacket_group_max_members=claimants + 1,
    )


def server_environment(url: str, var_dir: Path, keys: Keys, settings: Settings) -> dict[str, str]:
    """The uvicorn process's environment: the same database, keys and limits as the set-up."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYWALLET_")}
    env.update(
        {
            "CITYWALLET_DATABASE_URL": url,
            "CITYWALLET_VAR_DIR": str(var_dir),
            "CITYWALLET_MASTER_KEYS": keys.master,
            "CITYWALLET_LOOKUP_KEY": keys.lookup,
            "CITYWALLET_RUN_WORKER_IN_SERVER": "false",
            "CITYWALLET_LOG_LEVEL": "WARNING",
            "CITYWALLET_SANDBOX": "true",
            "CITYWALLET_REDPACKET_MAX_SHARES": str(settings.redpacket_max_shares),
            "CITYWALLET_REDPACKET_GROUP_MAX_MEMBERS": str(settings.redpacket_group_max_members),
        }
    )
    return env


# --- residents ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    """A resident made in bulk: a wallet and a bearer session."""

    user_id: str
    token: str


def bulk_residents(
    db: Database, encryptor: Encryptor, count: int, *, prefix: str, checks: int = 1
) -> list[Person]:
    """``count`` residents (phones ``{prefix}NNNNNNN``) with ``checks`` external checks
    (1: tier 1), a wallet and a bearer session; one shared argon2 hash."""
    password_hash = PasswordHasher().hash(PASSWORD)
    made: list[Person] = []
    for start in range(0, count, CHUNK):
        numbers = range(start, min(start + CHUNK, count))

        def chunk(uow: UnitOfWork, numbers: range = numbers) -> list[Person]:
            moment = now_us()
            users: list[User] = []
            for n in numbers:
                e164 = normalize_phone(f"{prefix}{n:07d}")
                users.append(
                    User(
                        public_id=new_public_id("usr"),
                        phone_hash=phone_hash(encryptor, e164),
                        phone_enc=encryptor.encrypt(e164.encode()),
                        phone_masked=mask_phone(e164),
                        password_hash=password_hash,
                        status="active",
                        tier=0,
                        external_checks=0,
                        created_at=moment,
                        updated_at=moment,
                    )
                )
            uow.session.add_all(users)
            uow.session.flush()
            out: list[Person] = []
            for user in users:
                record_external_checks(
                    uow,
                    user_id=user.public_id,
                    count=checks,
                    kind="resident_id",
                    thresholds=[1, 3, 5],
                )
                ensure_wallet(uow, user_id=user.public_id)
                issued = sessions.create_session(
                    uow,
                    user=user,
                    kind="bearer",
                    device_name="bench",
                    user_agent="",
                    ip="10.0.0.2",
                    ttl_seconds=6 * 3600,
                )
                out.append(Person(user.public_id, issued.token))
            return out

        made.extend(db.transact(chunk))
    return made


def fund_wallet(db: Database, user_id: str, amount: int) -> None:
    """Credit ``amount`` to the user's wallet from a bank settlement account (a top-up's
    ledger posting, without the bank round trip)."""

    def post(uow: UnitOfWork) -> None:
        bank = ledger.find_account(uow, owner_ref="bench:bank")
        if bank is None:
            bank = ledger.create_account(
                uow, ledger=CURRENCY, code=AccountCode.BANK_SETTLEMENT, owner_ref="bench:bank"
            )
        wallet = ensure_wallet(uow, user_id=user_id)
        [result] = ledger.post(
            uow,
            transfers=[
                TransferSpec(
                    id=f"bench.fund.{secrets.token_hex(8)}",
                    debit_account_id=bank,
                    credit_account_id=wallet,
                    amount=amount,
                    ledger=CURRENCY,
                    code=TransferCode.TOPUP,
                    reference="bench",
                )
            ],
        )
        if result is not Result.OK:
            raise RuntimeError(f"funding the sender failed: {result.value}")

    db.transact(post)


# --- part A: grabs --------------------------------------------------------------------------


@dataclass
class World:
    """One backend's residents, group and settings."""

    backend: str
    url: str
    db: Database
    settings: Settings
    keys: Keys
    sender: Person
    claimants: list[Person]
    group_id: str


def make_world(
    backend: str, args: argparse.Namespace, keys: Keys, var_dir: Path, console: Console
) -> World:
    """A fresh database with the sender, the claimants and their group."""
    url = fresh_database(backend, args.pg_url, args.sqlite_path)
    settings = bench_settings(url, var_dir, keys, args.claimants, args.hot_shares)
    db = Database(url, pool_size=args.threads + 2)
    started = time.perf_counter()
    enc = keys.encryptor
    [sender] = bulk_residents(db, enc, 1, prefix="1390", checks=5)
    claimants = bulk_residents(db, enc, args.claimants, prefix="1370")
    fund_wallet(db, sender.user_id, 10_000_000)
    group = db.transact(
        lambda uow: redpacket.create_group(
            uow,
            user_id=sender.user_id,
            name="抢红包",
            members=[c.user_id for c in claimants],
            encryptor=enc,
            settings=settings,
        )
    )
    console.print(
        f"[dim]{backend}: {args.claimants} residents and a group in "
        f"{time.perf_counter() - started:.1f} s[/dim]"
    )
    return World(backend, url, db, settings, keys, sender, claimants, group.id)


def send_packets(world: World, count: int, shares: int) -> list[str]:
    """``count`` lucky packets of ``shares`` shares to the group (not measured)."""
    ids: list[str] = []
    for _ in range(count):
        view = world.db.transact(
            lambda uow: redpacket.send_packet(
                uow,
                user_id=world.sender.user_id,
                amount=shares * SHARE_FEN,
                encryptor=world.keys.encryptor,
                group_id=world.group_id,
                kind="lucky",
                shares=shares,
                greeting="恭喜发财",
                settings=world.settings,
            )
        )
        ids.append(view.id)
    return ids


def grab_plan(
    shape: str, packets: list[str], shares: int, claimants: Sequence[Person]
) -> list[tuple[str, Person]]:
    """Who grabs what, in the order the workers take them. Hot: every claimant once on
    the one packet. Many: each packet by ``shares`` different claimants, interleaved."""
    if shape == "hot":
        crowd = list(claimants)
        random.Random(7).shuffle(crowd)
        return [(packets[0], who) for who in crowd]
    plan = []
    for j in range(shares):
        for i, packet in enumerate(packets):
            plan.append((packet, claimants[(i * shares + j) % len(claimants)]))
    return plan


Outcome = tuple[str, float]  # (ok | empty | error:<detail>, seconds)


def run_plan(
    plan: list[tuple[str, Person]], threads: int, grab: Callable[[int, str, Person], str]
) -> tuple[list[Outcome], float]:
    """Run ``grab(worker, packet, person)`` over the plan from ``threads`` workers that
    start together; returns the outcomes and the wall time."""
    outcomes: list[list[Outcome]] = [[] for _ in range(threads)]

    def worker(k: int) -> None:
        for packet, who in plan[k::threads]:
            t = time.perf_counter()
            try:
                what = grab(k, packet, who)
            except Exception as exc:
                what = f"error:{type(exc).__name__}: {exc}"[:300]
            outcomes[k].append((what, time.perf_counter() - t))

    seconds = run_together(threads, worker)
    return [o for chunk in outcomes for o in chunk], seconds


def run_together(threads: int, work: Callable[[int], None]) -> float:
    """Run ``work(k)`` for k in 0…threads-1 on threads that start together; the wall time
    until the last one ends."""
    barrier = threading.Barrier(threads + 1)

    def worker(k: int) -> None:
        barrier.wait()
        work(k)

    pool = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(threads)]
    for t in pool:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    for t in pool:
        t.join()
    return time.perf_counter() - started


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def summarize(
    backend: str,
    path: str,
    shape: str,
    packets: int,
    shares: int,
    outcomes: list[Outcome],
    seconds: float,
    threads: int,
) -> GrabResult:
    """Count the outcomes of one case."""
    kinds = Counter("error" if o.startswith("error") else o for o, _ in outcomes)
    sample = next((o for o, _ in outcomes if o.startswith("error")), "")
    latencies = [s for _, s in outcomes]
    return GrabResult(
        backend=backend,
        path=path,
        shape=shape,
        packets=packets,
        shares=shares,
        attempts=len(outcomes),
        claimed=kinds["ok"],
        empty=kinds["empty"],
        errors=kinds["error"],
        seconds=seconds,
        claims_per_s=kinds["ok"] / seconds if seconds else 0.0,
        attempts_per_s=len(outcomes) / seconds if seconds else 0.0,
        p50_ms=_percentile(latencies, 0.5),
        p99_ms=_percentile(latencies, 0.99),
        concurrency=threads,
        error_sample=sample,
    )


def check_claims(world: World, packets: list[str], shares: int) -> str:
    """What the database holds for these packets: claims and money."""
    placeholders = ",".join(f":p{i}" for i in range(len(packets)))
    params = {f"p{i}": p for i, p in enumerate(packets)}
    with world.db.uow(readonly=True) as uow:
        claimed, amount = uow.session.execute(
            text(
                "SELECT COUNT(s.user_id), COALESCE(SUM(s.amount), 0) FROM redpacket_shares s "
                "JOIN redpackets p ON p.id = s.packet_id "
                f"WHERE s.user_id IS NOT NULL AND p.public_id IN ({placeholders})"
            ),
            params,
        ).one()
        total = uow.session.execute(
            text(
                "SELECT COALESCE(SUM(total), 0) FROM redpackets "
                f"WHERE public_id IN ({placeholders})"
            ),
            params,
        ).scalar_one()
    full = int(claimed) == len(packets) * shares and int(amount) == int(total)
    return f"{'ok' if full else 'INCOMPLETE'}: {claimed} claims, {amount}/{total} fen"


def in_process_case(
    world: World, shape: str, packets: list[str], shares: int, threads: int
) -> GrabResult:
    """Grabs through ``redpacket.grab`` (as the API: checks read only, then one write
    transaction) from ``threads`` threads."""

    def grab(_k: int, packet: str, who: Person) -> str:
        try:
            redpacket.grab(world.db, user_id=who.user_id, packet_id=packet, settings=world.settings)
        except DomainError as exc:
            if exc.code == "redpacket_empty":
                return "empty"
            return f"error:{exc.code}"
        return "ok"

    plan = grab_plan(shape, packets, shares, world.claimants)
    outcomes, seconds = run_plan(plan, threads, grab)
    result = summarize(
        world.backend, "in-process", shape, len(packets), shares, outcomes, seconds, threads
    )
    result.check = check_claims(world, packets, shares)
    return result


def free_port() -> int:
    """A free loopback port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_server(env: dict[str, str], workers: int, log_path: Path) -> Iterator[tuple[int, int]]:
    """uvicorn on a free loopback port until the block ends; yields the port and its pid."""
    port = free_port()
    command = [
        sys.executable, "-m", "uvicorn", APP_FACTORY, "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
        "--log-level", "warning", "--no-access-log", "--backlog", "4096",
    ]  # fmt: skip
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited: {log_path.read_text()[-1500:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not answer /healthz within 60 s")
            time.sleep(0.2)
        time.sleep(1.0 if workers > 1 else 0.2)  # every worker has bound and warmed up
        yield port, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def http_case(
    world: World, port: int, shape: str, packets: list[str], shares: int, threads: int
) -> GrabResult:
    """Grabs through ``POST /v1/redpackets/{id}/claims``: one keep-alive connection per
    client thread."""
    connections = [
        http.client.HTTPConnection("127.0.0.1", port, timeout=60) for _ in range(threads)
    ]

    def grab(k: int, packet: str, who: Person) -> str:
        conn = connections[k]
        headers = {
            "Authorization": f"Bearer {who.token}",
            "Content-Length": "0",
            "Idempotency-Key": secrets.token_hex(16),
        }
        try:
            conn.request("POST", f"/v1/redpackets/{packet}/claims", headers=headers)
            answer = conn.getresponse()
            body = answer.read()
        except (http.client.HTTPException, OSError):
            conn.close()  # reconnects on the next request
            raise
        if answer.status == 201:
            return "ok"
        if answer.status == 409 and b"redpacket_empty" in body:
            return "empty"
        return f"error:{answer.status} {body[:200].decode(errors='replace')}"

    plan = grab_plan(shape, packets, shares, world.claimants)
    try:
        outcomes, seconds = run_plan(plan, threads, grab)
    finally:
        for conn in connections:
            conn.close()
    result = summarize(
        world.backend, "http", shape, len(packets), shares, outcomes, seconds, threads
    )
    result.check = check_claims(world, packets, shares)
    return result


def healthz_case(port: int, threads: int, seconds: float) -> float:
    """``GET /healthz`` per second on the same server, from ``threads`` keep-alive
    ``http.client`` connections (the client the grabs use) for ``seconds``: the HTTP cases'
    baseline."""
    answered = [0] * threads

    def worker(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        deadline = time.perf_counter() + seconds
        try:
            while time.perf_counter() < deadline:
                conn.request("GET", "/healthz")
                answer = conn.getresponse()
                answer.read()
                answered[k] += answer.status == 200
        finally:
            conn.close()

    elapsed = run_together(threads, worker)
    return sum(answered) / elapsed


def score_against_healthz(result: GrabResult, healthz_per_s: float) -> None:
    """Fill an HTTP case's ratio to ``GET /healthz`` of the same run and the target."""
    result.healthz_per_s = round(healthz_per_s, 1)
    if healthz_per_s > 0:
        result.ratio_vs_healthz = round(result.claims_per_s / healthz_per_s, 3)
        result.healthz_target_met = result.ratio_vs_healthz >= TARGET_HTTP_GRAB_RATIO


# --- the Redis baseline ---------------------------------------------------------------------


def lucky_split(total: int, shares: int, rng: random.Random) -> list[int]:
    """Pre-split a packet (each share at least 1 fen, at most twice the mean of what is
    left: the usual double-mean rule)."""
    out: list[int] = []
    left = total
    for k in range(shares, 1, -1):
        most = max(1, min(left - (k - 1), 2 * left // k))
        share = rng.randint(1, most)
        out.append(share)
        left -= share
    out.append(left)
    return out


def redis_case(
    client: Any, script: Any, shape: str, packets: int, shares: int, claimants: int, threads: int
) -> GrabResult:
    """The Lua grab: pre-split shares in a list per packet, claimers in a hash."""
    rng = random.Random(11)
    run = secrets.token_hex(4)
    ids = [f"bench:{run}:{i}" for i in range(packets)]
    pipe = client.pipeline(transaction=False)
    for packet in ids:
        pipe.rpush(f"{packet}:shares", *lucky_split(shares * SHARE_FEN, shares, rng))
    pipe.execute()
    people = [Person(f"usr_{n}", "") for n in range(claimants)]

    def grab(_k: int, packet: str, who: Person) -> str:
        got = int(script(keys=[f"{packet}:shares", f"{packet}:claimed"], args=[who.user_id]))
        if got >= 0:
            return "ok"
        return "empty" if got == -2 else "error:already claimed"

    plan = grab_plan(shape, ids, shares, people)
    outcomes, seconds = run_plan(plan, threads, grab)
    result = summarize("redis", "lua", shape, packets, shares, outcomes, seconds, threads)
    claimed = sum(int(client.hlen(f"{p}:claimed")) for p in ids)
    left = sum(int(client.llen(f"{p}:shares")) for p in ids)
    result.check = (
        f"{'ok' if claimed == packets * shares and left == 0 else 'INCOMPLETE'}: {claimed} claims"
    )
    for start in range(0, len(ids), 500):
        client.delete(
            *[f"{p}:{s}" for p in ids[start : start + 500] for s in ("shares", "claimed")]
        )
    return result


# --- part B: the campaign -------------------------------------------------------------------


def verified_residents(db: Database, encryptor: Encryptor, count: int, prefix: str) -> list[Person]:
    """``count`` residents as :func:`bulk_residents` makes them (tier 1, a bearer session),
    each with a verified real name (what registration looks for: one entry per ID hash)."""
    people = bulk_residents(db, encryptor, count, prefix=prefix)
    for start in range(0, len(people), 1000):

        def verify(uow: UnitOfWork, chunk: list[Person] = people[start : start + 1000]) -> None:
            pks = dict(
                uow.session.execute(
                    select(User.public_id, User.id).where(
                        User.public_id.in_([p.user_id for p in chunk])
                    )
                ).all()
            )
            moment = now_us()
            uow.session.execute(
                insert(RealName),
                [
                    {
                        "user_id": pks[p.user_id],
                        "id_hash": hashlib.sha256(f"{prefix}:{p.user_id}".encode()).hexdigest(),
                        "name_enc": encryptor.encrypt(b"bench"),
                        "id_number_enc": encryptor.encrypt(b"bench"),
                        "name_masked": "*",
                        "id_number_masked": "*",
                        "provider_ref": "bench",
                        "verified_at": moment,
                    }
                    for p in chunk
                ],
            )

        db.transact(verify)
    return people


_CW_LINE = {name: re.compile(rf"^CW_{name} ?(.*)$", re.MULTILINE) for name in ("STATS", "SAMPLE")}


def wrk_stats(
    wrk: str, url: str, script: Path, *, connections: int, seconds: int, args: Sequence[str] = ()
) -> tuple[dict[str, float], str]:
    """One wrk run with one of the CW_ scripts: its CW_STATS figures and sample answer."""
    command = [
        wrk, "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "--latency",
        "-s", str(script), url,
    ]  # fmt: skip
    if args:
        command += ["--", *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    stats = _CW_LINE["STATS"].search(done.stdout)
    if done.returncode != 0 or stats is None:
        raise RuntimeError(f"wrk exit {done.returncode}: {(done.stdout + done.stderr)[-600:]}")
    figures = {k: float(v) for k, v in (item.split("=") for item in stats.group(1).split())}
    sample = _CW_LINE["SAMPLE"].search(done.stdout)
    return figures, "" if sample is None else sample.group(1).strip()


def http_registration_case(
    args: argparse.Namespace, keys: Keys, db: Database, url: str, cid: str, console: Console
) -> HttpRegistration | None:
    """``GET /healthz`` then registrations through the HTTP route, on one uvicorn server
    (``--server-workers``) over the campaign's database, each for ``--http-seconds``."""
    wrk = shutil.which("wrk")
    if wrk is None or args.http_residents <= 0:
        console.print("[yellow]no wrk (or --http-residents 0): the HTTP case is skipped[/]")
        return None
    var_dir = REPO_ROOT / "var" / "bench"
    started = time.perf_counter()
    people = verified_residents(db, keys.encryptor, args.http_residents, prefix="1365")
    console.print(
        f"  [dim]{len(people):,} verified residents in {time.perf_counter() - started:.1f} s[/]"
    )
    tokens = var_dir / "campaign-tokens.txt"
    tokens.write_text("".join(f"{p.token}\n" for p in people))
    settings = bench_settings(url, var_dir, keys, 1, 1)
    env = server_environment(url, var_dir, keys, settings)
    connections = args.http_connections
    with running_server(env, args.server_workers, var_dir / "campaign-server.log") as (port, _pid):
        base = f"http://127.0.0.1:{port}"
        health, _ = wrk_stats(
            wrk, f"{base}/healthz", WRK_HEALTHZ, connections=connections, seconds=args.http_seconds
        )
        reg, sample = wrk_stats(
            wrk,
            base,
            WRK_REGISTER,
            connections=connections,
            seconds=args.http_seconds,
            args=[str(tokens), "2", cid],
        )
    seconds = reg["duration_us"] / 1e6
    healthz_per_s = health["requests"] / (health["duration_us"] / 1e6)
    per_s = reg["created"] / seconds if seconds else 0.0
    ratio = per_s / healthz_per_s if healthz_per_s else 0.0
    result = HttpRegistration(
        residents=len(people),
        connections=connections,
        seconds=seconds,
        created=int(reg["created"]),
        non_expected=int(reg["non_expected"]) + int(reg["errors"]),
        exhausted=int(reg["exhausted"]),
        registrations_per_s=per_s,
        p50_ms=reg["p50_us"] / 1000,
        p99_ms=reg["p99_us"] / 1000,
        healthz_per_s=healthz_per_s,
        ratio=ratio,
        target_met=ratio >= TARGET_HTTP_REGISTRATION_RATIO and not reg["exhausted"],
        sample=sample,
    )
    console.print(
        f"  HTTP registration: {result.created:,} in {seconds:.1f} s = {per_s:,.0f}/s, "
        f"p99 {result.p99_ms:.0f} ms; GET /healthz {healthz_per_s:,.0f}/s; ratio {ratio:.3f}"
        + (
            f" ({result.exhausted:,} requests after the residents ran out)"
            if result.exhausted
            else ""
        )
        + (f" [red]{result.non_expected} unexpected: {sample}[/]" if result.non_expected else "")
    )
    return result


def campaign_run(args: argparse.Namespace, keys: Keys, console: Console) -> CampaignResult:
    """Register, close, draw, issue, reclaim on a fresh PostgreSQL database."""
    url = fresh_database("postgresql", args.campaign_pg_url, "")
    db = Database(url, pool_size=2)
    enc = keys.encryptor
    out = CampaignResult(args.registrations, args.winners, args.batch)
    prize = 2_000  # 20 yuan each
    t0 = now_us()
    spec = campaigns.CampaignSpec(
        name="罗湖区消费红包 (bench)",
        funder_name="深圳市罗湖区人民政府",
        funder_bank_account=sandbox_card_number("0000", serial=9),
        budget=prize * args.winners,
        prizes=[(prize, args.winners)],
        registration_opens_at=t0 - HOUR,
        registration_closes_at=t0 + HOUR,
        draw_at=t0 + 2 * HOUR,
        valid_from=t0 + 3 * HOUR,
        valid_until=t0 + 4 * HOUR,
        eligibility=Eligibility(min_tier=1),
    )
    out.budget = spec.budget
    cid = db.transact(
        lambda uow: campaigns.create_campaign(uow, spec=spec, actor="operator:bench", encryptor=enc)
    ).id
    db.transact(lambda uow: campaigns.open_registration(uow, campaign_id=cid, actor="bench"))
    bank = SandboxBank(
        latency_ms=0, timeout_seconds=5.0, late_answer_seconds=0.0, sleep=lambda _s: None
    )

    def step(name: str, items: int, seconds: float, note: str = "") -> None:
        out.steps.append(
            CampaignStep(name, items, seconds, items / seconds if seconds else 0.0, note)
        )
        console.print(f"  {name}: {items:,} in {seconds:.2f} s")

    started = time.perf_counter()
    funded = campaigns.fund_campaign(db, campaign_id=cid, bank=bank, encryptor=enc)
    step("fund (sandbox bank)", 1, time.perf_counter() - started, funded)

    out.http = http_registration_case(args, keys, db, url, cid, console)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    accepted = 0
    started = time.perf_counter()
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("register_many", total=args.registrations)
        for first in range(0, args.registrations, args.batch):
            people = [
                Applicant(
                    f"usr_bench{n:09d}",
                    hashlib.sha256(f"id:{n}".encode()).hexdigest(),
                    1,
                    "active",
                    {},
                )
                for n in range(first, min(first + args.batch, args.registrations))
            ]

            def batch(uow: UnitOfWork, people: list[Applicant] = people) -> int:
                return campaigns.register_many(
                    uow, campaign_id=cid, applicants=people, now=t0
                ).accepted

            accepted += db.transact(batch)
            progress.advance(task, len(people))
    seconds = time.perf_counter() - started
    step("register_many", accepted, seconds, f"batches of {args.batch:,}")
    out.registration_per_s = accepted / seconds if seconds else 0.0

    started = time.perf_counter()
    db.transact(
        lambda uow: campaigns.close_registration(uow, campaign_id=cid, actor="bench", now=t0 + HOUR)
    )
    step("close_registration (list hash)", accepted, time.perf_counter() - started)

    started = time.perf_counter()
    drawn = db.transact(
        lambda uow: campaigns.draw(
            uow, campaign_id=cid, actor="bench", encryptor=enc, now=t0 + 2 * HOUR
        )
    )
    draw_s = time.perf_counter() - started
    step("draw", drawn.winners, draw_s, f"ranked {accepted:,}")

    issued = 0
    started = time.perf_counter()
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("issue_batch", total=drawn.winners)
        while True:
            n = db.transact(
                lambda uow: campaigns.issue_batch(uow, campaign_id=cid, limit=args.issue_batch)
            )
            if n == 0:
                break
            issued += n
            progress.advance(task, n)
    issue_s = time.perf_counter() - started
    step("issue_batch", issued, issue_s, f"batches of {args.issue_batch:,}")
    out.draw_issue_s = draw_s + issue_s

    reclaimed = 0
    started = time.perf_counter()
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("reclaim_batch", total=issued)
        while True:
            n = db.transact(
                lambda uow: campaigns.reclaim_batch(
                    uow, campaign_id=cid, now=t0 + 4 * HOUR + 1, limit=args.issue_batch
                )
            )
            if n == 0:
                break
            reclaimed += n
            progress.advance(task, n)
    out.reclaim_s = time.perf_counter() - started
    step("reclaim_batch", reclaimed, out.reclaim_s, f"batches of {args.issue_batch:,}")

    with db.uow(readonly=True) as uow:
        out.campaign_balance_after = campaigns.campaign_balance(uow, campaign_id=cid)
    out.registration_target_met = out.registration_per_s >= TARGET_REGISTRATIONS_PER_S
    out.draw_issue_target_met = out.draw_issue_s <= TARGET_DRAW_ISSUE_S
    out.reclaim_target_met = out.reclaim_s <= TARGET_RECLAIM_S
    db.engine.dispose()
    if not args.keep_db:
        drop_database("postgresql", url)
    return out


# --- output ---------------------------------------------------------------------------------


def grab_rows(results: list[GrabResult]) -> list[list[str]]:
    """The table's cells."""
    return [
        [
            r.backend,
            r.path,
            r.shape,
            f"{r.packets:,}×{r.shares}",
            str(r.concurrency),
            f"{r.attempts:,}",
            f"{r.claimed:,}",
            str(r.errors),
            f"{r.claims_per_s:,.0f}",
            f"{r.attempts_per_s:,.0f}",
            f"{r.p50_ms:,.1f}",
            f"{r.p99_ms:,.1f}",
            "—" if r.redis_ratio is None else f"{r.redis_ratio:,.1f}×",
            "—" if r.ratio_vs_redis is None else f"{r.ratio_vs_redis:,.3f}",
            "—" if r.healthz_per_s is None else f"{r.healthz_per_s:,.0f}",
            _healthz_ratio(r),
            r.check,
        ]
        for r in results
    ]


def _healthz_ratio(r: GrabResult) -> str:
    if r.ratio_vs_healthz is None:
        return "—"
    verdict = "met" if r.healthz_target_met else "NOT met"
    return f"{r.ratio_vs_healthz:,.3f} ({verdict})"


GRAB_HEADERS = [
    "backend", "path", "shape", "packets×shares", "threads", "grabs", "claimed", "errors",
    "claims/s", "grabs/s", "p50 ms", "p99 ms", "redis ÷ ours", "ours ÷ redis", "healthz/s",
    f"ours ÷ healthz (≥ {TARGET_HTTP_GRAB_RATIO})", "check",
]  # fmt: skip
CAMPAIGN_HEADERS = ["step", "items", "seconds", "per second", "note"]


def campaign_rows(result: CampaignResult) -> list[list[str]]:
    """The campaign table's cells."""
    rows = [
        [s.step, f"{s.items:,}", f"{s.seconds:,.2f}", f"{s.per_s:,.0f}", s.note]
        for s in result.steps
    ]
    rows.append(
        [
            "target: registration ≥ 5,000/s",
            "",
            "",
            f"{result.registration_per_s:,.0f}",
            "met" if result.registration_target_met else "NOT met",
        ]
    )
    rows.append(
        [
            f"target: draw + issuance ≤ {TARGET_DRAW_ISSUE_S:.0f} s",
            "",
            f"{result.draw_issue_s:,.2f}",
            "",
            "met" if result.draw_issue_target_met else "NOT met",
        ]
    )
    rows.append(
        [
            f"target: reclaim ≤ {TARGET_RECLAIM_S:.0f} s",
            "",
            f"{result.reclaim_s:,.2f}",
            "",
            "met" if result.reclaim_target_met else "NOT met",
        ]
    )
    h = result.http
    if h is not None:
        rows[1:1] = [
            [
                "GET /healthz (same server)",
                "",
                f"{h.seconds:,.2f}",
                f"{h.healthz_per_s:,.0f}",
                f"{args_workers_note(h)}",
            ],
            [
                "HTTP registration (POST …/registrations)",
                f"{h.created:,}",
                f"{h.seconds:,.2f}",
                f"{h.registrations_per_s:,.0f}",
                f"p50 {h.p50_ms:,.0f} ms, p99 {h.p99_ms:,.0f} ms"
                + (f", {h.non_expected} unexpected" if h.non_expected else "")
                + (f", ran out of residents ({h.exhausted:,})" if h.exhausted else ""),
            ],
        ]
        rows.append(
            [
                f"target: HTTP registration ≥ {TARGET_HTTP_REGISTRATION_RATIO} × /healthz",
                "",
                "",
                f"{h.ratio:.3f} ×",
                "met" if h.target_met else "NOT met",
            ]
        )
    return rows


def args_workers_note(h: HttpRegistration) -> str:
    """The HTTP case's set-up, for the table."""
    return f"wrk, {h.connections} connections, {h.residents:,} residents"


def rich_table(
    title: str, headers: list[str], rows: list[list[str]], caption: str | None = None
) -> Table:
    """A Rich table (the run's identity as its caption)."""
    table = Table(title=title, caption=caption)
    for h in headers:
        table.add_column(
            h,
            justify="left"
            if h in ("backend", "path", "shape", "step", "note", "check")
            else "right",
        )
    for row in rows:
        table.add_row(*row)
    return table


def markdown(headers: list[str], rows: list[list[str]]) -> str:
    """The same as a Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


# --- main -----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="citywallet bench redpackets",
        description="Red-packet grabs/s (in-process, HTTP, beside Redis Lua) and a Luohu-scale "
        "campaign on PostgreSQL. See docs/benchmarks.md.",
    )
    parser.add_argument("--quick", action="store_true", help="a short run (under a minute or two)")
    parser.add_argument("--parts", default="grabs,campaign", help="grabs, campaign or both")
    parser.add_argument("--db", choices=("postgresql", "sqlite", "both"), default="both")
    parser.add_argument("--paths", default="in-process,http", help="in-process, http or both")
    parser.add_argument("--claimants", type=int, default=None, help="residents grabbing (1000)")
    parser.add_argument("--hot-shares", type=int, default=200, help="shares of the hot packet")
    parser.add_argument("--packets", type=int, default=None, help="packets of the many case (1000)")
    parser.add_argument("--shares", type=int, default=10, help="shares per packet, many case")
    parser.add_argument(
        "--threads", type=int, default=32, help="client threads (in-process and HTTP)"
    )
    parser.add_argument("--server-workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument(
        "--healthz-seconds",
        type=float,
        default=5.0,
        help="GET /healthz before and after the HTTP grabs, each (the HTTP baseline)",
    )
    parser.add_argument("--registrations", type=int, default=None, help="campaign (2,000,000)")
    parser.add_argument("--winners", type=int, default=None, help="campaign winners (50,000)")
    parser.add_argument("--batch", type=int, default=10_000, help="register_many batch size")
    parser.add_argument("--issue-batch", type=int, default=10_000, help="issue/reclaim batch")
    parser.add_argument(
        "--http-residents", type=int, default=None, help="campaign HTTP case residents (2000)"
    )
    parser.add_argument("--http-connections", type=int, default=16, help="campaign HTTP case")
    parser.add_argument("--http-seconds", type=int, default=8, help="each wrk run, campaign")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="grabs database (recreated)")
    parser.add_argument(
        "--campaign-pg-url", default=DEFAULT_CAMPAIGN_PG_URL, help="campaign database (recreated)"
    )
    parser.add_argument("--sqlite-path", default=DEFAULT_SQLITE_PATH, help="SQLite file")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL, help="'' skips the baseline")
    parser.add_argument("--out", default=None, help="JSON (bench/results/redpackets-<ts>.json)")
    parser.add_argument("--keep-db", action="store_true", help="keep the databases")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="record every grab case (this process, or every server worker over HTTP) and "
        "the campaign with py-spy beside the JSON",
    )
    parser.add_argument(
        "--profile-format",
        choices=sorted(tools.PROFILE_FORMATS),
        default="flamegraph",
        help="py-spy output: flamegraph (SVG), speedscope (JSON) or raw (collapsed stacks)",
    )
    args = parser.parse_args(list(argv) if argv is not None else None)
    if args.claimants is None:
        args.claimants = 1000
    if args.packets is None:
        args.packets = 100 if args.quick else 1000
    if args.registrations is None:
        args.registrations = 100_000 if args.quick else 2_000_000
    if args.winners is None:
        args.winners = 5_000 if args.quick else 50_000
    if args.http_residents is None:
        args.http_residents = 1_000 if args.quick else 2_000
    args.part_list = [p.strip() for p in args.parts.split(",") if p.strip()]
    args.path_list = [p.strip() for p in args.paths.split(",") if p.strip()]
    args.backend_list = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    if args.winners > args.registrations or args.claimants < args.hot_shares:
        parser.error("--winners <= --registrations and --claimants >= --hot-shares")
    return args


@contextmanager
def profiled(
    args: argparse.Namespace, pid: int, name: str, *, subprocesses: bool = False
) -> Iterator[list[str | None]]:
    """With --profile, py-spy records ``pid`` while the block runs; yields a one-item list
    that holds the profile's path afterwards (None without --profile or py-spy)."""
    found: list[str | None] = [None]
    if not args.profile:
        yield found
        return
    profile = tools.Profile(
        pid,
        tools.profile_path(args.out_path, name, args.profile_format),
        fmt=args.profile_format,
        subprocesses=subprocesses,
    ).start()
    try:
        yield found
    finally:
        found[0] = profile.finish()
        if profile.problem:
            print(f"profile {name}: {profile.problem}", file=sys.stderr)


def grabs(
    args: argparse.Namespace, keys: Keys, var_dir: Path, console: Console
) -> list[GrabResult]:
    """Part A: every backend × path × shape, then the Redis baseline."""
    results: list[GrabResult] = []
    shapes = [("hot", 1, args.hot_shares), ("many", args.packets, args.shares)]
    for backend in args.backend_list:
        world = make_world(backend, args, keys, var_dir, console)
        try:
            for path in args.path_list:
                cases = [(shape, send_packets(world, n, s), s) for shape, n, s in shapes]
                if path == "in-process":
                    for shape, ids, s in cases:
                        name = f"{backend}-in-process-{shape}"
                        with profiled(args, os.getpid(), name) as profile:
                            results.append(in_process_case(world, shape, ids, s, args.threads))
                        results[-1].profile = profile[0]
                        console.print(f"  {_line(results[-1])}")
                else:
                    env = server_environment(world.url, var_dir, keys, world.settings)
                    log = var_dir / "redpackets-server.log"
                    with running_server(env, args.server_workers, log) as (port, pid):
                        # /healthz before and after the grabs (same server, same threads),
                        # their mean the baseline: the machine is shared, so bracket it.
                        before = healthz_case(port, args.threads, args.healthz_seconds)
                        http_results: list[GrabResult] = []
                        for shape, ids, s in cases:
                            name = f"{backend}-http-{shape}"
                            with profiled(args, pid, name, subprocesses=True) as profile:
                                http_results.append(
                                    http_case(world, port, shape, ids, s, args.threads)
                                )
                            http_results[-1].profile = profile[0]
                            console.print(f"  {_line(http_results[-1])}")
                        after = healthz_case(port, args.threads, args.healthz_seconds)
                        console.print(
                            f"  {backend} GET /healthz: {before:,.0f}/s before, "
                            f"{after:,.0f}/s after the grabs"
                        )
                        for r in http_results:
                            score_against_healthz(r, (before + after) / 2)
                        results.extend(http_results)
        finally:
            world.db.engine.dispose()
            if not args.keep_db:
                drop_database(backend, world.url)
    if args.redis_url:
        import redis

        client = redis.Redis.from_url(args.redis_url, max_connections=args.threads + 4)
        script = client.register_script(LUA_GRAB.read_text())
        baseline: dict[str, GrabResult] = {}
        for shape, n, s in shapes:
            baseline[shape] = redis_case(client, script, shape, n, s, args.claimants, args.threads)
            console.print(f"  {_line(baseline[shape])}")
        for r in results:
            if r.claims_per_s:
                r.redis_ratio = baseline[r.shape].claims_per_s / r.claims_per_s
            if baseline[r.shape].claims_per_s:
                r.ratio_vs_redis = round(r.claims_per_s / baseline[r.shape].claims_per_s, 3)
        results.extend(baseline.values())
        client.close()
    return results


def _line(r: GrabResult) -> str:
    return (
        f"{r.backend} {r.path} {r.shape}: {r.claimed:,} claimed of {r.attempts:,} grabs in "
        f"{r.seconds:.2f} s = {r.claims_per_s:,.0f} claims/s ({r.errors} errors) {r.error_sample}"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 when every case ran clean (targets are reported, not enforced)."""
    args = parse_args(argv)
    configure_logging(level="WARNING")
    console = Console(width=max(Console().width, 180))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = Path(args.out) if args.out else BENCH_DIR / "results" / f"redpackets-{stamp}.json"
    args.out_path = out
    var_dir = REPO_ROOT / "var" / "bench"
    var_dir.mkdir(parents=True, exist_ok=True)
    keys = Keys.new()
    load_before = tools.load_average()
    commit = tools.git_commit(REPO_ROOT)  # at the start: the code that runs
    console.print(f"commit {commit}; load average before: {load_before} on {os.cpu_count()} CPUs")
    grab_results: list[GrabResult] = []
    campaign: CampaignResult | None = None
    if "grabs" in args.part_list:
        console.rule("A. red-packet grabs")
        grab_results = grabs(args, keys, var_dir, console)
    campaign_profile: list[str | None] = [None]
    if "campaign" in args.part_list:
        console.rule("B. campaign on PostgreSQL")
        with profiled(args, os.getpid(), "campaign") as campaign_profile:
            campaign = campaign_run(args, keys, console)
    load_after = tools.load_average()
    caption = tools.run_caption(
        commit=commit,
        load_before=load_before,
        load_after=load_after,
        cores=os.cpu_count(),
        baseline="the Redis Lua grab (grabs) and GET /healthz of the same server (HTTP grabs: "
        "the mean of a run before and one after them; HTTP registration)",
    )
    if grab_results:
        console.print(
            rich_table("Red-packet grabs", GRAB_HEADERS, grab_rows(grab_results), caption)
        )
    if campaign is not None:
        console.print(
            rich_table("Campaign (PostgreSQL)", CAMPAIGN_HEADERS, campaign_rows(campaign), caption)
        )
    profiles = {f"{r.backend} {r.path} {r.shape}": r.profile for r in grab_results if r.profile}
    if campaign_profile[0]:
        profiles["campaign"] = campaign_profile[0]
    for label, path in profiles.items():
        console.print(f"profile {label}: {path}")
    console.print(caption)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "benchmark": "redpackets",
                "started": stamp,
                "quick": args.quick,
                "git_commit": commit,
                "caption": caption,
                "profiles": profiles,
                "machine": {
                    **tools.machine(),
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "load_before": load_before,
                    "load_after": load_after,
                    "wrk": shutil.which("wrk"),
                },
                "options": {
                    k: v for k, v in vars(args).items() if "url" not in k and k != "out_path"
                },
                "grabs": [asdict(r) for r in grab_results],
                "campaign": None if campaign is None else asdict(campaign),
                "markdown": "\n\n".join(
                    [markdown(GRAB_HEADERS, grab_rows(grab_results))]
                    + (
                        []
                        if campaign is None
                        else [markdown(CAMPAIGN_HEADERS, campaign_rows(campaign))]
                    )
                    + [caption]
                ),
            },
            ensure_ascii=False,
            indent=2,
        )
    )
    console.print(f"JSON: {out}")
    bad = [r for r in grab_results if r.errors or not r.check.startswith("ok")]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
