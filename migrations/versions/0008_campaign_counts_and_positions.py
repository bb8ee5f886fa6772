"""Campaigns: a striped registration counter and the draw positions stored at the draw

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 08:00:00.000000

The counter of every existing campaign is filled from its registrations (stripe 0); the
positions of campaigns drawn before this revision are not stored: their residents' draw
check computes them as before (``campaign.resident.draw_check`` falls back).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "campaign_registration_counts",
        sa.Column(
            "campaign_id",
            sa.BigInteger()
            .with_variant(sa.BIGINT(), "postgresql")
            .with_variant(sa.INTEGER(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("stripe", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("registrations", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaign_campaigns.id"],
            name=op.f("fk_campaign_registration_counts_campaign_id_campaign_campaigns"),
        ),
        sa.PrimaryKeyConstraint(
            "campaign_id", "stripe", name=op.f("pk_campaign_registration_counts")
        ),
    )
    op.create_table(
        "campaign_draw_positions",
        sa.Column("registration_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("registration_id", name=op.f("pk_campaign_draw_positions")),
    )
    op.execute(
        "INSERT INTO campaign_registration_counts (campaign_id, stripe, registrations) "
        "SELECT campaign_id, 0, count(*) FROM campaign_registrations GROUP BY campaign_id"
    )


def downgrade() -> None:
    op.drop_table("campaign_draw_positions")
    op.drop_table("campaign_registration_counts")
