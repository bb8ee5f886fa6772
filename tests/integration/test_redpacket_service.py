"""Red packets through the service on SQLite and PostgreSQL: groups, sending to a person and
to a group, claims (equal and lucky, the sender's own, refusals), limits, restricted money,
the claimer's tier, the views and the wallet history."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, TypeVar

import pytest

from citywallet.identity.service import freeze_user
from citywallet.ledger import service as ledger
from citywallet.ledger.types import AccountCode, AccountFlags, Result, TransferCode, TransferSpec
from citywallet.platform.config import Settings
from citywallet.platform.db import Database, UnitOfWork
from citywallet.platform.errors import DomainError
from citywallet.redpacket import service as redpacket
from citywallet.redpacket.rules import equal_split
from citywallet.wallet import service as wallet
from tests.ledger_checks import assert_ledger_clean, test_encryptor
from tests.redpacket_support import Env, bulk_residents, escrow_balance, refused
from tests.wallet_support import (
    Resident,
    balance,
    count,
    make_resident,
    sandbox_bank,
    wallet_settings,
)

T = TypeVar("T")
YUAN = 100


@pytest.fixture
def env(db: Database, tmp_path: Path) -> Env:
    return Env(db, wallet_settings(tmp_path, db), test_encryptor(), sandbox_bank())


# --- groups -------------------------------------------------------------------------------


def test_groups_members_see_them_outsiders_do_not(env: Env) -> None:
    alice, bob, carol, dave = (env.resident(n) for n in (1, 2, 3, 4))
    made = env.group(alice, bob, bob, name="  周末  爬山 ")
    assert made.id.startswith("rpg_")
    assert (made.name, made.owner_id, made.role, made.member_count) == (
        "周末 爬山",
        alice.user_id,
        "owner",
        2,
    )
    assert made.members is not None
    assert [(m.user_id, m.role) for m in made.members] == [
        (alice.user_id, "owner"),
        (bob.user_id, "member"),
    ]
    assert "(138****0002)" in made.members[1].label

    def get(who: Resident) -> redpacket.GroupView:
        with env.db.uow(readonly=True) as uow:
            return redpacket.get_group(uow, user_id=who.user_id, group_id=made.id)

    def groups(who: Resident) -> list[str]:
        with env.db.uow(readonly=True) as uow:
            return [g.id for g in redpacket.list_groups(uow, user_id=who.user_id).items]

    assert get(bob).role == "member"
    assert groups(bob) == [made.id]
    assert groups(carol) == []
    refused("redpacket_group_not_found", lambda: get(carol))

    def add(by: Resident, *people: str) -> redpacket.GroupView:
        return env.run(
            lambda uow: redpacket.add_members(
                uow,
                user_id=by.user_id,
                group_id=made.id,
                members=list(people),
                encryptor=env.enc,
                settings=env.settings,
            )
        )

    def remove(by: Resident, member: Resident) -> None:
        env.run(
            lambda uow: redpacket.remove_member(
                uow, user_id=by.user_id, group_id=made.id, member_id=member.user_id
            )
        )

    refused("redpacket_group_owner_only", lambda: add(bob, carol.phone))
    refused("redpacket_group_not_found", lambda: add(carol, carol.phone))
    refused("recipient_not_found", lambda: add(alice, "13900009999"))
    assert add(alice, carol.user_id, bob.phone).member_count == 3  # bob is skipped
    refused("redpacket_group_owner_only", lambda: remove(bob, carol))
    refused("redpacket_group_owner_cannot_leave", lambda: remove(alice, alice))
    refused("redpacket_group_member_not_found", lambda: remove(alice, dave))
    remove(bob, bob)  # bob leaves
    refused("redpacket_group_not_found", lambda: get(bob))
    remove(alice, carol)
    assert get(alice).member_count == 1

    small = Settings(**{**env.settings.model_dump(), "redpacket_group_max_members": 3})
    env.settings = small
    add(alice, bob.phone, carol.phone)
    error = refused("redpacket_group_full", lambda: add(alice, dave.phone))
    assert error.extra == {"room": 0}
    refused("invalid_group_name", lambda: env.group(alice, name="   "))
    refused("invalid_group_name", lambda: env.group(alice, name="x" * 31))


def test_group_list_pages_newest_first(env: Env) -> None:
    alice = env.resident(1)
    made = [env.group(alice, name=f"群{n}").id for n in range(5)]
    seen: list[str] = []
    cursor: str | None = None
    while True:
        with env.db.uow(readonly=True) as uow:
            page = redpacket.list_groups(uow, user_id=alice.user_id, cursor=cursor, limit=2)
        seen += [g.id for g in page.items]
        assert all(g.members is None and g.member_count == 1 for g in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == made[::-1]
    with env.db.uow(readonly=True) as uow:
        refused(
            "invalid_cursor",
            lambda: redpacket.list_groups(uow, user_id=alice.user_id, cursor="bm9wZQ"),
        )


# --- to one person ------------------------------------------------------------------------


def test_a_packet_to_one_person(env: Env) -> None:
    alice, bob, carol = env.resident(1, 500 * YUAN), env.resident(2), env.resident(3)
    sent = env.send(alice, 88_88, to=bob.phone, greeting="  生日 快乐 ")
    assert sent.id.startswith("rpk_")
    assert (sent.kind, sent.shares, sent.total, sent.status) == ("single", 1, 88_88, "active")
    assert (sent.recipient_id, sent.group_id, sent.greeting) == (bob.user_id, None, "生日 快乐")
    assert sent.expires_at - sent.created_at == 24 * 3600 * 1_000_000
    assert balance(env.db, alice.user_id)[0] == 500 * YUAN - 88_88
    assert escrow_balance(env.db, sent.id) == 88_88

    refused("redpacket_not_claimable", lambda: env.claim(alice, sent.id))
    refused("redpacket_not_found", lambda: env.claim(carol, sent.id))
    refused("redpacket_not_found", lambda: env.packet(carol, sent.id))
    refused("redpacket_not_found", lambda: env.claim(bob, "rpk_nope"))
    opened = env.claim(bob, sent.id)
    assert (opened.claim.amount, opened.claim.position, opened.packet_status) == (
        88_88,
        1,
        "finished",
    )
    refused("redpacket_already_claimed", lambda: env.claim(bob, sent.id))
    assert balance(env.db, bob.user_id)[0] == 88_88
    assert escrow_balance(env.db, sent.id) == 0
    for who in (alice, bob):
        view = env.packet(who, sent.id)
        assert (view.status, view.claimed_count, view.claimed_amount) == ("finished", 1, 88_88)
        assert view.best_luck_claim_id is None  # no luck in a fixed amount
        assert view.claims is not None
        assert [(c.user_id, c.amount) for c in view.claims] == [(bob.user_id, 88_88)]
    assert env.packet(bob, sent.id).my_claim == opened.claim
    assert env.packet(alice, sent.id).my_claim is None

    with env.db.uow(readonly=True) as uow:
        out = wallet.list_history(uow, user_id=alice.user_id, kinds=["redpacket_sent"]).items
        got = wallet.list_history(uow, user_id=bob.user_id, kinds=["redpacket_received"]).items
    assert [(h.id, h.amount, h.direction, h.note) for h in out] == [
        (sent.id, 88_88, "out", "生日 快乐")
    ]
    assert [(h.id, h.amount, h.direction, h.reference) for h in got] == [
        (opened.claim.id, 88_88, "in", sent.id)
    ]
    assert got[0].counterparty_user_id == alice.user_id
    assert_ledger_clean(env.db)


def test_sending_refusals(env: Env) -> None:
    alice, bob = env.resident(1, 500 * YUAN), env.resident(2)
    group = env.group(alice, bob)
    cases: list[tuple[str, dict[str, Any]]] = [
        ("redpacket_target_required", {"amount": 100}),
        ("redpacket_target_required", {"amount": 100, "to": bob.phone, "group_id": group.id}),
        ("cannot_pay_self", {"amount": 100, "to": alice.phone}),
        ("invalid_redpacket_kind", {"amount": 100, "to": bob.phone, "kind": "lucky"}),
        ("invalid_redpacket_kind", {"amount": 100, "to": bob.phone, "shares": 2}),
        ("invalid_redpacket_kind", {"amount": 100, "group_id": group.id, "kind": "single"}),
        ("packet_too_large", {"amount": 200 * YUAN + 1, "to": bob.phone}),
        ("too_many_shares", {"amount": 300, "group_id": group.id, "shares": 3}),
        ("share_too_small", {"amount": 1, "group_id": group.id, "shares": 2}),
        ("invalid_amount", {"amount": 0, "to": bob.phone}),
        ("unsupported_currency", {"amount": 100, "to": bob.phone, "currency": "USD"}),
        ("greeting_too_long", {"amount": 100, "to": bob.phone, "greeting": "福" * 41}),
        ("recipient_not_found", {"amount": 100, "to": "13900009999"}),
        ("redpacket_group_not_found", {"amount": 100, "group_id": "rpg_nope"}),
        ("insufficient_balance", {"amount": 200 * YUAN, "to": bob.phone}),
    ]
    env.run(
        lambda uow: wallet.send_transfer(
            uow,
            user_id=alice.user_id,
            to=bob.phone,
            amount=400 * YUAN,
            encryptor=env.enc,
            settings=env.settings,
        )
    )
    for code, kwargs in cases:
        refused(code, lambda kwargs=kwargs: env.send(alice, **kwargs))
    # Outsiders cannot send to a group (it does not exist for them).
    carol = env.resident(3, 10 * YUAN)
    refused("redpacket_group_not_found", lambda: env.send(carol, 100, group_id=group.id))
    # A frozen recipient, and a frozen sender.
    env.run(lambda uow: freeze_user(uow, user_id=bob.user_id, reason="test", actor="operator:t"))
    refused("recipient_unavailable", lambda: env.send(alice, 100, to=bob.phone))
    env.run(lambda uow: freeze_user(uow, user_id=alice.user_id, reason="test", actor="operator:t"))
    refused("account_frozen", lambda: env.send(alice, 100, to=carol.phone))
    assert count(env.db, "SELECT COUNT(*) FROM redpackets") == 0
    assert balance(env.db, alice.user_id)[0] == 100 * YUAN
    assert_ledger_clean(env.db)


def test_limits_are_configuration(env: Env, db: Database, tmp_path: Path) -> None:
    env.settings = wallet_settings(
        tmp_path,
        db,
        redpacket_max_total=1_000,
        redpacket_max_shares=3,
        redpacket_min_share=50,
        redpacket_expiry_seconds=60,
    )
    alice, bob, carol, dave = (env.resident(n, 100 * YUAN if n == 1 else 0) for n in (1, 2, 3, 4))
    group = env.group(alice, bob, carol, dave)
    refused("packet_too_large", lambda: env.send(alice, 1_001, to=bob.phone))
    refused("too_many_shares", lambda: env.send(alice, 1_000, group_id=group.id, shares=4))
    refused("share_too_small", lambda: env.send(alice, 149, group_id=group.id, shares=3))
    sent = env.send(alice, 150, group_id=group.id, shares=3)
    assert sent.expires_at - sent.created_at == 60 * 1_000_000
    amounts = [env.claim(who, sent.id).claim.amount for who in (bob, carol, dave)]
    assert amounts == [50, 50, 50]  # the floor leaves no room for luck
    lucky = env.send(alice, 1_000, group_id=group.id, shares=3)
    drawn = [env.claim(who, lucky.id).claim.amount for who in (dave, carol, bob)]
    assert sum(drawn) == 1_000
    assert min(drawn) >= 50
    assert_ledger_clean(env.db)


# --- to a group ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["lucky", "equal"])
def test_a_group_packet_is_shared_out_exactly(env: Env, kind: str) -> None:
    alice = env.resident(1, 500 * YUAN)
    others = [env.resident(n) for n in range(2, 7)]
    group = env.group(alice, *others)
    total, shares = 100 * YUAN + 7, 6  # alice counts: six members, six shares
    sent = env.send(alice, total, group_id=group.id, shares=shares, kind=kind, rng=random.Random(7))
    assert (sent.kind, sent.group_id, sent.target_label) == (kind, group.id, "家人")
    claimers = [*others[:3], alice, *others[3:]]  # the sender claims too, fourth
    results = [env.claim(who, sent.id) for who in claimers]
    amounts = [r.claim.amount for r in results]
    assert sum(amounts) == total
    assert min(amounts) >= 1
    assert [r.claim.position for r in results] == [1, 2, 3, 4, 5, 6]
    assert [r.packet_status for r in results] == ["active"] * 5 + ["finished"]
    if kind == "equal":
        assert amounts == equal_split(total, shares)
    for who, amount in zip(claimers, amounts, strict=True):
        expected = amount + (500 * YUAN - total if who is alice else 0)
        assert balance(env.db, who.user_id)[0] == expected
    view = env.packet(others[0], sent.id)
    assert view.status == "finished"
    assert view.claims is not None
    assert [c.user_id for c in view.claims] == [w.user_id for w in claimers]
    assert [c.amount for c in view.claims] == amounts
    if kind == "lucky":
        best = amounts.index(max(amounts))
        assert view.best_luck_claim_id == view.claims[best].id
        assert [c.best_luck for c in view.claims] == [i == best for i in range(shares)]
    else:
        assert view.best_luck_claim_id is None
    refused("redpacket_already_claimed", lambda: env.claim(alice, sent.id))
    late = env.resident(9)
    env.run(
        lambda uow: redpacket.add_members(
            uow,
            user_id=alice.user_id,
            group_id=group.id,
            members=[late.phone],
            encryptor=env.enc,
            settings=env.settings,
        )
    )
    refused("redpacket_empty", lambda: env.claim(late, sent.id))
    assert escrow_balance(env.db, sent.id) == 0
    assert_ledger_clean(env.db)


def test_members_see_the_groups_packets_and_what_is_available(env: Env) -> None:
    alice, bob, carol = env.resident(1, 500 * YUAN), env.resident(2), env.resident(3)
    group = env.group(alice, bob)
    first = env.send(alice, 300, group_id=group.id, shares=2)
    second = env.send(alice, 500, group_id=group.id, shares=2, kind="equal")
    direct = env.send(alice, 100, to=carol.phone)
    env.claim(bob, first.id)

    def listed(who: Resident, role: str) -> list[str]:
        with env.db.uow(readonly=True) as uow:
            page = redpacket.list_packets(uow, user_id=who.user_id, role=role)
        return [p.id for p in page.items]

    assert listed(alice, "sent") == [direct.id, second.id, first.id]
    assert listed(bob, "received") == [first.id]
    assert listed(bob, "available") == [second.id]
    assert listed(alice, "available") == [second.id, first.id]  # the sender may claim
    assert listed(carol, "available") == [direct.id]
    assert listed(carol, "sent") == []
    assert listed(carol, "received") == []
    with env.db.uow(readonly=True) as uow:
        page = redpacket.list_group_packets(uow, user_id=bob.user_id, group_id=group.id)
        assert [p.id for p in page.items] == [second.id, first.id]
        assert page.items[1].my_claim is not None
        assert page.items[0].my_claim is None
        refused(
            "redpacket_group_not_found",
            lambda: redpacket.list_group_packets(uow, user_id=carol.user_id, group_id=group.id),
        )
        refused("invalid_role", lambda: redpacket.list_packets(uow, user_id=bob.user_id, role="x"))
    refused("redpacket_not_found", lambda: env.packet(carol, first.id))
    # Bob leaves: the group's packets are gone for him, except the one he opened.
    env.run(
        lambda uow: redpacket.remove_member(
            uow, user_id=bob.user_id, group_id=group.id, member_id=bob.user_id
        )
    )
    assert env.packet(bob, first.id).my_claim is not None
    refused("redpacket_already_claimed", lambda: env.claim(bob, first.id))
    refused("redpacket_not_found", lambda: env.packet(bob, second.id))
    refused("redpacket_not_found", lambda: env.claim(bob, second.id))
    assert listed(bob, "available") == []
    assert_ledger_clean(env.db)


# --- money rules --------------------------------------------------------------------------


def test_restricted_campaign_money_can_never_fund_a_packet(env: Env) -> None:
    """A resident whose only money is a restricted campaign balance cannot send a packet."""
    alice, bob = env.resident(1), env.resident(2)

    def grant(uow: UnitOfWork) -> int:
        funds = ledger.create_account(
            uow, ledger="CNY", code=AccountCode.CAMPAIGN_FUNDS, owner_ref="cmp_test:funds"
        )
        restricted = ledger.create_account(
            uow,
            ledger="CNY",
            code=AccountCode.CUSTOMER_RESTRICTED,
            flags=AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS,
            owner_ref=f"{alice.user_id}:cmp_test",
        )
        [result] = ledger.post(
            uow,
            transfers=[
                TransferSpec(
                    "cmp_test.grant.1",
                    funds,
                    restricted,
                    200 * YUAN,
                    "CNY",
                    TransferCode.CAMPAIGN_GRANT,
                )
            ],
        )
        assert result is Result.OK
        return restricted

    restricted = env.run(grant)
    bob_group = env.group(alice, bob)
    refused("insufficient_balance", lambda: env.send(alice, 50 * YUAN, to=bob.phone))
    refused("insufficient_balance", lambda: env.send(alice, 100, group_id=bob_group.id, shares=2))
    with env.db.uow(readonly=True) as uow:
        held = ledger.get_account(uow, account_id=restricted)
        assert held is not None
        assert held.balance == 200 * YUAN
    assert balance(env.db, alice.user_id)[0] == 0  # her own wallet: empty
    assert count(env.db, "SELECT COUNT(*) FROM redpackets") == 0
    assert_ledger_clean(env.db)


def test_tier_limits_count_the_packet_and_a_refund_gives_them_back(
    env: Env, db: Database, tmp_path: Path
) -> None:
    env.settings = wallet_settings(tmp_path, db, wallet_tier_limits={"2": {"daily": 300}})
    alice, bob = env.resident(1, 0), env.resident(2)
    env.settings = wallet_settings(tmp_path, db, wallet_tier_limits={"2": {"daily": 300}})
    wallet.top_up(
        env.db,
        bank=env.bank,
        user_id=alice.user_id,
        card_id=str(alice.card_id),
        amount=10 * YUAN,
        pin="502817",
        encryptor=env.enc,
        settings=env.settings,
    )
    with env.db.uow(readonly=True) as uow:
        tier = wallet.wallet_view(uow, user_id=alice.user_id, settings=env.settings).tier
    assert tier == 2
    group = env.group(alice, bob)
    sent = env.send(alice, 200, group_id=group.id, shares=2)
    refused("daily_limit_exceeded", lambda: env.send(alice, 101, to=bob.phone))
    env.claim(bob, sent.id)
    claimed = env.packet(alice, sent.id).claimed_amount
    assert env.run(lambda uow: redpacket.expire_packets(uow, now=sent.expires_at)) == 1
    # What came back is off the day's usage again: 200 − claimed was given back.
    room = 300 - claimed
    assert env.send(alice, room, to=bob.phone).total == room
    refused("daily_limit_exceeded", lambda: env.send(alice, 1, to=bob.phone))
    assert_ledger_clean(env.db)


def test_a_claimer_whose_tier_cannot_hold_the_share_leaves_it_for_others(env: Env) -> None:
    alice = env.resident(1, 100 * YUAN)
    bob = env.resident(2)
    unverified = make_resident(env.db, env.settings, env.enc, env.bank, 3, verify=False)
    group = env.group(alice, bob, unverified)
    sent = env.send(alice, 500, group_id=group.id, shares=2)
    refused("balance_limit_exceeded", lambda: env.claim(unverified.user_id, sent.id))
    assert env.packet(alice, sent.id).claimed_count == 0
    first = env.claim(bob, sent.id)
    last = env.claim(alice, sent.id)
    assert first.claim.amount + last.claim.amount == 500
    assert balance(env.db, unverified.user_id)[0] == 0
    assert_ledger_clean(env.db)


def test_a_frozen_member_cannot_claim(env: Env) -> None:
    alice, bob = env.resident(1, 100 * YUAN), env.resident(2)
    sent = env.send(alice, 300, group_id=env.group(alice, bob).id, shares=2)
    env.run(lambda uow: freeze_user(uow, user_id=bob.user_id, reason="test", actor="operator:t"))
    refused("account_frozen", lambda: env.claim(bob, sent.id))
    assert env.claim(alice, sent.id).packet_status == "active"
    assert_ledger_clean(env.db)


def test_claims_by_many_threads_on_one_packet(env: Env) -> None:
    """A service-level race: 60 members, 25 shares, all at once (the HTTP version with 1,000
    claimants is in test_redpacket_concurrency.py)."""
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    alice = env.resident(1, 100 * YUAN)
    crowd = bulk_residents(env.db, env.enc, 60)
    group = env.run(
        lambda uow: redpacket.create_group(
            uow,
            user_id=alice.user_id,
            name="抢",
            members=[c.user_id for c in crowd],
            encryptor=env.enc,
            settings=env.settings,
        )
    )
    sent = env.send(alice, 50 * YUAN, group_id=group.id, shares=25)
    barrier = Barrier(30)

    def grab(user_id: str) -> int | str:
        barrier.wait()
        try:
            return env.claim(user_id, sent.id).claim.amount
        except DomainError as exc:
            return exc.code

    with ThreadPoolExecutor(30) as pool:
        outcomes = list(pool.map(grab, [c.user_id for c in crowd]))
    won = [o for o in outcomes if isinstance(o, int)]
    assert len(won) == 25
    assert sum(won) == 50 * YUAN
    assert sorted(o for o in outcomes if isinstance(o, str)) == ["redpacket_empty"] * 35
    view = env.packet(alice, sent.id)
    assert view.claims is not None
    assert [c.position for c in view.claims] == list(range(1, 26))
    assert len({c.user_id for c in view.claims}) == 25
    assert view.best_luck_claim_id is not None
    assert_ledger_clean(env.db)
