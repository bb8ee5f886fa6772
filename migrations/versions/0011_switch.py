"""The interoperability switch: participants with positions, aliases, quotes, transfers,
settlement windows (one OPEN at a time)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 15:12:09.126591
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "switch_participants",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("public_key", sa.String(length=64), nullable=False),
        sa.Column("callback_url", sa.String(length=500), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("cap", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("reserved", sa.BigInteger(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "cap >= 0 AND reserved >= 0",
            name=op.f("ck_switch_participants_cap_and_reserved_not_negative"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_switch_participants")),
    )
    op.create_table(
        "switch_quotes",
        sa.Column("quote_id", sa.String(length=36), nullable=False),
        sa.Column("payer", sa.String(length=32), nullable=False),
        sa.Column("payee", sa.String(length=32), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("answer_digest", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("quote_id", name=op.f("pk_switch_quotes")),
    )
    op.create_table(
        "switch_transfers",
        sa.Column("transfer_id", sa.String(length=36), nullable=False),
        sa.Column("payer", sa.String(length=32), nullable=False),
        sa.Column("payee", sa.String(length=32), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("prepare", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("fulfilment", sa.String(length=43), nullable=True),
        sa.Column("error_code", sa.String(length=4), nullable=True),
        sa.Column("expiration", sa.BigInteger(), nullable=False),
        sa.Column("window_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("completed_at", sa.BigInteger(), nullable=True),
        sa.CheckConstraint("amount > 0", name=op.f("ck_switch_transfers_amount_positive")),
        sa.PrimaryKeyConstraint("transfer_id", name=op.f("pk_switch_transfers")),
    )
    with op.batch_alter_table("switch_transfers", schema=None) as batch_op:
        batch_op.create_index("ix_switch_transfers_due", ["state", "expiration"], unique=False)
        batch_op.create_index("ix_switch_transfers_window", ["window_id"], unique=False)

    op.create_table(
        "switch_windows",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("opened_at", sa.BigInteger(), nullable=False),
        sa.Column("closed_at", sa.BigInteger(), nullable=True),
        sa.Column("report", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "state IN ('OPEN', 'CLOSED')", name=op.f("ck_switch_windows_state_known")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_switch_windows")),
    )
    with op.batch_alter_table("switch_windows", schema=None) as batch_op:
        batch_op.create_index(
            "uq_switch_windows_open",
            ["state"],
            unique=True,
            sqlite_where=sa.text("state = 'OPEN'"),
            postgresql_where=sa.text("state = 'OPEN'"),
        )

    op.create_table(
        "switch_aliases",
        sa.Column("id_type", sa.String(length=16), nullable=False),
        sa.Column("identifier", sa.String(length=64), nullable=False),
        sa.Column("fsp_id", sa.String(length=32), nullable=False),
        sa.Column("masked_name", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["fsp_id"],
            ["switch_participants.id"],
            name=op.f("fk_switch_aliases_fsp_id_switch_participants"),
        ),
        sa.PrimaryKeyConstraint("id_type", "identifier", name=op.f("pk_switch_aliases")),
    )
    with op.batch_alter_table("switch_aliases", schema=None) as batch_op:
        batch_op.create_index("ix_switch_aliases_fsp", ["fsp_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("switch_aliases", schema=None) as batch_op:
        batch_op.drop_index("ix_switch_aliases_fsp")

    op.drop_table("switch_aliases")
    with op.batch_alter_table("switch_windows", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_switch_windows_open",
            sqlite_where=sa.text("state = 'OPEN'"),
            postgresql_where=sa.text("state = 'OPEN'"),
        )

    op.drop_table("switch_windows")
    with op.batch_alter_table("switch_transfers", schema=None) as batch_op:
        batch_op.drop_index("ix_switch_transfers_window")
        batch_op.drop_index("ix_switch_transfers_due")

    op.drop_table("switch_transfers")
    op.drop_table("switch_quotes")
    op.drop_table("switch_participants")
