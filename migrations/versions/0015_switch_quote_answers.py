"""The switch keeps each quote's answer: switch_quotes.answer

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 19:30:00.000000

A payer's provider that resends ``POST /quotes`` (its inline answer was lost on the way
back) gets the payee's answer again from the switch (docs/interop.md, "Inline callbacks").
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("switch_quotes") as batch:
        batch.add_column(sa.Column("answer", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("switch_quotes") as batch:
        batch.drop_column("answer")
