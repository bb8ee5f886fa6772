"""Escrow stripes on SQLite and PostgreSQL: a packet of more than 8 shares is paid from
several escrow accounts of its own (``redpacket/plan.py``); claims racing through it close it
exactly once, and expiry gathers every stripe's remainder back to the sender."""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import text

from citywallet.platform.db import Database
from citywallet.platform.errors import DomainError
from citywallet.redpacket import service as redpacket
from citywallet.redpacket.plan import escrow_stripes
from tests.ledger_checks import assert_ledger_clean, test_encryptor
from tests.redpacket_support import Env, bulk_residents, escrow_balance, join_group
from tests.wallet_support import balance, sandbox_bank, wallet_settings

YUAN = 100
SHARES = 40  # five stripes
CLAIMANTS = 60


@pytest.fixture
def env(db: Database, tmp_path: Path) -> Env:
    settings = wallet_settings(tmp_path, db, redpacket_group_max_members=CLAIMANTS + 1)
    return Env(db, settings, test_encryptor(), sandbox_bank())


def _escrows(db: Database, packet_id: str) -> list[tuple[int, int]]:
    """(account id, balance) of each escrow account of the packet, in id order."""
    with db.uow(readonly=True) as uow:
        rows = uow.session.execute(
            text(
                "SELECT id, credits_posted - debits_posted FROM ledger_accounts "
                "WHERE owner_ref = :p ORDER BY id"
            ),
            {"p": packet_id},
        ).all()
    return [(int(i), int(b)) for i, b in rows]


def _transfer_ids(db: Database, packet_id: str) -> list[str]:
    with db.uow(readonly=True) as uow:
        rows = uow.session.execute(
            text("SELECT id FROM ledger_transfers WHERE reference = :r ORDER BY seq"),
            {"r": packet_id},
        ).all()
    return [str(r[0]) for r in rows]


def test_a_large_packet_is_funded_into_its_stripes(env: Env) -> None:
    alice = env.resident(1, 500 * YUAN)
    crowd = bulk_residents(env.db, env.enc, SHARES)
    group = env.group(alice)
    join_group(env.db, group.id, crowd)
    sent = env.send(alice, 100 * YUAN, group_id=group.id, shares=SHARES, kind="equal")
    stripes = escrow_stripes(SHARES)
    assert stripes == 5
    escrows = _escrows(env.db, sent.id)
    assert len(escrows) == stripes
    assert [b for _id, b in escrows] == [20 * YUAN] * stripes  # 8 equal shares of 2.50 each
    assert _transfer_ids(env.db, sent.id) == [f"{sent.id}.fund"] + [
        f"{sent.id}.stripe.{k}" for k in range(1, stripes)
    ]
    assert balance(env.db, alice.user_id)[0] == 400 * YUAN
    assert_ledger_clean(env.db)


def test_racing_claims_close_a_striped_packet_exactly_once(env: Env) -> None:
    alice = env.resident(1, 500 * YUAN)
    crowd = bulk_residents(env.db, env.enc, CLAIMANTS)
    group = env.group(alice)
    join_group(env.db, group.id, crowd)
    sent = env.send(alice, 200 * YUAN, group_id=group.id, shares=SHARES)
    barrier = threading.Barrier(16)

    def grab(user_id: str) -> str:
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(timeout=5)
        try:
            result = redpacket.grab(
                env.db, user_id=user_id, packet_id=sent.id, settings=env.settings
            )
        except DomainError as exc:
            return exc.code
        return result.packet_status

    with ThreadPoolExecutor(16) as pool:
        outcomes = list(pool.map(grab, [c.user_id for c in crowd]))
    assert outcomes.count("finished") == 1
    assert outcomes.count("active") == SHARES - 1
    assert outcomes.count("redpacket_empty") == CLAIMANTS - SHARES
    view = env.packet(alice, sent.id)
    assert (view.status, view.claimed_count, view.claimed_amount) == (
        "finished",
        SHARES,
        200 * YUAN,
    )
    assert view.claims is not None
    best = max(view.claims, key=lambda c: (c.amount, -c.position))
    assert view.best_luck_claim_id == best.id
    assert [b for _id, b in _escrows(env.db, sent.id)] == [0] * escrow_stripes(SHARES)
    assert_ledger_clean(env.db)


def test_expiry_gathers_every_stripe_back_to_the_sender(env: Env) -> None:
    alice = env.resident(1, 500 * YUAN)
    crowd = bulk_residents(env.db, env.enc, SHARES)
    group = env.group(alice)
    join_group(env.db, group.id, crowd)
    sent = env.send(alice, 100 * YUAN, group_id=group.id, shares=SHARES, kind="equal")
    taken = sum(env.claim(who.user_id, sent.id).claim.amount for who in crowd[:7])
    assert taken == 7 * 250
    assert env.run(lambda uow: redpacket.expire_packets(uow, now=sent.expires_at)) == 1
    view = env.packet(alice, sent.id)
    assert (view.status, view.refund_amount, view.claimed_count) == (
        "refunded",
        100 * YUAN - taken,
        7,
    )
    assert escrow_balance(env.db, sent.id) == 0
    assert [b for _id, b in _escrows(env.db, sent.id)] == [0] * 5
    assert balance(env.db, alice.user_id)[0] == 400 * YUAN + 100 * YUAN - taken
    ids = _transfer_ids(env.db, sent.id)
    assert ids[-1] == redpacket.return_transfer_id(sent.id)
    assert sorted(i for i in ids if ".gather." in i) == [
        f"{sent.id}.gather.{k}" for k in range(1, 5)
    ]
    # Run again: nothing left, nothing posted twice.
    assert env.run(lambda uow: redpacket.expire_packets(uow, now=sent.expires_at)) == 0
    assert_ledger_clean(env.db)
