"""The proposals of dual control (one row per proposed action; decided once)."""

from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from citywallet.platform.db import Base, BigId


class Proposal(Base):
    """An operator action waiting for (or decided by) a second operator."""

    __tablename__ = "control_proposals"
    __table_args__ = (
        CheckConstraint(
            "state IN ('pending', 'approved', 'rejected', 'expired')", name="state_known"
        ),
        Index("ix_control_proposals_state", "state", "id"),
        Index("ix_control_proposals_target", "target_id", "kind", "state"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)  # prp_…
    kind: Mapped[str] = mapped_column(String(40))  # campaign.fund, resident.freeze …
    target_id: Mapped[str] = mapped_column(String(64))
    params: Mapped[str] = mapped_column(Text, default="{}")  # JSON object
    reason: Mapped[str] = mapped_column(String(500), default="")
    proposer_user_id: Mapped[str] = mapped_column(String(40))
    proposer_label: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    decided_by_user_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    decided_by_label: Mapped[str | None] = mapped_column(String(64), nullable=True)
    decided_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    note: Mapped[str] = mapped_column(String(500), default="")  # the rejection's reason
    outcome: Mapped[str] = mapped_column(String(200), default="")  # what the action did
