"""Interop: providers' display names on lookups, quotes and transfers; the switch's quote
purge index

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 19:40:00.000000

The switch names each participant by its registry's display name in a party lookup's answer
and a quote's terms; the payer's provider keeps it beside the participant id (shown to
people, the id when absent). ``switch_quotes`` are purged a day after they were asked
(docs/interop.md, "Retention"), found by ``created_at``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("interop_lookups", sa.Column("fsp_name", sa.String(length=100), nullable=True))
    op.add_column(
        "interop_payer_quotes", sa.Column("payee_fsp_name", sa.String(length=100), nullable=True)
    )
    op.add_column(
        "interop_transfers",
        sa.Column("counterparty_fsp_name", sa.String(length=100), nullable=True),
    )
    op.create_index(op.f("ix_switch_quotes_created"), "switch_quotes", ["created_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_switch_quotes_created"), table_name="switch_quotes")
    with op.batch_alter_table("interop_transfers") as batch:
        batch.drop_column("counterparty_fsp_name")
    with op.batch_alter_table("interop_payer_quotes") as batch:
        batch.drop_column("payee_fsp_name")
    with op.batch_alter_table("interop_lookups") as batch:
        batch.drop_column("fsp_name")
