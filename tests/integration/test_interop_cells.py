"""Three providers and the switch as real processes, every message through a fault proxy
(docs/interop.md, "Cells and testing under faults"; issue 14's acceptance test).

Random cross-provider P2P through the residents' API (lookup → quote → transfer), payments
of other cells' merchant codes (a store's static code with a typed amount, and dynamic
orders the merchant's server creates; some dynamic codes scanned by two residents at once)
and the merchants' refunds of them (full, partial, two partials) through their signed API,
while the proxies drop 5 % of requests, drop 5 % of answers after the receiver acted,
duplicate 10 % and delay a fifth of them (reordering); then (b) the same with the switch
SIGKILLed and restarted mid-run. After each run, within expiry plus the retry interval:
every transfer (P2P, QR payment, refund) is final at the switch and at both providers and in
the same state everywhere; every order is paid exactly when one of its transfers committed
(never twice), none is left awaiting confirmation, its refunded amount is its committed
refunds; every resident's balance is what they were seeded with, less what they committedly
sent and paid (and fees), plus what they committedly received and were refunded, and every
merchant's balance is what the switch committed to it less fees and committed refunds — so
nothing credited twice and nothing lost; no ledger hold is left pending; one webhook per paid
order and per refund; every cell's ``citywallet ledger verify`` is clean; closing a
settlement window nets to zero and leaves each cell's INTEROP_SETTLEMENT account at zero.
PostgreSQL only (the launcher's databases).
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx2
import pytest
from sqlalchemy import Engine, create_engine, text

from citywallet.interop.cells import (
    Cells,
    Merchant,
    Payment,
    QrPayment,
    QrRefund,
    Resident,
    merchant_order,
    pay_across,
    pay_merchant_across,
    refund_across,
)
from citywallet.interop.faultproxy import FaultRates
from citywallet.merchant.rules import fee_for
from tests.cells_support import interop_account, settle
from tests.conftest import PG_ADMIN_URL

TRANSFER_SECONDS = 10  # each transfer's expiry: short, so the waits below stay short
FINAL_WAIT = TRANSFER_SECONDS + 25  # expiry, the sweep's question, retries (4 s cap), load
TOP_UP = 50_000
MERCHANTS = 2  # per cell
RATES = FaultRates(
    drop_request=0.05, drop_response=0.05, duplicate=0.10, delay=0.2, delay_ms=150, seed=14
)
FINAL = {"COMMITTED", "ABORTED", "EXPIRED"}
QUOTE_TIMEOUTS = ("lookup: 504", "quote: 504", "pay: 504")  # nothing held, nothing sent


@dataclass
class Sent:
    """One payment the test asked for, and what became of it at the payer's API."""

    payer: Resident
    payee: Resident
    amount: int
    payment: Payment | None = None
    error: str | None = None


@dataclass
class QrSent:
    """One payment of another cell's merchant code the test asked for (``rival``: a second
    resident scans the same dynamic code at the same moment), and the refunds its merchant
    then makes of it (``refunds``: the amounts planned, in order)."""

    payer: Resident
    merchant: Merchant
    amount: int
    dynamic: bool
    refunds: list[int]
    rival: Resident | None = None
    order_id: str | None = None  # the merchant's order (known once paid, for a static code)
    payment: QrPayment | None = None
    rival_payment: QrPayment | None = None
    error: str | None = None
    rival_error: str | None = None
    refunded: list[QrRefund] = field(default_factory=list)
    refund_errors: list[str] = field(default_factory=list)

    def payments(self) -> list[tuple[Resident, QrPayment]]:
        """Who paid how, as the payers' API answered (the rival's too)."""
        found = [(self.payer, self.payment)]
        if self.rival is not None:
            found.append((self.rival, self.rival_payment))
        return [(who, paid) for who, paid in found if paid is not None]


class Webhooks:
    """The merchants' server: records every webhook delivered (event id, type, object)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []
        lock = threading.Lock()
        seen = self.seen

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with lock:
                    seen.append((body["id"], body["type"], body["data"]["id"]))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Harness:
    cells: Cells
    engines: dict[str, Engine]  # participant id (or "switch") → its database
    webhooks: Webhooks
    history: list[Sent] = field(default_factory=list)
    qr_history: list[QrSent] = field(default_factory=list)

    def residents(self) -> list[Resident]:
        return [r for cell in self.cells.cells for r in cell.residents]

    def merchants(self) -> list[Merchant]:
        return [m for cell in self.cells.cells for m in cell.merchants]


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    _require_postgresql()
    webhooks = Webhooks()
    cells = Cells(
        3, prefix=f"cwt_cells_{os.getpid()}", proxy=RATES, residents=4, top_up=TOP_UP,
        merchants=MERCHANTS, merchant_notify_url=webhooks.url,
        workdir=tmp_path_factory.mktemp("cells"), pg_url=PG_ADMIN_URL,
        env={"CITYWALLET_INTEROP_TRANSFER_SECONDS": str(TRANSFER_SECONDS),
             "CITYWALLET_WEBHOOK_ALLOW_HOSTS": '["127.0.0.1"]'},
    )  # fmt: skip
    try:
        with cells:
            assert cells.switch is not None
            urls = {c.id: c.database_url for c in cells.cells} | {
                "switch": cells.switch_database_url
            }
            engines = {name: create_engine(url, pool_size=2) for name, url in urls.items()}
            try:
                yield Harness(cells, engines, webhooks)
            finally:
                for engine in engines.values():
                    engine.dispose()
    finally:
        webhooks.close()


def _require_postgresql() -> None:
    """Fail (never skip) without PostgreSQL: the launcher needs the local cluster."""
    engine = create_engine(PG_ADMIN_URL)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    finally:
        engine.dispose()


# --- driving payments ------------------------------------------------------------------------


def _plan(h: Harness, rng: random.Random, p2p: int, qr: int) -> list[Sent | QrSent]:
    """``p2p`` payments between residents of different cells and ``qr`` payments of other
    cells' merchant codes (half static, half dynamic; some refunded), shuffled."""
    people = h.residents()
    plan: list[Sent | QrSent] = []
    for _ in range(p2p):
        payer = rng.choice(people)
        payee = rng.choice([p for p in people if p.cell != payer.cell])
        plan.append(Sent(payer, payee, rng.randint(1, 300)))
    for i in range(qr):
        merchant = rng.choice(h.merchants())
        strangers = [p for p in people if p.cell != merchant.cell]
        payer = rng.choice(strangers)
        amount = rng.randint(100, 3_000)
        draw = rng.random()
        if draw < 0.15:
            refunds = [amount]  # full
        elif draw < 0.3:
            refunds = [rng.randint(1, amount - 1)]  # partial
        elif draw < 0.4:
            first = rng.randint(1, amount // 2)
            refunds = [first, rng.randint(1, amount - first)]  # two partials, up to all of it
        else:
            refunds = []
        dynamic = i % 2 == 1
        rival = None
        if dynamic and rng.random() < 0.3:
            rival = rng.choice([p for p in strangers if p != payer])
        plan.append(QrSent(payer, merchant, amount, dynamic, refunds, rival))
    rng.shuffle(plan)
    return plan


def _merchant_order_of(h: Harness, merchant: Merchant, switch_transfer_id: str) -> str | None:
    """The order a static code's payment made at the merchant's cell (its server would
    learn it from the ``payment.succeeded`` webhook)."""
    with h.engines[merchant.cell].connect() as conn:
        found = conn.execute(
            text("SELECT order_public_id FROM merchant_interop_payments WHERE transfer_id = :t"),
            {"t": switch_transfer_id},
        ).scalar()
    return None if found is None else str(found)


def _await_paid(
    http: httpx2.Client, merchant: Merchant, order_id: str, seconds: float = FINAL_WAIT
) -> bool:
    """Whether the merchant's order is ``paid`` (asked through its API) within ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        seen = merchant.request(http, "GET", f"/v1/merchant/orders/{order_id}")
        if seen.status_code == 200 and seen.json()["status"] == "paid":
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


def _pay_qr(h: Harness, clients: dict[str, httpx2.Client], q: QrSent) -> None:
    """The merchant shows its code (a new order for a dynamic one), the payer (and a rival)
    pays it, then the merchant refunds what was planned of the committed payment."""
    payload = q.merchant.static_code
    typed: int | None = q.amount  # a static code: the payer types the amount
    if q.dynamic:
        order = merchant_order(clients[q.merchant.cell], q.merchant, q.amount)
        q.order_id, payload, typed = str(order["id"]), str(order["qr_payload"]), None

    def pay(payer: Resident) -> QrPayment:
        with httpx2.Client(base_url=h.cells.cell(payer.cell).url, timeout=30) as http:
            return pay_merchant_across(http, payer, payload, typed)

    payers = [q.payer] if q.rival is None else [q.payer, q.rival]
    with ThreadPoolExecutor(len(payers)) as pool:
        outcomes = [pool.submit(pay, payer) for payer in payers]
    answers: list[QrPayment | None] = []
    errors: list[str | None] = []
    for outcome in outcomes:
        try:
            answers.append(outcome.result())
            errors.append(None)
        except (RuntimeError, httpx2.TransportError) as exc:
            answers.append(None)
            errors.append(str(exc)[:200])
    q.payment, q.error = answers[0], errors[0]
    if q.rival is not None:
        q.rival_payment, q.rival_error = answers[1], errors[1]
    won = [paid for _, paid in q.payments() if paid.state == "committed"]
    if not won or not q.refunds:
        return
    if not q.dynamic:
        q.order_id = _merchant_order_of(h, q.merchant, won[0].switch_transfer_id)
    assert q.order_id is not None
    # as a merchant's server does: refund once its own order says paid (the payer's cell may
    # hear COMMITTED before the merchant's cell does)
    if not _await_paid(clients[q.merchant.cell], q.merchant, q.order_id):
        q.refund_errors.append(f"{q.order_id} not paid at the merchant's cell in time")
        return
    for part in q.refunds:
        try:
            refund = refund_across(clients[q.merchant.cell], q.merchant, q.order_id, part)
        except (RuntimeError, httpx2.TransportError) as exc:
            q.refund_errors.append(str(exc)[:200])
            continue
        q.refunded.append(refund)


def _pay_randomly(
    h: Harness,
    count: int,
    *,
    qr: int = 0,
    seed: int,
    threads: int = 8,
    midway: Callable[[], None] | None = None,
) -> tuple[list[Sent], list[QrSent]]:
    """``count`` P2P payments and ``qr`` merchant payments (with their refunds) from
    ``threads`` clients; ``midway`` runs once a third of them have been sent."""
    plan = _plan(h, random.Random(seed), count, qr)
    total = len(plan)
    done = Counter[str]()
    lock = threading.Lock()
    third = threading.Event()

    def run(share: list[Sent | QrSent]) -> None:
        clients = {c.id: httpx2.Client(base_url=c.url, timeout=30) for c in h.cells.cells}
        try:
            for sent in share:
                if isinstance(sent, QrSent):
                    _pay_qr(h, clients, sent)
                else:
                    try:
                        sent.payment = pay_across(
                            clients[sent.payer.cell], sent.payer, sent.payee.phone, sent.amount
                        )
                    except (RuntimeError, httpx2.TransportError) as exc:
                        sent.error = str(exc)[:200]
                with lock:
                    done["sent"] += 1
                    if done["sent"] >= total // 3:
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
    p2p = [s for s in plan if isinstance(s, Sent)]
    qrs = [s for s in plan if isinstance(s, QrSent)]
    h.history.extend(p2p)
    h.qr_history.extend(qrs)
    return p2p, qrs


# --- reading every side ------------------------------------------------------------------------


def _states(engine: Engine, query: str) -> dict[tuple[str, ...], str]:
    with engine.connect() as conn:
        return {tuple(row[:-1]): row[-1] for row in conn.execute(text(query)).all()}


def _rows(engine: Engine, query: str) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(text(query)).all())


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

    def committed(self) -> set[str]:
        return {tid for tid, state in self.switch.items() if state == "COMMITTED"}


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


def _unsettled_merchant_side(h: Harness) -> list[str]:
    """Refunds still processing and merchant payments still prepared, at every cell."""
    left = []
    for cell in h.cells.cells:
        left += [
            f"{cell.id} refund {row[0]}"
            for row in _rows(
                h.engines[cell.id],
                "SELECT public_id FROM merchant_refunds WHERE status = 'processing'",
            )
        ]
        left += [
            f"{cell.id} payment {row[0]}"
            for row in _rows(
                h.engines[cell.id],
                "SELECT transfer_id FROM merchant_interop_payments WHERE state = 'prepared'",
            )
        ]
    return left


def _await_final(h: Harness, seconds: float = FINAL_WAIT) -> Sides:
    deadline = time.monotonic() + seconds
    while True:
        sides = _sides(h)
        done = not sides.unfinished() and not _unsettled_merchant_side(h)
        if done or time.monotonic() > deadline:
            return sides
        time.sleep(0.5)


def _balance(cell_url: str, resident: Resident) -> int:
    with httpx2.Client(base_url=cell_url) as client:
        wallet = client.get("/v1/wallet", headers=resident.headers).json()
    return int(wallet["balance"])


def _merchant_balance(cell_url: str, merchant: Merchant) -> tuple[int, int, int]:
    """(receivable, in settlement, fee rate in basis points) as the owner's console says."""
    base = f"/v1/merchants/{merchant.merchant_id}"
    with httpx2.Client(base_url=cell_url) as client:
        balance = client.get(f"{base}/balance", headers=merchant.owner.headers).json()
        rate = client.get(base, headers=merchant.owner.headers).json()["fee_rate_bp"]
    return int(balance["receivable"]), int(balance["in_settlement"]), int(rate)


def _pending_holds(engine: Engine) -> int:
    """Every ledger account's pending debits and credits, summed: no hold left anywhere."""
    with engine.connect() as conn:
        total = conn.execute(
            text("SELECT coalesce(sum(debits_pending + credits_pending), 0) FROM ledger_accounts")
        ).scalar()
    return int(total or 0)


# --- the checks ----------------------------------------------------------------------------------


def _check_everything(h: Harness, sent: list[Sent], qr: list[QrSent]) -> Sides:
    """Every check of the module's docstring over everything sent so far."""
    sides = _await_final(h)
    assert sides.unfinished() == [], "not final within expiry + retries"
    assert _unsettled_merchant_side(h) == [], "a merchant's payment or refund not final"
    ours = {s.payment.switch_transfer_id for s in sent if s.payment is not None}
    ours |= {paid.switch_transfer_id for q in qr for _, paid in q.payments()}
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
    answered = [(s.payment.switch_transfer_id, s.payment.state) for s in sent if s.payment]
    answered += [(paid.switch_transfer_id, paid.state) for q in qr for _, paid in q.payments()]
    for tid, state in answered:
        if state != "processing":
            assert state.upper() == sides.payer[tid], (tid, state)
    committed = sides.committed()
    refund_transfers = _check_merchants(h, committed)
    _check_money(h, committed, refund_transfers)
    _check_webhooks(h)
    # no hold left behind, books intact
    for cell in h.cells.cells:
        pending = interop_account(h.engines[cell.id])
        assert (pending[0], pending[2]) == (0, 0), (cell.id, pending)
        assert _pending_holds(h.engines[cell.id]) == 0, cell.id
    with ThreadPoolExecutor(len(h.cells.cells)) as pool:
        reports = list(pool.map(lambda c: h.cells.cli(c, "ledger", "verify"), h.cells.cells))
    for report in reports:
        assert "ledger verified" in report
    return sides


def _check_merchants(h: Harness, committed: set[str]) -> dict[str, str]:
    """Each merchant cell's own records agree with the switch: a payment committed exactly
    when its transfer did; an order paid exactly when one of its payments committed (never
    two), none awaiting confirmation, a static code's aborted order closed; a refund
    succeeded exactly when its transfer committed, and an order's refunded amount is its
    succeeded refunds. Returns refund id → its switch transfer id, over every cell."""
    refund_transfers: dict[str, str] = {}
    for cell in h.cells.cells:
        engine = h.engines[cell.id]
        payments = _rows(
            engine,
            "SELECT transfer_id, order_public_id, dynamic, state FROM merchant_interop_payments",
        )
        orders = {
            str(r[0]): (str(r[1]), int(r[2]), str(r[3] or ""))
            for r in _rows(
                engine, "SELECT public_id, status, refunded_amount, channel FROM merchant_orders"
            )
        }
        paid_by: defaultdict[str, list[str]] = defaultdict(list)
        for tid, order_id, dynamic, state in payments:
            if tid is None:  # quoted only: the payer never prepared (a lost or slow answer)
                assert state == "quoted", (cell.id, order_id, state)
                continue
            assert state == ("committed" if tid in committed else "aborted"), (tid, state)
            if state == "committed":
                paid_by[order_id].append(tid)
            elif not dynamic:
                assert orders[order_id][0] == "closed", (order_id, orders[order_id])
        for order_id, (status, _, channel) in orders.items():
            assert status != "awaiting_confirmation", (cell.id, order_id)
            if channel == "interop_qr" or order_id in paid_by:
                assert len(paid_by.get(order_id, [])) <= 1, ("paid twice", order_id, paid_by)
                assert (status == "paid") == (order_id in paid_by), (order_id, status)
        # refunds: each one's transfer (the merchant's cell pays: role payer, no resident)
        sent_back = {
            str(key): str(tid)
            for key, tid in _rows(
                engine,
                "SELECT idempotency_key, transfer_id FROM interop_transfers "
                "WHERE role = 'payer' AND (user_id IS NULL OR user_id = '')",
            )
        }
        refunded: Counter[str] = Counter()
        for refund_id, order_id, amount, status in _rows(
            engine,
            "SELECT r.public_id, o.public_id, r.amount, r.status FROM merchant_refunds r "
            "JOIN merchant_orders o ON o.id = r.order_id",
        ):
            tid = sent_back.get(str(refund_id))
            if tid is not None:
                refund_transfers[str(refund_id)] = tid
            assert status == ("succeeded" if tid in committed else "failed"), (refund_id, status)
            if status == "succeeded":
                refunded[str(order_id)] += int(amount)
        for order_id, (_, refunded_amount, _) in orders.items():
            assert refunded_amount == refunded[order_id], (order_id, refunded_amount)
    return refund_transfers


def _check_money(h: Harness, committed: set[str], refund_transfers: dict[str, str]) -> None:
    """Residents: seeded ± committed P2P, QR payments and refunds; merchants: committed QR
    payments less fees, less committed refunds (less their fee share). A double credit or a
    lost debit shows here."""
    expected = {r.phone: TOP_UP for r in h.residents()}
    for s in h.history:
        if s.payment is not None and s.payment.switch_transfer_id in committed:
            expected[s.payer.phone] -= s.amount + s.payment.payer_fee
            expected[s.payee.phone] += s.amount
    rates = {}
    balances = {}
    for merchant in h.merchants():
        receivable, in_settlement, rate = _merchant_balance(
            h.cells.cell(merchant.cell).url, merchant
        )
        balances[merchant.merchant_id] = (receivable, in_settlement)
        rates[merchant.merchant_id] = rate
    owed = {m.merchant_id: 0 for m in h.merchants()}
    for q in h.qr_history:
        won = [(who, paid) for who, paid in q.payments() if paid.switch_transfer_id in committed]
        assert len(won) <= 1, ("a code paid twice", q)
        if not won:
            continue
        payer, _ = won[0]
        expected[payer.phone] -= q.amount
        owed[q.merchant.merchant_id] += q.amount - fee_for(q.amount, rates[q.merchant.merchant_id])
        for refund in q.refunded:
            if refund_transfers.get(refund.id) in committed:
                expected[payer.phone] += refund.amount
                owed[q.merchant.merchant_id] -= refund.amount - refund.fee_back
    for cell in h.cells.cells:
        for resident in cell.residents:
            assert _balance(cell.url, resident) == expected[resident.phone], resident.phone
    for merchant in h.merchants():
        assert balances[merchant.merchant_id] == (owed[merchant.merchant_id], 0), merchant


def _check_webhooks(h: Harness, seconds: float = 30.0) -> None:
    """One ``payment.succeeded`` per paid order and one ``refund.succeeded`` per succeeded
    refund, each stored once and delivered to the merchant's server under one event id."""
    stored: dict[str, tuple[str, str]] = {}  # event id → (type, object)
    wanted: set[tuple[str, str]] = set()
    for cell in h.cells.cells:
        engine = h.engines[cell.id]
        events = _rows(engine, "SELECT public_id, type, object_id FROM merchant_webhook_events")
        per_object = Counter((str(t), str(o)) for _, t, o in events)
        assert [k for k, n in per_object.items() if n > 1] == [], "an event recorded twice"
        stored |= {str(e): (str(t), str(o)) for e, t, o in events}
        wanted |= {
            ("payment.succeeded", str(r[0]))
            for r in _rows(
                engine,
                "SELECT public_id FROM merchant_orders WHERE status = 'paid' "
                "AND channel = 'interop_qr'",
            )
        }
        wanted |= {
            ("refund.succeeded", str(r[0]))
            for r in _rows(
                engine, "SELECT public_id FROM merchant_refunds WHERE status = 'succeeded'"
            )
        }
    assert set(stored.values()) == wanted
    deadline = time.monotonic() + seconds
    while {e for e, _, _ in h.webhooks.seen} < set(stored) and time.monotonic() < deadline:
        time.sleep(0.3)
    delivered: defaultdict[tuple[str, str], set[str]] = defaultdict(set)
    for event_id, kind, object_id in list(h.webhooks.seen):
        delivered[(kind, object_id)].add(event_id)
    assert set(delivered) == wanted, "a webhook not delivered"
    assert all(len(ids) == 1 for ids in delivered.values()), "one object, two events"


def _only_timeouts_before_the_transfer(sent: list[Sent], qr: list[QrSent], *, at_most: int) -> None:
    """A payment may fail only where no money moves yet: its lookup or quote got no answer in
    time, three times over (a loaded machine, lost messages, the switch down); of two
    residents scanning one dynamic code at once, the one who lost may also be refused
    (``interop_quote_refused``: the order is held or paid). A refund asked may always be
    answered. Any other failure, or more than ``at_most`` of them, fails the test."""
    failed = [s.error or "" for s in sent if s.payment is None]
    failed += [q.error or "" for q in qr if q.payment is None and q.rival is None]
    others = [e for e in failed if not e.startswith(QUOTE_TIMEOUTS)]
    assert others == []
    assert len(failed) <= at_most, failed[:3]
    for q in qr:
        if q.rival is not None:
            for error in (q.error, q.rival_error):
                assert error is None or error.startswith((*QUOTE_TIMEOUTS, "pay: 409")), error
        assert q.refund_errors == [], q.refund_errors
        for refund in q.refunded:
            assert refund.status in ("succeeded", "failed"), refund


def _check_qr_traffic(qr: list[QrSent]) -> None:
    """The merchant traffic happened: static and dynamic codes paid, refunds succeeded."""
    paid = [q for q in qr if any(p.state == "committed" for _, p in q.payments())]
    assert {q.dynamic for q in paid} == {True, False}
    assert len(paid) >= len(qr) * 0.7
    refunds = [r for q in qr for r in q.refunded]
    assert sum(r.status == "succeeded" for r in refunds) >= len(refunds) * 0.7


# --- the tests -----------------------------------------------------------------------------------


def test_random_cross_provider_transfers_through_faults_end_final_and_balanced(
    harness: Harness,
) -> None:
    sent, qr = _pay_randomly(harness, 200, qr=60, seed=1)
    _only_timeouts_before_the_transfer(sent, qr, at_most=(len(sent) + len(qr)) // 10)
    sides = _check_everything(harness, sent, qr)
    ids = [s.payment.switch_transfer_id for s in sent if s.payment is not None]
    committed = [tid for tid in ids if sides.switch.get(tid) == "COMMITTED"]
    assert len(committed) >= len(sent) * 0.8  # faults delay, they do not stop the traffic
    _check_qr_traffic(qr)
    counts = Counter[str]()
    for proxy in harness.cells.proxies():
        counts.update(proxy.snapshot())
    for fate in ("dropped_requests", "dropped_responses", "duplicated", "delayed"):
        assert counts[fate] > 0, counts
    settle(harness.cells, harness.engines)


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

    sent, qr = _pay_randomly(harness, 100, qr=30, seed=2, midway=kill_and_restart)
    assert killed == [-9]  # SIGKILL: nothing flushed, nothing said goodbye
    _only_timeouts_before_the_transfer(sent, qr, at_most=(len(sent) + len(qr)) // 2)
    _check_everything(harness, sent, qr)
    settle(harness.cells, harness.engines)
