"""The grab's statement and transaction budget, counted on SQLite and PostgreSQL (a count,
never a timing): SQLAlchemy's engine events see every statement and every transaction.

- A refused grab (empty, already claimed, expired) opens **no write transaction**: only
  read-only ones (on SQLite a deferred ``BEGIN``, never the writer lock), no INSERT, UPDATE,
  DELETE or row lock — in the service (``redpacket.grab``) and over HTTP.
- A successful grab is **one write transaction** of at most ``CLAIM_BUDGET`` statements
  (PostgreSQL 7: the share and the history line in one statement; SQLite 9: two for those,
  and its ledger writes the transfer and the counters in two), with the claimer's tier under
  a balance limit (the check then locks the wallet and reads its balance; 2 fewer without
  one). Over HTTP the idempotency key adds 2 (claimed, then its response stored). The
  read-only check before it is **one statement** (``CHECK_BUDGET``), in autocommit on
  PostgreSQL (no ``BEGIN``/``ROLLBACK``) when the service's ``grab`` runs it.
- The claim that empties a packet of one escrow stripe adds 2 (it reads the shares for best
  luck and closes the packet row), once per packet; in a striped packet (more than 8
  shares) the last claim of each stripe adds 1 more (the packet row's lock).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from citywallet.api.app import create_app
from citywallet.platform.clock import now_us
from citywallet.platform.db import Database
from citywallet.platform.errors import DomainError
from citywallet.redpacket import service as redpacket
from citywallet.runtime import Runtime
from tests.ledger_checks import assert_ledger_clean, test_encryptor
from tests.redpacket_support import Claimant, Env, bulk_residents, join_group
from tests.statement_count import Tally, Transaction, counted
from tests.wallet_support import sandbox_bank, wallet_settings

YUAN = 100
HOUR_US = 3600 * 1_000_000
CHECK_BUDGET = 1  # one statement: the claimer, their wallet id, the packet with everything
CLAIM_BUDGET = {"postgresql": 7, "sqlite": 9}
IDEMPOTENCY = 2
AUTH_BUDGET = 1  # the bearer session with its user


@dataclass
class World:
    """A group packet of ``SHARES`` shares, its members, an expired packet, an HTTP client."""

    env: Env
    client: TestClient
    members: list[Claimant]
    packet: str
    expired: str


SHARES = 3


@pytest.fixture
def world(db: Database, tmp_path: Path) -> World:
    # Tier 1 under a balance limit: the claim then locks the wallet and reads its balance.
    settings = wallet_settings(tmp_path, db, wallet_tier_limits={"1": {"balance": 10_000 * YUAN}})
    env = Env(db, settings, test_encryptor(), sandbox_bank())
    sender = env.resident(1, 500 * YUAN)
    members = bulk_residents(db, env.enc, 2 * SHARES + 2)
    group = env.group(sender, name="预算")
    join_group(db, group.id, members)
    packet = env.send(sender, 30 * YUAN, group_id=group.id, shares=SHARES)
    expired = env.send(sender, 5 * YUAN, group_id=group.id, shares=2, now=now_us() - 25 * HOUR_US)
    client = TestClient(create_app(Runtime(settings, db, env.enc)), raise_server_exceptions=False)
    return World(env, client, members, packet.id, expired.id)


def _grab(world: World, who: Claimant, packet_id: str) -> tuple[Tally, str]:
    with counted(world.env.db) as tally:
        try:
            redpacket.grab(
                world.env.db, user_id=who.user_id, packet_id=packet_id, settings=world.env.settings
            )
        except DomainError as exc:
            return tally, exc.code
    return tally, "claimed"


def _post(world: World, who: Claimant, packet_id: str) -> tuple[Tally, int, dict[str, Any]]:
    with counted(world.env.db) as tally:
        response = world.client.post(
            f"/v1/redpackets/{packet_id}/claims",
            headers={**who.headers, "Idempotency-Key": str(uuid.uuid4())},
        )
    return tally, response.status_code, response.json()


def _statements(transactions: list[Transaction]) -> int:
    return sum(len(t.statements) for t in transactions)


def test_a_grab_in_the_service_keeps_its_budget(world: World, db: Database) -> None:
    first, second, last, late = world.members[:4]
    budget = CLAIM_BUDGET[db.dialect]

    tally, outcome = _grab(world, first, world.packet)
    assert outcome == "claimed"
    [write] = tally.write
    assert len(write.statements) <= budget, write.statements
    [read] = tally.read
    assert len(read.statements) <= CHECK_BUDGET, read.statements

    assert _grab(world, second, world.packet)[1] == "claimed"
    tally, outcome = _grab(world, last, world.packet)  # the last share: closes the packet
    assert outcome == "claimed"
    [write] = tally.write
    assert len(write.statements) <= budget + 2, write.statements

    for who, packet_id, code in [
        (first, world.packet, "redpacket_already_claimed"),
        (late, world.packet, "redpacket_empty"),
        (late, world.expired, "redpacket_expired"),
    ]:
        tally, outcome = _grab(world, who, packet_id)
        assert outcome == code
        assert tally.write == [], [t.statements for t in tally.write]
        assert _statements(tally.read) <= CHECK_BUDGET
    view = world.env.packet(first.user_id, world.packet)
    assert (view.status, view.claimed_count, view.claimed_amount) == ("finished", SHARES, 30 * YUAN)
    assert_ledger_clean(db)


def test_a_grab_over_http_keeps_its_budget(world: World, db: Database) -> None:
    first, *others = world.members[SHARES + 1 :]
    budget = CLAIM_BUDGET[db.dialect] + IDEMPOTENCY
    for who in world.members[: SHARES - 1]:  # leave one share
        redpacket.grab(db, user_id=who.user_id, packet_id=world.packet, settings=world.env.settings)

    tally, status, body = _post(world, first, world.packet)  # takes the last share
    assert (status, body["packet_status"], body["claimed_count"]) == (201, "finished", SHARES)
    [write] = tally.write
    assert len(write.statements) <= budget + 2, write.statements
    assert _statements(tally.read) <= AUTH_BUDGET + CHECK_BUDGET

    for who, packet_id, code in [
        (first, world.packet, "redpacket_already_claimed"),
        (others[0], world.packet, "redpacket_empty"),
        (others[0], world.expired, "redpacket_expired"),
    ]:
        tally, status, body = _post(world, who, packet_id)
        assert (status, body["code"]) == (409, code)
        assert tally.write == [], [t.statements for t in tally.write]
        # The session, the checks and (refused) the idempotency key's look-up, read only.
        assert _statements(tally.read) <= AUTH_BUDGET + CHECK_BUDGET + 1
    assert_ledger_clean(db)


def test_a_grab_over_http_that_is_not_the_last_keeps_its_budget(world: World, db: Database) -> None:
    tally, status, body = _post(world, world.members[0], world.packet)
    assert (status, body["packet_status"], body["claimed_count"]) == (201, "active", 1)
    [write] = tally.write
    assert len(write.statements) <= CLAIM_BUDGET[db.dialect] + IDEMPOTENCY, write.statements
    assert len(tally.transactions) == 3  # the session and the checks read only, one write
    assert_ledger_clean(db)
