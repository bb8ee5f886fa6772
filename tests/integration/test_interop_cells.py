"""Three providers and the switch as real processes, every message through a fault proxy
(docs/interop.md, "Cells and testing under faults"; issue 14's acceptance test).

Random cross-provider P2P through the residents' API (lookup → quote → transfer) while the
proxies drop 5 % of requests, drop 5 % of answers after the receiver acted, duplicate 10 % and
delay a fifth of them (reordering); then (b) the same with the switch SIGKILLed and restarted
mid-run. After each run, within expiry plus the retry interval: every transfer is final at the
switch and at both providers and in the same state everywhere; every resident's balance is
what they were seeded with, less what they committedly sent (and fees), plus what they
committedly received — so no transfer credited twice and none lost; every cell's
``citywallet ledger verify`` is clean; closing a settlement window nets to zero and leaves each
cell's INTEROP_SETTLEMENT account at zero. PostgreSQL only (the launcher's databases).
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx2
import pytest
from sqlalchemy import Engine, create_engine, text

from citywallet.interop.cells import Cells, Payment, Resident, pay_across
from citywallet.interop.faultproxy import FaultRates
from citywallet.ledger.types import AccountCode
from tests.conftest import PG_ADMIN_URL

TRANSFER_SECONDS = 10  # each transfer's expiry: short, so the waits below stay short
FINAL_WAIT = TRANSFER_SECONDS + 25  # expiry, the sweep's question, retries (4 s cap), load
TOP_UP = 50_000
RATES = FaultRates(
    drop_request=0.05, drop_response=0.05, duplicate=0.10, delay=0.2, delay_ms=150, seed=14
)
FINAL = {"COMMITTED", "ABORTED", "EXPIRED"}


@dataclass
class Sent:
    """One payment the test asked for, and what became of it at the payer's API."""

    payer: Resident
    payee: Resident
    amount: int
    payment: Payment | None = None
    error: str | None = None


@dataclass
class Harness:
    cells: Cells
    engines: dict[str, Engine]  # participant id (or "switch") → its database
    history: list[Sent] = field(default_factory=list)

    def residents(self) -> list[Resident]:
        return [r for cell in self.cells.cells for r in cell.residents]


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    _require_postgresql()
    cells = Cells(
        3, prefix=f"cwt_cells_{os.getpid()}", proxy=RATES, residents=4, top_up=TOP_UP,
        workdir=tmp_path_factory.mktemp("cells"), pg_url=PG_ADMIN_URL,
        env={"CITYWALLET_INTEROP_TRANSFER_SECONDS": str(TRANSFER_SECONDS)},
    )  # fmt: skip
    with cells:
        assert cells.switch is not None
        urls = {c.id: c.database_url for c in cells.cells} | {"switch": cells.switch_database_url}
        engines = {name: create_engine(url, pool_size=2) for name, url in urls.items()}
        try:
            yield Harness(cells, engines)
        finally:
            for engine in engines.values():
                engine.dispose()


def _require_postgresql() -> None:
    """Fail (never skip) without PostgreSQL: the launcher needs the local cluster."""
    engine = create_engine(PG_ADMIN_URL)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    finally:
        engine.dispose()


# --- driving payments ------------------------------------------------------------------------


def _pay_randomly(
    h: Harness, count: int, *, seed: int, threads: int = 8, midway: Callable[[], None] | None = None
) -> list[Sent]:
    """``count`` payments between residents of different cells from ``threads`` clients;
    ``midway`` runs once a third of them have been sent."""
    rng = random.Random(seed)
    people = h.residents()
    plan = []
    for _ in range(count):
        payer = rng.choice(people)
        payee = rng.choice([p for p in people if p.cell != payer.cell])
        plan.append(Sent(payer, payee, rng.randint(1, 300)))
    done = Counter[str]()
    lock = threading.Lock()
    third = threading.Event()

    def run(share: list[Sent]) -> None:
        clients = {c.id: httpx2.Client(base_url=c.url, timeout=30) for c in h.cells.cells}
        try:
            for sent in share:
                try:
                    sent.payment = pay_across(
                        clients[sent.payer.cell], sent.payer, sent.payee.phone, sent.amount
                    )
                except (RuntimeError, httpx2.TransportError) as exc:
                    sent.error = str(exc)[:200]
                with lock:
                    done["sent"] += 1
                    if done["sent"] >= count // 3:
                        third.set()
        finally:
            for client in clients.values():
                client.close()

    shares = [plan[i::threads] for i in range(threads)]
    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(run, share) for share in shares]
        if midway is not None:
            third.wait()
            midway()
        for future in futures:
            future.result()
    h.history.extend(plan)
    return plan


# --- reading every side ------------------------------------------------------------------------


def _states(engine: Engine, query: str) -> dict[tuple[str, ...], str]:
    with engine.connect() as conn:
        return {tuple(row[:-1]): row[-1] for row in conn.execute(text(query)).all()}


@dataclass
class Sides:
    switch: dict[str, str]  # transfer id → state
    payer: dict[str, str]  # transfer id → state at the payer's provider
    payee: dict[str, str]  # transfer id → state at the payee's provider

    def unfinished(self) -> list[str]:
        return sorted(
            tid
            for side in (self.switch, self.payer, self.payee)
            for tid, state in side.items()
            if state not in FINAL
        )


def _sides(h: Harness) -> Sides:
    switch = {
        k[0]: v
        for k, v in _states(
            h.engines["switch"], "SELECT transfer_id, state FROM switch_transfers"
        ).items()
    }
    payer: dict[str, str] = {}
    payee: dict[str, str] = {}
    for cell in h.cells.cells:
        rows = _states(h.engines[cell.id], "SELECT transfer_id, role, state FROM interop_transfers")
        for (tid, role), state in rows.items():
            side = payer if role == "payer" else payee
            assert tid not in side, f"{tid} twice as {role}"
            side[tid] = state
    return Sides(switch, payer, payee)


def _await_final(h: Harness, seconds: float = FINAL_WAIT) -> Sides:
    deadline = time.monotonic() + seconds
    while True:
        sides = _sides(h)
        if not sides.unfinished() or time.monotonic() > deadline:
            return sides
        time.sleep(0.5)


def _balance(cell_url: str, resident: Resident) -> int:
    with httpx2.Client(base_url=cell_url) as client:
        wallet = client.get("/v1/wallet", headers=resident.headers).json()
    return int(wallet["balance"])


def _interop_account(engine: Engine) -> tuple[int, int, int, int]:
    """The INTEROP_SETTLEMENT account's (debits_pending, debits_posted, credits_pending,
    credits_posted); zeros when the cell never touched it."""
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT debits_pending, debits_posted, credits_pending, credits_posted "
                "FROM ledger_accounts WHERE code = :code"
            ),
            {"code": int(AccountCode.INTEROP_SETTLEMENT)},
        ).first()
    return (0, 0, 0, 0) if row is None else (int(row[0]), int(row[1]), int(row[2]), int(row[3]))


# --- the checks ----------------------------------------------------------------------------------


def _check_everything(h: Harness, sent: list[Sent]) -> Sides:
    """Every check of the module's docstring over everything sent so far."""
    sides = _await_final(h)
    assert sides.unfinished() == [], "not final within expiry + retries"
    ours = {s.payment.switch_transfer_id for s in sent if s.payment is not None}
    assert ours <= set(sides.payer), "a payment the payer's API named is missing in its books"
    # the same final state everywhere the transfer reached
    for tid, state in sides.payer.items():
        at_switch = sides.switch.get(tid)
        assert at_switch in (state, None), (tid, state, at_switch)
        if at_switch is None:  # refused before the switch stored it: never went further
            assert state != "COMMITTED", tid
            assert tid not in sides.payee, tid
        if tid in sides.payee:
            assert sides.payee[tid] == state, (tid, state, sides.payee[tid])
        elif state == "COMMITTED":
            pytest.fail(f"{tid} committed without the payee's provider knowing it")
    assert set(sides.switch) <= set(sides.payer)
    assert set(sides.payee) <= set(sides.switch)
    # the payer's API answered the final state the books hold
    for s in sent:
        if s.payment is not None and s.payment.state != "processing":
            assert s.payment.state.upper() == sides.payer[s.payment.switch_transfer_id]
    # money: seeded ± committed, per resident (a double credit or a lost debit shows here)
    expected = {r.phone: TOP_UP for r in h.residents()}
    committed = {tid for tid, state in sides.switch.items() if state == "COMMITTED"}
    for s in h.history:
        if s.payment is not None and s.payment.switch_transfer_id in committed:
            expected[s.payer.phone] -= s.amount + s.payment.payer_fee
            expected[s.payee.phone] += s.amount
    for cell in h.cells.cells:
        for resident in cell.residents:
            assert _balance(cell.url, resident) == expected[resident.phone], resident.phone
    # no hold left behind, books intact
    for cell in h.cells.cells:
        pending = _interop_account(h.engines[cell.id])
        assert (pending[0], pending[2]) == (0, 0), (cell.id, pending)
    with ThreadPoolExecutor(len(h.cells.cells)) as pool:
        reports = list(pool.map(lambda c: h.cells.cli(c, "ledger", "verify"), h.cells.cells))
    for report in reports:
        assert "ledger verified" in report
    return sides


def _settle(h: Harness) -> None:
    """Close the switch's window; its nets sum to zero and every cell posts its own, leaving
    INTEROP_SETTLEMENT at zero."""
    h.cells.cli(None, "switch", "windows", "close")
    with h.engines["switch"].connect() as conn:
        window_id, report = conn.execute(
            text(
                "SELECT id, report FROM switch_windows WHERE state = 'CLOSED' "
                "ORDER BY closed_at DESC LIMIT 1"
            )
        ).one()
    nets = json.loads(report)["positions"]
    assert sum(nets.values()) == 0
    deadline = time.monotonic() + 30
    for cell in h.cells.cells:
        if cell.id not in nets:
            continue
        while True:
            with h.engines[cell.id].connect() as conn:
                net = conn.execute(
                    text("SELECT net_amount FROM interop_settlement_windows WHERE window_id = :w"),
                    {"w": window_id},
                ).scalar()
            if net is not None or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert net == nets[cell.id], (cell.id, net, nets)
    for cell in h.cells.cells:
        d_pending, d_posted, c_pending, c_posted = _interop_account(h.engines[cell.id])
        assert (d_pending, c_pending) == (0, 0)
        assert d_posted == c_posted, (cell.id, d_posted, c_posted)


def _only_timeouts_before_the_transfer(sent: list[Sent], *, at_most: int) -> None:
    """A payment may fail only where no money moves yet: its lookup or quote got no answer in
    time, three times over (a loaded machine, lost messages, the switch down). Any other
    failure, or more than ``at_most`` of them, fails the test."""
    failed = [s.error or "" for s in sent if s.payment is None]
    others = [e for e in failed if not e.startswith(("lookup: 504", "quote: 504"))]
    assert others == []
    assert len(failed) <= at_most, failed[:3]


# --- the tests -----------------------------------------------------------------------------------


def test_random_cross_provider_transfers_through_faults_end_final_and_balanced(
    harness: Harness,
) -> None:
    sent = _pay_randomly(harness, 200, seed=1)
    _only_timeouts_before_the_transfer(sent, at_most=len(sent) // 10)
    sides = _check_everything(harness, sent)
    ids = [s.payment.switch_transfer_id for s in sent if s.payment is not None]
    committed = [tid for tid in ids if sides.switch.get(tid) == "COMMITTED"]
    assert len(committed) >= len(sent) * 0.8  # faults delay, they do not stop the traffic
    counts = Counter[str]()
    for proxy in harness.cells.proxies():
        counts.update(proxy.snapshot())
    for fate in ("dropped_requests", "dropped_responses", "duplicated", "delayed"):
        assert counts[fate] > 0, counts
    _settle(harness)


def test_the_same_with_the_switch_killed_and_restarted_mid_run(harness: Harness) -> None:
    cells = harness.cells
    assert cells.switch is not None
    assert cells.switch.popen is not None
    killed = []

    def kill_and_restart() -> None:
        cells.kill_switch()
        assert cells.switch is not None
        assert cells.switch.popen is not None
        killed.append(cells.switch.popen.returncode)
        time.sleep(1.0)
        cells.restart_switch()

    sent = _pay_randomly(harness, 100, seed=2, midway=kill_and_restart)
    assert killed == [-9]  # SIGKILL: nothing flushed, nothing said goodbye
    _only_timeouts_before_the_transfer(sent, at_most=len(sent) // 2)
    _check_everything(harness, sent)
    _settle(harness)
