"""Red-packet shares as rows: grabs without a hot packet row

Every share of a packet becomes a row of ``redpacket_shares``, drawn at sending; a claim
writes its claimer into a free share (``SKIP LOCKED``) instead of locking and updating the
packet row, and ``redpacket_claims`` is folded into it (a claimed share is the claim).

Data: each claim becomes a claimed share (same public id, position, amount, claimer, time).
An active packet gets its shares not yet drawn, split now from what is left as the service
would (equal: the first get the odd fen; lucky: the double mean, shuffled, over the
minimum-share floor); its row's totals go back to 0, since active packets count their
shares. Finished and refunded packets keep their totals; the shares a refunded packet never
drew stay undrawn (its refund is on its row and in the ledger).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 05:00:00.000000
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = (
    sa.BigInteger().with_variant(sa.BIGINT(), "postgresql").with_variant(sa.INTEGER(), "sqlite")
)
FREE = "user_id IS NULL AND refunded_at IS NULL"


def _rest(kind: str, left: int, shares: int, min_share: int, rng: random.Random) -> list[int]:
    """The ``shares`` shares not yet drawn of ``left`` fen (frozen here, not imported: a
    migration must not change when the service's code does)."""
    if kind != "lucky":
        whole, odd = divmod(left, shares)
        return [whole + 1] * odd + [whole] * (shares - odd)
    floor = min_share - 1
    remaining, amounts = left - shares * floor, []
    for k in range(shares, 0, -1):
        high = min(max(1, 2 * remaining // k), remaining - (k - 1))
        share = remaining if k == 1 else rng.randint(1, high)
        amounts.append(floor + share)
        remaining -= share
    rng.shuffle(amounts)
    return amounts


def upgrade() -> None:
    shares = op.create_table(
        "redpacket_shares",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("packet_id", BIG_ID, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("public_id", sa.String(length=40), nullable=True),
        sa.Column("user_id", sa.String(length=40), nullable=True),
        sa.Column("label", sa.String(length=100), nullable=True),
        sa.Column("claimed_at", sa.BigInteger(), nullable=True),
        sa.Column("refunded_at", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(
            "(user_id IS NULL AND public_id IS NULL AND label IS NULL AND claimed_at IS NULL) "
            "OR (user_id IS NOT NULL AND public_id IS NOT NULL AND label IS NOT NULL "
            "AND claimed_at IS NOT NULL AND refunded_at IS NULL)",
            name=op.f("ck_redpacket_shares_claim_complete"),
        ),
        sa.CheckConstraint(
            "amount > 0 AND position >= 1", name=op.f("ck_redpacket_shares_share_valid")
        ),
        sa.ForeignKeyConstraint(
            ["packet_id"], ["redpackets.id"], name=op.f("fk_redpacket_shares_packet_id_redpackets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_redpacket_shares")),
        sa.UniqueConstraint("public_id", name=op.f("uq_redpacket_shares_public_id")),
    )
    with op.batch_alter_table("redpacket_shares", schema=None) as batch_op:
        batch_op.create_index(
            "ix_redpacket_shares_free",
            ["packet_id", "position"],
            unique=False,
            postgresql_where=sa.text(FREE),
            sqlite_where=sa.text(FREE),
        )
        batch_op.create_index("ix_redpacket_shares_user", ["user_id", "id"], unique=False)
        batch_op.create_index("uq_redpacket_shares_person", ["packet_id", "user_id"], unique=True)
        batch_op.create_index(
            "uq_redpacket_shares_position", ["packet_id", "position"], unique=True
        )

    op.execute(
        "INSERT INTO redpacket_shares "
        "(packet_id, position, amount, public_id, user_id, label, claimed_at) "
        "SELECT packet_id, position, amount, public_id, user_id, label, created_at "
        "FROM redpacket_claims"
    )
    bind = op.get_bind()
    active = bind.execute(
        sa.text(
            "SELECT id, kind, total, shares, min_share, claimed_count, claimed_amount "
            "FROM redpackets WHERE status = 'active'"
        )
    ).all()
    rng = random.SystemRandom()  # as at sending: shares must not be predictable
    rows = [
        {"packet_id": pk, "position": claimed + n, "amount": amount}
        for pk, kind, total, count, min_share, claimed, paid in active
        if claimed < count
        for n, amount in enumerate(_rest(kind, total - paid, count - claimed, min_share, rng), 1)
    ]
    if rows:
        op.bulk_insert(shares, rows)
    op.execute(
        "UPDATE redpackets SET claimed_count = 0, claimed_amount = 0 WHERE status = 'active'"
    )

    with op.batch_alter_table("redpacket_claims", schema=None) as batch_op:
        batch_op.drop_index("uq_redpacket_claims_position")
        batch_op.drop_index("uq_redpacket_claims_person")
        batch_op.drop_index("ix_redpacket_claims_user")
    op.drop_table("redpacket_claims")


def downgrade() -> None:
    op.create_table(
        "redpacket_claims",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("public_id", sa.String(length=40), nullable=False),
        sa.Column("packet_id", BIG_ID, nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("transfer_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "amount > 0 AND position >= 1", name=op.f("ck_redpacket_claims_claim_valid")
        ),
        sa.ForeignKeyConstraint(
            ["packet_id"], ["redpackets.id"], name=op.f("fk_redpacket_claims_packet_id_redpackets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_redpacket_claims")),
        sa.UniqueConstraint("public_id", name=op.f("uq_redpacket_claims_public_id")),
    )
    with op.batch_alter_table("redpacket_claims", schema=None) as batch_op:
        batch_op.create_index("ix_redpacket_claims_user", ["user_id", "id"], unique=False)
        batch_op.create_index("uq_redpacket_claims_person", ["packet_id", "user_id"], unique=True)
        batch_op.create_index(
            "uq_redpacket_claims_position", ["packet_id", "position"], unique=True
        )
    # The old claims took position claimed_count + 1. An active packet whose claimed shares
    # have a gap (a later share taken while an earlier one's claim was refused) would make
    # the old code reuse a position: such packets must expire before a downgrade.
    gaps = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT p.public_id FROM redpackets p "
                "JOIN redpacket_shares s ON s.packet_id = p.id "
                "WHERE p.status = 'active' AND s.user_id IS NOT NULL "
                "GROUP BY p.public_id HAVING MAX(s.position) <> COUNT(*)"
            )
        )
        .all()
    )
    if gaps:
        raise RuntimeError(
            "cannot downgrade: active red packets with a gap in their claimed positions "
            f"({', '.join(str(g[0]) for g in gaps[:10])}); let them expire first"
        )
    op.execute(
        "INSERT INTO redpacket_claims "
        "(public_id, packet_id, user_id, label, position, amount, transfer_id, created_at) "
        "SELECT s.public_id, s.packet_id, s.user_id, s.label, s.position, s.amount, "
        "p.public_id || '.claim.' || CAST(s.position AS VARCHAR(12)), s.claimed_at "
        "FROM redpacket_shares s JOIN redpackets p ON p.id = s.packet_id "
        "WHERE s.user_id IS NOT NULL"
    )
    op.execute(
        "UPDATE redpackets SET "
        "claimed_count = (SELECT COUNT(*) FROM redpacket_claims c "
        "WHERE c.packet_id = redpackets.id), "
        "claimed_amount = (SELECT COALESCE(SUM(c.amount), 0) FROM redpacket_claims c "
        "WHERE c.packet_id = redpackets.id) "
        "WHERE status = 'active'"
    )
    with op.batch_alter_table("redpacket_shares", schema=None) as batch_op:
        batch_op.drop_index("uq_redpacket_shares_position")
        batch_op.drop_index("uq_redpacket_shares_person")
        batch_op.drop_index("ix_redpacket_shares_user")
        batch_op.drop_index(
            "ix_redpacket_shares_free",
            postgresql_where=sa.text(FREE),
            sqlite_where=sa.text(FREE),
        )
    op.drop_table("redpacket_shares")
