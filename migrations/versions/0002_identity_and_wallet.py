"""Identity, rate limits and wallet tables.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 11:17:17.737341
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "identity_sandbox_sms",
        sa.Column(
            "id",
            sa.BigInteger()
            .with_variant(sa.BIGINT(), "postgresql")
            .with_variant(sa.INTEGER(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("message_id", sa.String(length=40), nullable=False),
        sa.Column("idempotency_key", sa.String(length=100), nullable=True),
        sa.Column("phone_hash", sa.String(length=64), nullable=False),
        sa.Column("phone_enc", sa.Text(), nullable=False),
        sa.Column("phone_masked", sa.String(length=16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_sandbox_sms")),
        sa.UniqueConstraint(
            "idempotency_key", name=op.f("uq_identity_sandbox_sms_idempotency_key")
        ),
        sa.UniqueConstraint("message_id", name=op.f("uq_identity_sandbox_sms_message_id")),
    )
    with op.batch_alter_table("identity_sandbox_sms", schema=None) as batch_op:
        batch_op.create_index("ix_identity_sandbox_sms_phone", ["phone_hash", "id"], unique=False)

    op.create_table(
        "identity_sms_codes",
        sa.Column(
            "id",
            sa.BigInteger()
            .with_variant(sa.BIGINT(), "postgresql")
            .with_variant(sa.INTEGER(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("phone_hash", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("used_at", sa.BigInteger(), nullable=True),
        sa.Column("dead", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_sms_codes")),
    )
    with op.batch_alter_table("identity_sms_codes", schema=None) as batch_op:
        batch_op.create_index(
            "ix_identity_sms_codes_phone", ["phone_hash", "purpose", "id"], unique=False
        )

    op.create_table(
        "identity_users",
        sa.Column(
            "id",
            sa.BigInteger()
            .with_variant(sa.BIGINT(), "postgresql")
            .with_variant(sa.INTEGER(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("public_id", sa.String(length=40), nullable=False),
        sa.Column("phone_hash", sa.String(length=64), nullable=False),
        sa.Column("phone_enc", sa.Text(), nullable=False),
        sa.Column("phone_masked", sa.String(length=16), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("frozen_reason", sa.String(length=500), nullable=True),
        sa.Column("tier", sa.Integer(), nullable=False),
        sa.Column("external_checks", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_users")),
        sa.UniqueConstraint("phone_hash", name=op.f("uq_identity_users_phone_hash")),
        sa.UniqueConstraint("public_id", name=op.f("uq_identity_users_public_id")),
    )
    op.create_table(
        "platform_rate_limits",
        sa.Column("bucket", sa.String(length=100), nullable=False),
        sa.Column("window_start", sa.BigInteger(), nullable=False),
        sa.Column("window_end", sa.BigInteger(), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("bucket", name=op.f("pk_platform_rate_limits")),
    )
    op.create_table(
        "wallet_activity",
        sa.Column(
            "id",
            sa.BigInteger()
            .with_variant(sa.BIGINT(), "postgresql")
            .with_variant(sa.INTEGER(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("object_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("fee", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("counterparty_user_id", sa.String(length=40), nullable=True),
        sa.Column("counterparty_label", sa.String(length=100), nullable=False),
        sa.Column("note", sa.String(length=200), nullable=False),
        sa.Column("reference", sa.String(length=40), nullable=True),
        sa.Column("transfer_ids", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "amount > 0 AND fee >= 0", name=op.f("ck_wallet_activity_amounts_valid")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wallet_activity")),
    )
    with op.batch_alter_table("wallet_activity", schema=None) as batch_op:
        batch_op.create_index("ix_wallet_activity_user", ["user_id", "id"], unique=False)
        batch_op.create_index(
            "uq_wallet_activity_user_object", ["user_id", "object_id"], unique=True
        )

    op.create_table(
        "wallet_bank_cards",
        sa.Column(
            "id",
            sa.BigInteger()
            .with_variant(sa.BIGINT(), "postgresql")
            .with_variant(sa.INTEGER(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("public_id", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("card_enc", sa.Text(), nullable=True),
        sa.Column("card_hash", sa.String(length=64), nullable=False),
        sa.Column("bin", sa.String(length=6), nullable=False),
        sa.Column("last4", sa.String(length=4), nullable=False),
        sa.Column("number_length", sa.Integer(), nullable=False),
        sa.Column("bank_code", sa.String(length=16), nullable=False),
        sa.Column("bank_name", sa.String(length=100), nullable=False),
        sa.Column("holder_name_masked", sa.String(length=64), nullable=False),
        sa.Column("holder_id_hash", sa.String(length=64), nullable=False),
        sa.Column("check_ref", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("unbound_at", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(
            "status IN ('active', 'unbound')", name=op.f("ck_wallet_bank_cards_status_known")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wallet_bank_cards")),
        sa.UniqueConstraint("public_id", name=op.f("uq_wallet_bank_cards_public_id")),
    )
    with op.batch_alter_table("wallet_bank_cards", schema=None) as batch_op:
        batch_op.create_index("ix_wallet_bank_cards_user", ["user_id", "id"], unique=False)
        batch_op.create_index(
            "uq_wallet_bank_cards_active",
            ["user_id", "card_hash"],
            unique=True,
            sqlite_where=sa.text("status = 'active'"),
            postgresql_where=sa.text("status = 'active'"),
        )

    op.create_table(
        "wallet_fundings",
        sa.Column(
            "id",
            sa.BigInteger()
            .with_variant(sa.BIGINT(), "postgresql")
            .with_variant(sa.INTEGER(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("public_id", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("card_id", sa.String(length=40), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("fee", sa.BigInteger(), nullable=False),
        sa.Column("free_part", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("failure_code", sa.String(length=64), nullable=True),
        sa.Column("bank_ref", sa.String(length=64), nullable=True),
        sa.Column("day_period", sa.String(length=16), nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=True),
        sa.Column("transfer_ids", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("resolved_at", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(
            "kind IN ('topup', 'withdrawal')", name=op.f("ck_wallet_fundings_kind_known")
        ),
        sa.CheckConstraint(
            "status IN ('processing', 'unknown', 'succeeded', 'failed')",
            name=op.f("ck_wallet_fundings_status_known"),
        ),
        sa.CheckConstraint(
            "amount > 0 AND fee >= 0 AND free_part >= 0",
            name=op.f("ck_wallet_fundings_amounts_valid"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wallet_fundings")),
        sa.UniqueConstraint("public_id", name=op.f("uq_wallet_fundings_public_id")),
    )
    with op.batch_alter_table("wallet_fundings", schema=None) as batch_op:
        batch_op.create_index(
            "ix_wallet_fundings_idempotency", ["user_id", "idempotency_key"], unique=False
        )
        batch_op.create_index("ix_wallet_fundings_open", ["status", "created_at"], unique=False)
        batch_op.create_index("ix_wallet_fundings_user", ["user_id", "id"], unique=False)

    op.create_table(
        "wallet_limit_usage",
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("period", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("amount >= 0", name=op.f("ck_wallet_limit_usage_amount_non_negative")),
        sa.PrimaryKeyConstraint("user_id", "period", name=op.f("pk_wallet_limit_usage")),
    )
    op.create_table(
        "wallet_splits",
        sa.Column(
            "id",
            sa.BigInteger()
            .with_variant(sa.BIGINT(), "postgresql")
            .with_variant(sa.INTEGER(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("public_id", sa.String(length=40), nullable=False),
        sa.Column("creator_id", sa.String(length=40), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("note", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "status IN ('open', 'completed', 'cancelled')",
            name=op.f("ck_wallet_splits_status_known"),
        ),
        sa.CheckConstraint("total > 0", name=op.f("ck_wallet_splits_total_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wallet_splits")),
        sa.UniqueConstraint("public_id", name=op.f("uq_wallet_splits_public_id")),
    )
    with op.batch_alter_table("wallet_splits", schema=None) as batch_op:
        batch_op.create_index("ix_wallet_splits_creator", ["creator_id", "id"], unique=False)

    op.create_table(
        "wallet_wallets",
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("ledger_account_id", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_wallet_wallets")),
        sa.UniqueConstraint("ledger_account_id", name=op.f("uq_wallet_wallets_ledger_account_id")),
    )
    op.create_table(
        "identity_external_checks",
        sa.Column(
            "id",
            sa.BigInteger()
            .with_variant(sa.BIGINT(), "postgresql")
            .with_variant(sa.INTEGER(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "user_id",
            sa.BigInteger()
            .with_variant(sa.BIGINT(), "postgresql")
            .with_variant(sa.INTEGER(), "sqlite"),
            nullable=False,
        ),
        sa.Column("kind", sa.String(length=100), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["identity_users.id"],
            name=op.f("fk_identity_external_checks_user_id_identity_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_external_checks")),
    )
    with op.batch_alter_table("identity_external_checks", schema=None) as batch_op:
        batch_op.create_index(
            "uq_identity_external_checks_user_kind", ["user_id", "kind"], unique=True
        )

    op.create_table(
        "identity_payment_pins",
        sa.Column(
            "user_id",
            sa.BigInteger()
            .with_variant(sa.BIGINT(), "postgresql")
            .with_variant(sa.INTEGER(), "sqlite"),
            nullable=False,
        ),
        sa.Column("pin_hash", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("failed_attempts", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["identity_users.id"],
            name=op.f("fk_identity_payment_pins_user_id_identity_users"),
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_identity_payment_pins")),
    )
    op.create_table(
        "identity_real_names",
        sa.Column(
            "user_id",
            sa.BigInteger()
            .with_variant(sa.BIGINT(), "postgresql")
            .with_variant(sa.INTEGER(), "sqlite"),
            nullable=False,
        ),
        sa.Column("id_hash", sa.String(length=64), nullable=False),
        sa.Column("name_enc", sa.Text(), nullable=False),
        sa.Column("id_number_enc", sa.Text(), nullable=False),
        sa.Column("name_masked", sa.String(length=64), nullable=False),
        sa.Column("id_number_masked", sa.String(length=18), nullable=False),
        sa.Column("provider_ref", sa.String(length=64), nullable=False),
        sa.Column("verified_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["identity_users.id"],
            name=op.f("fk_identity_real_names_user_id_identity_users"),
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_identity_real_names")),
        sa.UniqueConstraint("id_hash", name=op.f("uq_identity_real_names_id_hash")),
    )
    op.create_table(
        "identity_sessions",
        sa.Column(
            "id",
            sa.BigInteger()
            .with_variant(sa.BIGINT(), "postgresql")
            .with_variant(sa.INTEGER(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("public_id", sa.String(length=40), nullable=False),
        sa.Column(
            "user_id",
            sa.BigInteger()
            .with_variant(sa.BIGINT(), "postgresql")
            .with_variant(sa.INTEGER(), "sqlite"),
            nullable=False,
        ),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("device_name", sa.String(length=100), nullable=False),
        sa.Column("user_agent", sa.String(length=300), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("last_seen_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("revoked_at", sa.BigInteger(), nullable=True),
        sa.Column("revoked_reason", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["identity_users.id"],
            name=op.f("fk_identity_sessions_user_id_identity_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_sessions")),
        sa.UniqueConstraint("public_id", name=op.f("uq_identity_sessions_public_id")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_identity_sessions_token_hash")),
    )
    with op.batch_alter_table("identity_sessions", schema=None) as batch_op:
        batch_op.create_index("ix_identity_sessions_user", ["user_id", "id"], unique=False)

    op.create_table(
        "identity_user_events",
        sa.Column(
            "id",
            sa.BigInteger()
            .with_variant(sa.BIGINT(), "postgresql")
            .with_variant(sa.INTEGER(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "user_id",
            sa.BigInteger()
            .with_variant(sa.BIGINT(), "postgresql")
            .with_variant(sa.INTEGER(), "sqlite"),
            nullable=False,
        ),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["identity_users.id"],
            name=op.f("fk_identity_user_events_user_id_identity_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_user_events")),
    )
    with op.batch_alter_table("identity_user_events", schema=None) as batch_op:
        batch_op.create_index("ix_identity_user_events_user", ["user_id", "id"], unique=False)

    op.create_table(
        "wallet_split_shares",
        sa.Column(
            "id",
            sa.BigInteger()
            .with_variant(sa.BIGINT(), "postgresql")
            .with_variant(sa.INTEGER(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("public_id", sa.String(length=40), nullable=False),
        sa.Column(
            "split_id",
            sa.BigInteger()
            .with_variant(sa.BIGINT(), "postgresql")
            .with_variant(sa.INTEGER(), "sqlite"),
            nullable=False,
        ),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("transfer_id", sa.String(length=64), nullable=True),
        sa.Column("paid_at", sa.BigInteger(), nullable=True),
        sa.Column("last_reminded_at", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(
            "status IN ('unpaid', 'paid', 'cancelled')",
            name=op.f("ck_wallet_split_shares_status_known"),
        ),
        sa.CheckConstraint("amount > 0", name=op.f("ck_wallet_split_shares_amount_positive")),
        sa.ForeignKeyConstraint(
            ["split_id"],
            ["wallet_splits.id"],
            name=op.f("fk_wallet_split_shares_split_id_wallet_splits"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wallet_split_shares")),
        sa.UniqueConstraint("public_id", name=op.f("uq_wallet_split_shares_public_id")),
    )
    with op.batch_alter_table("wallet_split_shares", schema=None) as batch_op:
        batch_op.create_index("ix_wallet_split_shares_user", ["user_id", "id"], unique=False)
        batch_op.create_index("uq_wallet_split_shares_person", ["split_id", "user_id"], unique=True)


def downgrade() -> None:

    with op.batch_alter_table("wallet_split_shares", schema=None) as batch_op:
        batch_op.drop_index("uq_wallet_split_shares_person")
        batch_op.drop_index("ix_wallet_split_shares_user")

    op.drop_table("wallet_split_shares")
    with op.batch_alter_table("identity_user_events", schema=None) as batch_op:
        batch_op.drop_index("ix_identity_user_events_user")

    op.drop_table("identity_user_events")
    with op.batch_alter_table("identity_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_identity_sessions_user")

    op.drop_table("identity_sessions")
    op.drop_table("identity_real_names")
    op.drop_table("identity_payment_pins")
    with op.batch_alter_table("identity_external_checks", schema=None) as batch_op:
        batch_op.drop_index("uq_identity_external_checks_user_kind")

    op.drop_table("identity_external_checks")
    op.drop_table("wallet_wallets")
    with op.batch_alter_table("wallet_splits", schema=None) as batch_op:
        batch_op.drop_index("ix_wallet_splits_creator")

    op.drop_table("wallet_splits")
    op.drop_table("wallet_limit_usage")
    with op.batch_alter_table("wallet_fundings", schema=None) as batch_op:
        batch_op.drop_index("ix_wallet_fundings_user")
        batch_op.drop_index("ix_wallet_fundings_open")
        batch_op.drop_index("ix_wallet_fundings_idempotency")

    op.drop_table("wallet_fundings")
    with op.batch_alter_table("wallet_bank_cards", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_wallet_bank_cards_active",
            sqlite_where=sa.text("status = 'active'"),
            postgresql_where=sa.text("status = 'active'"),
        )
        batch_op.drop_index("ix_wallet_bank_cards_user")

    op.drop_table("wallet_bank_cards")
    with op.batch_alter_table("wallet_activity", schema=None) as batch_op:
        batch_op.drop_index("uq_wallet_activity_user_object")
        batch_op.drop_index("ix_wallet_activity_user")

    op.drop_table("wallet_activity")
    op.drop_table("platform_rate_limits")
    op.drop_table("identity_users")
    with op.batch_alter_table("identity_sms_codes", schema=None) as batch_op:
        batch_op.drop_index("ix_identity_sms_codes_phone")

    op.drop_table("identity_sms_codes")
    with op.batch_alter_table("identity_sandbox_sms", schema=None) as batch_op:
        batch_op.drop_index("ix_identity_sandbox_sms_phone")

    op.drop_table("identity_sandbox_sms")
