"""The ``notices`` table: one message to one resident, linked to its object by public id.

Users are referred to by their public id (``usr_…``); timestamps are microseconds. The
parameters (amounts, names to show) are a small JSON object fixed when the event happened:
a notice says what was true then, and its link shows what is true now.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from citywallet.inbox.kinds import KINDS
from citywallet.platform.db import Base, BigId

_KNOWN = ", ".join(f"'{kind}'" for kind in sorted(KINDS))


class Notice(Base):
    """A message in a resident's message centre."""

    __tablename__ = "notices"
    __table_args__ = (
        Index("ix_notices_user", "user_id", "id"),
        # the unread badge counts only these rows
        Index(
            "ix_notices_unread",
            "user_id",
            postgresql_where=text("read_at IS NULL"),
            sqlite_where=text("read_at IS NULL"),
        ),
        CheckConstraint(f"kind IN ({_KNOWN})", name="kind_known"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)  # msg_…
    user_id: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(32))
    ref: Mapped[str] = mapped_column(String(60))  # the object's public id
    params: Mapped[str] = mapped_column(Text, default="{}")  # JSON object
    created_at: Mapped[int] = mapped_column(BigInteger)
    read_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
