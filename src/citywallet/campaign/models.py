"""Campaign tables: campaigns, registrations (one per verified person, never updated), the
draw's winners and positions, the registration counter.

Where the money may be spent, and the winners' restricted balances, are the wallet's
(``wallet_restricted_sources`` and ``wallet_restricted_balances``: the campaign is their
source); the draw is reproducible from the revealed seed and the registrations. Amounts are
fen; timestamps microseconds since the epoch.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from citywallet.platform.crypto import register_encrypted_column
from citywallet.platform.db import Base, BigId

STATUSES = ("draft", "open", "closed", "drawn", "issued", "ended")


class Campaign(Base):
    """A government consumption red-packet campaign (see DOMAIN.md §5)."""

    __tablename__ = "campaign_campaigns"
    __table_args__ = (
        CheckConstraint("budget > 0", name="budget_positive"),
        CheckConstraint(
            "status IN ('draft', 'open', 'closed', 'drawn', 'issued', 'ended')",
            name="status_known",
        ),
        CheckConstraint(
            "funding_status IN ('unfunded', 'pending', 'funded')", name="funding_status_known"
        ),
        CheckConstraint(
            "registration_opens_at < registration_closes_at "
            "AND registration_closes_at <= draw_at AND draw_at <= valid_from "
            "AND valid_from < valid_until",
            name="windows_ordered",
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)  # cmp_…
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(String(500), default="")
    status: Mapped[str] = mapped_column(String(16))
    # the funder (a district government, say) and its bank account the budget comes from
    funder_name: Mapped[str] = mapped_column(String(100))
    funder_bank_account_enc: Mapped[str] = mapped_column(Text)
    funder_bank_account_last4: Mapped[str] = mapped_column(String(4))
    funding_status: Mapped[str] = mapped_column(String(16), default="unfunded")
    funding_attempts: Mapped[int] = mapped_column(Integer, default=0)
    funding_code: Mapped[str | None] = mapped_column(String(64))  # the bank's last refusal
    funded_at: Mapped[int | None] = mapped_column(BigInteger)
    account_id: Mapped[int] = mapped_column(BigInteger, unique=True)  # CAMPAIGN_FUNDS
    budget: Mapped[int] = mapped_column(BigInteger)
    prizes: Mapped[str] = mapped_column(Text)  # JSON [[amount, count], …], largest first
    eligibility: Mapped[str] = mapped_column(Text)  # JSON, see campaign.rules.Eligibility
    registration_opens_at: Mapped[int] = mapped_column(BigInteger)
    registration_closes_at: Mapped[int] = mapped_column(BigInteger)
    draw_at: Mapped[int] = mapped_column(BigInteger)
    valid_from: Mapped[int] = mapped_column(BigInteger)
    valid_until: Mapped[int] = mapped_column(BigInteger)
    # commit–reveal: the hash is public from creation, the seed only after the draw
    seed_commitment: Mapped[str] = mapped_column(String(64))
    seed_enc: Mapped[str] = mapped_column(Text)
    seed_hex: Mapped[str | None] = mapped_column(String(64))  # revealed at the draw
    list_hash: Mapped[str | None] = mapped_column(String(64))  # published at closing
    registrations: Mapped[int] = mapped_column(BigInteger, default=0)
    winners: Mapped[int] = mapped_column(BigInteger, default=0)
    issued: Mapped[int] = mapped_column(BigInteger, default=0)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)
    opened_at: Mapped[int | None] = mapped_column(BigInteger)
    closed_at: Mapped[int | None] = mapped_column(BigInteger)
    drawn_at: Mapped[int | None] = mapped_column(BigInteger)
    ended_at: Mapped[int | None] = mapped_column(BigInteger)


class Registration(Base):
    """One verified person's entry; ``public_id`` is what the lottery hashes. Written once at
    registration and never updated: the draw's outcome lives beside it (:class:`Winner`,
    :class:`DrawPosition`), so 2 million rows and their indexes stay untouched after closing."""

    __tablename__ = "campaign_registrations"
    __table_args__ = (
        Index("uq_campaign_registrations_person", "campaign_id", "id_hash", unique=True),
        Index("ix_campaign_registrations_user", "user_id", "campaign_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)  # reg_…
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign_campaigns.id"))
    user_id: Mapped[str] = mapped_column(String(40))
    id_hash: Mapped[str] = mapped_column(String(64))  # the person, by resident ID number
    district: Mapped[str] = mapped_column(String(40), default="")  # for the reports
    created_at: Mapped[int] = mapped_column(BigInteger)


class Winner(Base):
    """A winning registration: its rank (1 = the lowest ticket), its prize and when it was
    issued. Written at the draw (``COPY`` on PostgreSQL, K rows: 50,000 at Luohu), marked
    at issuance; a registration without a row here lost (or the draw has not happened).
    No foreign key to the registration, as for the positions: the draw writes only the ids
    it has just read."""

    __tablename__ = "campaign_winners"
    __table_args__ = (
        Index("uq_campaign_winners_registration", "registration_id", unique=True),
        CheckConstraint("rank >= 1 AND prize > 0", name="rank_and_prize_positive"),
    )

    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaign_campaigns.id"), primary_key=True, autoincrement=False
    )
    rank: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    registration_id: Mapped[int] = mapped_column(BigInteger)  # campaign_registrations.id
    prize: Mapped[int] = mapped_column(BigInteger)
    issued_at: Mapped[int | None] = mapped_column(BigInteger)


class RegistrationCount(Base):
    """The registration counter of a campaign, striped: a registration adds one to a random
    stripe in its own transaction, a reader sums the stripes. Concurrent registrations
    rarely wait on the same row, and ``GET /v1/campaigns`` reads a few rows instead of
    counting every registration."""

    __tablename__ = "campaign_registration_counts"

    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaign_campaigns.id"), primary_key=True, autoincrement=False
    )
    stripe: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    registrations: Mapped[int] = mapped_column(BigInteger, default=0)


class DrawPosition(Base):
    """A registration's place among all tickets of its campaign's draw (1 = the lowest
    ticket; the first K are the winners' ranks), written once, at the draw (bulk ``COPY``
    on PostgreSQL), so the resident's draw check reads one row instead of hashing every
    registration. No foreign key: 2 million rows are checked by the draw itself (one per
    registration it read) rather than by a trigger per row."""

    __tablename__ = "campaign_draw_positions"

    registration_id: Mapped[int] = mapped_column(
        BigInteger, primary_key=True, autoincrement=False
    )  # campaign_registrations.id
    position: Mapped[int] = mapped_column(BigInteger)


register_encrypted_column(
    "campaign_campaigns", "public_id", "funder_bank_account_enc", aad_is_key=True
)
register_encrypted_column("campaign_campaigns", "public_id", "seed_enc", aad_is_key=True)
