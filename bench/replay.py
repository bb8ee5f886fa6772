"""The database's own ceiling for payments: the SQL of a payment replayed by ``pgbench``.

``bench/payments.py`` runs this on PostgreSQL right after a case's HTTP runs, on the same
database: ``bench/pgbench/scan_payment.sql`` and ``bench/pgbench/p2p_transfer.sql`` are
the statements one successful scan payment and one P2P transfer send (captured with
tests/statement_count.py's counter from the budget test), run by ``pgbench`` with the
case's connection count. Each transaction is a real payment: its values come from one row
of a helper table filled here (an unpaid order of the run with its payer, fee, ledger
accounts and transfer hashes; a new P2P transfer between two residents), read with
``\\gset`` before the transaction; every row is used once. The ledger check of the case
then covers these payments too.

From the PostgreSQL CPU per replayed payment and the whole machine's CPU per
``GET /healthz`` request of the same case follows a bound for the HTTP payments on this
machine: every paid request costs at least what the database spends on its statements
plus what a request that does nothing costs (wrk, kernel, server), so

    payments/s <= cores / (DB CPU per payment + machine CPU per /healthz request).
"""

from __future__ import annotations

import json
import os
import random
import resource
import secrets
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import BigInteger, Column, Integer, LargeBinary, MetaData, Table, Text, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import URL, Connection

from bench import tools
from citywallet.ledger.types import TransferCode, TransferFlags
from citywallet.ledger.verifier import transfer_leaf_hash
from citywallet.merchant.payments import day_key
from citywallet.merchant.rules import fee_for
from citywallet.platform.clock import now_us

PGBENCH_DIR = Path(__file__).resolve().parent / "pgbench"
SCRIPTS = {"scan": "scan_payment.sql", "p2p": "p2p_transfer.sql"}
RATE_CAP = 5000  # helper rows per second of --duration: more than PostgreSQL commits here
POLL_SECONDS = 0.05  # a backend's CPU is read this often: pgbench's end loses at most this

helpers = MetaData()
SCAN_ROWS = Table(
    "bench_replay_scan",
    helpers,
    Column("n", Integer, primary_key=True),
    *(Column(name, Text) for name in ("payer", "idem_key", "request_hash", "order_id")),
    *(Column(name, Text) for name in ("order_transfer_ids", "limit_changes", "label")),
    *(Column(name, Text) for name in ("reference", "activity_transfer_ids")),
    *(Column(name, BigInteger) for name in ("ts", "merchant", "amount", "fee")),
    Column("response", LargeBinary),
    Column("accounts", ARRAY(BigInteger)),
    *(Column(name, ARRAY(Text)) for name in ("t_ids", "t_ledgers", "t_pending", "t_references")),
    *(Column(name, ARRAY(BigInteger)) for name in ("t_debits", "t_credits", "t_amounts")),
    *(Column(name, ARRAY(Integer)) for name in ("t_codes", "t_flags", "t_timeouts")),
    Column("t_timestamps", ARRAY(BigInteger)),
    Column("t_hashes", ARRAY(LargeBinary)),
    *(Column(name, ARRAY(BigInteger)) for name in ("d_dp", "d_dpo", "d_cp", "d_cpo")),
)
P2P_ROWS = Table(
    "bench_replay_p2p",
    helpers,
    Column("n", Integer, primary_key=True),
    *(Column(name, Text) for name in ("payer", "payee", "idem_key", "request_hash")),
    *(Column(name, Text) for name in ("limit_changes", "transfer_id", "activity_transfer_ids")),
    *(Column(name, Text) for name in ("payer_label", "payee_label")),
    *(Column(name, BigInteger) for name in ("ts", "amount", "payer_account", "payee_account")),
    Column("hash", LargeBinary),
    Column("response", LargeBinary),
    Column("accounts", ARRAY(BigInteger)),
    *(Column(name, ARRAY(BigInteger)) for name in ("d_dp", "d_dpo", "d_cp", "d_cpo")),
)


@dataclass
class ReplayResult:
    """One kind's SQL replayed under pgbench, and the bound it gives."""

    kind: str  # scan | p2p
    script: str
    clients: int
    rows: int  # helper rows filled (each one payment)
    transactions: int = 0  # pgbench: processed
    failed: int = 0  # pgbench: failed transactions
    succeeded: int = 0  # in the database: orders paid / transfers made by the replay
    seconds: float = 0.0
    tps: float = 0.0  # pgbench's, without connection time
    p50_ms: float | None = None  # the helper read and the payment's transaction
    p99_ms: float | None = None
    db_cores: float = 0.0
    pgbench_cores: float = 0.0
    machine_cores: float = 0.0
    db_cpu_ms_per_payment: float | None = None
    ratio_vs_healthz: float | None = None
    bound_per_s: float | None = None  # cores / (DB CPU per payment + machine CPU per healthz)
    bound_ratio: float | None = None  # bound_per_s / healthz req/s
    error: str | None = None


def bound(
    *, cores: int, db_cpu_ms: float, healthz_rps: float, healthz_machine_cores: float
) -> tuple[float, float]:
    """(payments/s, ratio to /healthz) that ``cores`` allow when a payment costs the database
    ``db_cpu_ms`` and the whole machine at least what a /healthz request costs it."""
    healthz_ms = 1000 * healthz_machine_cores / healthz_rps
    per_s = 1000 * cores / (db_cpu_ms + healthz_ms)
    return per_s, per_s / healthz_rps


# --- the helper rows ----------------------------------------------------------------------------


def _hash(**fields: Any) -> bytes:
    """The transfer's leaf hash, as the ledger stores it."""
    return transfer_leaf_hash(
        {"ledger": "CNY", "pending_id": None, "timeout": 0, "flags": 0, **fields}
    )


def _limit_changes(amount: int, moment: int) -> str:
    """The payer's usage counters a payment adds to (the day, the year, the lifetime)."""
    keys = sorted([day_key("d", moment), "life", "y:" + day_key("d", moment)[2:6]])
    return json.dumps(dict.fromkeys(keys, amount))


def _deltas(changes: dict[int, tuple[int, int]]) -> tuple[list[int], dict[str, list[int]]]:
    """Accounts in ascending order and their (debits_posted, credits_posted) additions."""
    accounts = sorted(changes)
    return accounts, {
        "d_dp": [0] * len(accounts),
        "d_dpo": [changes[a][0] for a in accounts],
        "d_cp": [0] * len(accounts),
        "d_cpo": [changes[a][1] for a in accounts],
    }


def _wallet_accounts(conn: Connection) -> dict[str, int]:
    rows = conn.execute(text("SELECT user_id, ledger_account_id FROM wallet_wallets")).all()
    return {str(user): int(account) for user, account in rows}


def fill_scan(conn: Connection, payers: Sequence[str], limit: int) -> int:
    """One helper row per unpaid bench order (at most ``limit``), paid by the resident the
    request lines give it (order ``BENCHi`` is payer ``i mod n``'s: within its top-up)."""
    SCAN_ROWS.drop(conn, checkfirst=True)
    SCAN_ROWS.create(conn)
    accounts = _wallet_accounts(conn)
    orders = conn.execute(
        text(
            "SELECT o.public_id, o.merchant_id, o.amount, o.out_trade_no, m.public_id, "
            "m.name_zh, m.fee_rate_bp, m.receivable_account_id, m.fee_account_id "
            "FROM merchant_orders o JOIN merchant_merchants m ON m.id = o.merchant_id "
            "WHERE o.status = 'created' AND o.out_trade_no LIKE 'BENCH%' ORDER BY o.id LIMIT :n"
        ),
        {"n": limit},
    ).all()
    moment = now_us()
    rows = []
    for n, (
        order_id,
        merchant,
        amount,
        out_no,
        public_id,
        name,
        rate,
        receivable,
        fee_to,
    ) in enumerate(orders):
        payer = payers[int(out_no.removeprefix("BENCH")) % len(payers)]
        ts, fee, pay = moment + n, fee_for(amount, rate), accounts[payer]
        linked = TransferFlags.LINKED
        legs = [
            (f"{order_id}.pay", pay, receivable, amount, TransferCode.PAYMENT, linked),
            (f"{order_id}.fee", receivable, fee_to, fee, TransferCode.FEE, 0),
        ]
        ids = [leg[0] for leg in legs]
        changes = {pay: (amount, 0), receivable: (fee, amount), fee_to: (0, fee)}
        account_ids, deltas = _deltas(changes)
        rows.append(
            {
                "n": n, "payer": payer, "idem_key": f"replay-{n}",
                "request_hash": secrets.token_hex(32), "order_id": order_id,
                "order_transfer_ids": json.dumps(ids), "limit_changes": _limit_changes(amount, ts),
                "label": name, "reference": public_id, "activity_transfer_ids": json.dumps(ids[:1]),
                "ts": ts, "merchant": merchant, "amount": amount, "fee": fee,
                "response": json.dumps(
                    {"order_id": order_id, "merchant_id": public_id, "merchant_name": name,
                     "amount": amount, "restricted_amount": 0, "currency": "CNY",
                     "status": "paid", "channel": "dynamic_qr", "paid_at": ts},
                    ensure_ascii=False, separators=(",", ":"),
                ).encode(),
                "accounts": account_ids,
                "t_ids": ids, "t_ledgers": ["CNY", "CNY"], "t_pending": [None, None],
                "t_references": [order_id, order_id], "t_debits": [leg[1] for leg in legs],
                "t_credits": [leg[2] for leg in legs], "t_amounts": [amount, fee],
                "t_codes": [int(leg[4]) for leg in legs], "t_flags": [int(leg[5]) for leg in legs],
                "t_timeouts": [0, 0], "t_timestamps": [ts, ts],
                "t_hashes": [
                    _hash(id=i, debit_account_id=d, credit_account_id=c, amount=a, code=int(k),
                          flags=int(f), reference=order_id, timestamp=ts)
                    for i, d, c, a, k, f in legs
                ],
                **deltas,
            }
        )  # fmt: skip
    _insert(conn, SCAN_ROWS, rows)
    return len(rows)


def fill_p2p(conn: Connection, payers: Sequence[str], limit: int) -> int:
    """``limit`` new transfers between residents, paired as the request lines pair them."""
    P2P_ROWS.drop(conn, checkfirst=True)
    P2P_ROWS.create(conn)
    accounts = _wallet_accounts(conn)
    rng, moment, count = random.Random(20261207), now_us(), len(payers)
    rows = []
    for n in range(limit):
        payer = payers[n % count]
        payee = payers[(n % count + 1 + (n // count) % (count - 1)) % count]
        ts, amount, transfer_id = moment + n, rng.randint(100, 500), f"p2p_replay{n:010d}"
        payer_account, payee_account = accounts[payer], accounts[payee]
        account_ids, deltas = _deltas({payer_account: (amount, 0), payee_account: (0, amount)})
        rows.append(
            {
                "n": n, "payer": payer, "payee": payee, "idem_key": f"replay-{n}",
                "request_hash": secrets.token_hex(32), "limit_changes": _limit_changes(amount, ts),
                "transfer_id": transfer_id, "activity_transfer_ids": json.dumps([transfer_id]),
                "payer_label": "**伟 (139****0001)", "payee_label": "**伟 (139****0002)",
                "ts": ts, "amount": amount, "payer_account": payer_account,
                "payee_account": payee_account,
                "hash": _hash(id=transfer_id, debit_account_id=payer_account,
                              credit_account_id=payee_account, amount=amount,
                              code=int(TransferCode.P2P), reference=transfer_id, timestamp=ts),
                "response": json.dumps(
                    {"id": transfer_id, "amount": amount, "currency": "CNY", "to_user_id": payee,
                     "to_label": "**伟 (139****0002)", "note": "", "status": "succeeded",
                     "created_at": ts},
                    ensure_ascii=False, separators=(",", ":"),
                ).encode(),
                "accounts": account_ids,
                **deltas,
            }
        )  # fmt: skip
    _insert(conn, P2P_ROWS, rows)
    return len(rows)


def _insert(conn: Connection, table: Table, rows: list[dict[str, Any]], batch: int = 2000) -> None:
    for start in range(0, len(rows), batch):
        conn.execute(table.insert(), rows[start : start + batch])
    conn.exec_driver_sql(f"ANALYZE {table.name}")


def succeeded(conn: Connection, kind: str) -> int:
    """Payments of the replay in the database: its orders paid, its transfers made."""
    sql = {
        "scan": "SELECT count(*) FROM merchant_orders o JOIN bench_replay_scan r "
        "ON r.order_id = o.public_id WHERE o.status = 'paid' AND o.payer_user_id = r.payer",
        "p2p": "SELECT count(*) FROM ledger_transfers t JOIN bench_replay_p2p r "
        "ON r.transfer_id = t.id",
    }[kind]
    return int(conn.execute(text(sql)).scalar_one())


# --- pgbench --------------------------------------------------------------------------------


_TPS = "tps = "
_PROCESSED = "number of transactions actually processed: "
_FAILED = "number of failed transactions: "


def _field(stdout: str, prefix: str) -> str | None:
    for line in stdout.splitlines():
        if line.startswith(prefix):
            return line[len(prefix) :].split()[0].split("/")[0]
    return None


class BackendCpu:
    """CPU seconds of PostgreSQL's processes over a run, including backends that start and
    end inside it (pgbench's): each process's last reading, polled every POLL_SECONDS."""

    def __init__(self) -> None:
        self.start = {pid: tools.proc_cpu(pid) for pid in tools.postgres_pids()}
        self.last = dict(self.start)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()

    def _poll(self) -> None:
        while not self.stopped.wait(POLL_SECONDS):
            self.read()

    def read(self) -> None:
        """Record every PostgreSQL process's CPU now."""
        for pid in tools.postgres_pids():
            cpu = tools.proc_cpu(pid)
            if cpu:
                self.last[pid] = max(cpu, self.last.get(pid, 0.0))

    def stop(self) -> float:
        """CPU seconds used since the start."""
        self.read()
        self.stopped.set()
        self.thread.join()
        return sum(cpu - self.start.get(pid, 0.0) for pid, cpu in self.last.items())


def run_pgbench(
    url: URL,
    kind: str,
    *,
    clients: int,
    per_client: int,
    executable: str,
    tick: Callable[[float], None],
) -> tuple[ReplayResult, str]:
    """Run one kind's script, ``per_client`` transactions on each of ``clients``."""
    result = ReplayResult(kind=kind, script=SCRIPTS[kind], clients=clients, rows=0)
    with tempfile.TemporaryDirectory(prefix="cw-replay-") as logdir:
        command = [
            executable, "--no-vacuum", "--protocol=prepared", f"--client={clients}",
            f"--jobs={min(2, clients)}", f"--transactions={per_client}",
            f"--file={PGBENCH_DIR / SCRIPTS[kind]}", "--define=k=0", f"--define=clients={clients}",
            "--log", f"--log-prefix={Path(logdir) / 'pgbench'}",
            f"--host={url.host or '127.0.0.1'}", f"--port={url.port or 5432}",
            f"--username={url.username or 'postgres'}", str(url.database),
        ]  # fmt: skip
        env = dict(os.environ)
        if url.password:
            env["PGPASSWORD"] = str(url.password)
        machine0, backends = tools.cpu_jiffies(), BackendCpu()
        children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        with subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        ) as process:
            while process.poll() is None:
                tick(time.perf_counter() - started)
                time.sleep(0.1)
            stdout, stderr = process.communicate()
        children1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        pgbench_cpu = (children1.ru_utime - children0.ru_utime) + (
            children1.ru_stime - children0.ru_stime
        )
        db_cpu = backends.stop()
        elapsed = time.perf_counter() - started
        machine1 = tools.cpu_jiffies()
        latencies = sorted(_latencies(Path(logdir)))
    tps, processed = _field(stdout, _TPS), _field(stdout, _PROCESSED)
    failed = _field(stdout, _FAILED)
    if process.returncode != 0 or tps is None or processed is None:
        result.error = f"pgbench exit {process.returncode}: {(stderr or stdout).strip()[-400:]}"
    cpus = os.cpu_count() or 1
    result.seconds = round(elapsed, 3)
    result.tps = round(float(tps or 0.0), 1)
    result.transactions = int(processed or 0)
    result.failed = int(failed or 0)
    result.p50_ms = _percentile_ms(latencies, 0.50)
    result.p99_ms = _percentile_ms(latencies, 0.99)
    result.db_cores = round(db_cpu / elapsed, 2)
    result.pgbench_cores = round(pgbench_cpu / elapsed, 2)
    result.machine_cores = round(
        cpus * (machine1[0] - machine0[0]) / max(1.0, machine1[1] - machine0[1]), 2
    )
    if result.transactions:
        result.db_cpu_ms_per_payment = round(1000 * db_cpu / result.transactions, 2)
    return result, stdout


def _latencies(logdir: Path) -> Iterator[float]:
    """Per-transaction latencies (seconds) from pgbench's --log files."""
    for path in logdir.glob("pgbench*"):
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[2].isdigit():
                yield int(parts[2]) / 1_000_000


def _percentile_ms(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    return round(1000 * values[min(len(values) - 1, int(q * len(values)))], 2)
