"""Red-packet escrow stripes: each share names the escrow account it is paid from

A packet's money may sit in several escrow accounts of its own (stripes), so the claims of a
hot packet in flight at one moment post to different accounts instead of queueing on one
(docs/redpackets.md, "Escrow stripes"). Every existing share is paid from its packet's one
escrow account, as before.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 07:45:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("redpacket_shares", schema=None) as batch_op:
        batch_op.add_column(sa.Column("account_id", sa.BigInteger(), nullable=True))
    op.execute(
        "UPDATE redpacket_shares SET account_id = (SELECT p.escrow_account_id FROM redpackets p "
        "WHERE p.id = redpacket_shares.packet_id)"
    )
    with op.batch_alter_table("redpacket_shares", schema=None) as batch_op:
        batch_op.alter_column("account_id", existing_type=sa.BigInteger(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("redpacket_shares", schema=None) as batch_op:
        batch_op.drop_column("account_id")
