"""Identity: consents per purpose (PIPL), with the documents' versions and time

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07 22:20:00.000000

``identity_consents`` is append-only: each row gives or withdraws one purpose (``wallet``,
``offers``, ``merchant_sharing``) under the service agreement's and privacy policy's
versions; the latest row of a purpose is its state (docs/identity.md, "Consent").
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "identity_consents",
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
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("agreement_version", sa.String(length=16), nullable=False),
        sa.Column("privacy_version", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["identity_users.id"],
            name=op.f("fk_identity_consents_user_id_identity_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_consents")),
    )
    op.create_index("ix_identity_consents_user", "identity_consents", ["user_id", "purpose", "id"])


def downgrade() -> None:
    op.drop_index("ix_identity_consents_user", table_name="identity_consents")
    op.drop_table("identity_consents")
