"""Expiry of red packets on SQLite and PostgreSQL: what is unclaimed goes back to the sender
exactly once — when the job runs twice at the same time, and when it races a last claim."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from citywallet.ledger import service as ledger
from citywallet.platform.clock import now_us
from citywallet.platform.db import Database
from citywallet.platform.errors import DomainError
from citywallet.redpacket import service as redpacket
from citywallet.runtime import Runtime
from citywallet.tasks import build_worker
from citywallet.wallet import service as wallet
from tests.ledger_checks import assert_ledger_clean, test_encryptor
from tests.redpacket_support import Env, escrow_balance, refused
from tests.wallet_support import balance, count, sandbox_bank, wallet_settings

YUAN = 100
HOUR_US = 3600 * 1_000_000


@pytest.fixture
def env(db: Database, tmp_path: Path) -> Env:
    return Env(db, wallet_settings(tmp_path, db), test_encryptor(), sandbox_bank())


def _returns(db: Database, packet_id: str) -> int:
    return count(
        db,
        "SELECT COUNT(*) FROM ledger_transfers WHERE id = :id",
        id=redpacket.return_transfer_id(packet_id),
    )


def test_unclaimed_money_goes_back_after_a_day(env: Env) -> None:
    alice, bob, carol = env.resident(1, 500 * YUAN), env.resident(2), env.resident(3)
    group = env.group(alice, bob, carol)
    sent = env.send(alice, 100 * YUAN, group_id=group.id, shares=3)
    to_carol = env.send(alice, 20 * YUAN, to=carol.phone)
    taken = env.claim(bob, sent.id).claim.amount
    assert env.run(lambda uow: redpacket.expire_packets(uow)) == 0  # not due yet

    due = to_carol.expires_at  # both are due
    assert env.packet(bob, sent.id).status == "active"
    with env.db.uow(readonly=True) as uow:
        view = redpacket.get_packet(uow, user_id=alice.user_id, packet_id=sent.id, now=due)
        listed = redpacket.list_packets(uow, user_id=carol.user_id, role="available", now=due)
    assert view.status == "expired"  # due, the job has not run yet
    assert listed.items == []
    refused("redpacket_expired", lambda: env.claim(carol, sent.id, now=due))

    assert env.run(lambda uow: redpacket.expire_packets(uow, now=due + HOUR_US)) == 2
    assert env.run(lambda uow: redpacket.expire_packets(uow, now=due + 2 * HOUR_US)) == 0
    left = 100 * YUAN - taken
    assert balance(env.db, alice.user_id)[0] == 500 * YUAN - taken
    assert balance(env.db, bob.user_id)[0] == taken
    for packet_id in (sent.id, to_carol.id):
        assert escrow_balance(env.db, packet_id) == 0
        assert _returns(env.db, packet_id) == 1
    after = env.packet(alice, sent.id)
    assert (after.status, after.refund_amount, after.claimed_amount) == ("refunded", left, taken)
    assert after.refunded_at == due + HOUR_US
    assert after.best_luck_claim_id is None  # not every share was drawn: no best luck
    assert env.packet(carol, to_carol.id).refund_amount == 20 * YUAN
    refused("redpacket_expired", lambda: env.claim(carol, sent.id))
    refused("redpacket_expired", lambda: env.claim(carol, to_carol.id))
    refused("redpacket_already_claimed", lambda: env.claim(bob, sent.id))

    with env.db.uow(readonly=True) as uow:
        lines = wallet.list_history(uow, user_id=alice.user_id, kinds=["redpacket_refund"]).items
    assert sorted((h.amount, h.direction, h.reference) for h in lines) == sorted(
        [(left, "in", sent.id), (20 * YUAN, "in", to_carol.id)]
    )
    assert {h.id for h in lines} == {
        redpacket.return_transfer_id(sent.id),
        redpacket.return_transfer_id(to_carol.id),
    }
    assert_ledger_clean(env.db)


def test_a_finished_packet_has_nothing_to_return(env: Env) -> None:
    alice, bob = env.resident(1, 100 * YUAN), env.resident(2)
    sent = env.send(alice, 300, to=bob.phone)
    env.claim(bob, sent.id)
    assert env.run(lambda uow: redpacket.expire_packets(uow, now=sent.expires_at)) == 0
    assert _returns(env.db, sent.id) == 0
    assert env.packet(alice, sent.id).status == "finished"
    assert_ledger_clean(env.db)


def test_the_worker_task_returns_expired_packets(env: Env, db: Database, tmp_path: Path) -> None:
    alice, bob = env.resident(1, 100 * YUAN), env.resident(2)
    past = now_us() - 25 * HOUR_US
    sent = [env.send(alice, 100 + n, to=bob.phone, now=past) for n in range(3)]
    runtime = Runtime(env.settings, db, test_encryptor())
    worker = build_worker(runtime, worker_id="redpackets")
    worker.run_once()
    assert [env.packet(bob, p.id).status for p in sent] == ["refunded"] * 3
    assert balance(env.db, alice.user_id)[0] == 100 * YUAN
    assert_ledger_clean(env.db)


def test_two_expiry_runs_at_once_refund_each_packet_once(env: Env) -> None:
    alice, bob = env.resident(1, 500 * YUAN), env.resident(2)
    group = env.group(alice, bob)
    past = now_us() - 25 * HOUR_US
    packets = [env.send(alice, 200 + n, group_id=group.id, shares=2, now=past) for n in range(20)]
    for packet in packets[::2]:
        env.claim(bob, packet.id, now=past + 1)
    claimed = sum(env.packet(bob, p.id).claimed_amount for p in packets)
    runs = 6
    barrier = threading.Barrier(runs)

    def run_job(_: int) -> int:
        barrier.wait()
        total = 0
        while (done := env.run(lambda uow: redpacket.expire_packets(uow, limit=7))) > 0:
            total += done
        return total

    with ThreadPoolExecutor(runs) as pool:
        refunded = list(pool.map(run_job, range(runs)))
    assert sum(refunded) == len(packets)
    for packet in packets:
        assert _returns(env.db, packet.id) == 1
        assert escrow_balance(env.db, packet.id) == 0
    spent = sum(p.total for p in packets)
    assert balance(env.db, alice.user_id)[0] == 500 * YUAN - spent + (spent - claimed)
    assert (
        count(env.db, "SELECT COUNT(*) FROM wallet_activity WHERE kind = 'redpacket_refund'") == 20
    )
    assert_ledger_clean(env.db)


def test_a_last_claim_racing_the_expiry_job(env: Env) -> None:
    """The claim started just before the deadline, the job just after: one of them takes the
    last share, never both, and the money adds up either way."""
    alice, bob, carol = env.resident(1, 500 * YUAN), env.resident(2), env.resident(3)
    group = env.group(alice, bob, carol)
    outcomes: list[str] = []
    for round_ in range(12):
        sent = env.send(alice, 1_000 + round_, group_id=group.id, shares=2)
        first = env.claim(bob, sent.id).claim.amount
        barrier = threading.Barrier(2)

        def last_claim(
            packet_id: str = sent.id, deadline: int = sent.expires_at, barrier: Any = barrier
        ) -> str:
            barrier.wait()
            try:
                env.claim(carol, packet_id, now=deadline - 1)
            except DomainError as exc:
                return exc.code
            return "claimed"

        def expire(deadline: int = sent.expires_at, barrier: Any = barrier) -> str:
            barrier.wait()
            return str(env.run(lambda uow: redpacket.expire_packets(uow, now=deadline)))

        with ThreadPoolExecutor(2) as pool:
            claim_outcome, expiry_outcome = pool.submit(last_claim), pool.submit(expire)
            outcome = (claim_outcome.result(), expiry_outcome.result())
        assert outcome in {("claimed", "0"), ("redpacket_expired", "1")}, outcome
        outcomes.append(outcome[0])
        view = env.packet(alice, sent.id)
        assert view.claimed_amount + view.refund_amount == sent.total
        assert escrow_balance(env.db, sent.id) == 0
        assert _returns(env.db, sent.id) == (1 if outcome[0] != "claimed" else 0)
        if outcome[0] == "claimed":
            assert (view.status, view.claimed_amount) == ("finished", sent.total)
        else:
            assert (view.status, view.refund_amount) == ("refunded", sent.total - first)
    with env.db.uow(readonly=True) as uow:
        received = redpacket.list_packets(uow, user_id=carol.user_id, role="received", limit=100)
    carol_got = sum(p.my_claim.amount for p in received.items if p.my_claim is not None)
    assert len(received.items) == outcomes.count("claimed")
    assert balance(env.db, carol.user_id)[0] == carol_got
    assert_ledger_clean(env.db)


def test_counters_and_ledger_agree_after_expiry(env: Env) -> None:
    """The packet's totals, its escrow account and the ledger's transfers tell one story."""
    alice, bob, carol = env.resident(1, 500 * YUAN), env.resident(2), env.resident(3)
    sent = env.send(alice, 7_77, group_id=env.group(alice, bob, carol).id, shares=3)
    env.claim(bob, sent.id)
    env.claim(alice, sent.id)
    env.run(lambda uow: redpacket.expire_packets(uow, now=sent.expires_at))
    with env.db.uow(readonly=True) as uow:
        escrow = ledger.find_account(uow, owner_ref=sent.id)
        rows = uow.session.execute(
            text(
                "SELECT id, amount, debit_account_id, credit_account_id FROM ledger_transfers "
                "WHERE reference = :r ORDER BY seq"
            ),
            {"r": sent.id},
        ).all()
    view = env.packet(alice, sent.id)
    assert [r[0] for r in rows] == [
        f"{sent.id}.fund",
        f"{sent.id}.claim.1",
        f"{sent.id}.claim.2",
        f"{sent.id}.return",
    ]
    assert (rows[0][1], rows[0][3]) == (view.total, escrow)
    assert rows[0][2] != escrow
    assert sum(r[1] for r in rows[1:3]) == view.claimed_amount
    assert rows[3][1] == view.refund_amount
    assert all(r[2] == escrow for r in rows[1:])
    assert_ledger_clean(env.db)
