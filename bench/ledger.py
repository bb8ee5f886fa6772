"""Ledger benchmark: transfers/s through the posting engine, against raw SQL under pgbench.

``citywallet bench ledger`` (or ``python -m bench.ledger``) runs, on SQLite and PostgreSQL:

* **ours** - ``ledger.post`` in-process, 1 and 8 worker threads, each transaction through
  ``Database.transact`` (so each thread uses its own pooled connection), single transfers
  and batches of 100 and 1000, with uniform random accounts and with one hot account
  (every transfer credits the same merchant account);
* **group** - single transfers from the same threads through the per-process group-commit
  queue (:class:`citywallet.ledger.groupcommit.PostingQueue`): each thread waits for its own
  result, the queue commits whatever is waiting as one batch;
* **raw** - on the same PostgreSQL, ``pgbench`` with the same client counts and duration
  running an equivalent transfer in raw SQL (``bench/pgbench/transfer.sql``: two balance
  updates and one insert) and a raw batched variant (``bench/pgbench/transfer_batch.sql``:
  lock, ``INSERT ... SELECT``, one ``UPDATE ... FROM`` aggregated deltas) on the very same
  ``ledger_accounts`` / ``ledger_transfers`` tables.

Every case starts from empty tables and fresh accounts: one bank account (no overdraft
flag) funds N customer accounts (``DEBITS_MUST_NOT_EXCEED_CREDITS``) through the engine,
plus one merchant-like account for the hot case. Only transfers whose result is OK count;
after each case the stored rows are checked against that count and the books must balance.
Results go to a Rich table and a JSON file; see docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from sqlalchemy import create_engine, insert
from sqlalchemy.engine import URL, make_url

from bench import tools
from citywallet.ledger import service as ledger
from citywallet.ledger.groupcommit import PostingQueue
from citywallet.ledger.models import Account
from citywallet.ledger.types import AccountCode, AccountFlags, Result, TransferCode, TransferSpec
from citywallet.platform.clock import now_us
from citywallet.platform.db import Database, UnitOfWork
from citywallet.schema import upgrade

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
PGBENCH_DIR = BENCH_DIR / "pgbench"
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/cw_bench"
DEFAULT_SQLITE_PATH = "var/bench/ledger.db"
LEDGER = "CNY"
FUNDING = 10**12  # per customer account: no transfer in a run can come near it
MAX_TRANSFER = 1000  # amounts are uniform in 1..MAX_TRANSFER (the raw scripts agree)
FUNDING_BATCH = 1000
LEDGER_TABLES = ("ledger_transfers", "ledger_pending_timeouts", "ledger_blocks", "ledger_accounts")

# Targets from the issue (PostgreSQL only).
TARGET_SINGLE_VS_RAW = 0.5
TARGET_BATCH_1000_TPS = 50_000.0
TARGET_BATCH_1000_VS_RAW = 0.5
TARGET_HOT_VS_UNIFORM = 0.8
TARGET_GROUP_SINGLE_VS_RAW = 1.0  # issue 13: single transfers through group commit


# --- results --------------------------------------------------------------------------------


@dataclass
class Target:
    """One requirement a measured row is held to."""

    name: str
    required: float
    actual: float | None
    met: bool | None  # None when it could not be evaluated (a figure is missing)


@dataclass
class CaseResult:
    """One measured case."""

    backend: str  # sqlite | postgresql
    engine: str  # citywallet | group | pgbench
    distribution: str  # uniform | hot
    workers: int
    batch: int
    seconds: float
    transactions: int
    transfers: int  # committed transfers with result OK (pgbench: transactions x batch)
    rejected: int  # transfers whose result was not OK (should stay 0)
    failed_transactions: int  # transactions that raised (ours) or failed (pgbench)
    transfers_per_s: float
    p50_ms: float | None
    p99_ms: float | None
    ratio_vs_raw: float | None = None
    ratio_vs_uniform: float | None = None
    targets: list[Target] = field(default_factory=list)
    error: str | None = None
    profile: str | None = None  # --profile: py-spy of this process during the measured run

    @property
    def label(self) -> str:
        """The case name shown in the table."""
        prefix = {"pgbench": "raw ", "group": "group-commit "}.get(self.engine, "")
        kind = "single" if self.batch == 1 else "batch"
        return f"{prefix}{kind} {self.distribution}"


@dataclass(frozen=True)
class CaseSpec:
    """What to run."""

    backend: str
    engine: str
    distribution: str
    workers: int
    batch: int

    @property
    def description(self) -> str:
        """A short line for the progress display."""
        who = {"pgbench": "pgbench", "group": "group commit"}.get(self.engine, "ours")
        return f"{self.backend} {who} {self.distribution} w={self.workers} b={self.batch}"


@dataclass(frozen=True)
class Accounts:
    """The accounts of one fresh case."""

    bank: int
    first_customer: int
    last_customer: int
    merchant: int

    @property
    def customers(self) -> int:
        """How many customer accounts."""
        return self.last_customer - self.first_customer + 1


# --- options --------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="citywallet bench ledger",
        description="Ledger posting throughput vs raw SQL (pgbench). See docs/benchmarks.md.",
    )
    parser.add_argument(
        "--pg-url", default=DEFAULT_PG_URL, help="benchmark database (created and dropped)"
    )
    parser.add_argument(
        "--sqlite-path", default=DEFAULT_SQLITE_PATH, help="SQLite file (recreated)"
    )
    parser.add_argument("--backends", default="sqlite,postgresql", help="comma-separated")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per case")
    parser.add_argument("--quick", action="store_true", help="tiny durations: a smoke test")
    parser.add_argument(
        "--out", default=None, help="JSON path (default bench/results/ledger-<ts>.json)"
    )
    parser.add_argument("--workers", default="1,8", help="thread / pgbench client counts")
    parser.add_argument("--batches", default="1,100,1000", help="transfers per transaction")
    parser.add_argument("--accounts", type=int, default=None, help="customer accounts (10000)")
    parser.add_argument(
        "--committers",
        type=int,
        default=None,
        help="group-commit committer threads (default: the queue's own, 2 on PostgreSQL)",
    )
    parser.add_argument("--no-pgbench", action="store_true", help="skip the raw SQL runs")
    parser.add_argument("--pgbench", default="/usr/bin/pgbench", help="pgbench executable")
    parser.add_argument("--keep-db", action="store_true", help="do not drop the PG database")
    parser.add_argument("--strict", action="store_true", help="exit 2 when a target is missed")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="record each of our cases (this process, all threads) with py-spy beside the JSON",
    )
    parser.add_argument(
        "--profile-format",
        choices=sorted(tools.PROFILE_FORMATS),
        default="flamegraph",
        help="py-spy output: flamegraph (SVG), speedscope (JSON) or raw (collapsed stacks)",
    )
    args = parser.parse_args(list(argv) if argv is not None else None)
    if args.quick:
        args.duration = min(args.duration, 0.5)
    if args.accounts is None:
        args.accounts = 1000 if args.quick else 10_000
    if args.accounts < 2:
        parser.error("--accounts must be at least 2")
    args.backend_list = _csv(args.backends, {"sqlite", "postgresql"}, parser)
    args.worker_list = [int(w) for w in args.workers.split(",") if w.strip()]
    args.batch_list = [int(b) for b in args.batches.split(",") if b.strip()]
    if not args.worker_list or min(args.worker_list) < 1:
        parser.error("--workers needs positive integers")
    if not args.batch_list or min(args.batch_list) < 1:
        parser.error("--batches needs positive integers")
    return args


def _csv(value: str, allowed: set[str], parser: argparse.ArgumentParser) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [v for v in items if v not in allowed]
    if unknown or not items:
        parser.error(f"unknown or empty: {value!r} (allowed: {', '.join(sorted(allowed))})")
    return items


# --- databases ------------------------------------------------------------------------------


class Backend:
    """A benchmark database that can be reset to empty tables between cases."""

    name: str
    url: str

    def reset(self) -> None:
        """Make every table empty."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the backend holds."""


class SqliteBackend(Backend):
    """A SQLite file, recreated from a migrated template for every case."""

    name = "sqlite"

    def __init__(self, path: str) -> None:
        self.path = (REPO_ROOT / path) if not Path(path).is_absolute() else Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.template = self.path.with_name(self.path.stem + "-template.db")
        _remove_sqlite(self.template)
        upgrade(f"sqlite:///{self.template}")
        self.url = f"sqlite:///{self.path}"

    def reset(self) -> None:
        _remove_sqlite(self.path)
        shutil.copyfile(self.template, self.path)

    def close(self) -> None:
        _remove_sqlite(self.template)


def _remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(str(path) + suffix).unlink(missing_ok=True)


class PostgresBackend(Backend):
    """A PostgreSQL database created (and finally dropped) through the ``postgres`` db."""

    name = "postgresql"

    def __init__(self, url: str, *, keep: bool) -> None:
        self.parsed: URL = make_url(url)
        if not self.parsed.database:
            raise ValueError(f"--pg-url needs a database name: {url}")
        self.url = url
        self.keep = keep
        self.admin_url = self.parsed.set(database="postgres")
        self._admin("DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        self._admin("CREATE DATABASE {db}")
        upgrade(url)
        engine = create_engine(url)
        try:
            with engine.begin() as conn:
                # straight to psycopg: no parameters, so no placeholder parsing of the file
                driver = conn.connection.driver_connection
                assert driver is not None
                driver.execute((PGBENCH_DIR / "setup.sql").read_text())
                self.server_info = {
                    "version": conn.exec_driver_sql("SHOW server_version").scalar_one(),
                    **{
                        str(name): str(setting)
                        for name, setting in conn.exec_driver_sql(
                            "SELECT name, setting || coalesce(unit, '') FROM pg_settings "
                            "WHERE name IN ('fsync', 'synchronous_commit', 'shared_buffers', "
                            "'wal_level', 'max_connections')"
                        ).all()
                    },
                }
        finally:
            engine.dispose()

    def _admin(self, statement: str) -> None:
        engine = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                quoted = conn.dialect.identifier_preparer.quote(str(self.parsed.database))
                conn.exec_driver_sql(statement.format(db=quoted))
        finally:
            engine.dispose()

    def reset(self) -> None:
        engine = create_engine(self.url)
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql(
                    f"TRUNCATE {', '.join(LEDGER_TABLES)} RESTART IDENTITY CASCADE"
                )
        finally:
            engine.dispose()

    def close(self) -> None:
        if not self.keep:
            self._admin("DROP DATABASE IF EXISTS {db} WITH (FORCE)")


def create_bench_accounts(db: Database, customers: int) -> Accounts:
    """One bank account, ``customers`` funded customer accounts and one merchant account."""
    now = now_us()

    def row(code: int, flags: int, owner: str) -> dict[str, Any]:
        return {
            "ledger": LEDGER,
            "code": code,
            "flags": flags,
            "owner_ref": owner,
            "debits_pending": 0,
            "debits_posted": 0,
            "credits_pending": 0,
            "credits_posted": 0,
            "created_at": now,
        }

    no_overdraft = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)

    def create(uow: UnitOfWork) -> Accounts:
        conn = uow.session.connection()
        conn.execute(insert(Account), [row(AccountCode.BANK_SETTLEMENT, 0, "bench:bank")])
        conn.execute(
            insert(Account),
            [
                row(AccountCode.CUSTOMER_WALLET, no_overdraft, f"bench:c{i}")
                for i in range(customers)
            ],
        )
        conn.execute(
            insert(Account), [row(AccountCode.MERCHANT_RECEIVABLE, no_overdraft, "bench:merchant")]
        )
        ids = {
            str(owner): int(i)
            for owner, i in conn.exec_driver_sql(
                "SELECT owner_ref, id FROM ledger_accounts "
                "WHERE owner_ref IN ('bench:bank', 'bench:merchant')"
            ).all()
        }
        lo, hi, n = conn.exec_driver_sql(
            "SELECT min(id), max(id), count(*) FROM ledger_accounts WHERE code = "
            f"{int(AccountCode.CUSTOMER_WALLET)}"
        ).one()
        if hi - lo + 1 != n or n != customers:
            raise RuntimeError("customer account ids are not contiguous")
        return Accounts(ids["bench:bank"], int(lo), int(hi), ids["bench:merchant"])

    accounts = db.transact(create)
    ids = list(range(accounts.first_customer, accounts.last_customer + 1))
    for start in range(0, len(ids), FUNDING_BATCH):
        specs = [
            TransferSpec(f"fund-{cid}", accounts.bank, cid, FUNDING, LEDGER, TransferCode.TOPUP)
            for cid in ids[start : start + FUNDING_BATCH]
        ]
        results = db.transact(lambda uow, s=specs: ledger.post(uow, transfers=s))  # type: ignore[misc]
        if any(r is not Result.OK for r in results):
            raise RuntimeError(f"funding failed: {sorted({r.value for r in results})}")
    if db.dialect == "postgresql":
        with db.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE ledger_accounts")
            conn.exec_driver_sql("ANALYZE ledger_transfers")
            conn.commit()
    return accounts


def check_books(db: Database, accounts: Accounts, transfers: int) -> str | None:
    """Whether the stored rows agree with the count and the books balance; a problem or None."""
    with db.engine.connect() as conn:
        stored = int(conn.exec_driver_sql("SELECT count(*) FROM ledger_transfers").scalar_one())
        debits, credits, overdrawn = conn.exec_driver_sql(
            "SELECT sum(debits_posted), sum(credits_posted), "
            "sum(CASE WHEN (flags & 1) = 1 AND debits_posted > credits_posted THEN 1 ELSE 0 END) "
            "FROM ledger_accounts"
        ).one()
        moved = conn.exec_driver_sql("SELECT sum(amount) FROM ledger_transfers").scalar_one()
    expected = accounts.customers + transfers
    if stored != expected:
        return f"{stored} transfers stored, expected {expected} (funding + counted)"
    if int(debits) != int(credits) or int(debits) != int(moved):
        return f"books do not balance: debits {debits}, credits {credits}, moved {moved}"
    if int(overdrawn or 0):
        return f"{overdrawn} no-overdraft accounts overdrawn"
    return None


# --- our engine -----------------------------------------------------------------------------


class Meter:
    """Transfers committed so far, shared by the workers for the progress display."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.transfers = 0

    def add(self, n: int) -> None:
        """Count ``n`` more committed transfers."""
        with self._lock:
            self.transfers += n


@dataclass
class WorkerStats:
    """What one worker thread measured."""

    transfers: int = 0
    rejected: int = 0
    failed: int = 0
    latencies: list[float] = field(default_factory=list)
    finished_at: float = 0.0
    error: str | None = None


def run_ours(
    db: Database,
    spec: CaseSpec,
    accounts: Accounts,
    duration: float,
    tick: Callable[[float, int], None],
    committers: int | None = None,
) -> CaseResult:
    """Post batches from ``spec.workers`` threads for ``duration`` seconds."""
    meter = Meter()
    barrier = threading.Barrier(spec.workers + 1)
    clock: dict[str, float] = {}
    stats = [WorkerStats() for _ in range(spec.workers)]
    tag = f"{spec.engine[0]}{spec.distribution[0]}{spec.workers}x{spec.batch}"
    queue = PostingQueue(db, committers=committers) if spec.engine == "group" else None

    def post(transfers: list[TransferSpec]) -> list[Result]:
        if queue is not None:
            return queue.post(transfers)
        return db.transact(lambda uow: ledger.post(uow, transfers=transfers))

    def work(index: int) -> None:
        mine = stats[index]
        rng = random.Random(f"{tag}-{index}")  # a workload, not a secret
        lo, n = accounts.first_customer, accounts.customers
        hot = accounts.merchant if spec.distribution == "hot" else 0
        draw = rng.random
        code = int(TransferCode.SEED)
        serial = 0
        try:
            db.transact(lambda uow: uow.session.connection())  # open this thread's connection
        except Exception as exc:  # reported with the case; the loop below will say more
            mine.error = f"warm-up: {exc.__class__.__name__}: {exc}"[:300]
        finally:
            barrier.wait()
        deadline = clock["deadline"]
        try:
            while time.perf_counter() < deadline:
                transfers = []
                for _ in range(spec.batch):  # cheap draws: this is the client's time too
                    debit = lo + int(draw() * n)
                    if hot:
                        credit = hot
                    else:
                        credit = lo + int(draw() * (n - 1))
                        credit += credit >= debit
                    serial += 1
                    transfers.append(
                        TransferSpec(
                            f"{tag}-{index}-{serial}",
                            debit,
                            credit,
                            1 + int(draw() * MAX_TRANSFER),
                            LEDGER,
                            code,
                        )
                    )
                started = time.perf_counter()
                try:
                    results = post(transfers)
                except Exception as exc:  # counted and reported; the case goes on
                    mine.failed += 1
                    mine.error = f"{exc.__class__.__name__}: {exc}"[:300]
                    continue
                mine.latencies.append(time.perf_counter() - started)
                ok = sum(1 for r in results if r is Result.OK)
                mine.transfers += ok
                mine.rejected += len(results) - ok
                meter.add(ok)
        finally:
            mine.finished_at = time.perf_counter()

    threads = [
        threading.Thread(target=work, args=(i,), name=f"bench-{i}", daemon=True)
        for i in range(spec.workers)
    ]
    for thread in threads:
        thread.start()
    start = time.perf_counter()
    clock["deadline"] = start + duration
    barrier.wait()
    start = time.perf_counter()
    clock["start"] = start
    while any(t.is_alive() for t in threads):
        tick(time.perf_counter() - start, meter.transfers)
        time.sleep(0.1)
    for thread in threads:
        thread.join()
    if queue is not None:
        queue.close()
    elapsed = max(s.finished_at for s in stats) - start
    transfers = sum(s.transfers for s in stats)
    tick(elapsed, transfers)
    latencies = sorted(x for s in stats for x in s.latencies)
    errors = [s.error for s in stats if s.error]
    return CaseResult(
        backend=spec.backend,
        engine=spec.engine,
        distribution=spec.distribution,
        workers=spec.workers,
        batch=spec.batch,
        seconds=round(elapsed, 3),
        transactions=len(latencies),
        transfers=transfers,
        rejected=sum(s.rejected for s in stats),
        failed_transactions=sum(s.failed for s in stats),
        transfers_per_s=transfers / elapsed if elapsed > 0 else 0.0,
        p50_ms=_percentile_ms(latencies, 0.50),
        p99_ms=_percentile_ms(latencies, 0.99),
        error=errors[0] if errors else None,
    )


def _percentile_ms(sorted_seconds: Sequence[float], q: float) -> float | None:
    if not sorted_seconds:
        return None
    index = min(len(sorted_seconds) - 1, max(0, round(q * (len(sorted_seconds) - 1))))
    return round(sorted_seconds[index] * 1000, 3)


# --- pgbench --------------------------------------------------------------------------------

_TPS = re.compile(r"^tps = ([0-9.]+) \(without initial connection time\)", re.MULTILINE)
_PROCESSED = re.compile(r"^number of transactions actually processed: (\d+)", re.MULTILINE)
_FAILED = re.compile(r"^number of failed transactions: (\d+)", re.MULTILINE)


def run_pgbench(
    backend: PostgresBackend,
    spec: CaseSpec,
    accounts: Accounts,
    duration: float,
    executable: str,
    quick: bool,
    tick: Callable[[float, int], None],
) -> CaseResult:
    """Run the raw SQL script under pgbench with ``spec.workers`` clients."""
    url = backend.parsed
    script = PGBENCH_DIR / ("transfer.sql" if spec.batch == 1 else "transfer_batch.sql")
    hot = accounts.merchant if spec.distribution == "hot" else 0
    with tempfile.TemporaryDirectory(prefix="cw-pgbench-") as logdir:
        command = [
            executable,
            "--no-vacuum",
            "--protocol=prepared",
            f"--client={spec.workers}",
            f"--jobs={min(2, spec.workers)}",
            # pgbench takes whole seconds; the smoke test runs a few transactions instead
            *(["--transactions=10"] if quick else [f"--time={max(1, round(duration))}"]),
            f"--file={script}",
            f"--define=lo={accounts.first_customer}",
            f"--define=hi={accounts.last_customer}",
            f"--define=hot={hot}",
            f"--define=batch={spec.batch}",
            "--log",
            f"--log-prefix={Path(logdir) / 'pgbench'}",
            f"--host={url.host or '127.0.0.1'}",
            f"--port={url.port or 5432}",
            f"--username={url.username or 'postgres'}",
            str(url.database),
        ]
        env = dict(os.environ)
        if url.password:
            env["PGPASSWORD"] = str(url.password)
        started = time.perf_counter()
        with subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        ) as process:
            while process.poll() is None:
                tick(time.perf_counter() - started, 0)
                time.sleep(0.1)
            stdout, stderr = process.communicate()
        elapsed = time.perf_counter() - started
        latencies = sorted(_pgbench_latencies(Path(logdir)))
    tps_match = _TPS.search(stdout)
    processed = _PROCESSED.search(stdout)
    failed = _FAILED.search(stdout)
    error = None
    if process.returncode != 0 or tps_match is None or processed is None:
        error = f"pgbench exit {process.returncode}: {(stderr or stdout).strip()[-400:]}"
    tps = float(tps_match.group(1)) if tps_match else 0.0
    transactions = int(processed.group(1)) if processed else 0
    tick(elapsed, transactions * spec.batch)
    return CaseResult(
        backend=spec.backend,
        engine="pgbench",
        distribution=spec.distribution,
        workers=spec.workers,
        batch=spec.batch,
        seconds=round(elapsed, 3),
        transactions=transactions,
        transfers=transactions * spec.batch,
        rejected=0,
        failed_transactions=int(failed.group(1)) if failed else 0,
        transfers_per_s=tps * spec.batch,
        p50_ms=_percentile_ms(latencies, 0.50),
        p99_ms=_percentile_ms(latencies, 0.99),
        error=error,
    )


def _pgbench_latencies(logdir: Path) -> Iterator[float]:
    """Per-transaction latencies (seconds) from pgbench's --log files."""
    for path in logdir.glob("pgbench*"):
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[2].isdigit():
                yield int(parts[2]) / 1_000_000


# --- targets --------------------------------------------------------------------------------


def evaluate(results: list[CaseResult]) -> None:
    """Fill in ratios (ours/raw, hot/uniform) and the issue's targets on PostgreSQL."""
    good = {
        (r.backend, r.engine, r.distribution, r.workers, r.batch): r
        for r in results
        if r.error is None
    }
    for r in good.values():
        uniform = good.get((r.backend, r.engine, "uniform", r.workers, r.batch))
        if r.distribution == "hot" and uniform is not None and uniform.transfers_per_s > 0:
            r.ratio_vs_uniform = r.transfers_per_s / uniform.transfers_per_s
        if r.engine == "pgbench" or r.backend != "postgresql":
            continue
        raw = good.get(("postgresql", "pgbench", r.distribution, r.workers, r.batch))
        if raw is not None and raw.transfers_per_s > 0:
            r.ratio_vs_raw = r.transfers_per_s / raw.transfers_per_s
        if r.engine == "group":
            r.targets.append(_target("≥1.0×raw", TARGET_GROUP_SINGLE_VS_RAW, r.ratio_vs_raw))
            continue
        if r.batch == 1:
            r.targets.append(_target("≥0.5×raw", TARGET_SINGLE_VS_RAW, r.ratio_vs_raw))
        if r.batch == 1000:
            r.targets.append(_target("≥50k/s", TARGET_BATCH_1000_TPS, r.transfers_per_s))
            r.targets.append(_target("≥0.5×raw", TARGET_BATCH_1000_VS_RAW, r.ratio_vs_raw))
        if r.batch > 1 and r.distribution == "hot":
            r.targets.append(_target("≥0.8×uniform", TARGET_HOT_VS_UNIFORM, r.ratio_vs_uniform))


def _target(name: str, required: float, actual: float | None) -> Target:
    return Target(name, required, actual, None if actual is None else actual >= required)


# --- output ---------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def render(results: list[CaseResult], caption: str = "") -> Table:
    """The results as a Rich table, the run's identity as its caption."""
    table = Table(title="Ledger posting throughput", caption=caption, header_style="bold")
    for name, justify in (
        ("backend", "left"),
        ("case", "left"),
        ("workers", "right"),
        ("batch", "right"),
        ("transfers/s", "right"),
        ("p50 ms", "right"),
        ("p99 ms", "right"),
        ("ratio vs raw", "right"),
        ("hot/uniform", "right"),
        ("target", "left"),
        ("met?", "left"),
    ):
        table.add_column(name, justify=justify, no_wrap=name not in ("target", "met?"))  # type: ignore[arg-type]
    for r in results:
        if r.error is not None:
            met = "[red]ERROR[/red]"
        elif not r.targets:
            met = ""
        elif all(t.met for t in r.targets):
            met = "[green]yes[/green]"
        else:
            met = "[red]NO[/red] " + ", ".join(t.name for t in r.targets if not t.met)
        table.add_row(
            r.backend,
            r.label,
            str(r.workers),
            str(r.batch),
            "—" if r.error else f"{r.transfers_per_s:,.0f}",
            _fmt(r.p50_ms),
            _fmt(r.p99_ms),
            _fmt(r.ratio_vs_raw),
            _fmt(r.ratio_vs_uniform),
            ", ".join(t.name for t in r.targets),
            met,
        )
    return table


def markdown_table(results: list[CaseResult]) -> str:
    """The same table in Markdown (for docs/benchmarks.md)."""
    lines = [
        "| backend | case | workers | batch | transfers/s | p50 ms | p99 ms | ratio vs raw "
        "| hot/uniform | target | met? |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|---|---|",
    ]
    for r in results:
        if r.error is not None:
            met = "ERROR"
        elif not r.targets:
            met = ""
        elif all(t.met for t in r.targets):
            met = "yes"
        else:
            met = "**no**: " + ", ".join(t.name for t in r.targets if not t.met)
        tps = "—" if r.error else f"{r.transfers_per_s:,.0f}"
        lines.append(
            f"| {r.backend} | {r.label} | {r.workers} | {r.batch} | {tps} | {_fmt(r.p50_ms)} "
            f"| {_fmt(r.p99_ms)} | {_fmt(r.ratio_vs_raw)} | {_fmt(r.ratio_vs_uniform)} "
            f"| {', '.join(t.name for t in r.targets)} | {met} |"
        )
    return "\n".join(lines)


# --- main -----------------------------------------------------------------------------------


def plan(args: argparse.Namespace, backend: str) -> list[CaseSpec]:
    """The cases of one backend, ours and raw interleaved so drift hits both alike."""
    cases: list[CaseSpec] = []
    for workers in args.worker_list:
        for batch in args.batch_list:
            for distribution in ("uniform", "hot"):
                cases.append(CaseSpec(backend, "citywallet", distribution, workers, batch))
                if batch == 1 and workers > 1:
                    cases.append(CaseSpec(backend, "group", distribution, workers, batch))
                if backend == "postgresql" and not args.no_pgbench:
                    cases.append(CaseSpec(backend, "pgbench", distribution, workers, batch))
    return cases


def main(argv: list[str] | None = None) -> int:
    """Run the ledger benchmark; 0 when it ran cleanly (2 with --strict and a missed target)."""
    args = parse_args(argv)
    console = Console()
    if not console.is_terminal:  # a log file or pipe: keep table rows on one line
        console = Console(width=max(console.width, 150))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = Path(args.out) if args.out else BENCH_DIR / "results" / f"ledger-{stamp}.json"
    if (
        not args.no_pgbench
        and "postgresql" in args.backend_list
        and not Path(args.pgbench).exists()
    ):
        console.print(f"[red]pgbench not found at {args.pgbench}[/red] (or pass --no-pgbench)")
        return 1
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
        "customer_accounts": args.accounts,
        "workers": args.worker_list,
        "committers": args.committers,
        "batches": args.batch_list,
    }
    all_cases = {b: plan(args, b) for b in args.backend_list}
    results: list[CaseResult] = []
    problems: list[str] = []
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        overall = progress.add_task(
            "all cases", total=sum(len(c) for c in all_cases.values()), rate=""
        )
        for backend_name, cases in all_cases.items():
            progress.update(overall, description=f"{backend_name}: preparing")
            try:
                backend: Backend = (
                    SqliteBackend(args.sqlite_path)
                    if backend_name == "sqlite"
                    else PostgresBackend(args.pg_url, keep=args.keep_db)
                )
            except Exception as exc:  # unreachable server, bad URL: report, go on
                problems.append(f"{backend_name}: {exc.__class__.__name__}: {exc}")
                progress.advance(overall, len(cases))
                continue
            if isinstance(backend, PostgresBackend):
                meta["postgresql"] = backend.server_info
            try:
                for spec in cases:
                    progress.update(overall, description=f"{backend_name} ({len(results)} done)")
                    result = _run_case(backend, spec, args, progress, out)
                    results.append(result)
                    if result.error:
                        problems.append(f"{spec.description}: {result.error}")
                    progress.advance(overall)
            finally:
                backend.close()
    evaluate(results)
    meta["load_average_after"] = tools.load_average()
    meta["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    caption = tools.run_caption(
        commit=meta["git_commit"],
        load_before=meta["load_average_before"],
        load_after=meta["load_average_after"],
        cores=meta["cpus"],
        baseline="raw SQL (pgbench) and the uniform case",
    )
    meta["caption"] = caption
    meta["profiles"] = {f"{r.backend} {r.label} w={r.workers} b={r.batch}": r.profile
                        for r in results if r.profile}  # fmt: skip
    console.print(render(results, caption))
    for problem in problems:
        console.print(f"[red]problem:[/red] {problem}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "meta": meta,
                "results": [asdict(r) | {"case": r.label} for r in results],
                "problems": problems,
                "markdown": markdown_table(results) + "\n\n" + caption,
            },
            indent=2,
        )
        + "\n"
    )
    for label, path in meta["profiles"].items():
        console.print(f"profile {label}: {path}")
    console.print(f"{caption}; JSON: {out}")
    if problems:
        return 1
    missed = [t for r in results for t in r.targets if t.met is not True]
    return 2 if args.strict and missed else 0


def _run_case(
    backend: Backend, spec: CaseSpec, args: argparse.Namespace, progress: Progress, out: Path
) -> CaseResult:
    """Reset the database, create and fund fresh accounts, measure, check the books."""
    task: TaskID = progress.add_task(spec.description, total=args.duration, rate="setting up")
    try:
        backend.reset()
        db = Database(backend.url, pool_size=max(args.worker_list) + 2)
        try:
            accounts = create_bench_accounts(db, args.accounts)

            def tick(elapsed: float, transfers: int) -> None:
                rate = (
                    f"{transfers / elapsed:,.0f} transfers/s" if elapsed > 0 and transfers else ""
                )
                progress.update(task, completed=min(elapsed, args.duration), rate=rate)

            if spec.engine == "pgbench":
                assert isinstance(backend, PostgresBackend)
                result = run_pgbench(
                    backend, spec, accounts, args.duration, args.pgbench, args.quick, tick
                )
            else:
                name = (
                    f"{spec.backend}-{spec.engine}-{spec.distribution}"
                    f"-w{spec.workers}-b{spec.batch}"
                )
                profile = (
                    tools.Profile(
                        os.getpid(),
                        tools.profile_path(out, name, args.profile_format),
                        fmt=args.profile_format,
                    ).start()
                    if args.profile
                    else None
                )
                try:
                    result = run_ours(db, spec, accounts, args.duration, tick, args.committers)
                finally:
                    if profile is not None:
                        path = profile.finish()
                        if path is None:
                            progress.console.log(f"{spec.description}: {profile.problem}")
                if profile is not None:
                    result.profile = path
            if result.error is None:
                result.error = check_books(db, accounts, result.transfers)
        finally:
            db.dispose()
    except Exception as exc:  # a case that cannot run is reported, the others still run
        result = CaseResult(
            spec.backend, spec.engine, spec.distribution, spec.workers, spec.batch,
            0.0, 0, 0, 0, 0, 0.0, None, None,
            error=f"{exc.__class__.__name__}: {exc}"[:400],
        )  # fmt: skip
    finally:
        progress.remove_task(task)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
