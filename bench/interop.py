"""Cross-provider P2P through the switch against in-provider P2P: ``citywallet bench interop``.

Three providers (cells) and the switch run as real processes on this machine
(:class:`citywallet.interop.cells.Cells`, each on its own PostgreSQL database). In the same
run, the same client threads first send **in-provider** P2P transfers
(``POST /v1/wallet/transfers`` to a resident of the same cell) for ``--seconds``, then
**cross-provider** payments for as long: per payment lookup → quote → transfer through the
residents' API of the payer's cell (``citywallet.interop.cells.pay_across``), each stage timed,
the transfer until its final state. Reported: payments/s, p50/p99 per stage and end to end, the
ratio cross / in-provider (issue 14's target ≥ 0.3) and whether p99 end to end ≤ 1 s.
Prints a Rich table and writes JSON (bench/results/interop-<timestamp>.json). Targets are
reported, not enforced. See docs/benchmarks.md and docs/interop.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2
from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench import tools
from citywallet.interop.cells import Cells, Resident, pay_across
from citywallet.interop.faultproxy import FaultRates
from citywallet.platform.logging import configure_logging

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
TARGET_RATIO = 0.3
TARGET_P99_SECONDS = 1.0
AMOUNT = 1  # fen: a run never meets a limit or empties a wallet


@dataclass
class Case:
    """One measured stretch: completed operations, failures and latencies per stage."""

    name: str
    seconds: float = 0.0
    done: int = 0
    failed: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    samples: dict[str, list[float]] = field(default_factory=dict)

    @property
    def per_second(self) -> float:
        return self.done / self.seconds if self.seconds else 0.0

    def summary(self) -> dict[str, Any]:
        """Rates and percentiles (ms) per stage; the raw samples are left out."""
        return {
            "name": self.name,
            "seconds": round(self.seconds, 2),
            "done": self.done,
            "failed": self.failed,
            "per_second": round(self.per_second, 1),
            "errors": self.errors,
            "stages_ms": {
                stage: {
                    "p50": round(percentile(values, 50) * 1000, 1),
                    "p99": round(percentile(values, 99) * 1000, 1),
                    "n": len(values),
                }
                for stage, values in self.samples.items()
            },
        }


def percentile(values: Sequence[float], p: float) -> float:
    """The nearest-rank percentile ``p`` of ``values`` (0 for none)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))
    return ordered[int(rank) - 1]


Operation = Callable[[httpx2.Client, random.Random], dict[str, float]]


def run_case(
    name: str, clients: int, seconds: float, base_urls: Sequence[str], operation: Operation
) -> Case:
    """``clients`` threads repeat ``operation`` for ``seconds``; each returns stage timings."""
    case = Case(name)
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client(index: int) -> None:
        rng = random.Random(index)  # a workload, not a secret
        with httpx2.Client(base_url=base_urls[index % len(base_urls)], timeout=30) as http:
            while time.monotonic() < stop_at:
                started = time.perf_counter()
                try:
                    stages = operation(http, rng)
                except Exception as exc:  # counted, the run goes on
                    with lock:
                        case.failed += 1
                        key = str(exc)[:80]
                        case.errors[key] = case.errors.get(key, 0) + 1
                    continue
                stages["end to end"] = time.perf_counter() - started
                with lock:
                    case.done += 1
                    for stage, value in stages.items():
                        case.samples.setdefault(stage, []).append(value)

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    case.seconds = time.perf_counter() - started
    return case


def in_provider(cells: Cells, index: int) -> Operation:
    """P2P between two residents of cell ``index`` (the client's own)."""
    people = cells.cells[index].residents

    def send(http: httpx2.Client, rng: random.Random) -> dict[str, float]:
        payer, payee = rng.sample(people, 2)
        answer = http.post(
            "/v1/wallet/transfers",
            json={"to": payee.phone, "amount": AMOUNT, "pin": payer.pin, "note": "bench"},
            headers={**payer.headers, "Idempotency-Key": uuid.uuid4().hex},
        )
        if answer.status_code != 201:
            raise RuntimeError(f"P2P {answer.status_code} {answer.text[:60]}")
        return {}

    return send


def cross_provider(cells: Cells, index: int) -> Operation:
    """A payment from a resident of cell ``index`` to a resident of another cell."""
    people = cells.cells[index].residents
    others = [r for c in cells.cells if c.index != index + 1 for r in c.residents]

    def pay(http: httpx2.Client, rng: random.Random) -> dict[str, float]:
        payer: Resident = rng.choice(people)
        payee: Resident = rng.choice(others)
        payment = pay_across(http, payer, payee.phone, AMOUNT)
        if payment.state != "committed":
            raise RuntimeError(f"transfer {payment.state}")
        return dict(payment.stages)

    return pay


def by_cell(cells: Cells, make: Callable[[Cells, int], Operation]) -> Operation:
    """One operation per cell; a client thread keeps to the cell its base URL names."""
    operations = {cell.url: make(cells, i) for i, cell in enumerate(cells.cells)}

    def operation(http: httpx2.Client, rng: random.Random) -> dict[str, float]:
        return operations[str(http.base_url).rstrip("/")](http, rng)

    return operation


@dataclass
class Cost:
    """What one payment costs each process, from ``n`` payments in a row (one client): CPU
    ms of the process (and its children) and PostgreSQL transactions of its database, less
    what the idle processes spend in as long (measured just before)."""

    name: str
    n: int = 0
    seconds: float = 0.0
    cpu_ms: dict[str, float] = field(default_factory=dict)
    transactions: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name, "payments": self.n, "seconds": round(self.seconds, 2),
            "cpu_ms": self.cpu_ms, "transactions": self.transactions,
            "cpu_ms_total": round(sum(self.cpu_ms.values()), 1),
            "transactions_total": round(sum(self.transactions.values()), 1),
        }  # fmt: skip


def _processes(cells: Cells) -> dict[str, tuple[int, str]]:
    """Each process's pid and database name: the switch, then the cells."""
    found: dict[str, tuple[int, str]] = {}
    if cells.switch is not None and cells.switch.popen is not None:
        found["switch"] = (
            cells.switch.popen.pid,
            make_url(cells.switch_database_url).database or "",
        )
    for cell in cells.cells:
        assert cell.process.popen is not None
        found[cell.id] = (cell.process.popen.pid, make_url(cell.database_url).database or "")
    return found


def _reading(cells: Cells) -> tuple[float, dict[str, float], dict[str, float]]:
    processes = _processes(cells)
    cpu = {
        name: sum(tools.proc_cpu(p) for p in [pid, *tools.descendants(pid)])
        for name, (pid, _) in processes.items()
    }
    engine = create_engine(cells.pg_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT datname, xact_commit + xact_rollback FROM pg_stat_database")
            ).all()
    finally:
        engine.dispose()
    by_db = {str(name): float(count) for name, count in rows}
    xacts = {name: by_db.get(db, 0.0) for name, (_, db) in processes.items()}
    return time.monotonic(), cpu, xacts


def measure_cost(
    cells: Cells, name: str, n: int, operation: Operation, *, settle: float = 1.5
) -> Cost:
    """``n`` payments in a row from one client; the cost per payment of each process."""
    time.sleep(settle)
    t0, cpu0, x0 = _reading(cells)
    time.sleep(2.0)  # the idle rate: courier polls, the worker's periodic tasks
    t1, cpu1, x1 = _reading(cells)
    idle = t1 - t0
    rng = random.Random(7)  # a workload, not a secret
    started = time.monotonic()
    with httpx2.Client(base_url=cells.cells[0].url, timeout=30) as http:
        for _ in range(n):
            operation(http, rng)
    seconds = time.monotonic() - started
    time.sleep(settle)  # PostgreSQL publishes a backend's counts within a second
    t2, cpu2, x2 = _reading(cells)
    span = t2 - t1
    cost = Cost(name, n, seconds)
    for process in cpu0:
        cpu_idle = (cpu1[process] - cpu0[process]) / idle
        x_idle = (x1[process] - x0[process]) / idle
        used = cpu2[process] - cpu1[process] - cpu_idle * span
        done = x2[process] - x1[process] - x_idle * span
        cost.cpu_ms[process] = round(max(0.0, used) * 1000 / n, 1)
        cost.transactions[process] = round(max(0.0, done) / n, 1)
    return cost


def cost_table(costs: list[Cost]) -> Table:
    """CPU ms and transactions per payment, per process."""
    out = Table(title="Cost per payment (one client, payments in a row; idle subtracted)")
    processes = list(costs[0].cpu_ms) if costs else []
    out.add_column("case")
    out.add_column("ms each", justify="right")
    for process in [*processes, "total"]:
        out.add_column(f"{process} CPU ms / tx", justify="right")
    for cost in costs:
        summary = cost.summary()
        cells = [f"{cost.cpu_ms[p]:.1f} / {cost.transactions[p]:.1f}" for p in processes]
        total = f"{summary['cpu_ms_total']:.1f} / {summary['transactions_total']:.1f}"
        out.add_row(cost.name, f"{cost.seconds / cost.n * 1000:.1f}", *cells, total)
    return out


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="citywallet bench interop", description=__doc__)
    parser.add_argument("--cells", type=int, default=3, help="Providers (default 3).")
    parser.add_argument("--residents", type=int, default=20, help="Residents per provider.")
    parser.add_argument("--clients", type=int, default=12, help="Concurrent client threads.")
    parser.add_argument("--seconds", type=float, default=30.0, help="Per case.")
    parser.add_argument("--prefix", default="cw_bench", help="Database name prefix.")
    parser.add_argument("--fault", default=None, help="Fault proxies (see `cells up --fault`).")
    parser.add_argument(
        "--cost", type=int, default=30, help="Payments in a row for the cost per payment (0: no)."
    )
    parser.add_argument("--out", default=None, help="JSON (bench/results/interop-<ts>.json)")
    args = parser.parse_args(argv)
    if args.cells < 2 or args.residents < 2 or args.clients < 1 or args.seconds <= 0:
        parser.error("at least 2 cells, 2 residents, 1 client and a positive duration")
    return args


def table(cases: list[Case], caption: str) -> Table:
    """One row per case and stage."""
    out = Table(title="Interop: P2P through the switch vs in-provider", caption=caption)
    for column in ("case", "stage", "ok", "failed", "per s", "p50 ms", "p99 ms"):
        out.add_column(column, justify="left" if column in ("case", "stage") else "right")
    for case in cases:
        summary = case.summary()
        stages = summary["stages_ms"] or {"end to end": {"p50": 0, "p99": 0}}
        order = ["end to end"] + [s for s in stages if s != "end to end"]
        for stage in order:
            figures = stages[stage]
            first = stage == "end to end"
            out.add_row(
                case.name if first else "", stage,
                f"{case.done:,}" if first else "", f"{case.failed:,}" if first else "",
                f"{case.per_second:,.1f}" if first else "",
                f"{figures['p50']:,.1f}", f"{figures['p99']:,.1f}",
            )  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 when both cases completed payments."""
    args = parse_args(argv)
    configure_logging(level="WARNING")
    console = Console(width=max(Console().width, 140))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = Path(args.out) if args.out else BENCH_DIR / "results" / f"interop-{stamp}.json"
    load_before = tools.load_average()
    commit = tools.git_commit(REPO_ROOT)
    rates = FaultRates.parse(args.fault) if args.fault else None
    cells = Cells(
        args.cells, prefix=args.prefix, residents=args.residents, top_up=1_000_000,
        workdir=REPO_ROOT / "var" / "bench" / "cells", proxy=rates,
        echo=lambda line: console.print(f"[dim]{line}[/]"),
    )  # fmt: skip
    with cells:
        urls = [cell.url for cell in cells.cells]
        console.print(f"{args.cells} providers and the switch up; {args.clients} clients")
        local = run_case("in-provider P2P", args.clients, args.seconds, urls,
                         by_cell(cells, in_provider))  # fmt: skip
        cross = run_case("cross-provider P2P", args.clients, args.seconds, urls,
                         by_cell(cells, cross_provider))  # fmt: skip
        costs: list[Cost] = []
        if args.cost:
            costs = [
                measure_cost(cells, "in-provider P2P", args.cost, in_provider(cells, 0)),
                measure_cost(cells, "cross-provider P2P", args.cost, cross_provider(cells, 0)),
            ]
        proxies = {p.url: p.snapshot() for p in cells.proxies()}
    load_after = tools.load_average()
    ratio = cross.per_second / local.per_second if local.per_second else 0.0
    p99 = percentile(cross.samples.get("end to end", []), 99)
    caption = tools.run_caption(
        commit=commit, load_before=load_before, load_after=load_after, cores=os.cpu_count(),
        baseline="in-provider P2P",
    )  # fmt: skip
    console.print(table([local, cross], caption))
    if costs:
        console.print(cost_table(costs))
    console.print(
        f"cross / in-provider = {ratio:.2f} (target ≥ {TARGET_RATIO}); p99 end to end "
        f"{p99 * 1000:.0f} ms (target ≤ {TARGET_P99_SECONDS * 1000:.0f} ms)"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "benchmark": "interop",
                "started": stamp,
                "git_commit": commit,
                "caption": caption,
                "machine": {
                    **tools.machine(),
                    "python": platform.python_version(),
                    "load_before": load_before,
                    "load_after": load_after,
                },
                "options": {k: v for k, v in vars(args).items() if k != "out"},
                "cases": [local.summary(), cross.summary()],
                "cost_per_payment": [cost.summary() for cost in costs],
                "ratio": round(ratio, 3),
                "ratio_target_met": ratio >= TARGET_RATIO,
                "p99_end_to_end_ms": round(p99 * 1000, 1),
                "p99_target_met": p99 <= TARGET_P99_SECONDS,
                "proxies": proxies,
            },
            indent=2,
            ensure_ascii=False,
        )
        + "\n"
    )
    console.print(f"written {out}")
    return 0 if local.done and cross.done else 1


if __name__ == "__main__":
    raise SystemExit(main())
