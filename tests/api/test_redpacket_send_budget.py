"""Sending a red packet: its transaction and statement budget (issue 13), counted on SQLite
and PostgreSQL through the real HTTP API: a count, never a timing (tests/statement_count.py).

A successful send is **one** write transaction: the idempotency key claimed, the sender read
with the PIN state and the wallet locked (one statement), the recipient or the group, the
limit usage, the escrow stripes opened and funded, the packet, its share rows, the
history line and the recipients' notices, the response stored. A wrong PIN rolls all of it
back and adds **one** small write transaction that counts the try. A replay of the same
``Idempotency-Key`` writes nothing and needs no PIN. Authentication adds at most one
read-only transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response

from citywallet.platform.db import Database
from tests.ledger_checks import assert_ledger_clean
from tests.merchant_support import fund
from tests.statement_count import Tally, counted
from tests.wallet_support import PIN, Person, count

# To one person: 16 on PostgreSQL; to a group (its member count read): 17 — each with the
# message-centre notices (one INSERT … SELECT that also NOTIFYs, issue 15). SQLite's ledger
# writes the transfers and the counters in two statements: one more.
BUDGET = {"postgresql": 17, "sqlite": 18}
KEYS = "SELECT COUNT(*) FROM platform_idempotency_keys"
AUTH_READS = 1


@dataclass
class World:
    alice: Person
    bob: Person
    group_id: str


@pytest.fixture
def world(client: TestClient) -> World:
    alice, bob = Person(client, 1), Person(client, 2, card_ending=None)
    carol = Person(client, 3, card_ending=None)
    fund(alice, 500_00)
    made = alice.post("/v1/redpacket-groups", {"name": "预算", "members": [bob.phone, carol.phone]})
    assert made.status_code == 201, made.text
    warm = alice.post("/v1/redpackets", {"to": bob.phone, "amount": 1_00, "pin": PIN}, key="w")
    assert warm.status_code == 201, warm.text  # caches warm, limit rows exist
    return World(alice, bob, made.json()["id"])


def _send(db: Database, who: Person, body: dict[str, Any], key: str) -> tuple[Tally, Response]:
    with counted(db) as tally:
        response = who.post("/v1/redpackets", body, key=key)
    return tally, response


def _one_transaction(tally: Tally, dialect: str) -> None:
    assert len(tally.read) <= AUTH_READS, [t.statements for t in tally.read]
    [write] = tally.write
    assert len(write.statements) <= BUDGET[dialect], "\n".join(write.statements)


def test_a_send_is_one_transaction_within_budget(world: World, db: Database) -> None:
    alice, bob = world.alice, world.bob
    single = {"to": bob.phone, "amount": 6_66, "pin": PIN, "greeting": "恭喜"}
    tally, sent = _send(db, alice, single, "s1")
    assert sent.status_code == 201, sent.text
    _one_transaction(tally, db.dialect)

    group = {"group_id": world.group_id, "amount": 30_00, "shares": 3, "pin": PIN}
    tally, lucky = _send(db, alice, group, "s2")
    assert lucky.status_code == 201, lucky.text
    _one_transaction(tally, db.dialect)

    tally, again = _send(db, alice, single, "s1")  # a replay
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.content == sent.content
    assert all(
        not s.lstrip().upper().startswith(("UPDATE", "DELETE"))
        for t in tally.write
        for s in t.statements
    )
    assert alice.wallet()["balance"] == 500_00 - 1_00 - 6_66 - 30_00
    assert count(db, "SELECT COUNT(*) FROM redpackets") == 3
    assert_ledger_clean(db)


def test_a_wrong_pin_rolls_back_and_is_counted_in_one_small_transaction(
    world: World, db: Database
) -> None:
    alice, bob = world.alice, world.bob
    cases = [
        {"to": bob.phone, "amount": 2_00, "pin": "000000"},
        {"group_id": world.group_id, "amount": 9_00, "shares": 3, "pin": "000000"},
    ]
    keys = count(db, KEYS)
    for n, body in enumerate(cases):
        tally, refused = _send(db, alice, body, str(uuid.uuid4()))
        assert refused.status_code == 403, refused.text
        assert refused.json()["code"] == "pin_incorrect"
        assert refused.json()["attempts_left"] == 4 - n
        _send_tx, counting = tally.write  # the send (rolled back), then the count
        assert len(counting.statements) <= 3, counting.statements
    assert alice.wallet()["balance"] == 500_00 - 1_00
    assert count(db, "SELECT COUNT(*) FROM redpackets") == 1
    assert count(db, KEYS) == keys  # the keys rolled back too: a retry runs again
    assert_ledger_clean(db)
