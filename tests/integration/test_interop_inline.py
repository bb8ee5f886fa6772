"""Inline callbacks end to end, in one process, on SQLite and PostgreSQL: the switch and two
providers (each its own app and database) joined by an in-memory network that counts every
HTTP request and can drop the answer to one (docs/interop.md, "Inline callbacks").

A cross-provider payment takes 6 HTTP requests with callbacks inline (lookup 1, quote 2,
transfer 3) and 11 without; an answer lost on the way back is recovered by the sender's
retry, which the receiver answers again; a callback that comes after its mailbox closed goes
over HTTP. Every payment ends committed at both providers and the switch, credited once,
with both ledgers verified.
"""

from __future__ import annotations

import base64
import shutil
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from citywallet.api import interop as interop_api
from citywallet.api.app import create_app
from citywallet.api.switch import create_switch_app
from citywallet.interop import inline
from citywallet.interop.switch import registry
from citywallet.interop.transport import Courier, Sender
from citywallet.platform.db import Database
from citywallet.runtime import Runtime
from citywallet.schema import metadata
from tests.conftest import PG_ADMIN_URL
from tests.interop_support import PROVIDER_SEED, eventually, interop_settings
from tests.ledger_checks import assert_ledger_clean, test_encryptor
from tests.switch_support import public_b64, switch_runtime
from tests.wallet_support import PIN, Person

SEEDS = {"provider-a": PROVIDER_SEED, "provider-b": bytes([11]) * 32}
SWITCH = "switch.test"
A, B = "provider-a.test", "provider-b.test"
TOP_UP = 100_000
AMOUNT = 1_234


@dataclass
class Network(httpx2.BaseTransport):
    """Every participant's HTTP in this process: host → its app's test client. Counts each
    request (host, method, path) and drops the answer of those ``drop`` picks (the receiver
    acted; the sender sees a broken connection, as at the fault proxy)."""

    clients: dict[str, TestClient] = field(default_factory=dict)
    requests: list[tuple[str, str, str]] = field(default_factory=list)
    drops: list[tuple[str, str, str]] = field(default_factory=list)
    drop: Callable[[tuple[str, str, str]], bool] = lambda _request: False
    delay: Callable[[tuple[str, str, str]], float] = lambda _request: 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        seen = (request.url.host, request.method, request.url.path)
        with self.lock:
            self.requests.append(seen)
        if (pause := self.delay(seen)) > 0:
            time.sleep(pause)
        headers = {k: v for k, v in request.headers.items() if k not in ("host", "content-length")}
        answer = self.clients[seen[0]].request(
            request.method, seen[2], headers=headers, content=request.read() or None
        )
        with self.lock:
            dropped = self.drop(seen)
            if dropped:
                self.drops.append(seen)
        if dropped:
            raise httpx2.ReadError("the answer was dropped on its way back")
        kept = {k: v for k, v in answer.headers.items() if k != "content-length"}
        return httpx2.Response(answer.status_code, headers=kept, content=answer.content)

    def kinds(self) -> Counter[tuple[str, str, str]]:
        """The requests so far, ids left out of their paths."""
        with self.lock:
            return Counter((h, m, _shape(p)) for h, m, p in self.requests)


def _shape(path: str) -> str:
    parts = path.split("/")
    return "/".join("{id}" if len(p) in (11, 36) else p for p in parts)


def once(target: tuple[str, str, str]) -> Callable[[tuple[str, str, str]], bool]:
    """A ``drop`` that drops the answer to the first request of ``target``'s shape."""
    done: list[bool] = []

    def pick(seen: tuple[str, str, str]) -> bool:
        if done or (seen[0], seen[1], _shape(seen[2])) != target:
            return False
        done.append(True)
        return True

    return pick


# --- three databases -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_peers(pg_url: str) -> Iterator[dict[str, str]]:
    """Two more PostgreSQL databases beside this worker's (the other provider, the switch)."""
    base = make_url(pg_url).database
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    urls = {}
    try:
        for role in ("b", "switch"):
            name = f"{base}_{role}"
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            url = make_url(pg_url).set(database=name).render_as_string(hide_password=False)
            schema = Database(url, pool_size=1)
            try:
                metadata.create_all(schema.engine)
            finally:
                schema.dispose()
            urls[role] = url
        yield urls
    finally:
        with admin.connect() as conn:
            for role in ("b", "switch"):
                conn.execute(text(f'DROP DATABASE IF EXISTS "{base}_{role}" WITH (FORCE)'))
        admin.dispose()


def _peer(request: pytest.FixtureRequest, db: Database, tmp_path: Path, role: str) -> Database:
    if db.url.startswith("sqlite"):
        target = tmp_path / f"{role}.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), target)
        return Database(f"sqlite:///{target}", pool_size=40)
    url = request.getfixturevalue("pg_peers")[role]
    peer = Database(url, pool_size=40)
    tables = ", ".join(t.name for t in metadata.sorted_tables)
    with peer.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    return peer


# --- the switch and two providers ------------------------------------------------------------


@dataclass
class World:
    network: Network
    dbs: dict[str, Database]  # host → its database
    couriers: dict[str, Courier]
    alice: Person  # at provider-a, with money
    bob: Person  # at provider-b

    def without_inline(self) -> None:
        """Ask for callbacks inline nowhere: FSPIOP as it was (every callback a request)."""
        for courier in self.couriers.values():
            courier.take_inline(None)


def _provider(db: Database, tmp_path: Path, participant: str, network: Network) -> Runtime:
    settings = interop_settings(
        tmp_path / participant, db, interop_participant_id=participant,
        interop_key=base64.b64encode(SEEDS[participant]).decode(),
        interop_public_url=f"http://{participant}.test/fspiop",
        interop_switch_url=f"http://{SWITCH}",
    )  # fmt: skip
    runtime = Runtime(settings, db, test_encryptor())
    courier = Courier(db, Sender(runtime.interop_key, transport=network), poll=0.05)
    runtime.__dict__["interop_courier"] = courier
    return runtime


@pytest.fixture
def world(
    request: pytest.FixtureRequest, db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[World]:
    monkeypatch.setattr(interop_api, "WAIT_SECONDS", 30.0)  # a loaded machine must not fail
    network = Network()
    db_b, db_s = _peer(request, db, tmp_path, "b"), _peer(request, db, tmp_path, "switch")
    for participant, seed in SEEDS.items():
        key = public_b64(Ed25519PrivateKey.from_private_bytes(seed))
        db_s.transact(
            lambda uow, p=participant, k=key: registry.add_participant(
                uow, participant_id=p, name=p.upper(), public_key=k,
                callback_url=f"http://{p}.test/fspiop", cap=10 * TOP_UP,
            )
        )  # fmt: skip
    runtime_a = _provider(db, tmp_path, "provider-a", network)
    runtime_b = _provider(db_b, tmp_path, "provider-b", network)
    switch_app = create_switch_app(switch_runtime(db_s, tmp_path / "switch"), transport=network)
    try:
        with ExitStack() as stack:
            for host, app in ((SWITCH, switch_app), (A, create_app(runtime_a)),
                              (B, create_app(runtime_b))):  # fmt: skip
                client = TestClient(app, raise_server_exceptions=False)
                network.clients[host] = stack.enter_context(client)
            alice = Person(network.clients[A], 1)
            alice.money(
                "/v1/wallet/topups", {"card_id": alice.card_id, "amount": TOP_UP, "pin": PIN}
            )
            bob = Person(network.clients[B], 2, card_ending=None)
            eventually(lambda: _alias_known(db_s, bob.phone))
            couriers = {
                SWITCH: switch_app.state.switch.courier,
                A: runtime_a.interop_courier,
                B: runtime_b.interop_courier,
            }
            yield World(network, {SWITCH: db_s, A: db, B: db_b}, couriers, alice, bob)
    finally:
        for peer in (db_b, db_s):
            peer.dispose()


def _alias_known(db: Database, phone: str) -> bool:
    with db.uow(readonly=True) as uow:
        return registry.lookup_alias(uow, id_type="MSISDN", identifier=phone) is not None


def _state(db: Database, table: str, transfer_id: str) -> str | None:
    with db.uow(readonly=True) as uow:
        row = uow.session.execute(
            text(f"SELECT state FROM {table} WHERE transfer_id = :id"), {"id": transfer_id}
        ).first()
    return None if row is None else str(row[0])


def _pay(w: World) -> dict[str, Any]:
    """Alice pays Bob across providers through the residents' API; the final answer."""
    quote = w.alice.post("/v1/interop/quotes", {"phone": w.bob.phone, "amount": AMOUNT})
    assert quote.status_code == 201, quote.text
    paid = w.alice.post(
        "/v1/interop/transfers",
        {"quote_id": quote.json()["quote_id"], "pin": PIN, "note": "inline"},
        key=str(uuid.uuid4()),
    )
    assert paid.status_code == 201, paid.text
    body: dict[str, Any] = paid.json()
    assert body["state"] == "committed", body
    return body


def _settled_once(w: World, paid: dict[str, Any]) -> None:
    """Committed everywhere (the payee told by the switch's notice), credited once, books
    verified on both providers."""
    transfer_id = paid["switch_transfer_id"]
    eventually(lambda: _state(w.dbs[B], "interop_transfers", transfer_id) == "COMMITTED")
    assert _state(w.dbs[SWITCH], "switch_transfers", transfer_id) == "COMMITTED"
    assert _state(w.dbs[A], "interop_transfers", transfer_id) == "COMMITTED"
    assert w.alice.wallet()["balance"] == TOP_UP - AMOUNT - paid["payer_fee"]
    assert w.bob.wallet()["balance"] == AMOUNT
    assert_ledger_clean(w.dbs[A])
    assert_ledger_clean(w.dbs[B])


INLINE_PAYMENT = Counter(
    {
        (SWITCH, "GET", "/parties/MSISDN/{id}"): 1,  # the party comes back inline
        (SWITCH, "POST", "/quotes"): 1,  # held until the payee's terms come back inline
        (B, "POST", "/fspiop/quotes"): 1,  # the terms inline
        (SWITCH, "POST", "/transfers"): 1,  # held until COMMITTED comes back inline
        (B, "POST", "/fspiop/transfers"): 1,  # the fulfilment inline
        (B, "PUT", "/fspiop/transfers/{id}"): 1,  # COMMITTED to the payee: a request
    }
)


# --- the tests -------------------------------------------------------------------------------


def test_a_payment_takes_six_requests_with_callbacks_inline(world: World) -> None:
    world.network.requests.clear()
    paid = _pay(world)
    _settled_once(world, paid)
    assert world.network.kinds() == INLINE_PAYMENT
    assert sum(INLINE_PAYMENT.values()) == 6


def test_without_inline_the_same_payment_takes_eleven(world: World) -> None:
    world.without_inline()
    world.network.requests.clear()
    paid = _pay(world)
    _settled_once(world, paid)
    callbacks = Counter(
        {
            (A, "PUT", "/fspiop/parties/MSISDN/{id}"): 1,
            (SWITCH, "PUT", "/quotes/{id}"): 1,
            (A, "PUT", "/fspiop/quotes/{id}"): 1,
            (SWITCH, "PUT", "/transfers/{id}"): 1,
            (A, "PUT", "/fspiop/transfers/{id}"): 1,
        }
    )
    assert world.network.kinds() == INLINE_PAYMENT + callbacks
    assert world.network.kinds().total() == 11


@pytest.mark.parametrize(
    "lost",
    [
        (SWITCH, "GET", "/parties/MSISDN/{id}"),
        (SWITCH, "POST", "/quotes"),
        (B, "POST", "/fspiop/quotes"),
        (SWITCH, "POST", "/transfers"),
        (B, "POST", "/fspiop/transfers"),
    ],
    ids=["party", "quote", "payee-quote", "transfer", "payee-prepare"],
)
def test_an_answer_lost_on_its_way_back_is_answered_again_on_the_retry(
    world: World, lost: tuple[str, str, str]
) -> None:
    world.network.requests.clear()
    world.network.drop = once(lost)
    paid = _pay(world)
    _settled_once(world, paid)
    assert world.network.drops == [d for d in world.network.requests if _same(d, lost)][:1]
    assert world.network.kinds() == INLINE_PAYMENT + Counter({lost: 1})  # the retry, no more


def _same(seen: tuple[str, str, str], shape: tuple[str, str, str]) -> bool:
    return (seen[0], seen[1], _shape(seen[2])) == shape


def test_an_answer_after_the_mailbox_closed_goes_over_http(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inline, "WAIT_SECONDS", 0.1)
    world.network.requests.clear()
    # the payee's provider answers the quote after the switch stopped holding the request
    world.network.delay = lambda seen: 0.5 if _same(seen, (B, "POST", "/fspiop/quotes")) else 0
    paid = _pay(world)
    _settled_once(world, paid)
    kinds = world.network.kinds()
    assert kinds[(A, "PUT", "/fspiop/quotes/{id}")] == 1  # the terms came as a request
    # 6 + that request; more only if a loaded machine also outlasted the transfer's 0.1 s hold
    assert kinds.total() >= 7
