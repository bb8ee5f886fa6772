"""Prometheus metrics: what every process counts, and what the database says at a scrape.

Counters and histograms live in the process that counts them. With several server
processes (``citywallet serve --workers N``) each writes its values to files in
``PROMETHEUS_MULTIPROC_DIR`` (``serve`` sets it to ``var_dir/metrics`` and empties it at
start), and ``/metrics`` sums the files of all of them (prometheus-client's multiprocess
mode), so any worker answering a scrape reports the whole server.

Money moved is counted where it is decided, once: the ledger adds each batch's created
transfers to its connection (:func:`count_transfers`) and they reach the counters only
when that connection's transaction commits (a rolled-back batch counts nothing).

State that lives in the database (money held in pending transfers, the seal lag, the
outbox and job backlog, failed settlements) is read at scrape time by
:class:`DatabaseState`, at most once per ``ttl`` seconds, with indexed queries.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, Engine

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

REQUESTS = Counter("citywallet_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "citywallet_http_request_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
REFUSALS = Counter(
    "citywallet_refusals_total",
    "Requests refused with a problem+json answer (4xx), by its stable code",
    ["code"],
)
TRANSFERS = Counter(
    "citywallet_ledger_transfers_total",
    "Ledger transfers committed, by code (p2p, payment, redpacket_claim, ...) and phase "
    "(single, pending, post, void)",
    ["code", "phase"],
)
AMOUNT = Counter(
    "citywallet_ledger_amount_fen_total",
    "Money moved by committed ledger transfers (fen), by code and phase",
    ["code", "phase"],
)

_PENDING_KEY = "citywallet.metrics.transfers"
# Flags as the ledger defines them (ledger.types.TransferFlags); the platform may not import
# the ledger, so the three bits are named here once.
_PENDING, _POST, _VOID = 2, 4, 8


def phase_of(flags: int) -> str:
    """A transfer's phase from its flags: single, pending, post or void."""
    if flags & _POST:
        return "post"
    if flags & _VOID:
        return "void"
    if flags & _PENDING:
        return "pending"
    return "single"


def count_transfers(conn: Connection, created: Iterable[tuple[str, int, int]]) -> None:
    """Remember ``(code name, flags, amount)`` of transfers written on ``conn``; they are
    counted when its transaction commits, forgotten if it rolls back."""
    tally: Tally[tuple[str, str]] | None = conn.info.get(_PENDING_KEY)
    amounts: Tally[tuple[str, str]]
    if tally is None:
        tally = conn.info[_PENDING_KEY] = Tally()
        conn.info[_PENDING_KEY + ".amount"] = Tally()
    amounts = conn.info[_PENDING_KEY + ".amount"]
    for code, flags, amount in created:
        key = (code, phase_of(flags))
        tally[key] += 1
        amounts[key] += amount


@event.listens_for(Engine, "commit")
def _committed(conn: Connection) -> None:
    if conn.invalidated:  # a lost connection: its info cannot be read, nothing was counted
        return
    tally: Tally[tuple[str, str]] | None = conn.info.pop(_PENDING_KEY, None)
    amounts: Tally[tuple[str, str]] = conn.info.pop(_PENDING_KEY + ".amount", Tally())
    if not tally:
        return
    for (code, phase), count in tally.items():
        TRANSFERS.labels(code, phase).inc(count)
        AMOUNT.labels(code, phase).inc(amounts[(code, phase)])


@event.listens_for(Engine, "rollback")
def _rolled_back(conn: Connection) -> None:
    # Reading .info of a connection lost mid-transaction would try to reconnect it (and
    # refuse: PendingRollbackError); its tally goes with the pooled connection it named.
    if conn.invalidated:
        return
    conn.info.pop(_PENDING_KEY, None)
    conn.info.pop(_PENDING_KEY + ".amount", None)


# ---- the database's state, read at scrape time ---------------------------------------------

STATE_QUERIES: dict[str, tuple[str, str]] = {
    # name: (help, SQL returning one number; :now is µs since the epoch)
    "citywallet_pending_money_fen": (
        "Money held in open pending ledger transfers (fen): reserved, neither posted nor voided",
        "SELECT COALESCE(SUM(debits_pending), 0) FROM ledger_accounts",
    ),
    "citywallet_pending_overdue_transfers": (
        "Open pending transfers past their timeout that the expiry job has not voided yet",
        "SELECT COUNT(*) FROM ledger_pending_timeouts WHERE expires_at < :now",
    ),
    "citywallet_ledger_seal_lag_seconds": (
        "Age of the oldest transfer not yet sealed into a block (0: all sealed)",
        "SELECT COALESCE((:now - MIN(timestamp)) / 1000000.0, 0) FROM ledger_transfers "
        "WHERE block_height IS NULL",
    ),
    "citywallet_outbox_backlog": (
        "Outgoing messages (webhooks, SMS, interop) not delivered yet",
        "SELECT COUNT(*) FROM platform_outbox WHERE delivered_at IS NULL",
    ),
    "citywallet_jobs_due": (
        "Background jobs due and not started",
        "SELECT COUNT(*) FROM platform_jobs WHERE status = 'queued' AND run_at <= :now",
    ),
    "citywallet_settlements_failed": (
        "Merchant settlements that failed or whose bank outcome is unknown",
        "SELECT COUNT(*) FROM merchant_settlements WHERE status IN ('failed', 'unknown')",
    ),
}


class DatabaseState(Collector):
    """Gauges read from the database when scraped, cached ``ttl`` seconds; a query that
    fails (a table not there yet, the database down) leaves its gauge out of the answer
    and sets ``citywallet_database_up`` to 0."""

    def __init__(self, engine: Engine, *, ttl: float = 5.0, clock: Callable[[], int]) -> None:
        self._engine = engine
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._read_at = float("-inf")
        self._values: dict[str, float] = {}
        self._up = 0.0

    def read(self) -> tuple[float, dict[str, float]]:
        """``(database up, {gauge: value})``, from the cache if it is fresh."""
        with self._lock:
            if time.monotonic() - self._read_at < self._ttl:
                return self._up, dict(self._values)
            values: dict[str, float] = {}
            up = 1.0
            try:
                with self._engine.connect() as conn:
                    now = self._clock()
                    for name, (_, sql) in STATE_QUERIES.items():
                        try:
                            values[name] = float(conn.execute(text(sql), {"now": now}).scalar_one())
                        except Exception:  # one gauge missing, the rest still told
                            conn.rollback()
                    conn.rollback()  # read only
            except Exception:  # the database is down: say so, do not fail
                up = 0.0
            self._read_at, self._values, self._up = time.monotonic(), values, up
            return up, dict(values)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up, values = self.read()
        yield GaugeMetricFamily("citywallet_database_up", "The database answered", value=up)
        for name, value in values.items():
            yield GaugeMetricFamily(name, STATE_QUERIES[name][0], value=value)


def multiprocess_dir() -> Path | None:
    """The directory the processes of one server share, when there are several."""
    folder = os.environ.get(MULTIPROC_ENV)
    return Path(folder) if folder else None


def prepare_multiprocess(folder: Path) -> None:
    """Make ``folder`` an empty metrics directory and point this process (and the server
    processes it starts) at it: before any worker starts, so no stale file is summed."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink()
    os.environ[MULTIPROC_ENV] = str(folder)


def exposition(state: Collector | None) -> tuple[bytes, str]:
    """The ``/metrics`` body and its content type: this process's registry, or the sum of
    every process's files in multiprocess mode; plus the database's state."""
    registry: Any
    if multiprocess_dir() is not None:
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry = CollectorRegistry()
        registry.register(_Everything())
    if state is not None:
        registry.register(state)
    return generate_latest(registry), CONTENT_TYPE_LATEST


class _Everything(Collector):
    """The process's default registry, as one collector of a per-scrape registry."""

    def collect(self) -> Iterator[Any]:
        yield from REGISTRY.collect()
