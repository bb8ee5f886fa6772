"""Payments benchmark: payments per second through the real HTTP server, three kinds.

``citywallet bench payments`` (or ``python -m bench.payments``) measures, on PostgreSQL and
SQLite, how many payments per second the server completes for each kind, beside
``GET /healthz`` on the same server in the same run:

* ``scan``: residents pay merchant orders with ``POST /v1/payments/scan`` (session token,
  ``Idempotency-Key``, payment PIN, the order's EMV payload);
* ``paycode``: merchants' servers charge residents' payment codes with the signed
  ``POST /v1/merchant/payments/code`` (HMAC key, a fresh nonce, the code of the current
  60-second step; amounts under the password-free limit, so no confirmation is asked);
* ``p2p``: residents send each other money with ``POST /v1/wallet/transfers`` (bearer,
  ``Idempotency-Key``, PIN).

The server is ``uvicorn citywallet.api.app:create_app_from_env --factory --workers N`` (or
``citywallet serve --server granian --workers N``) on loopback, loaded by ``wrk`` (a separate
process, ``bench/wrk/payments.lua``). The resident memory of every server worker is sampled
through every case, and ``--profile`` records each kind's run with py-spy.

Set-up, in-process, once per database (then copied for every case, so each case starts from
the same fresh database): migrate; sign up residents through the real services (SMS code,
sign-up, real name with the sandbox verifier, payment PIN, a sandbox card, a top-up through
a sandbox bank that never sleeps), register and approve merchants (each with an HMAC API
key), then bulk-insert the orders (far more than can be paid in the run) and compute each
one's dynamic QR payload as ``citywallet.merchant.payments`` does (checked against
``order_view`` on a sample), and bulk-insert payment-code devices (a device pays once per
60-second step, so there are many per resident). The database is the ground truth (paid
orders per channel, P2P transfers); after each case the ledger is verified. Results go to
Rich tables and a JSON file; see docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import importlib
import json
import os
import platform
import random
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from sqlalchemy import create_engine, insert, inspect, select, text
from sqlalchemy.engine import URL, make_url
from stdnum.cn import ric, uscc

from bench import replay, tools
from citywallet.identity import codes
from citywallet.identity import service as identity
from citywallet.identity.gateways import (
    SandboxIdentityVerifier,
    SandboxSmsGateway,
    sandbox_messages,
)
from citywallet.identity.pins import set_payment_pin
from citywallet.identity.rules import normalize_phone
from citywallet.ledger.audit import verify_ledger
from citywallet.ledger.blocks import load_signer
from citywallet.ledger.types import TransferCode
from citywallet.merchant import emv, onboarding, paycode, signing
from citywallet.merchant import payments as merchant_payments
from citywallet.merchant.models import Order, PaycodeDevice, Store
from citywallet.platform.clock import now_us
from citywallet.platform.config import Settings
from citywallet.platform.crypto import Encryptor, parse_keyring
from citywallet.platform.db import Database
from citywallet.platform.logging import configure_logging
from citywallet.runtime import Runtime
from citywallet.schema import metadata, upgrade
from citywallet.wallet import cards, funding
from citywallet.wallet.bank import SandboxBank, sandbox_card_number

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
WRK_DIR = BENCH_DIR / "wrk"
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/citywallet_bench_payments"
DEFAULT_SQLITE_PATH = "var/bench/payments.db"
APP_FACTORY = "citywallet.api.app:create_app_from_env"
PIN = "502817"
PASSWORD = "Bench-wallet-2026"
ORDER_RATE_CAP = 3000  # orders per second of run time the set-up provides: more than is paid
MIN_ORDER, MAX_ORDER = 150, 300  # fen: 1.50-3.00 yuan, so every payment also posts a fee leg
SEED_THREADS = 4  # residents are signed up in parallel (argon2 releases the GIL)
OTHER_CORES_WARNING = 0.3  # cores busy outside the server, database and wrk: a disturbed run
PG_CONNECTION_BUDGET = 60  # server connections allowed in total (max_connections is 100 here)

P2P_RATE_CAP = 3000  # transfers per second of run time the request lines provide
PAYCODE_DEVICES = 60_000  # a device pays once per 60-s step: up to 1,000 charges/s
QUICK_PAYCODE_DEVICES = 6_000
MIN_P2P, MAX_P2P = 100, 500  # fen
# a resident's password-free payment-code spending per day (default 1,000 yuan) would stop
# the charges of a long run; the bench server lifts it (the limit is still read and counted)
PAYCODE_FREE_PER_DAY = 10**12

# Targets from issue 13: each kind at 16 connections, 2 server workers, PostgreSQL.
TARGET_RATIO = 0.4  # payments/s ÷ GET /healthz req/s of the same run
TARGET_P99_MS = 100.0


# --- kinds of payment -----------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    """A kind of payment: its route, the status a success answers, how wrk sends it."""

    name: str
    method_path: str
    path: str
    expected_status: int
    mode: str  # "bearer" (token TAB body lines) or "signed" (step TAB authorization TAB body)


KINDS: dict[str, Kind] = {
    "scan": Kind("scan", "POST /v1/payments/scan", "/v1/payments/scan", 201, "bearer"),
    "paycode": Kind(
        "paycode",
        "POST /v1/merchant/payments/code",
        "/v1/merchant/payments/code",
        200,
        "signed",
    ),
    "p2p": Kind("p2p", "POST /v1/wallet/transfers", "/v1/wallet/transfers", 201, "bearer"),
}


# --- results --------------------------------------------------------------------------------


@dataclass
class WrkResult:
    """What one wrk run reported."""

    requests: int
    seconds: float
    requests_per_s: float
    ok: int  # answers with the expected status (201 for payments, 200 for healthz)
    ok_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    # wrk corrects its latency histogram for coordinated omission before reporting it (it adds
    # the requests a client sending at the measured rate would have sent while one waited), so
    # the percentiles above and this mean are that open-loop estimate, not the requests made
    mean_ms: float
    # the mean latency of the requests actually made: every connection always waits for one
    # answer, so (Little's law) it is connections / rate
    little_ms: float
    unexpected: int  # answers with another status
    statuses: dict[str, int]  # status -> count, for the unexpected ones
    socket_errors: dict[str, int]  # connect/read/write/timeout
    exhausted: int  # requests made after a thread ran out of unpaid orders (should stay 0)
    sample: str  # the first unexpected answer (status and the start of its body)
    wrk_requests_per_s: float | None  # wrk's own "Requests/sec" line
    cpu: dict[str, float] = field(default_factory=dict)  # cores busy, by whom

    @property
    def errors(self) -> int:
        """Unexpected answers plus socket errors."""
        return self.unexpected + sum(self.socket_errors.values())


@dataclass
class KindResult:
    """One kind of payment measured in one case."""

    kind: str
    route: str
    run: WrkResult | None = None
    paid: int = 0  # in the database: the ground truth
    paid_per_s: float = 0.0
    ratio_vs_healthz: float | None = None
    in_flight_at_end: int = 0  # paid in the database but no success seen by wrk (cut off)
    server_cpu_ms_per_payment: float | None = None  # the server processes' CPU per payment
    db_cpu_ms_per_payment: float | None = None  # PostgreSQL's CPU per payment
    memory: list[dict[str, Any]] = field(default_factory=list)  # per worker during this run
    profile: str | None = None  # py-spy output beside the JSON (--profile)
    target_met: bool | None = None
    error: str | None = None


@dataclass
class CaseResult:
    """One measured case: a server configuration under one connection count, every kind."""

    backend: str
    server: str
    server_workers: int
    connections: int
    wrk_threads: int
    duration_s: float
    db_pool_size: int
    healthz: WrkResult | None = None
    kinds: dict[str, KindResult] = field(default_factory=dict)
    memory: list[dict[str, Any]] = field(default_factory=list)  # per worker, the whole case
    memory_growing: bool = False  # a worker grew by more than tools.GROWTH_WARNING_MIB
    server_log_tail: str = ""  # when the server answered other than expected
    busy_cores_before: float | None = None  # with --wait-idle: cores busy just before the case
    calibration_ms: float | None = None  # this machine's speed just before: see calibrate()
    notes: list[str] = field(default_factory=list)  # worth knowing, not a failure
    # PostgreSQL: each kind's SQL replayed by pgbench right after the HTTP runs (bench/replay.py)
    sql_replay: dict[str, replay.ReplayResult] = field(default_factory=dict)
    payment_transfers: int = 0
    ledger_ok: bool | None = None
    ledger_problems: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def label(self) -> str:
        """The case name used in messages."""
        server = "" if self.server == "uvicorn" else f" {self.server}"
        return f"{self.backend}{server} w={self.server_workers} c={self.connections}"


@dataclass
class Seeded:
    """What the set-up of one database produced."""

    residents: int
    merchants: int
    orders: int
    lines: Path
    seconds: float
    tiers: dict[str, int]
    top_up_per_resident: int
    payload_checks: int
    p2p_lines: Path
    p2p_transfers: int
    paycode_devices: int


@dataclass(frozen=True)
class PaycodeSetup:
    """What signing payment-code charges needs (kept out of the JSON: secrets)."""

    devices: list[tuple[str, str]]  # (slot, TOTP secret), device j belongs to payer j % n
    keys: list[tuple[str, str]]  # (key id, HMAC secret) per merchant
    payers: list[str] = field(default_factory=list)  # user ids, in request-line order (replay)


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


# --- options --------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="citywallet bench payments",
        description="QR payments/s through the HTTP API under wrk, beside GET /healthz. "
        "See docs/benchmarks.md.",
    )
    parser.add_argument(
        "--db", choices=("postgresql", "sqlite", "both"), default="both", help="which database"
    )
    parser.add_argument("--duration", type=int, default=None, help="seconds per wrk run (20)")
    parser.add_argument(
        "--connections", default=None, help="wrk connections, comma-separated (4,16,64)"
    )
    parser.add_argument(
        "--server-workers", default=None, help="uvicorn worker processes, comma-separated (2)"
    )
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--residents", type=int, default=None, help="paying residents (100)")
    parser.add_argument("--merchants", type=int, default=None, help="merchants (4)")
    parser.add_argument("--quick", action="store_true", help="tiny run: a smoke test")
    parser.add_argument(
        "--pg-url", default=DEFAULT_PG_URL, help="benchmark database (dropped and created)"
    )
    parser.add_argument(
        "--sqlite-path", default=DEFAULT_SQLITE_PATH, help="SQLite file (recreated)"
    )
    parser.add_argument(
        "--out", default=None, help="JSON path (default bench/results/payments-<ts>.json)"
    )
    parser.add_argument("--wrk", default=None, help="wrk executable (default: wrk on PATH)")
    parser.add_argument(
        "--app", default=APP_FACTORY, help=f"the uvicorn application factory ({APP_FACTORY})"
    )
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=0.0,
        help="before each case, wait up to this many seconds for the machine to be idle "
        "(under 0.25 cores busy over 3 s): for shared machines",
    )
    parser.add_argument("--keep-db", action="store_true", help="keep the databases at the end")
    parser.add_argument(
        "--kinds",
        default=",".join(KINDS),
        help=f"kinds of payment, comma-separated ({','.join(KINDS)})",
    )
    parser.add_argument(
        "--server",
        choices=("uvicorn", "granian"),
        default="uvicorn",
        help="uvicorn (as `uvicorn --factory --workers N`) or granian (through "
        "`citywallet serve --server granian --workers N`)",
    )
    parser.add_argument(
        "--paycode-devices",
        type=int,
        default=None,
        help=f"payment-code devices, each paying once per 60-s step "
        f"({PAYCODE_DEVICES:,}; --quick {QUICK_PAYCODE_DEVICES:,})",
    )
    parser.add_argument(
        "--memory-interval",
        type=float,
        default=1.0,
        help="seconds between RSS samples of every server worker",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="record every kind's run with py-spy (all server workers) beside the JSON",
    )
    parser.add_argument(
        "--profile-format",
        choices=sorted(tools.PROFILE_FORMATS),
        default="flamegraph",
        help="py-spy output: flamegraph (SVG), speedscope (JSON) or raw (collapsed stacks)",
    )
    parser.add_argument(
        "--no-replay",
        action="store_true",
        help="PostgreSQL: skip replaying each kind's SQL under pgbench after the HTTP runs",
    )
    parser.add_argument("--pgbench", default="pgbench", help="pgbench executable (the replay)")
    parser.add_argument("--strict", action="store_true", help="exit 2 when the target is missed")
    args = parser.parse_args(list(argv) if argv is not None else None)
    if args.duration is None:
        args.duration = 3 if args.quick else 20
    if args.residents is None:
        args.residents = 20 if args.quick else 100
    if args.merchants is None:
        args.merchants = 2 if args.quick else 4
    connections = args.connections or ("8" if args.quick else "4,16,64")
    workers = args.server_workers or "2"
    args.connection_list = _ints(connections, "--connections", parser)
    args.worker_list = _ints(workers, "--server-workers", parser)
    if args.duration < 1:
        parser.error("--duration is at least 1 second (wrk takes whole seconds)")
    if args.residents < 2 or args.merchants < 1 or args.threads < 1:
        parser.error("--residents >= 2, --merchants >= 1, --threads >= 1")
    args.backend_list = ["postgresql", "sqlite"] if args.db == "both" else [args.db]
    args.kind_list = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = [k for k in args.kind_list if k not in KINDS]
    if unknown or not args.kind_list:
        parser.error(f"--kinds takes {', '.join(KINDS)}, not {args.kinds!r}")
    if args.paycode_devices is None:
        args.paycode_devices = QUICK_PAYCODE_DEVICES if args.quick else PAYCODE_DEVICES
    if args.paycode_devices < 1 or args.memory_interval <= 0:
        parser.error("--paycode-devices >= 1, --memory-interval > 0")
    args.orders = ORDER_RATE_CAP * args.duration if "scan" in args.kind_list else 0
    args.p2p_transfers = P2P_RATE_CAP * args.duration if "p2p" in args.kind_list else 0
    return args


def _ints(value: str, name: str, parser: argparse.ArgumentParser) -> list[int]:
    try:
        items = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        parser.error(f"{name} takes comma-separated integers, not {value!r}")
    if not items or min(items) < 1:
        parser.error(f"{name} needs positive integers")
    return items


# --- databases ------------------------------------------------------------------------------


def _pg_admin(url: URL, statement: str) -> None:
    engine = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(statement)
    finally:
        engine.dispose()


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class Backend:
    """A database seeded once, copied fresh for every case."""

    name: str
    seed_url: str
    url: str

    def create_seed(self) -> None:
        """Create the empty seed database."""
        raise NotImplementedError

    def fresh_copy(self) -> None:
        """Replace the case database by a copy of the seeded one."""
        raise NotImplementedError

    def close(self, *, keep: bool) -> None:
        """Drop what the backend made (unless ``keep``)."""

    def server_pids(self) -> set[int]:
        """Database server processes working for the case database (none for SQLite)."""
        return set()


class PostgresBackend(Backend):
    """``<db>_seed`` is seeded, ``<db>`` is created from it as a template for every case."""

    name = "postgresql"

    def __init__(self, url: str) -> None:
        self.parsed = make_url(url)
        if not self.parsed.database:
            raise ValueError(f"--pg-url needs a database name: {url}")
        self.db_name = str(self.parsed.database)
        self.seed_name = self.db_name + "_seed"
        self.url = self.parsed.render_as_string(hide_password=False)
        self.seed_url = self.parsed.set(database=self.seed_name).render_as_string(
            hide_password=False
        )

    def create_seed(self) -> None:
        _pg_admin(self.parsed, f"DROP DATABASE IF EXISTS {_quoted(self.db_name)} WITH (FORCE)")
        _pg_admin(self.parsed, f"DROP DATABASE IF EXISTS {_quoted(self.seed_name)} WITH (FORCE)")
        _pg_admin(self.parsed, f"CREATE DATABASE {_quoted(self.seed_name)}")

    def fresh_copy(self) -> None:
        _pg_admin(self.parsed, f"DROP DATABASE IF EXISTS {_quoted(self.db_name)} WITH (FORCE)")
        _pg_admin(
            self.parsed,
            f"CREATE DATABASE {_quoted(self.db_name)} TEMPLATE {_quoted(self.seed_name)}",
        )

    def close(self, *, keep: bool) -> None:
        if not keep:
            for name in (self.db_name, self.seed_name):
                _pg_admin(self.parsed, f"DROP DATABASE IF EXISTS {_quoted(name)} WITH (FORCE)")

    def server_pids(self) -> set[int]:
        engine = create_engine(self.url)
        try:
            with engine.connect() as conn:
                rows = conn.execute(
                    text(
                        "SELECT pid FROM pg_stat_activity "
                        "WHERE datname = current_database() OR datname IS NULL"
                    )
                ).all()
        finally:
            engine.dispose()
        return {int(pid) for (pid,) in rows}

    def server_info(self) -> dict[str, str]:
        """Version and the settings that matter for commit latency."""
        engine = create_engine(self.parsed.set(database="postgres"))
        try:
            with engine.connect() as conn:
                return {
                    "version": str(conn.exec_driver_sql("SHOW server_version").scalar_one()),
                    **{
                        str(name): str(setting)
                        for name, setting in conn.exec_driver_sql(
                            "SELECT name, setting || coalesce(unit, '') FROM pg_settings "
                            "WHERE name IN ('fsync', 'synchronous_commit', 'shared_buffers', "
                            "'max_connections')"
                        ).all()
                    },
                }
        finally:
            engine.dispose()


class SqliteBackend(Backend):
    """A seeded file, copied (SQLite backup API) for every case."""

    name = "sqlite"

    def __init__(self, path: str) -> None:
        self.path = Path(path) if Path(path).is_absolute() else REPO_ROOT / path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.seed_path = self.path.with_name(self.path.stem + "-seed.db")
        self.url = f"sqlite:///{self.path}"
        self.seed_url = f"sqlite:///{self.seed_path}"

    def create_seed(self) -> None:
        _remove_sqlite(self.seed_path)
        _remove_sqlite(self.path)

    def fresh_copy(self) -> None:
        _remove_sqlite(self.path)
        source = sqlite3.connect(self.seed_path)
        target = sqlite3.connect(self.path)
        try:
            source.backup(target)
        finally:
            target.close()
            source.close()

    def close(self, *, keep: bool) -> None:
        if not keep:
            _remove_sqlite(self.seed_path)
            _remove_sqlite(self.path)


def _remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(str(path) + suffix).unlink(missing_ok=True)


def migrate(url: str) -> None:
    """Migrate to the head revision; refuse a schema that lacks a table of the models."""
    upgrade(url)
    engine = create_engine(url)
    try:
        existing = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    missing = sorted(t.name for t in metadata.sorted_tables if t.name not in existing)
    if missing:
        raise RuntimeError(f"the migrations do not create {', '.join(missing)}")


# --- set-up ---------------------------------------------------------------------------------


def bench_settings(url: str, var_dir: Path, keys: Keys, **extra: Any) -> Settings:
    """The settings of the set-up; the server gets the same through its environment."""
    values: dict[str, Any] = {
        "var_dir": var_dir,
        "database_url": url,
        "master_keys": keys.master,
        "lookup_key": keys.lookup,
        "log_level": "WARNING",
        "run_worker_in_server": False,
        "sandbox": True,
        "sandbox_verifier_latency_ms": 0,
        "sandbox_bank_latency_ms": 0,
        "merchant_auto_approve": False,
        # the set-up signs every resident up from one address: the per-address limit on
        # SMS code checks (60/h) would stop it at the 61st
        "sms_verify_per_ip_per_hour": 1_000_000,
    }
    values.update(extra)
    return Settings(**values)


def server_environment(url: str, var_dir: Path, keys: Keys, pool_size: int) -> dict[str, str]:
    """The server process's environment: the same database, keys and mode as the set-up."""
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
            "CITYWALLET_DB_POOL_SIZE": str(pool_size),
            "CITYWALLET_PAYCODE_FREE_PER_DAY": str(PAYCODE_FREE_PER_DAY),
        }
    )
    return env


@dataclass(frozen=True)
class Resident:
    """A signed-up resident with a verified name, a PIN, a bound card and a session."""

    n: int
    user_id: str
    phone: str
    token: str
    card_id: str


def _phone(n: int) -> str:
    return f"139{n:08d}"


def _id_number(n: int) -> str:
    birth = date(1990, 1, 1) + timedelta(days=n)
    body = f"110101{birth:%Y%m%d}{100 + n % 800:03d}"  # sequences 998/999 are magic: avoided
    return body + ric.calc_check_digit(body + "0")


def _uscc(n: int) -> str:
    body = f"91440300{n:09d}"
    return body + uscc.calc_check_digit(body)


def sandbox_bank() -> SandboxBank:
    """An in-memory sandbox bank that never sleeps."""
    return SandboxBank(latency_ms=0, timeout_seconds=1.0, late_answer_seconds=0.0, sleep=_nap)


def _nap(_seconds: float) -> None:
    return None


def make_resident(runtime: Runtime, bank: SandboxBank, n: int) -> Resident:
    """Resident ``n`` through the real services: SMS code, sign-up (with its session), real
    name, payment PIN, a bound sandbox card."""
    db, settings, enc = runtime.db, runtime.settings, runtime.encryptor
    phone = _phone(n)
    sent = db.transact(
        lambda uow: identity.send_sms_code(
            uow, phone=phone, purpose="register", settings=settings, encryptor=enc
        )
    )
    assert sent.outbox_id is not None
    handler = codes.sms_outbox_handler(SandboxSmsGateway(db, enc), enc)
    if not codes.deliver_now(db, message_id=sent.outbox_id, handler=handler):
        raise RuntimeError(f"the sandbox SMS to {phone} was not delivered")
    with db.uow(readonly=True) as uow:
        messages = sandbox_messages(uow, enc, phone=normalize_phone(phone), limit=1)
    found = re.search(r"\d{6}", messages[0].text) if messages else None
    if found is None:
        raise RuntimeError(f"no sign-up code for {phone} in the sandbox outbox")
    login = identity.register(
        db,
        phone=phone,
        code=found.group(),
        password=PASSWORD,
        device=identity.Device(kind="bearer", name="bench", ip="127.0.0.1"),
        settings=settings,
        encryptor=enc,
    )
    user_id = login.user.id
    identity.verify_real_name(
        db,
        user_id=user_id,
        name="张伟",
        id_number=_id_number(n),
        verifier=SandboxIdentityVerifier(),
        settings=settings,
        encryptor=enc,
    )
    db.transact(lambda uow: set_payment_pin(uow, user_id=user_id, pin=PIN, encryptor=enc))
    card = cards.bind_card(
        db,
        bank=bank,
        user_id=user_id,
        card_number=sandbox_card_number("0000", serial=n),
        phone=phone,
        encryptor=enc,
        settings=settings,
    )
    return Resident(n, user_id, phone, login.session.token, card.id)


@dataclass(frozen=True)
class MerchantData:
    """What a dynamic code of a merchant's first store needs."""

    pk: int
    public_id: str
    store_pk: int
    store_public_id: str
    mcc: str
    name_en: str
    city_en: str
    name_zh: str
    city_zh: str
    key_id: str  # an HMAC API key of the merchant's server (payment-code charges)
    key_secret: str


def make_merchant(runtime: Runtime, owner: Resident, i: int) -> MerchantData:
    """Merchant ``i`` owned by ``owner``: applied for through onboarding, approved."""
    application = onboarding.MerchantApplication(
        name_zh=f"罗湖好味道餐厅{i}号店",
        name_en=f"Luohu Good Taste {i}",
        city_zh="深圳",
        city_en="Shenzhen",
        uscc=_uscc(i + 1),
        mcc="5812",
        district="罗湖区",
        address=f"深圳市罗湖区东门中路{i + 1}号",
        contact_name="张伟",
        contact_phone=owner.phone,
        settlement_card_id=owner.card_id,
    )
    enc, settings = runtime.encryptor, runtime.settings
    view = runtime.db.transact(
        lambda uow: onboarding.register_merchant(
            uow, user_id=owner.user_id, application=application, encryptor=enc, settings=settings
        )
    )
    runtime.db.transact(
        lambda uow: onboarding.review_merchant(
            uow, merchant_id=view.id, action="approve", reason="benchmark", actor="bench"
        )
    )
    api_key = runtime.db.transact(
        lambda uow: onboarding.create_api_key(
            uow,
            merchant_pk=onboarding.merchant_by_public_id(uow, view.id).id,
            scheme="hmac-sha256",
            label="bench",
            encryptor=enc,
        )
    )
    with runtime.db.uow(readonly=True) as uow:
        merchant = onboarding.merchant_by_public_id(uow, view.id)
        store = uow.session.scalars(
            select(Store).where(Store.merchant_id == merchant.id).order_by(Store.id).limit(1)
        ).one()
        return MerchantData(
            pk=merchant.id,
            public_id=merchant.public_id,
            store_pk=store.id,
            store_public_id=store.public_id,
            mcc=merchant.mcc,
            name_en=merchant.name_en,
            city_en=merchant.city_en,
            name_zh=merchant.name_zh,
            city_zh=merchant.city_zh,
            key_id=api_key.key.id,
            key_secret=api_key.secret,
        )


def dynamic_payload(m: MerchantData, order_id: str, amount: int, key: bytes) -> str:
    """The order's dynamic code, built as ``payments._dynamic_code`` builds it (no terminal)."""
    code = emv.MerchantCode(
        merchant_id=m.public_id,
        store_id=m.store_public_id,
        mcc=m.mcc,
        merchant_name=m.name_en,
        merchant_city=m.city_en,
        name_zh=m.name_zh[:25],
        city_zh=m.city_zh,
        amount=amount,
        order_ref=order_id,
        terminal=None,
    )
    return emv.build(code, key=key)


def seed(
    runtime: Runtime, args: argparse.Namespace, lines: Path, progress: Progress, name: str
) -> tuple[Seeded, PaycodeSetup]:
    """Residents, merchants, orders and payment-code devices in the database; the wrk
    request lines of scan payments in ``lines``, of P2P transfers beside it."""
    started = time.perf_counter()
    bank = sandbox_bank()
    owners = args.merchants
    total = args.residents + owners
    task = progress.add_task(f"{name}: residents", total=total, rate="")
    people: list[Resident] = []
    lock = threading.Lock()

    def one(n: int) -> Resident:
        person = make_resident(runtime, bank, n)
        with lock:
            progress.advance(task)
        return person

    with ThreadPoolExecutor(SEED_THREADS) as pool:
        people = list(pool.map(one, range(1, total + 1)))
    progress.remove_task(task)
    payers, owner_people = people[: args.residents], people[args.residents :]

    per_resident = -(-args.orders // args.residents)
    # what its orders and payment-code charges can cost (a device pays at most once per
    # 60-s step), what its transfers can send, and 100 yuan more
    steps = args.duration // 60 + 2
    devices = args.paycode_devices if "paycode" in args.kind_list else 0
    charges = -(-devices // args.residents) * steps
    sent = -(-args.p2p_transfers // args.residents)
    top_up = (per_resident + charges) * MAX_ORDER + sent * MAX_P2P + 10_000
    task = progress.add_task(f"{name}: top-ups", total=len(payers), rate="")

    def fund(person: Resident) -> None:
        funding.top_up(
            runtime.db,
            bank=bank,
            user_id=person.user_id,
            card_id=person.card_id,
            amount=top_up,
            pin=PIN,
            encryptor=runtime.encryptor,
            settings=runtime.settings,
        )
        with lock:
            progress.advance(task)

    with ThreadPoolExecutor(SEED_THREADS) as pool:
        list(pool.map(fund, payers))
    progress.remove_task(task)

    task = progress.add_task(f"{name}: merchants", total=owners, rate="")
    merchants = []
    for i, owner in enumerate(owner_people):
        merchants.append(make_merchant(runtime, owner, i))
        progress.advance(task)
    progress.remove_task(task)

    enc = runtime.encryptor
    key = runtime.db.transact(lambda uow: merchant_payments.qr_key(uow, enc))
    runtime.ledger_signer()  # created now, so the server and the verification share it
    checks = write_orders(runtime, args, payers, merchants, key, lines, progress, name)
    p2p_lines = lines.with_name(lines.stem + "-p2p.tsv")
    write_transfers(args, payers, p2p_lines)
    devices = (
        insert_devices(runtime, args, payers, progress, name) if "paycode" in args.kind_list else []
    )
    with runtime.db.uow(readonly=True) as uow:
        tiers = {
            str(tier): int(n)
            for tier, n in uow.session.execute(
                text("SELECT tier, count(*) FROM identity_users GROUP BY tier")
            ).all()
        }
    if runtime.db.dialect == "postgresql":
        with runtime.db.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
    seeded = Seeded(
        residents=len(payers),
        merchants=len(merchants),
        orders=args.orders,
        lines=lines,
        seconds=round(time.perf_counter() - started, 1),
        tiers=tiers,
        top_up_per_resident=top_up,
        payload_checks=checks,
        p2p_lines=p2p_lines,
        p2p_transfers=args.p2p_transfers,
        paycode_devices=len(devices),
    )
    return seeded, PaycodeSetup(
        devices=devices,
        keys=[(m.key_id, m.key_secret) for m in merchants],
        payers=[p.user_id for p in payers],
    )


def write_transfers(args: argparse.Namespace, payers: list[Resident], lines: Path) -> None:
    """One request line per P2P transfer (``token TAB body``): payer i sends to another
    resident, the pairs shifting every round of payers, small amounts (no rows: the server
    makes the transfers)."""
    rng = random.Random(20261207)
    n = len(payers)
    with lines.open("w", encoding="utf-8") as out:
        for i in range(args.p2p_transfers):
            payer = payers[i % n]
            payee = payers[(i % n + 1 + (i // n) % (n - 1)) % n]  # never the payer
            body = {"to": payee.user_id, "amount": rng.randint(MIN_P2P, MAX_P2P), "pin": PIN}
            out.write(f"{payer.token}\t{json.dumps(body)}\n")


def insert_devices(
    runtime: Runtime,
    args: argparse.Namespace,
    payers: list[Resident],
    progress: Progress,
    name: str,
    batch: int = 5000,
) -> list[tuple[str, str]]:
    """Bulk-insert ``args.paycode_devices`` active devices, device j of payer j % n, as
    ``paycodes.register_device`` makes them (its 5-devices cap is bypassed: a device pays
    once per 60-s step, a run needs thousands). Returns their (slot, secret)."""
    enc = runtime.encryptor
    moment = now_us()
    slots = random.Random(20261207).sample(range(1, 10**paycode.SLOT_DIGITS), args.paycode_devices)
    devices: list[tuple[str, str]] = []
    task = progress.add_task(f"{name}: payment-code devices", total=args.paycode_devices, rate="")
    for start in range(0, args.paycode_devices, batch):
        rows = []
        for j in range(start, min(start + batch, args.paycode_devices)):
            public_id = "dev_" + secrets.token_urlsafe(15)
            slot, secret = f"{slots[j]:0{paycode.SLOT_DIGITS}d}", paycode.new_secret()
            rows.append(
                {
                    "public_id": public_id,
                    "user_id": payers[j % len(payers)].user_id,
                    "label": "bench",
                    "slot": slot,
                    "secret_enc": enc.encrypt(secret.encode(), aad=public_id.encode()),
                    "last_counter": 0,
                    "failures": 0,
                    "locked_until": None,
                    "status": "active",
                    "created_at": moment,
                }
            )
            devices.append((slot, secret))
        runtime.db.transact(lambda uow, r=rows: uow.session.execute(insert(PaycodeDevice), r))  # type: ignore[misc]
        progress.advance(task, len(rows))
    progress.remove_task(task)
    return devices


def write_charges(
    setup: PaycodeSetup,
    lines: Path,
    *,
    first_step: int,
    last_step: int,
    tag: str,
    merchants: int,
) -> int:
    """The signed payment-code charges of time steps ``first_step..last_step`` (one per
    device and step), one line each: ``step TAB Authorization TAB body``. Device j is
    charged by merchant (j + step) mod m; the signature's timestamp is the middle of the
    step, so it stays inside the server's window whenever the line is used. Returns the
    number of lines."""
    path = KINDS["paycode"].path
    rng = random.Random(first_step)
    written = 0
    totp_keys = [_totp_key(secret) for _slot, secret in setup.devices]
    if setup.devices:  # the fast codes are paycode.generate's, or the run would be refused
        slot, secret = setup.devices[0]
        at = first_step * paycode.STEP_SECONDS
        if fast_code(totp_keys[0], slot, first_step) != paycode.generate(secret, slot, at):
            raise RuntimeError("write_charges: the payment codes differ from paycode.generate")
    with lines.open("w", encoding="ascii") as out:
        for step in range(first_step, last_step + 1):
            timestamp = step * paycode.STEP_SECONDS + paycode.STEP_SECONDS // 2
            for j, (slot, _secret) in enumerate(setup.devices):
                key_id, key_secret = setup.keys[(j + step) % merchants]
                body = json.dumps(
                    {
                        "code": fast_code(totp_keys[j], slot, step),
                        "amount": rng.randint(MIN_ORDER, MAX_ORDER),
                        "out_trade_no": f"PC{tag}-{step}-{j}",
                    },
                    separators=(",", ":"),
                ).encode()
                nonce = secrets.token_urlsafe(12)
                message = signing.canonical_request("POST", path, timestamp, nonce, body)
                authorization = signing.format_authorization(
                    "CW1-HMAC-SHA256",
                    key_id,
                    timestamp,
                    nonce,
                    signing.sign_hmac(key_secret, message),
                )
                out.write(f"{step}\t{authorization}\t{body.decode()}\n")
                written += 1
    return written


def _totp_key(secret: str) -> bytes:
    return base64.b32decode(secret + "=" * (-len(secret) % 8), casefold=True)


def fast_code(key: bytes, slot: str, step: int) -> str:
    """``paycode.generate`` for a decoded key (RFC 6238 with HMAC-SHA-256, 8 digits): pyotp
    decodes the base32 secret on every call, which made signing a run's charges take
    minutes. ``write_charges`` checks it against ``paycode.generate``, and so do the tests."""
    digest = hmac.new(key, step.to_bytes(8, "big"), hashlib.sha256).digest()
    offset = digest[-1] & 0x0F
    otp = (int.from_bytes(digest[offset : offset + 4], "big") & 0x7FFFFFFF) % 10**paycode.OTP_DIGITS
    body = f"{paycode.PREFIX}{slot}{otp:0{paycode.OTP_DIGITS}d}"
    return body + paycode.luhn_check_digit(body)


def write_orders(
    runtime: Runtime,
    args: argparse.Namespace,
    payers: list[Resident],
    merchants: list[MerchantData],
    key: bytes,
    lines: Path,
    progress: Progress,
    name: str,
    batch: int = 5000,
) -> int:
    """Bulk-insert ``args.orders`` open orders and write one request line per order:
    ``token TAB body``. Consecutive lines belong to different residents and merchants.
    Returns how many payloads were checked against ``order_view``."""
    rng = random.Random(20261123)
    moment = now_us()
    expires = moment + merchant_payments.MAX_TTL_SECONDS * merchant_payments.SECOND_US
    task = progress.add_task(f"{name}: orders", total=args.orders, rate="")
    sample: list[tuple[str, str]] = []  # (order id, our payload)
    with lines.open("w", encoding="utf-8") as out:
        for start in range(0, args.orders, batch):
            rows: list[dict[str, Any]] = []
            for i in range(start, min(start + batch, args.orders)):
                # neighbours (paid at the same time) differ in payer and merchant; the pairs
                # shift every round of payers
                payer = payers[i % len(payers)]
                merchant = merchants[(i + i // len(payers)) % len(merchants)]
                order_id = "ord_" + secrets.token_urlsafe(15)
                amount = rng.randint(MIN_ORDER, MAX_ORDER)
                rows.append(
                    {
                        "public_id": order_id,
                        "merchant_id": merchant.pk,
                        "store_id": merchant.store_pk,
                        "terminal_id": None,
                        "out_trade_no": f"BENCH{i:09d}",
                        "amount": amount,
                        "currency": "CNY",
                        "description": "",
                        "channel": None,
                        "status": "created",
                        "expires_at": expires,
                        "notify_url": None,
                        "payer_user_id": None,
                        "fee": 0,
                        "refunded_amount": 0,
                        "refunded_fee": 0,
                        "transfer_ids": "[]",
                        "decline_code": None,
                        "paid_at": None,
                        "closed_at": None,
                        "created_at": moment,
                        "updated_at": moment,
                    }
                )
                payload = dynamic_payload(merchant, order_id, amount, key)
                body = json.dumps({"payload": payload, "pin": PIN}, ensure_ascii=False)
                out.write(f"{payer.token}\t{body}\n")
                if i % 997 == 0 and len(sample) < 12:
                    sample.append((order_id, payload))
            runtime.db.transact(lambda uow, r=rows: uow.session.execute(insert(Order), r))  # type: ignore[misc]
            progress.advance(task, len(rows))
    progress.remove_task(task)
    enc = runtime.encryptor
    with runtime.db.uow(readonly=True) as uow:
        for order_id, ours in sample:
            order = uow.session.scalars(select(Order).where(Order.public_id == order_id)).one()
            theirs = merchant_payments.order_view(uow, order, enc).qr_payload
            if theirs != ours:
                raise RuntimeError(
                    f"bulk payload of {order_id} differs from order_view's: {ours!r} vs {theirs!r}"
                )
    return len(sample)


# --- the server -----------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_command(server: str, factory: str, port: int, workers: int) -> list[str]:
    """The command that serves ``factory`` on loopback: uvicorn directly (as always), or
    granian through ``citywallet serve --server granian`` (best effort: that option is new)."""
    if server == "granian":
        beside = Path(sys.executable).parent / "citywallet"
        cli = [str(beside)] if beside.exists() else [sys.executable, "-m", "citywallet.cli"]
        return [
            *cli, "serve", "--server", "granian", "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(workers),
        ]  # fmt: skip
    return [
        sys.executable, "-m", "uvicorn", factory, "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
        "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip


@contextmanager
def running_server(
    factory: str, env: dict[str, str], workers: int, log_path: Path, server: str = "uvicorn"
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """The server on a free loopback port until the block ends; yields (base URL, process)."""
    port = free_port()
    command = server_command(server, factory, port, workers)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base, process, log_path, workers)
        yield base, process
    finally:
        workers_started = tools.descendants(process.pid)
        process.terminate()  # the supervisor stops its workers gracefully
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
            for pid in workers_started:  # the workers of the supervisor just killed
                with suppress(OSError):
                    os.kill(pid, signal.SIGKILL)


def _wait_ready(base: str, process: subprocess.Popen[bytes], log_path: Path, workers: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited ({process.returncode}): {_tail(log_path)}")
        # uvicorn runs a single worker in its own process, more as child processes
        if workers == 1 or len(tools.server_workers(process.pid)) >= workers:
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=2) as answer:
                    if answer.status == 200:
                        time.sleep(1.0)  # every worker has bound and warmed up its app
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
        time.sleep(0.2)
    raise RuntimeError(f"the server did not answer /healthz within 60 s: {_tail(log_path)}")


def _tail(path: Path, chars: int = 1500) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


# --- CPU accounting (Linux /proc; empty elsewhere) ------------------------------------------


def calibrate() -> float:
    """Milliseconds for ``sum(range(10**6))`` (best of 5) here and now: how fast this VM's
    CPU is at the time, to compare runs made at different times (lower is faster)."""
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        sum(range(10**6))
        best = min(best, time.perf_counter() - started)
    return round(best * 1000, 1)


def wait_idle(limit: float, *, below: float = 0.25, window: float = 3.0) -> float | None:
    """Wait (up to ``limit`` seconds) until the machine keeps fewer than ``below`` cores busy
    over ``window`` seconds; returns the cores busy in the last window (None: no /proc)."""
    deadline = time.monotonic() + limit
    cpus = os.cpu_count() or 1
    while True:
        try:
            busy0, total0 = _busy_total()
            time.sleep(window)
            busy1, total1 = _busy_total()
        except OSError:
            return None
        cores = cpus * (busy1 - busy0) / max(1.0, total1 - total0)
        if cores < below or time.monotonic() >= deadline:
            return round(cores, 2)


def _busy_total() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs since boot."""
    busy, total, _steal = tools.cpu_jiffies()
    return busy, total


class CpuMeter:
    """Cores kept busy during a run: the server's processes, PostgreSQL, wrk, the machine."""

    def __init__(self, server_pid: int, pg_pids: Callable[[], set[int]]) -> None:
        self.server = [server_pid, *tools.descendants(server_pid)]
        self.pg_pids = pg_pids
        self.started = time.perf_counter()
        try:
            self.machine = tools.cpu_jiffies()
            self.pg = {pid: tools.proc_cpu(pid) for pid in tools.postgres_pids()}
            self.srv = sum(tools.proc_cpu(pid) for pid in self.server)
            self.ok = True
        except OSError:
            self.ok = False

    def stop(self, wrk_cpu: float) -> dict[str, float]:
        """Average cores busy since the start (server, postgres, wrk, whole machine)."""
        if not self.ok:
            return {}
        elapsed = time.perf_counter() - self.started
        busy, total, steal = tools.cpu_jiffies()
        cpus = os.cpu_count() or 1
        # this database's backends and the shared background processes, not other databases'
        pg = sum(tools.proc_cpu(pid) - self.pg.get(pid, 0.0) for pid in self.pg_pids())
        srv = sum(tools.proc_cpu(pid) for pid in self.server) - self.srv
        machine = cpus * (busy - self.machine[0]) / (total - self.machine[1])
        stolen = cpus * (steal - self.machine[2]) / (total - self.machine[1])
        return {
            "server_cores": round(srv / elapsed, 2),
            "postgres_cores": round(pg / elapsed, 2),
            "wrk_cores": round(wrk_cpu / elapsed, 2),
            "machine_cores": round(machine, 2),
            # everything else: the kernel's network work, this script, other people's jobs
            "other_cores": round(max(0.0, machine - stolen - (srv + pg + wrk_cpu) / elapsed), 2),
            "stolen_cores": round(stolen, 2),
        }


# --- wrk ------------------------------------------------------------------------------------

_STATS = re.compile(r"^CW_STATS (.*)$", re.MULTILINE)
_STATUSES = re.compile(r"^CW_STATUSES (.*)$", re.MULTILINE)
_SAMPLE = re.compile(r"^CW_SAMPLE (.*)$", re.MULTILINE)
_RPS = re.compile(r"^Requests/sec:\s+([0-9.]+)", re.MULTILINE)


def run_wrk(
    wrk: str,
    url: str,
    script: Path,
    *,
    connections: int,
    threads: int,
    duration: int,
    script_args: Sequence[str] = (),
    expected_status: int = 200,
    server_pid: int,
    pg_pids: Callable[[], set[int]],
    tick: Callable[[float], None],
) -> tuple[WrkResult, str]:
    """One wrk run; returns the parsed figures and wrk's whole output."""
    command = [
        wrk, f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--timeout", "10s",
        "--latency", "-s", str(script), url,
    ]  # fmt: skip
    if script_args:
        command += ["--", *script_args]
    meter = CpuMeter(server_pid, pg_pids)
    before = os.times()
    started = time.perf_counter()
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        while process.poll() is None:
            tick(time.perf_counter() - started)
            time.sleep(0.2)
        stdout, stderr = process.communicate()
    after = os.times()
    cpu = meter.stop(
        (after.children_user - before.children_user)
        + (after.children_system - before.children_system)
    )
    output = stdout + (f"\n[stderr]\n{stderr}" if stderr.strip() else "")
    if process.returncode != 0 or _STATS.search(stdout) is None:
        raise RuntimeError(f"wrk exit {process.returncode}: {output.strip()[-600:]}")
    result = parse_wrk_output(stdout, connections=connections, expected_status=expected_status)
    result.cpu = cpu
    return result, output


def parse_wrk_output(stdout: str, *, connections: int, expected_status: int) -> WrkResult:
    """The figures of one run from the ``CW_`` lines our wrk scripts print.

    A thread that ran out of lines sends ``GET /healthz`` (counted as ``exhausted``): its 200
    answers are neither successes nor, when successes are not 200, unexpected answers."""
    stats = _STATS.search(stdout)
    if stats is None:
        raise ValueError("no CW_STATS line in the wrk output")
    values = {k: float(v) for k, v in (item.split("=") for item in stats.group(1).split())}
    statuses_line = _STATUSES.search(stdout)
    statuses: dict[str, int] = {}
    if statuses_line is not None:
        for item in statuses_line.group(1).split(","):
            if ":" in item:
                code, n = item.split(":")
                statuses[code] = int(n)
    sample = _SAMPLE.search(stdout)
    rps = _RPS.search(stdout)
    requests = int(values["requests"])
    seconds = values["duration_us"] / 1e6
    unexpected, exhausted = int(values["non_expected"]), int(values["exhausted"])
    if exhausted and expected_status != 200:  # the spare GETs answered 200: not unexpected
        unexpected = max(0, unexpected - exhausted)
        left = statuses.get("200", 0) - exhausted
        if left > 0:
            statuses["200"] = left
        else:
            statuses.pop("200", None)
    ok = max(0, requests - unexpected - exhausted)
    return WrkResult(
        requests=requests,
        seconds=round(seconds, 3),
        requests_per_s=round(requests / seconds, 1) if seconds else 0.0,
        ok=ok,
        ok_per_s=round(ok / seconds, 1) if seconds else 0.0,
        p50_ms=round(values["p50_us"] / 1000, 2),
        p90_ms=round(values["p90_us"] / 1000, 2),
        p99_ms=round(values["p99_us"] / 1000, 2),
        p999_ms=round(values["p999_us"] / 1000, 2),
        max_ms=round(values["max_us"] / 1000, 2),
        mean_ms=round(values["mean_us"] / 1000, 2),
        little_ms=round(1000 * connections / (requests / seconds), 2)
        if requests and seconds
        else 0.0,
        unexpected=unexpected,
        statuses=statuses,
        socket_errors={
            k: int(values[k]) for k in ("connect", "read", "write", "timeout") if values[k]
        },
        exhausted=exhausted,
        sample=(sample.group(1).strip() if sample else "")[:300],
        wrk_requests_per_s=float(rps.group(1)) if rps else None,
    )


# --- one case -------------------------------------------------------------------------------


def pool_size_for(workers: int) -> int:
    """Connections per server process: the default 10 (up to 30 with overflow) unless the
    workers together would pass the budget on PostgreSQL's 100 connections."""
    return max(2, min(10, PG_CONNECTION_BUDGET // (3 * workers)))


def run_case(
    backend: Backend,
    seeded: Seeded,
    setup: PaycodeSetup,
    case: CaseResult,
    args: argparse.Namespace,
    ctx: RunContext,
    progress: Progress,
) -> None:
    """Fresh copy of the seeded database, a server, wrk on /healthz then on every kind of
    payment (RSS of every worker sampled throughout), the counts and the ledger check."""
    replays = [] if args.no_replay or backend.name != "postgresql" else replayable(args)
    runs = 1 + len(args.kind_list) + len(replays)
    task: TaskID = progress.add_task(f"{case.label}: starting", total=runs * args.duration, rate="")
    try:
        if args.wait_idle > 0:
            progress.update(task, description=f"{case.label}: waiting for an idle machine")
            case.busy_cores_before = wait_idle(args.wait_idle)
        case.calibration_ms = calibrate()
        backend.fresh_copy()
        env = server_environment(backend.url, ctx.var_dir, ctx.keys, case.db_pool_size)
        log_path = ctx.out.with_name(f"{ctx.out.stem}-server.log")
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("a") as log:
            log.write(f"=== {case.label} ===\n")
        with running_server(args.app, env, case.server_workers, log_path, args.server) as (
            base,
            server,
        ):
            sampler = tools.MemorySampler(
                lambda: tools.server_workers(server.pid), args.memory_interval
            ).start()
            try:

                def tick(offset: float, name: str) -> Callable[[float], None]:
                    def update(elapsed: float) -> None:
                        progress.update(
                            task,
                            description=f"{case.label}: {name}",
                            completed=min(offset + elapsed, runs * args.duration),
                        )

                    return update

                case.healthz, out_h = run_wrk(
                    ctx.wrk, f"{base}/healthz", WRK_DIR / "healthz.lua",
                    connections=case.connections, threads=case.wrk_threads,
                    duration=args.duration, server_pid=server.pid, pg_pids=backend.server_pids,
                    tick=tick(0, "GET /healthz"),
                )  # fmt: skip
                ctx.wrk_outputs.setdefault(case.label, {})["healthz"] = out_h
                for n, name in enumerate(args.kind_list, start=1):
                    progress.update(task, description=f"{case.label}: {name}: preparing")
                    run_kind(
                        name, base, server.pid, backend, seeded, setup, case, args, ctx,
                        sampler, tick(n * args.duration, KINDS[name].method_path),
                    )  # fmt: skip
            finally:
                summary = tools.summarize_memory(sampler.stop())
                case.memory = tools.memory_json(summary)
                case.memory_growing = any(w.growing for w in summary)
        for n, name in enumerate(replays, start=1 + len(args.kind_list)):
            offset = n * args.duration
            run_replay(
                name, backend, setup, case, args,
                lambda elapsed, o=offset, kind=name: progress.update(  # type: ignore[misc]
                    task, description=f"{case.label}: {kind} SQL under pgbench",
                    completed=min(o + elapsed, runs * args.duration),
                ),
            )  # fmt: skip
        progress.update(task, description=f"{case.label}: checking the books")
        check_case(backend, case, ctx.keys.encryptor)
        if any(k.run is not None and k.run.statuses for k in case.kinds.values()):
            case.server_log_tail = _tail(log_path, 1200)
    except Exception as exc:  # a case that cannot run is reported, the others still run
        case.error = f"{exc.__class__.__name__}: {exc}"[:800]
    finally:
        progress.remove_task(task)


def run_kind(
    name: str,
    base: str,
    server_pid: int,
    backend: Backend,
    seeded: Seeded,
    setup: PaycodeSetup,
    case: CaseResult,
    args: argparse.Namespace,
    ctx: RunContext,
    sampler: tools.MemorySampler,
    tick: Callable[[float], None],
) -> None:
    """One kind's wrk run on the running server (profiled with --profile)."""
    kind = KINDS[name]
    result = KindResult(kind=name, route=kind.method_path)
    case.kinds[name] = result
    tag = f"{case.backend[:2]}{case.server_workers}x{case.connections}-{ctx.stamp}"
    if name == "scan":
        lines = seeded.lines
    elif name == "p2p":
        lines = seeded.p2p_lines
    else:
        lines = ctx.var_dir / f"charges-{case.backend}.tsv"
        moment = time.time()
        write_charges(
            setup,
            lines,
            first_step=paycode.counter_at(moment),
            last_step=paycode.counter_at(moment + args.duration + 60),
            tag=tag.replace("T", "").replace("Z", ""),
            merchants=len(setup.keys),
        )
    time.sleep(1.0)  # let the server settle between two runs
    since = sampler.now()
    profile = (
        tools.Profile(
            server_pid,
            tools.profile_path(
                ctx.out,
                f"{case.backend}-{case.server}-w{case.server_workers}-c{case.connections}-{name}",
                args.profile_format,
            ),
            fmt=args.profile_format,
            subprocesses=True,
        ).start()
        if args.profile
        else None
    )
    try:
        result.run, output = run_wrk(
            ctx.wrk, base, WRK_DIR / "payments.lua",
            connections=case.connections, threads=case.wrk_threads, duration=args.duration,
            script_args=[
                str(lines), str(case.wrk_threads), f"{tag}-{name}", kind.path,
                str(kind.expected_status), kind.mode,
            ],
            expected_status=kind.expected_status,
            server_pid=server_pid, pg_pids=backend.server_pids, tick=tick,
        )  # fmt: skip
        ctx.wrk_outputs.setdefault(case.label, {})[name] = output
    except Exception as exc:  # this kind failed; the others still run
        result.error = f"{exc.__class__.__name__}: {exc}"[:800]
    finally:
        if profile is not None:
            result.profile = profile.finish()
            if result.profile is not None:
                ctx.profiles[f"{case.label} {name}"] = result.profile
            if profile.problem:
                case.notes.append(f"{name}: profile: {profile.problem}")
    result.memory = tools.memory_json(
        tools.summarize_memory(sampler.snapshot(), since=since, until=sampler.now())
    )


def replayable(args: argparse.Namespace) -> list[str]:
    """The kinds of the run whose SQL the replay has a script for (scan, P2P)."""
    return [name for name in args.kind_list if name in replay.SCRIPTS]


def run_replay(
    name: str,
    backend: Backend,
    setup: PaycodeSetup,
    case: CaseResult,
    args: argparse.Namespace,
    tick: Callable[[float], None],
) -> None:
    """Replay one kind's SQL under pgbench on the case's database, with the case's connection
    count: each client pays its share of the helper rows (bench/replay.py)."""
    assert isinstance(backend, PostgresBackend)
    limit = replay.RATE_CAP * args.duration if name == "scan" else args.p2p_transfers
    result = replay.ReplayResult(
        kind=name, script=replay.SCRIPTS[name], clients=case.connections, rows=0
    )
    engine = create_engine(backend.url)
    try:
        with engine.begin() as conn:
            fill = replay.fill_scan if name == "scan" else replay.fill_p2p
            rows = fill(conn, setup.payers, limit)
        if rows >= case.connections:
            result, _stdout = replay.run_pgbench(
                backend.parsed, name, clients=case.connections,
                per_client=rows // case.connections, executable=args.pgbench, tick=tick,
            )  # fmt: skip
        else:
            result.error = f"only {rows} rows to replay"
        result.rows = rows
        with engine.connect() as conn:
            result.succeeded = replay.succeeded(conn, name)
    except Exception as exc:  # reported with the case; the HTTP figures stand
        result.error = f"{exc.__class__.__name__}: {exc}"[:800]
    finally:
        engine.dispose()
    case.sql_replay[name] = result


def score_replay(rerun: replay.ReplayResult, case: CaseResult) -> list[str]:
    """The replay's ratio to /healthz and the bound it gives; what does not check out."""
    h = case.healthz
    if h is not None and h.requests_per_s > 0:
        rerun.ratio_vs_healthz = round(rerun.tps / h.requests_per_s, 3)
        if rerun.db_cpu_ms_per_payment and h.cpu.get("machine_cores"):
            per_s, ratio = replay.bound(
                cores=os.cpu_count() or 1,
                db_cpu_ms=rerun.db_cpu_ms_per_payment,
                healthz_rps=h.requests_per_s,
                healthz_machine_cores=h.cpu["machine_cores"],
            )
            rerun.bound_per_s, rerun.bound_ratio = round(per_s), round(ratio, 3)
    if rerun.error:
        return [f"{rerun.kind} SQL: {rerun.error}"]
    if rerun.failed or rerun.succeeded != rerun.transactions:
        return [
            f"{rerun.kind} SQL: {rerun.transactions} transactions, {rerun.failed} failed, "
            f"{rerun.succeeded} payments in the database"
        ]
    return []


def ground_truth(backend: Backend, encryptor: Encryptor) -> tuple[dict[str, int], int, Any]:
    """Successes per kind in the database, payment transfers, and the ledger's verification."""
    db = Database(backend.url, pool_size=1)
    try:
        with db.uow(readonly=True) as uow:

            def count(sql: str, **params: Any) -> int:
                return int(uow.session.execute(text(sql), params).scalar_one())

            paid = "SELECT COUNT(*) FROM merchant_orders WHERE status = 'paid' AND channel = :c"
            transfers = "SELECT COUNT(*) FROM ledger_transfers WHERE code = :code"
            counts = {
                "scan": count(paid, c="dynamic_qr"),
                "paycode": count(paid, c="paycode"),
                "p2p": count(transfers, code=int(TransferCode.P2P)),
            }
            payment_transfers = count(transfers, code=int(TransferCode.PAYMENT))
            signer = load_signer(uow, encryptor)  # made by the set-up: only read here
            report = verify_ledger(uow, public_key=signer.public_key)
    finally:
        db.dispose()
    return counts, payment_transfers, report


def score_kind(
    result: KindResult, *, paid: int, healthz_rps: float, connections: int, backend: str
) -> list[str]:
    """Fill in a kind's figures from its database count; returns what does not check out."""
    run = result.run
    assert run is not None
    result.paid = paid
    result.paid_per_s = round(paid / run.seconds, 1) if run.seconds else 0.0
    result.in_flight_at_end = paid - run.ok
    cpu = run.cpu
    if cpu and paid:
        per = 1000 * run.seconds / paid
        result.server_cpu_ms_per_payment = round(cpu["server_cores"] * per, 1)
        if backend == "postgresql":
            result.db_cpu_ms_per_payment = round(cpu["postgres_cores"] * per, 1)
    if healthz_rps > 0:
        result.ratio_vs_healthz = round(result.paid_per_s / healthz_rps, 3)
    result.target_met = (result.ratio_vs_healthz or 0.0) >= TARGET_RATIO and (
        run.p99_ms <= TARGET_P99_MS
    )
    problems = []
    # wrk stops with a request in flight on every connection, and a request it gave up on
    # (timeout) may still be paid: both are paid without a success seen
    cut_off = connections + sum(run.socket_errors.values())
    if not 0 <= result.in_flight_at_end <= cut_off:
        problems.append(f"{result.kind}: {paid} paid in the database, {run.ok} successes seen")
    if run.unexpected:
        problems.append(
            f"{result.kind}: {run.unexpected} unexpected answers {run.statuses}; first: "
            f"{run.sample[:200]}"
        )
    if run.exhausted:
        problems.append(f"{result.kind}: wrk ran out of request lines ({run.exhausted})")
    return problems


def check_case(backend: Backend, case: CaseResult, encryptor: Encryptor) -> None:
    """Count successes per kind (the ground truth), the payment transfers; verify the ledger."""
    assert case.healthz is not None
    counts, case.payment_transfers, report = ground_truth(backend, encryptor)
    problems = []
    for name, rerun in case.sql_replay.items():  # the replay's payments are not the HTTP runs'
        counts[name] -= rerun.succeeded
        if name == "scan":
            case.payment_transfers -= rerun.succeeded
        problems += score_replay(rerun, case)
    case.ledger_ok = report.ok
    case.ledger_problems = report.problems[:20]
    for name, result in case.kinds.items():
        if result.run is None:
            if result.error:
                problems.append(f"{name}: {result.error}")
            continue
        problems += score_kind(
            result,
            paid=counts[name],
            healthz_rps=case.healthz.requests_per_s,
            connections=case.connections,
            backend=case.backend,
        )
        if result.run.socket_errors:  # overload (e.g. requests slower than wrk's 10 s)
            case.notes.append(f"{name}: wrk socket errors {result.run.socket_errors}")
    if case.healthz.unexpected:
        problems.append(f"GET /healthz: {case.healthz.unexpected} unexpected answers")
    paid_orders = counts["scan"] + counts["paycode"]
    if case.payment_transfers != paid_orders:
        problems.append(f"{paid_orders} paid orders but {case.payment_transfers} payment transfers")
    if case.memory_growing:
        case.notes.append(
            f"a server worker's RSS grew by more than {tools.GROWTH_WARNING_MIB:.0f} MiB"
        )
    if not report.ok:
        problems.append("ledger verify: " + "; ".join(report.problems[:3]))
    if problems:
        case.error = "; ".join(problems)


# --- output ---------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


COLUMNS = (
    ("backend", "left"),
    ("server", "left"),
    ("workers", "right"),
    ("conns", "right"),
    ("kind", "left"),
    ("healthz/s", "right"),
    ("req/s", "right"),
    ("paid/s", "right"),
    ("mean ms", "right"),
    ("p50 ms", "right"),
    ("p99 ms", "right"),
    ("errors", "right"),
    ("÷healthz", "right"),
    ("cores srv/db/oth", "right"),
    ("CPU ms/paid srv/db", "right"),
    ("RSS peak MiB", "right"),
    ("target ≥0.4×, p99≤100", "left"),
)


def _verdict(k: KindResult) -> str:
    if k.error is not None or k.run is None:
        return "ERROR"
    if k.target_met:
        return "yes"
    misses = []
    if (k.ratio_vs_healthz or 0.0) < TARGET_RATIO:
        misses.append("ratio")
    if k.run.p99_ms > TARGET_P99_MS:
        misses.append("p99")
    return "no: " + ", ".join(misses)


def _rows(r: CaseResult) -> list[list[str]]:
    """One row per kind of the case (one ERROR row when the case never ran a kind)."""
    head = [r.backend, r.server, str(r.server_workers), str(r.connections)]
    h = r.healthz
    healthz = _fmt(h.requests_per_s) if h is not None else "—"
    if not r.kinds:
        return [[*head, "—", healthz] + ["—"] * (len(COLUMNS) - 7) + ["ERROR"]]
    rows = []
    for name, k in r.kinds.items():
        p = k.run
        if p is None:
            rows.append([*head, name, healthz] + ["—"] * (len(COLUMNS) - 7) + ["ERROR"])
            continue
        cpu = p.cpu
        cores = (
            f"{cpu['server_cores']:.2f}/{cpu['postgres_cores']:.2f}/{cpu['other_cores']:.2f}"
            if cpu
            else "—"
        )
        peaks = "/".join(f"{w['peak_mib']:.0f}" for w in k.memory) or "—"
        rows.append(
            [
                *head,
                name,
                healthz,
                _fmt(p.requests_per_s),
                _fmt(k.paid_per_s),
                _fmt(p.little_ms, 1),
                _fmt(p.p50_ms, 1),
                _fmt(p.p99_ms, 1),
                f"{p.errors:,}",
                _fmt(k.ratio_vs_healthz, 3),
                cores,
                f"{_fmt(k.server_cpu_ms_per_payment, 1)}/{_fmt(k.db_cpu_ms_per_payment, 1)}",
                peaks,
                "ERROR" if r.error is not None and _verdict(k) == "yes" else _verdict(k),
            ]
        )
    for name, q in r.sql_replay.items():
        ceiling = f"bound ≤ {_fmt(q.bound_ratio, 3)}× ({_fmt(q.bound_per_s)}/s)"
        bound = "ERROR" if q.error else ceiling
        rows.append(
            [
                *head, f"{name} SQL (pgbench)", healthz, _fmt(q.tps), _fmt(q.tps), "—",
                _fmt(q.p50_ms, 1), _fmt(q.p99_ms, 1), f"{q.failed:,}", _fmt(q.ratio_vs_healthz, 3),
                f"—/{q.db_cores:.2f}/{q.pgbench_cores:.2f}",
                f"—/{_fmt(q.db_cpu_ms_per_payment, 2)}", "—", bound,
            ]
        )  # fmt: skip
    return rows


def render(results: list[CaseResult], caption: str) -> Table:
    """The results as a Rich table, the run's identity as its caption."""
    table = Table(
        title="Payments through the HTTP API (wrk), beside GET /healthz",
        caption=caption,
        header_style="bold",
    )
    for name, justify in COLUMNS:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for r in results:
        for cells in _rows(r):
            met = cells[-1]
            if met == "yes":
                cells[-1] = "[green]yes[/green]"
            elif met.startswith(("no", "ERROR")):
                cells[-1] = f"[red]{met}[/red]"
            table.add_row(*cells)
    return table


def render_memory(results: list[CaseResult], caption: str) -> Table:
    """Every server worker's RSS over each whole case (all runs, /healthz included)."""
    table = Table(title="Server memory per worker (RSS)", caption=caption, header_style="bold")
    for name in tools.MEMORY_COLUMNS:
        table.add_column(name, justify="left" if name in ("case", "worker") else "right")
    for row in memory_rows(results):
        table.add_row(*row)
    return table


def memory_rows(results: list[CaseResult]) -> list[list[str]]:
    """The memory table's rows: per case, per worker."""
    rows = []
    for r in results:
        summary = [
            tools.WorkerMemory(**{k: v for k, v in w.items() if k != "growing"}) for w in r.memory
        ]
        rows += tools.memory_rows(r.label, summary)
    return rows


def memory_lines(results: list[CaseResult]) -> list[str]:
    """One line per worker and run: the growth of each kind's run (with ``--duration 300``,
    the 5-minute check) and of the whole case."""
    lines = []
    for r in results:
        stretches = [(name, k.memory) for name, k in r.kinds.items()]
        for name, workers in [*stretches, ("whole case", r.memory)]:
            for i, w in enumerate(workers, start=1):
                lines.append(
                    f"memory {r.label} {name}, worker {i} (pid {w['pid']}): "
                    f"{w['start_mib']:.1f} → {w['end_mib']:.1f} MiB over {w['seconds']:.0f} s, "
                    f"peak {w['peak_mib']:.1f}; growth {w['growth_mib']:+.1f} MiB, trend "
                    f"{w['slope_mib_per_min']:+.2f} MiB/min{', GROWING' if w['growing'] else ''}"
                )
    return lines


def markdown_table(results: list[CaseResult], caption: str) -> str:
    """The same table in Markdown (for docs/benchmarks.md), the caption under it."""
    head = "| " + " | ".join(name for name, _ in COLUMNS) + " |"
    rule = "|" + "|".join("---" if j == "left" else "--:" for _, j in COLUMNS) + "|"
    rows = ["| " + " | ".join(cells) + " |" for r in results for cells in _rows(r)]
    return "\n".join([head, rule, *rows, "", caption])


# --- main -----------------------------------------------------------------------------------


@dataclass
class RunContext:
    """What every case of a run shares."""

    wrk: str
    keys: Keys
    var_dir: Path
    stamp: str
    out: Path
    wrk_outputs: dict[str, dict[str, str]] = field(default_factory=dict)
    profiles: dict[str, str] = field(default_factory=dict)


def main(argv: list[str] | None = None) -> int:
    """Run the payments benchmark; 0 when it ran cleanly, 1 when a case failed, 2 when wrk
    is missing (or, with --strict, when the target was missed)."""
    args = parse_args(argv)
    console = Console()
    if not console.is_terminal:  # a log file or pipe: keep table rows on one line
        console = Console(width=max(console.width, 220))
    wrk = args.wrk or shutil.which("wrk")
    if wrk is None or not Path(wrk).exists():
        console.print(
            "[red]wrk not found[/red]: this benchmark loads the server with wrk. Install it "
            "(Debian/Ubuntu: [bold]sudo apt-get install -y wrk[/bold]) or pass --wrk PATH."
        )
        return 2
    configure_logging(level="WARNING")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = Path(args.out) if args.out else BENCH_DIR / "results" / f"payments-{stamp}.json"
    try:  # the server imports it: fail here, with the reason, rather than in every worker
        importlib.import_module(args.app.partition(":")[0])
    except ImportError as exc:
        console.print(f"[red]the application does not import:[/red] {exc}")
        return 1
    problems: list[str] = []  # a case failed or did not check out: exit 1
    notes: list[str] = []
    keys = Keys.new()
    meta: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": tools.git_commit(REPO_ROOT),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "machine": tools.machine(),
        "load_average_before": tools.load_average(),
        "duration_s": args.duration,
        "quick": args.quick,
        "kinds": args.kind_list,
        "server": args.server,
        "residents": args.residents,
        "merchants": args.merchants,
        "orders": args.orders,
        "p2p_transfers": args.p2p_transfers,
        "paycode_devices": args.paycode_devices if "paycode" in args.kind_list else 0,
        "order_amounts_fen": [MIN_ORDER, MAX_ORDER],
        "p2p_amounts_fen": [MIN_P2P, MAX_P2P],
        "memory_interval_s": args.memory_interval,
        "memory_growth_warning_mib": tools.GROWTH_WARNING_MIB,
        "wrk": wrk,
        "wrk_threads": args.threads,
        "app_factory": args.app,
        "server_log": str(out.with_name(f"{out.stem}-server.log")),
    }
    results: list[CaseResult] = []
    seeds: dict[str, Any] = {}
    with (
        tempfile.TemporaryDirectory(prefix="cw-bench-payments-") as tmp,
        Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress,
    ):
        var_dir = Path(tmp)
        ctx = RunContext(wrk=wrk, keys=keys, var_dir=var_dir, stamp=stamp, out=out)
        cases_per_backend = len(args.worker_list) * len(args.connection_list)
        overall = progress.add_task(
            "all cases", total=len(args.backend_list) * cases_per_backend, rate=""
        )
        for name in args.backend_list:
            backend: Backend = (
                PostgresBackend(args.pg_url)
                if name == "postgresql"
                else SqliteBackend(args.sqlite_path)
            )
            try:
                seeded, setup = prepare(backend, args, ctx, progress)
                seeds[name] = asdict(seeded) | {
                    "lines": str(seeded.lines),
                    "p2p_lines": str(seeded.p2p_lines),
                }
                if isinstance(backend, PostgresBackend):
                    meta["postgresql"] = backend.server_info()
            except Exception as exc:  # unreachable server, broken set-up: report, go on
                problems.append(f"{name} set-up: {exc.__class__.__name__}: {exc}"[:800])
                progress.advance(overall, cases_per_backend)
                backend.close(keep=args.keep_db)
                continue
            try:
                for workers in args.worker_list:
                    for connections in args.connection_list:
                        case = CaseResult(
                            backend=name,
                            server=args.server,
                            server_workers=workers,
                            connections=connections,
                            wrk_threads=min(args.threads, connections),
                            duration_s=args.duration,
                            db_pool_size=pool_size_for(workers),
                        )
                        run_case(backend, seeded, setup, case, args, ctx, progress)
                        results.append(case)
                        if case.error:
                            problems.append(f"{case.label}: {case.error}")
                        notes += [f"{case.label}: {note}" for note in case.notes]
                        progress.advance(overall)
            finally:
                backend.close(keep=args.keep_db)
        wrk_outputs = ctx.wrk_outputs
        meta["profiles"] = ctx.profiles
        profiles = ctx.profiles
    meta["load_average_after"] = tools.load_average()
    meta["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    meta["seeds"] = seeds
    caption = tools.run_caption(
        commit=meta["git_commit"],
        load_before=meta["load_average_before"],
        load_after=meta["load_average_after"],
        cores=meta["cpus"],
        baseline="GET /healthz",
    )
    meta["caption"] = caption
    console.print(render(results, caption))
    if any(r.memory for r in results):
        console.print(render_memory(results, caption))
    for note in notes:
        console.print(f"[yellow]note:[/yellow] {note}")
    for problem in problems:
        console.print(f"[red]problem:[/red] {problem}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "meta": meta,
                "targets": {"ratio_vs_healthz": TARGET_RATIO, "p99_ms": TARGET_P99_MS},
                "results": [asdict(r) | {"case": r.label} for r in results],
                "memory_growth": [
                    {"case": r.label, "workers": r.memory, "growing": r.memory_growing}
                    for r in results
                ],
                "problems": problems,
                "notes": notes,
                "markdown": markdown_table(results, caption),
                "wrk_output": wrk_outputs,
            },
            indent=2,
            ensure_ascii=False,
        )
        + "\n"
    )
    disturbed = [
        f"{r.label} {name} ({run.cpu['other_cores']:.2f})"
        for r in results
        for name, run in [("healthz", r.healthz)] + [(n, k.run) for n, k in r.kinds.items()]
        if run is not None and run.cpu.get("other_cores", 0.0) > OTHER_CORES_WARNING
    ]
    if disturbed:
        console.print(
            "[yellow]other work kept the machine busy during: "
            f"{', '.join(disturbed)} (cores); those figures are lower than an idle "
            "machine's (--wait-idle helps on shared machines)[/yellow]"
        )
    for line in memory_lines(results):
        console.print(line)
    for label, path in profiles.items():
        console.print(f"profile {label}: {path}")
    console.print(f"{caption}; JSON: {out}")
    if problems or not results:
        return 1
    missed = [k for r in results for k in r.kinds.values() if not k.target_met]
    return 2 if args.strict and missed else 0


def prepare(
    backend: Backend,
    args: argparse.Namespace,
    ctx: RunContext,
    progress: Progress,
) -> tuple[Seeded, PaycodeSetup]:
    """Create, migrate and seed the backend's seed database; write its request lines."""
    progress.console.log(f"{backend.name}: creating and seeding the database")
    backend.create_seed()
    migrate(backend.seed_url)
    settings = bench_settings(backend.seed_url, ctx.var_dir, ctx.keys)
    runtime = Runtime(
        settings, Database(backend.seed_url, pool_size=SEED_THREADS + 2), ctx.keys.encryptor
    )
    try:
        return seed(
            runtime, args, ctx.var_dir / f"requests-{backend.name}.tsv", progress, backend.name
        )
    finally:
        runtime.close()


if __name__ == "__main__":
    raise SystemExit(main())
