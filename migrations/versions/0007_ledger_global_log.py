"""Ledger: one global log over all sealed transfers (tree nodes, checkpoints)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 04:40:00.000000

Transfers sealed before this revision are given log positions in block order and their tree
nodes are built here; the first checkpoint is signed by the next seal (the signing key is
not available to a migration).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from citywallet.ledger.merkle import CompactRange

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ledger_checkpoints",
        sa.Column("tree_size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("tree_size", name=op.f("pk_ledger_checkpoints")),
    )
    op.create_table(
        "ledger_tree_nodes",
        sa.Column("level", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("level", "idx", name=op.f("pk_ledger_tree_nodes")),
    )
    with op.batch_alter_table("ledger_transfers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("log_index", sa.BigInteger(), nullable=True))
        batch_op.create_index("uq_ledger_transfers_log_index", ["log_index"], unique=True)
    _backfill()


def _backfill() -> None:
    conn = op.get_bind()
    rows = conn.execute(
        sa.text(
            "SELECT seq, hash FROM ledger_transfers WHERE block_height IS NOT NULL "
            "ORDER BY block_height, leaf_index"
        )
    ).all()
    tree = CompactRange()
    positions: list[dict[str, int]] = []
    nodes: list[dict[str, object]] = []
    for seq, leaf in rows:
        positions.append({"seq": int(seq), "i": tree.size})
        nodes.extend({"l": lv, "i": ix, "h": h} for lv, ix, h in tree.append(bytes(leaf)))
    if positions:
        conn.execute(
            sa.text("UPDATE ledger_transfers SET log_index = :i WHERE seq = :seq"), positions
        )
        conn.execute(
            sa.text("INSERT INTO ledger_tree_nodes (level, idx, hash) VALUES (:l, :i, :h)"),
            nodes,
        )


def downgrade() -> None:
    with op.batch_alter_table("ledger_transfers", schema=None) as batch_op:
        batch_op.drop_index("uq_ledger_transfers_log_index")
        batch_op.drop_column("log_index")
    op.drop_table("ledger_tree_nodes")
    op.drop_table("ledger_checkpoints")
