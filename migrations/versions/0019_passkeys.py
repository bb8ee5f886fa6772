"""Passkeys: residents' WebAuthn credentials and the challenges of their ceremonies

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07 22:00:00.000000

``identity_passkeys`` holds each registered credential's public key and signature counter;
``identity_passkey_challenges`` each challenge handed out (registration, sign-in, payment),
used once before it expires (docs/identity.md, "Passkeys").
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The identity tables' ids: BIGINT on PostgreSQL, INTEGER (the rowid) on SQLite.
BIG_ID = (
    sa.BigInteger().with_variant(sa.BIGINT(), "postgresql").with_variant(sa.INTEGER(), "sqlite")
)


def upgrade() -> None:
    op.create_table(
        "identity_passkeys",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("public_id", sa.String(length=40), nullable=False),
        sa.Column("user_id", BIG_ID, nullable=False),
        sa.Column("credential_id", sa.String(length=1400), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("sign_count", sa.BigInteger(), nullable=False),
        sa.Column("transports", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("last_used_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["identity_users.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("public_id"),
        sa.UniqueConstraint("credential_id"),
    )
    op.create_index("ix_identity_passkeys_user", "identity_passkeys", ["user_id", "id"])
    op.create_table(
        "identity_passkey_challenges",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("challenge_hash", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("user_id", BIG_ID, nullable=True),
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("used_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["identity_users.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("challenge_hash"),
    )
    op.create_index(
        "ix_identity_passkey_challenges_expiry", "identity_passkey_challenges", ["expires_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_identity_passkey_challenges_expiry", "identity_passkey_challenges")
    op.drop_table("identity_passkey_challenges")
    op.drop_index("ix_identity_passkeys_user", "identity_passkeys")
    op.drop_table("identity_passkeys")
