"""Merchants paid through the interoperability switch: merchant_interop_payments

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 15:45:00.000000

One row per quote another provider's resident asked for one of our merchant codes, then the
switch transfer that pays it (docs/interop.md, "Merchant QR across providers").
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "merchant_interop_payments",
        sa.Column(
            "id",
            sa.BigInteger()
            .with_variant(sa.BIGINT(), "postgresql")
            .with_variant(sa.INTEGER(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("quote_id", sa.String(length=36), nullable=False),
        sa.Column("transfer_id", sa.String(length=36), nullable=True),
        sa.Column(
            "merchant_id",
            sa.BigInteger()
            .with_variant(sa.BIGINT(), "postgresql")
            .with_variant(sa.INTEGER(), "sqlite"),
            nullable=False,
        ),
        sa.Column(
            "store_id",
            sa.BigInteger()
            .with_variant(sa.BIGINT(), "postgresql")
            .with_variant(sa.INTEGER(), "sqlite"),
            nullable=False,
        ),
        sa.Column("order_public_id", sa.String(length=40), nullable=False),
        sa.Column("dynamic", sa.Boolean(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("fee", sa.BigInteger(), nullable=False),
        sa.Column("payer_fsp", sa.String(length=32), nullable=False),
        sa.Column("payer_id_type", sa.String(length=16), nullable=False),
        sa.Column("payer_identifier", sa.String(length=64), nullable=False),
        sa.Column("payload_digest", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("quote_expires_at", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "amount > 0 AND fee >= 0 AND fee <= amount",
            name=op.f("ck_merchant_interop_payments_amounts_valid"),
        ),
        sa.CheckConstraint(
            "state IN ('quoted', 'prepared', 'committed', 'aborted')",
            name=op.f("ck_merchant_interop_payments_state_known"),
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchant_merchants.id"],
            name=op.f("fk_merchant_interop_payments_merchant_id_merchant_merchants"),
        ),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["merchant_stores.id"],
            name=op.f("fk_merchant_interop_payments_store_id_merchant_stores"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_merchant_interop_payments")),
    )
    with op.batch_alter_table("merchant_interop_payments", schema=None) as batch_op:
        batch_op.create_index("uq_merchant_interop_payments_quote", ["quote_id"], unique=True)
        batch_op.create_index("uq_merchant_interop_payments_transfer", ["transfer_id"], unique=True)
        batch_op.create_index(
            "ix_merchant_interop_payments_order", ["order_public_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("merchant_interop_payments", schema=None) as batch_op:
        batch_op.drop_index("ix_merchant_interop_payments_order")
        batch_op.drop_index("uq_merchant_interop_payments_transfer")
        batch_op.drop_index("uq_merchant_interop_payments_quote")
    op.drop_table("merchant_interop_payments")
