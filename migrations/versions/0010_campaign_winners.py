"""Campaigns: the draw's winners in their own narrow table; registrations are never updated

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 13:00:00.000000

The winners (rank, prize, issue time) of every campaign drawn so far move from
``campaign_registrations`` to ``campaign_winners``; the registrations lose ``status``,
``rank``, ``prize``, ``issued_at``, their checks and the ``(campaign_id, rank)`` index. The
draw then writes K narrow rows instead of updating K rows of a 2-million-row table through
its indexes, and every registration insert maintains one index fewer.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "campaign_winners",
        sa.Column(
            "campaign_id",
            sa.BigInteger()
            .with_variant(sa.BIGINT(), "postgresql")
            .with_variant(sa.INTEGER(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("rank", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("registration_id", sa.BigInteger(), nullable=False),
        sa.Column("prize", sa.BigInteger(), nullable=False),
        sa.Column("issued_at", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(
            "rank >= 1 AND prize > 0", name=op.f("ck_campaign_winners_rank_and_prize_positive")
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaign_campaigns.id"],
            name=op.f("fk_campaign_winners_campaign_id_campaign_campaigns"),
        ),
        sa.PrimaryKeyConstraint("campaign_id", "rank", name=op.f("pk_campaign_winners")),
    )
    with op.batch_alter_table("campaign_winners", schema=None) as batch_op:
        batch_op.create_index("uq_campaign_winners_registration", ["registration_id"], unique=True)
    op.execute(
        "INSERT INTO campaign_winners (campaign_id, rank, registration_id, prize, issued_at) "
        "SELECT campaign_id, rank, id, prize, issued_at FROM campaign_registrations "
        "WHERE status = 'won'"
    )
    with op.batch_alter_table("campaign_registrations", schema=None) as batch_op:
        batch_op.drop_index("ix_campaign_registrations_rank")
        batch_op.drop_constraint(op.f("ck_campaign_registrations_status_known"), type_="check")
        batch_op.drop_constraint(op.f("ck_campaign_registrations_prize_positive"), type_="check")
        batch_op.drop_column("issued_at")
        batch_op.drop_column("prize")
        batch_op.drop_column("rank")
        batch_op.drop_column("status")


def downgrade() -> None:
    with op.batch_alter_table("campaign_registrations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("status", sa.String(length=16), nullable=False, server_default="registered")
        )
        batch_op.add_column(sa.Column("rank", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("prize", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("issued_at", sa.BigInteger(), nullable=True))
    op.execute(
        "UPDATE campaign_registrations SET status = 'won', rank = w.rank, prize = w.prize, "
        "issued_at = w.issued_at FROM campaign_winners AS w "
        "WHERE w.registration_id = campaign_registrations.id"
    )
    with op.batch_alter_table("campaign_registrations", schema=None) as batch_op:
        batch_op.alter_column("status", server_default=None)
        batch_op.create_check_constraint(
            op.f("ck_campaign_registrations_status_known"), "status IN ('registered', 'won')"
        )
        batch_op.create_check_constraint(
            op.f("ck_campaign_registrations_prize_positive"), "prize IS NULL OR prize > 0"
        )
        batch_op.create_index(
            "ix_campaign_registrations_rank", ["campaign_id", "rank"], unique=False
        )
    with op.batch_alter_table("campaign_winners", schema=None) as batch_op:
        batch_op.drop_index("uq_campaign_winners_registration")
    op.drop_table("campaign_winners")
