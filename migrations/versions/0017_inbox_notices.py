"""The message centre: notices

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 21:50:00.000000

One row per message to a resident, written in the transaction of the event it tells of
(docs/web-app.md, "Messages"); a partial index serves the unread badge.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KINDS = (
    "campaign_drawn",
    "campaign_won",
    "charge_waiting",
    "device_signin",
    "payment_refused",
    "redpacket_received",
    "split_requested",
)


def upgrade() -> None:
    known = ", ".join(f"'{kind}'" for kind in KINDS)
    op.create_table(
        "notices",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("public_id", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("ref", sa.String(length=60), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("read_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notices")),
        sa.UniqueConstraint("public_id", name=op.f("uq_notices_public_id")),
        sa.CheckConstraint(f"kind IN ({known})", name=op.f("ck_notices_kind_known")),
    )
    op.create_index("ix_notices_user", "notices", ["user_id", "id"])
    op.create_index(
        "ix_notices_unread",
        "notices",
        ["user_id"],
        postgresql_where=sa.text("read_at IS NULL"),
        sqlite_where=sa.text("read_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_notices_unread", table_name="notices")
    op.drop_index("ix_notices_user", table_name="notices")
    op.drop_table("notices")
