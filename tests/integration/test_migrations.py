"""The Alembic migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from citywallet.schema import alembic_config, metadata, upgrade
from tests.conftest import IN_CI, PG_ADMIN_URL


def _assert_matches_models(url: str) -> None:
    upgrade(url)
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(context, metadata)
    finally:
        engine.dispose()
    assert diff == [], f"migrations and models differ: {diff}"


def test_migrations_match_models_on_sqlite(tmp_path: Path) -> None:
    _assert_matches_models(f"sqlite:///{tmp_path / 'migrated.db'}")


def test_migrations_match_models_on_postgresql() -> None:
    _on_fresh_postgresql("cw_migrations", _assert_matches_models)


def _on_fresh_postgresql(prefix: str, check: Callable[[str], None]) -> None:
    """Run ``check`` on the URL of a new, empty PostgreSQL database (dropped afterwards)."""
    name = f"{prefix}_{os.getpid()}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # any failure to reach PostgreSQL
        if IN_CI:
            pytest.fail(f"PostgreSQL unreachable: {exc}", pytrace=False)
        pytest.skip(f"PostgreSQL unreachable: {exc.__class__.__name__}")
    try:
        check(make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False))
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# --- 0006: red-packet shares as rows --------------------------------------------------------

_PACKET_COLUMNS = (
    "id, public_id, sender_id, sender_label, kind, group_id, recipient_id, target_label, total, "
    "shares, min_share, currency, greeting, escrow_account_id, status, claimed_count, "
    "claimed_amount, refund_amount, day_period, year_period, created_at, expires_at"
)
# id, kind, group, recipient, total, shares, status, claimed (count, amount), refund; claims
_PACKETS = [
    (1, "lucky", 1, None, 1_000, 4, "active", 2, 600, 0, [400, 200]),
    (2, "equal", 1, None, 10, 3, "finished", 3, 10, 0, [4, 3, 3]),
    (3, "single", None, "usr_b", 500, 1, "refunded", 0, 0, 500, []),
    (4, "equal", 1, None, 10, 3, "active", 1, 4, 0, [4]),
]


def _old_packets(url: str) -> None:
    """Packets and claims as revision 0005 kept them."""
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO redpacket_groups (id, public_id, owner_id, name, created_at, "
                "updated_at) VALUES (1, 'rpg_1', 'usr_a', 'g', 1, 1)"
            )
        )
        for pk, kind, group, to, total, shares, status, count, paid, refund, claims in _PACKETS:
            conn.execute(
                text(
                    f"INSERT INTO redpackets ({_PACKET_COLUMNS}) VALUES (:pk, :pid, 'usr_a', "
                    "'A', :kind, :group, :to, 't', :total, :shares, 1, 'CNY', 'hi', :pk, "
                    ":status, :count, :paid, :refund, 'd', 'y', 1, 2)"
                ),
                {"pk": pk, "pid": f"rpk_{pk}", "kind": kind, "group": group, "to": to,
                 "total": total, "shares": shares, "status": status, "count": count,
                 "paid": paid, "refund": refund},
            )  # fmt: skip
            for position, amount in enumerate(claims, start=1):
                conn.execute(
                    text(
                        "INSERT INTO redpacket_claims (public_id, packet_id, user_id, label, "
                        "position, amount, transfer_id, created_at) VALUES (:cid, :pk, :user, "
                        "'L', :position, :amount, :tid, 3)"
                    ),
                    {"cid": f"rpc_{pk}_{position}", "pk": pk, "user": f"usr_{position}",
                     "position": position, "amount": amount, "tid": f"rpk_{pk}.claim.{position}"},
                )  # fmt: skip
    engine.dispose()


def _assert_claims_become_shares(url: str) -> None:
    upgrade(url, "0005")
    _old_packets(url)
    upgrade(url)
    engine = create_engine(url)
    with engine.connect() as conn:
        shares = conn.execute(
            text(
                "SELECT packet_id, position, amount, public_id, user_id, claimed_at "
                "FROM redpacket_shares ORDER BY packet_id, position"
            )
        ).all()
        totals = {
            int(pk): int(value)
            for pk, value in conn.execute(
                text("SELECT id, claimed_count * 100000 + claimed_amount FROM redpackets")
            )
        }
    engine.dispose()
    by_packet = {pk: [s for s in shares if s[0] == pk] for pk in (1, 2, 3, 4)}
    for pk, *_rest, claims in _PACKETS:
        claimed = [(s[1], s[2], s[3], s[4], s[5]) for s in by_packet[pk] if s[4] is not None]
        assert claimed == [
            (n, amount, f"rpc_{pk}_{n}", f"usr_{n}", 3) for n, amount in enumerate(claims, 1)
        ]
    lucky_rest = [s[2] for s in by_packet[1] if s[4] is None]
    assert [s[1] for s in by_packet[1]] == [1, 2, 3, 4]
    assert (len(lucky_rest), sum(lucky_rest)) == (2, 400)
    assert min(lucky_rest) >= 1
    assert [(s[1], s[2], s[4]) for s in by_packet[4]] == [
        (1, 4, "usr_1"), (2, 3, None), (3, 3, None)
    ]  # fmt: skip
    assert by_packet[3] == []  # refunded: its undrawn share stays undrawn
    assert totals == {1: 0, 2: 3 * 100000 + 10, 3: 0, 4: 0}  # active packets count shares

    command.downgrade(alembic_config(url), "0005")
    engine = create_engine(url)
    with engine.connect() as conn:
        claims = conn.execute(
            text("SELECT packet_id, position, amount, transfer_id FROM redpacket_claims")
        ).all()
        totals = {
            int(pk): int(value)
            for pk, value in conn.execute(
                text("SELECT id, claimed_count * 100000 + claimed_amount FROM redpackets")
            )
        }
    engine.dispose()
    assert sorted(claims) == sorted(
        (pk, n, amount, f"rpk_{pk}.claim.{n}")
        for pk, *_rest, old in _PACKETS
        for n, amount in enumerate(old, 1)
    )
    assert totals == {1: 2 * 100000 + 600, 2: 3 * 100000 + 10, 3: 0, 4: 1 * 100000 + 4}


def test_0006_turns_claims_into_shares_and_back_on_sqlite(tmp_path: Path) -> None:
    _assert_claims_become_shares(f"sqlite:///{tmp_path / 'shares.db'}")


def test_0006_turns_claims_into_shares_and_back_on_postgresql() -> None:
    _on_fresh_postgresql("cw_migration_0006", _assert_claims_become_shares)


# --- 0010: the draw's winners in their own table --------------------------------------------


def _assert_winners_move_out_and_back(url: str) -> None:
    upgrade(url, "0009")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO campaign_campaigns (id, public_id, name, description, status, "
                "funder_name, funder_bank_account_enc, funder_bank_account_last4, "
                "funding_status, funding_attempts, account_id, budget, prizes, eligibility, "
                "registration_opens_at, registration_closes_at, draw_at, valid_from, "
                "valid_until, seed_commitment, seed_enc, registrations, winners, issued, "
                "created_by, created_at, updated_at) VALUES (7, 'cmp_1', 'c', '', 'issued', "
                "'f', 'x', '1234', 'funded', 1, 99, 300, '[[100, 3]]', '{}', 1, 2, 3, 4, 5, "
                "'c', 's', 4, 2, 1, 'op', 1, 1)"
            )
        )
        for pk, status, rank, prize, issued in _OLD_REGISTRATIONS:
            conn.execute(
                text(
                    "INSERT INTO campaign_registrations (id, public_id, campaign_id, user_id, "
                    "id_hash, district, status, rank, prize, issued_at, created_at) "
                    "VALUES (:pk, :rid, 7, :user, :hash, '', :status, :rank, :prize, :issued, 1)"
                ),
                {"pk": pk, "rid": f"reg_{pk}", "user": f"usr_{pk}", "hash": f"h{pk}",
                 "status": status, "rank": rank, "prize": prize, "issued": issued},
            )  # fmt: skip
    engine.dispose()
    upgrade(url)
    engine = create_engine(url)
    with engine.connect() as conn:
        winners = conn.execute(
            text(
                "SELECT campaign_id, rank, registration_id, prize, issued_at "
                "FROM campaign_winners ORDER BY rank"
            )
        ).all()
        registrations = conn.execute(text("SELECT count(*) FROM campaign_registrations")).scalar()
    engine.dispose()
    assert [tuple(w) for w in winners] == [(7, 1, 12, 100, 55), (7, 2, 10, 100, None)]
    assert registrations == len(_OLD_REGISTRATIONS)

    command.downgrade(alembic_config(url), "0009")
    engine = create_engine(url)
    with engine.connect() as conn:
        back = conn.execute(
            text(
                "SELECT id, status, rank, prize, issued_at FROM campaign_registrations ORDER BY id"
            )
        ).all()
    engine.dispose()
    assert [tuple(r) for r in back] == _OLD_REGISTRATIONS


_OLD_REGISTRATIONS = [
    (10, "won", 2, 100, None),
    (11, "registered", None, None, None),
    (12, "won", 1, 100, 55),
    (13, "registered", None, None, None),
]


def test_0010_moves_the_winners_out_and_back_on_sqlite(tmp_path: Path) -> None:
    _assert_winners_move_out_and_back(f"sqlite:///{tmp_path / 'winners.db'}")


def test_0010_moves_the_winners_out_and_back_on_postgresql() -> None:
    _on_fresh_postgresql("cw_migration_0010", _assert_winners_move_out_and_back)
