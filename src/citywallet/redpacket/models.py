"""Red-packet tables: groups and their members, packets, their shares.

Money lives in the ledger: each packet has escrow accounts of its own (code
``REDPACKET_ESCROW``, owner ``rpk_…``; one, or a few "stripes" for a large packet, see
:mod:`.plan`) that the sender funds and claims draw from; each share names the stripe that
pays it (``account_id``).
These tables hold what the ledger must not know: who may claim, who did, the greeting.
Every share is a row made at sending, and a claim updates only its share, never the packet
row (which would be a hot row every claim of the packet queues for). The packet's totals
(``claimed_count``, ``claimed_amount``, ``refund_amount``, ``best_luck_claim_id``) are
written once, when it closes — by the claim that empties its escrow (``finished``) or by the
expiry job (``refunded``); while it is ``active`` they stay 0 and views count the shares.
CHECK constraints keep the totals consistent behind the service.
Users are referred to by their public id (``usr_…``); timestamps are microseconds.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from citywallet.platform.db import Base, BigId


class RedPacketGroup(Base):
    """A circle of residents that red packets can be sent to (its owner is a member)."""

    __tablename__ = "redpacket_groups"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)  # rpg_…
    owner_id: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class RedPacketGroupMember(Base):
    """One member of a group; the owner's row has ``role = 'owner'``."""

    __tablename__ = "redpacket_group_members"
    __table_args__ = (
        Index("ix_redpacket_group_members_user", "user_id", "group_id"),
        CheckConstraint("role IN ('owner', 'member')", name="role_known"),
    )

    group_id: Mapped[int] = mapped_column(ForeignKey("redpacket_groups.id"), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    role: Mapped[str] = mapped_column(String(8))
    added_by: Mapped[str] = mapped_column(String(40))
    added_at: Mapped[int] = mapped_column(BigInteger)


class RedPacket(Base):
    """A red packet: to one person (``single``) or to a group (``equal`` or ``lucky``)."""

    __tablename__ = "redpackets"
    __table_args__ = (
        Index("ix_redpackets_due", "status", "expires_at"),
        Index("ix_redpackets_sender", "sender_id", "id"),
        Index("ix_redpackets_group", "group_id", "id"),
        Index("ix_redpackets_recipient", "recipient_id", "id"),
        CheckConstraint("kind IN ('single', 'equal', 'lucky')", name="kind_known"),
        CheckConstraint("status IN ('active', 'finished', 'refunded')", name="status_known"),
        CheckConstraint(
            "(group_id IS NULL AND recipient_id IS NOT NULL AND shares = 1) "
            "OR (group_id IS NOT NULL AND recipient_id IS NULL)",
            name="one_target",
        ),
        CheckConstraint("total > 0 AND shares >= 1 AND min_share >= 1", name="sizes_valid"),
        CheckConstraint(
            "claimed_count >= 0 AND claimed_count <= shares "
            "AND claimed_amount >= 0 AND refund_amount >= 0 "
            "AND claimed_amount + refund_amount <= total",
            name="totals_valid",
        ),
        # What is left always covers a minimum share for every share still to be claimed.
        CheckConstraint(
            "total - claimed_amount >= (shares - claimed_count) * min_share",
            name="remainder_covers_shares",
        ),
        CheckConstraint(
            "status <> 'finished' OR (claimed_count = shares AND claimed_amount = total)",
            name="finished_means_all_claimed",
        ),
        CheckConstraint(
            "status <> 'refunded' OR claimed_amount + refund_amount = total",
            name="refunded_means_all_returned",
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)  # rpk_…
    sender_id: Mapped[str] = mapped_column(String(40))
    sender_label: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(8))
    group_id: Mapped[int | None] = mapped_column(ForeignKey("redpacket_groups.id"))
    recipient_id: Mapped[str | None] = mapped_column(String(40))
    target_label: Mapped[str] = mapped_column(String(100))  # the group's name or the recipient
    total: Mapped[int] = mapped_column(BigInteger)
    shares: Mapped[int] = mapped_column(Integer)
    min_share: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    greeting: Mapped[str] = mapped_column(String(200))
    escrow_account_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    status: Mapped[str] = mapped_column(String(12))
    claimed_count: Mapped[int] = mapped_column(Integer, default=0)
    claimed_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    refund_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    best_luck_claim_id: Mapped[str | None] = mapped_column(String(40))  # lucky, finished
    day_period: Mapped[str] = mapped_column(String(16))  # the sender's usage rows it counted in
    year_period: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger)
    finished_at: Mapped[int | None] = mapped_column(BigInteger)
    refunded_at: Mapped[int | None] = mapped_column(BigInteger)


class RedPacketShare(Base):
    """One share of a packet, made at sending; a claim writes its claimer into it.

    A free share has no ``user_id`` and no ``refunded_at``; a claim takes the free share with
    the lowest ``position`` (``SELECT … FOR UPDATE SKIP LOCKED``), the expiry job marks the
    rest refunded. Claimed, the row is the claim: its public id (``rpc_…``), who, when.
    """

    __tablename__ = "redpacket_shares"
    __table_args__ = (
        # Once per person and packet: a second claim by the same member fails here (NULLs,
        # the free shares, never collide).
        Index("uq_redpacket_shares_person", "packet_id", "user_id", unique=True),
        Index("uq_redpacket_shares_position", "packet_id", "position", unique=True),
        # The free shares only: what a grab scans, so it never walks past taken ones.
        Index(
            "ix_redpacket_shares_free",
            "packet_id",
            "position",
            postgresql_where=text("user_id IS NULL AND refunded_at IS NULL"),
            sqlite_where=text("user_id IS NULL AND refunded_at IS NULL"),
        ),
        Index("ix_redpacket_shares_user", "user_id", "id"),
        CheckConstraint("amount > 0 AND position >= 1", name="share_valid"),
        CheckConstraint(
            "(user_id IS NULL AND public_id IS NULL AND label IS NULL AND claimed_at IS NULL) "
            "OR (user_id IS NOT NULL AND public_id IS NOT NULL AND label IS NOT NULL "
            "AND claimed_at IS NOT NULL AND refunded_at IS NULL)",
            name="claim_complete",
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    packet_id: Mapped[int] = mapped_column(ForeignKey("redpackets.id"))
    position: Mapped[int] = mapped_column(Integer)  # 1 for the share the first claim takes
    amount: Mapped[int] = mapped_column(BigInteger)
    account_id: Mapped[int] = mapped_column(BigInteger)  # the escrow stripe that pays it
    public_id: Mapped[str | None] = mapped_column(String(40), unique=True)  # rpc_…, claimed
    user_id: Mapped[str | None] = mapped_column(String(40))
    label: Mapped[str | None] = mapped_column(String(100))  # masked name and phone, claimed
    claimed_at: Mapped[int | None] = mapped_column(BigInteger)
    refunded_at: Mapped[int | None] = mapped_column(BigInteger)
