"""Interop provider: lookups and quotes waiting for the switch, the payee's quotes, interop
transfers of both roles, processed settlement windows (docs/interop.md, "The provider")

Revision ID: 0011p
Revises: 0010
Create Date: 2026-12-07 15:17:56.706879
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "interop_lookups",
        sa.Column(
            "id",
            sa.BigInteger()
            .with_variant(sa.BIGINT(), "postgresql")
            .with_variant(sa.INTEGER(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("identifier", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("fsp_id", sa.String(length=32), nullable=True),
        sa.Column("masked_name", sa.String(length=64), nullable=True),
        sa.Column("error_code", sa.String(length=4), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "state IN ('waiting', 'found', 'not_found')",
            name=op.f("ck_interop_lookups_state_known"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_interop_lookups")),
    )
    with op.batch_alter_table("interop_lookups", schema=None) as batch_op:
        batch_op.create_index(
            "ix_interop_lookups_identifier", ["identifier", "state"], unique=False
        )

    op.create_table(
        "interop_payee_quotes",
        sa.Column(
            "id",
            sa.BigInteger()
            .with_variant(sa.BIGINT(), "postgresql")
            .with_variant(sa.INTEGER(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("quote_id", sa.String(length=36), nullable=False),
        sa.Column("payer_fsp", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("identifier", sa.String(length=32), nullable=False),
        sa.Column("transfer_amount", sa.BigInteger(), nullable=False),
        sa.Column("payee_fee", sa.BigInteger(), nullable=False),
        sa.Column("payer_fee", sa.BigInteger(), nullable=False),
        sa.Column("condition", sa.String(length=43), nullable=False),
        sa.Column("fulfilment_enc", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("response", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "transfer_amount > 0", name=op.f("ck_interop_payee_quotes_amount_positive")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_interop_payee_quotes")),
        sa.UniqueConstraint("condition", name=op.f("uq_interop_payee_quotes_condition")),
        sa.UniqueConstraint("quote_id", name=op.f("uq_interop_payee_quotes_quote_id")),
    )
    op.create_table(
        "interop_payer_quotes",
        sa.Column(
            "id",
            sa.BigInteger()
            .with_variant(sa.BIGINT(), "postgresql")
            .with_variant(sa.INTEGER(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("public_id", sa.String(length=40), nullable=False),
        sa.Column("quote_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("payee_identifier", sa.String(length=32), nullable=False),
        sa.Column("payee_fsp", sa.String(length=32), nullable=False),
        sa.Column("masked_name", sa.String(length=64), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("transfer_amount", sa.BigInteger(), nullable=True),
        sa.Column("payer_fee", sa.BigInteger(), nullable=True),
        sa.Column("payee_fee", sa.BigInteger(), nullable=True),
        sa.Column("condition", sa.String(length=43), nullable=True),
        sa.Column("expires_at", sa.BigInteger(), nullable=True),
        sa.Column("error_code", sa.String(length=4), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "state IN ('waiting', 'ready', 'failed')",
            name=op.f("ck_interop_payer_quotes_state_known"),
        ),
        sa.CheckConstraint("amount > 0", name=op.f("ck_interop_payer_quotes_amount_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_interop_payer_quotes")),
        sa.UniqueConstraint("public_id", name=op.f("uq_interop_payer_quotes_public_id")),
        sa.UniqueConstraint("quote_id", name=op.f("uq_interop_payer_quotes_quote_id")),
    )
    op.create_table(
        "interop_settlement_windows",
        sa.Column("window_id", sa.String(length=36), nullable=False),
        sa.Column("net_amount", sa.BigInteger(), nullable=False),
        sa.Column("transfer_count", sa.BigInteger(), nullable=False),
        sa.Column("ledger_transfer_id", sa.String(length=64), nullable=True),
        sa.Column("closed_at", sa.BigInteger(), nullable=False),
        sa.Column("processed_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("window_id", name=op.f("pk_interop_settlement_windows")),
    )
    op.create_table(
        "interop_transfers",
        sa.Column(
            "id",
            sa.BigInteger()
            .with_variant(sa.BIGINT(), "postgresql")
            .with_variant(sa.INTEGER(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("public_id", sa.String(length=40), nullable=False),
        sa.Column("transfer_id", sa.String(length=36), nullable=False),
        sa.Column("quote_id", sa.String(length=36), nullable=False),
        sa.Column("role", sa.String(length=8), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("counterparty_fsp", sa.String(length=32), nullable=False),
        sa.Column("counterparty_identifier", sa.String(length=64), nullable=False),
        sa.Column("counterparty_name", sa.String(length=64), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("payer_fee", sa.BigInteger(), nullable=False),
        sa.Column("payee_fee", sa.BigInteger(), nullable=False),
        sa.Column("condition", sa.String(length=43), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("error_code", sa.String(length=4), nullable=True),
        sa.Column("note", sa.String(length=100), nullable=False),
        sa.Column("usage", sa.Text(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=True),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("queried_at", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("resolved_at", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(
            "role IN ('payer', 'payee')", name=op.f("ck_interop_transfers_role_known")
        ),
        sa.CheckConstraint(
            "state IN ('PREPARED', 'COMMITTED', 'ABORTED', 'EXPIRED')",
            name=op.f("ck_interop_transfers_state_known"),
        ),
        sa.CheckConstraint(
            "amount > 0 AND payer_fee >= 0 AND payee_fee >= 0",
            name=op.f("ck_interop_transfers_amounts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_interop_transfers")),
        sa.UniqueConstraint("public_id", name=op.f("uq_interop_transfers_public_id")),
        sa.UniqueConstraint("quote_id", name=op.f("uq_interop_transfers_quote_id")),
        sa.UniqueConstraint("transfer_id", name=op.f("uq_interop_transfers_transfer_id")),
    )
    with op.batch_alter_table("interop_transfers", schema=None) as batch_op:
        batch_op.create_index("ix_interop_transfers_open", ["state", "expires_at"], unique=False)
        batch_op.create_index("ix_interop_transfers_user", ["user_id", "id"], unique=False)
        batch_op.create_index(
            "uq_interop_transfers_payer_key", ["user_id", "idempotency_key"], unique=True
        )


def downgrade() -> None:
    with op.batch_alter_table("interop_transfers", schema=None) as batch_op:
        batch_op.drop_index("uq_interop_transfers_payer_key")
        batch_op.drop_index("ix_interop_transfers_user")
        batch_op.drop_index("ix_interop_transfers_open")

    op.drop_table("interop_transfers")
    op.drop_table("interop_settlement_windows")
    op.drop_table("interop_payer_quotes")
    op.drop_table("interop_payee_quotes")
    with op.batch_alter_table("interop_lookups", schema=None) as batch_op:
        batch_op.drop_index("ix_interop_lookups_identifier")

    op.drop_table("interop_lookups")
