"""The payments bench's SQL replay (bench/replay.py) sends the statements a real payment
sends, and each replayed transaction is a real, successful payment.

On PostgreSQL: a scan payment and a P2P transfer go through the HTTP API with the
statements counted (tests/statement_count.py); the pgbench scripts' statements, with their
values taken from the helper row the bench fills, are then run through the driver in one
transaction each, must have the same shape in the same order (values and literals aside;
the ledger's account update adds to the counters the lock read), and must pay.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from bench import replay
from fastapi.testclient import TestClient
from sqlalchemy import select

from citywallet.platform.db import Database
from citywallet.runtime import Runtime
from tests.ledger_checks import assert_ledger_clean
from tests.merchant_support import PIN, ShopOwner, fund
from tests.statement_count import counted
from tests.wallet_support import Person

_VALUES = re.compile(r"%\(\w+\)s|%[sb]|(?<!:):\w+|'[^']*'|\b\d+\b|\bNULL\b")


def _shape(sql: str) -> str:
    """A statement with every value and literal replaced by ``?``."""
    shaped = re.sub(r"a\.\w+ \+ (v\.\w+)", r"\1", _VALUES.sub("?", sql))
    return " ".join(shaped.split())


def _script(kind: str) -> list[str]:
    """The statements of the kind's pgbench script between BEGIN and COMMIT."""
    lines = (replay.PGBENCH_DIR / replay.SCRIPTS[kind]).read_text().splitlines()
    return lines[lines.index("BEGIN;") + 1 : lines.index("COMMIT;")]


def _collapsed(shapes: list[str]) -> list[str]:
    """Consecutive equal shapes as one (the server sends history lines as one executemany)."""
    return [s for i, s in enumerate(shapes) if i == 0 or shapes[i - 1] != s]


def _replay(db: Database, kind: str) -> list[str]:
    """Run the script's transaction on helper row 0, as pgbench would; its statements."""
    table = replay.SCAN_ROWS if kind == "scan" else replay.P2P_ROWS
    with db.engine.connect() as conn:
        row: dict[str, Any] = dict(conn.execute(select(table).where(table.c.n == 0)).one()._mapping)
    with counted(db) as tally, db.engine.begin() as conn:
        for statement in _script(kind):
            sql = re.sub(r"(?<!:):(\w+)", r"%(\1)s", statement.rstrip(";"))
            conn.exec_driver_sql(sql, row)
    return [s for t in tally.transactions for s in t.statements]


def _paid(db: Database, person: Person, path: str, body: dict[str, object]) -> list[str]:
    with counted(db) as tally:
        answer = person.post(path, body, key=str(uuid.uuid4()))
    assert answer.status_code == 201, answer.text
    [write] = tally.write
    return write.statements


# The replay runs under pgbench, so on PostgreSQL only (not a skip: no SQLite case exists).
on_postgresql = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


@pytest.fixture
def pg(db: Database) -> Database:
    assert db.dialect == "postgresql"
    return db


@on_postgresql
def test_the_scan_replay_is_a_real_payment_with_the_servers_statements(
    client: TestClient, runtime: Runtime, pg: Database
) -> None:
    shop, alice = ShopOwner(client, runtime, 1), Person(client, 2)
    fund(alice, 100_00)
    warm = shop.order(1_00)  # warms the caches: the payment then sends its common statements
    _paid(pg, alice, "/v1/payments/scan", {"payload": warm["qr_payload"], "pin": PIN})
    order = shop.order(2_00)
    sent = _paid(pg, alice, "/v1/payments/scan", {"payload": order["qr_payload"], "pin": PIN})

    replayed = shop.order(2_50, out_trade_no="BENCH000000007")
    with pg.engine.begin() as conn:
        assert replay.fill_scan(conn, [alice.user_id], limit=10) == 1
    statements = _replay(pg, "scan")

    assert [_shape(s) for s in statements] == [_shape(s) for s in sent]
    assert shop.api.get(f"/v1/merchant/orders/{replayed['id']}").json()["status"] == "paid"
    assert alice.wallet()["balance"] == 100_00 - 1_00 - 2_00 - 2_50
    with pg.engine.connect() as conn:
        assert replay.succeeded(conn, "scan") == 1
    assert_ledger_clean(pg)


@on_postgresql
def test_the_p2p_replay_is_a_real_transfer_with_the_servers_statements(
    client: TestClient, pg: Database
) -> None:
    alice, bob = Person(client, 2), Person(client, 3)
    fund(alice, 100_00)
    fund(bob, 1_00)
    body = {"to": bob.user_id, "amount": 1_00, "pin": PIN}
    _paid(pg, alice, "/v1/wallet/transfers", body)  # warm
    sent = _paid(pg, alice, "/v1/wallet/transfers", body)

    with pg.engine.begin() as conn:
        assert replay.fill_p2p(conn, [alice.user_id, bob.user_id], limit=1) == 1
        [amount] = conn.execute(select(replay.P2P_ROWS.c.amount)).scalars()
    statements = _replay(pg, "p2p")

    assert _collapsed([_shape(s) for s in statements]) == [_shape(s) for s in sent]
    assert bob.wallet()["balance"] == 1_00 + 2 * 1_00 + amount
    with pg.engine.connect() as conn:
        assert replay.succeeded(conn, "p2p") == 1
    assert_ledger_clean(pg)


def test_the_bound_adds_the_databases_cost_to_an_empty_requests() -> None:
    # 1 ms of database CPU + 2 cores / 2,000 healthz/s = 1 ms of machine CPU per request
    per_s, ratio = replay.bound(
        cores=2, db_cpu_ms=1.0, healthz_rps=2_000, healthz_machine_cores=2.0
    )
    assert (per_s, ratio) == (1_000, 0.5)
