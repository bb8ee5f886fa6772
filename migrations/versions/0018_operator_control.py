"""Operator console: dual-control proposals, operators' TOTP, sessions' second factor

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 22:00:00.000000

``control_proposals``: an action one operator proposed and another approves or rejects
(docs/web-operator.md, "Dual control"). ``identity_operator_totp``: an operator's TOTP
secret, encrypted. ``identity_session_factors``: sessions that passed a second factor.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = (
    sa.BigInteger()
    .with_variant(sa.dialects.sqlite.INTEGER(), "sqlite")
    .with_variant(sa.dialects.postgresql.BIGINT(), "postgresql")
)


def upgrade() -> None:
    op.create_table(
        "control_proposals",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("public_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("target_id", sa.String(length=64), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("proposer_user_id", sa.String(length=40), nullable=False),
        sa.Column("proposer_label", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("decided_by_user_id", sa.String(length=40), nullable=True),
        sa.Column("decided_by_label", sa.String(length=64), nullable=True),
        sa.Column("decided_at", sa.BigInteger(), nullable=True),
        sa.Column("note", sa.String(length=500), nullable=False),
        sa.Column("outcome", sa.String(length=200), nullable=False),
        sa.CheckConstraint(
            "state IN ('pending', 'approved', 'rejected', 'expired')",
            name=op.f("ck_control_proposals_state_known"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_control_proposals")),
        sa.UniqueConstraint("public_id", name=op.f("uq_control_proposals_public_id")),
    )
    op.create_index("ix_control_proposals_state", "control_proposals", ["state", "id"])
    op.create_index(
        "ix_control_proposals_target", "control_proposals", ["target_id", "kind", "state"]
    )
    op.create_table(
        "identity_operator_totp",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("secret_enc", sa.String(length=400), nullable=False),
        sa.Column("confirmed_at", sa.BigInteger(), nullable=True),
        sa.Column("last_step", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_operator_totp")),
        sa.UniqueConstraint("user_id", name=op.f("uq_identity_operator_totp_user_id")),
    )
    op.create_table(
        "identity_session_factors",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("factor", sa.String(length=16), nullable=False),
        sa.Column("verified_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_session_factors")),
        sa.UniqueConstraint("session_id", name=op.f("uq_identity_session_factors_session_id")),
    )


def downgrade() -> None:
    op.drop_table("identity_session_factors")
    op.drop_table("identity_operator_totp")
    op.drop_index("ix_control_proposals_target", table_name="control_proposals")
    op.drop_index("ix_control_proposals_state", table_name="control_proposals")
    op.drop_table("control_proposals")
