"""Moving a resident between cells: interop_moves, switch_moves, identity_users.moved_to,
wallet_activity.origin

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 19:00:00.000000

A move's row at each cell (the old cell's state machine, the new cell's receipt), the
switch's relay of the package, where a moved wallet went, and the cell a history line was
imported from (docs/interop.md, "Moving a resident between cells").
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = (
    sa.BigInteger().with_variant(sa.BIGINT(), "postgresql").with_variant(sa.INTEGER(), "sqlite")
)


def upgrade() -> None:
    op.create_table(
        "interop_moves",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("move_id", sa.String(length=36), nullable=False),
        sa.Column("direction", sa.String(length=3), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("other_fsp", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("balance", sa.BigInteger(), nullable=False),
        sa.Column("line_count", sa.BigInteger(), nullable=False),
        sa.Column("other_user_id", sa.String(length=40), nullable=True),
        sa.Column("quote_id", sa.String(length=40), nullable=True),
        sa.Column("transfer_id", sa.String(length=40), nullable=True),
        sa.Column("lookup_id", sa.BigInteger(), nullable=True),
        sa.Column("outbox_id", sa.BigInteger(), nullable=True),
        sa.Column("error_code", sa.String(length=4), nullable=True),
        sa.Column("reason", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "direction IN ('out', 'in')", name=op.f("ck_interop_moves_direction_known")
        ),
        sa.CheckConstraint(
            "state IN ('frozen', 'sent', 'accepted', 'quoting', 'transferring', "
            "'transferred', 'alias_sent', 'done', 'refused')",
            name=op.f("ck_interop_moves_state_known"),
        ),
        sa.CheckConstraint("balance >= 0", name=op.f("ck_interop_moves_balance_not_negative")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_interop_moves")),
        sa.UniqueConstraint("move_id", name=op.f("uq_interop_moves_move_id")),
    )
    op.create_index("ix_interop_moves_user", "interop_moves", ["user_id", "id"], unique=False)
    op.create_table(
        "switch_moves",
        sa.Column("move_id", sa.String(length=36), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("destination", sa.String(length=32), nullable=False),
        sa.Column("identifier", sa.String(length=32), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("outbox_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "state IN ('RELAYED', 'ACCEPTED', 'REFUSED')", name=op.f("ck_switch_moves_state_known")
        ),
        sa.PrimaryKeyConstraint("move_id", name=op.f("pk_switch_moves")),
    )
    op.add_column("identity_users", sa.Column("moved_to", sa.String(length=32), nullable=True))
    op.add_column("wallet_activity", sa.Column("origin", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("wallet_activity", schema=None) as batch_op:
        batch_op.drop_column("origin")
    with op.batch_alter_table("identity_users", schema=None) as batch_op:
        batch_op.drop_column("moved_to")
    op.drop_table("switch_moves")
    op.drop_index("ix_interop_moves_user", table_name="interop_moves")
    op.drop_table("interop_moves")
