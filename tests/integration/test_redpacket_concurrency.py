"""The hot red packet over the real HTTP API, on SQLite and PostgreSQL: 1,000 members of one
group open a packet of 200 shares at the same moment, each from their own thread and
connection to a uvicorn server → exactly 200 shares paid, one per person, summing to the
total; the other 800 told ``redpacket_empty``; the books balance."""

from __future__ import annotations

import http.client
import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import text

from citywallet.api.app import create_app
from citywallet.platform.db import Database
from citywallet.redpacket import service as redpacket
from citywallet.runtime import Runtime
from tests.ledger_checks import assert_ledger_clean, test_encryptor
from tests.redpacket_support import (
    Claimant,
    Env,
    bulk_residents,
    escrow_balance,
    join_group,
    serve,
)
from tests.wallet_support import balance, sandbox_bank, wallet_settings

CLAIMANTS = 1_000
SHARES = 200
TOTAL = 20_000  # 200 yuan, the most one packet may hold


def _claim(base: str, packet_id: str, who: Claimant, barrier: threading.Barrier) -> dict[str, Any]:
    """One claimant: connect, wait for everyone, then POST the claim."""
    address = urlsplit(base)
    conn = http.client.HTTPConnection(address.hostname or "", address.port, timeout=300)
    try:
        conn.connect()
        barrier.wait()
        conn.request(
            "POST",
            f"/v1/redpackets/{packet_id}/claims",
            headers={**who.headers, "Idempotency-Key": str(uuid.uuid4())},
        )
        response = conn.getresponse()
        body: dict[str, Any] = json.loads(response.read())
    finally:
        conn.close()
    return {"user_id": who.user_id, "status": response.status, "body": body}


def test_a_thousand_claims_on_two_hundred_shares_over_http(db: Database, tmp_path: Path) -> None:
    settings = wallet_settings(tmp_path, db, redpacket_max_shares=SHARES)
    runtime = Runtime(settings, db, test_encryptor())
    env = Env(db, settings, runtime.encryptor, sandbox_bank())
    sender = env.resident(1, 500_00)
    crowd = bulk_residents(db, runtime.encryptor, CLAIMANTS)
    group = env.group(sender, name="新年红包群")
    join_group(db, group.id, crowd)
    packet = env.send(sender, TOTAL, group_id=group.id, shares=SHARES, greeting="新年快乐")

    barrier = threading.Barrier(CLAIMANTS)
    with serve(create_app(runtime)) as base, ThreadPoolExecutor(CLAIMANTS) as pool:
        outcomes = list(pool.map(lambda who: _claim(base, packet.id, who, barrier), crowd))

    won = [o for o in outcomes if o["status"] == 201]
    lost = [o for o in outcomes if o["status"] != 201]
    assert len(won) == SHARES
    assert {(o["status"], o["body"]["code"]) for o in lost} == {(409, "redpacket_empty")}
    assert len(lost) == CLAIMANTS - SHARES
    assert len({o["user_id"] for o in won}) == SHARES
    assert all(o["body"]["claim"]["user_id"] == o["user_id"] for o in won)
    amounts = {o["user_id"]: o["body"]["claim"]["amount"] for o in won}
    assert sum(amounts.values()) == TOTAL
    assert min(amounts.values()) >= 1
    positions = sorted(o["body"]["claim"]["position"] for o in won)
    assert positions == list(range(1, SHARES + 1))
    assert sum(o["body"]["packet_status"] == "finished" for o in won) == 1

    with db.uow(readonly=True) as uow:
        [listed] = redpacket.list_groups(uow, user_id=sender.user_id).items
    assert listed.member_count == CLAIMANTS + 1
    view = env.packet(sender, packet.id)
    assert (view.status, view.claimed_count, view.claimed_amount) == ("finished", SHARES, TOTAL)
    assert view.claims is not None
    assert {c.user_id: c.amount for c in view.claims} == amounts
    best = max(view.claims, key=lambda c: (c.amount, -c.position))
    assert view.best_luck_claim_id == best.id
    assert escrow_balance(db, packet.id) == 0
    for who in crowd:
        assert balance(db, who.user_id)[0] == amounts.get(who.user_id, 0)
    with db.uow(readonly=True) as uow:
        rows = uow.session.execute(
            text("SELECT COUNT(user_id), COUNT(DISTINCT user_id) FROM redpacket_shares")
        ).one()
    assert tuple(rows) == (SHARES, SHARES)
    assert_ledger_clean(db)
