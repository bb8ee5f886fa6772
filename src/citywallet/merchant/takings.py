"""Today's takings for the merchant console on a phone: how much was paid today and how
many payments (今日收款), and the payments received after a moment, for the console's
spoken announcement ("收款 88 元").

Read from the merchant's orders (paid, by ``paid_at`` in the business day); the statement
(``statements.statement``) reads the same day from the ledger, and the tests hold the two
to each other. Refunds do not lower the takings, as on a payment speaker: the statement
lists them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, select

from citywallet.merchant.models import Order
from citywallet.merchant.statements import business_day, business_zone, day_window
from citywallet.platform.clock import now_us
from citywallet.platform.config import Settings
from citywallet.platform.db import UnitOfWork

RECENT_LIMIT = 20


@dataclass(frozen=True)
class Takings:
    """The payments of one business day: their count and their sum (fen)."""

    day: date
    count: int
    amount: int


@dataclass(frozen=True)
class Received:
    """One payment received: our order id, the amount (fen) and when (µs)."""

    order_id: str
    amount: int
    paid_at: int


def takings_today(
    uow: UnitOfWork, *, merchant_pk: int, settings: Settings, moment: int | None = None
) -> Takings:
    """Count and sum of the merchant's orders paid during today's business day."""
    zone = business_zone(settings)
    today = business_day(now_us() if moment is None else moment, zone)
    start, end = day_window(today, zone)
    count, amount = uow.session.execute(
        select(func.count(Order.id), func.coalesce(func.sum(Order.amount), 0)).where(
            Order.merchant_id == merchant_pk,
            Order.paid_at.is_not(None),
            Order.paid_at >= start,
            Order.paid_at < end,
        )
    ).one()
    return Takings(today, int(count), int(amount))


def received_since(
    uow: UnitOfWork, *, merchant_pk: int, since: int, limit: int = RECENT_LIMIT
) -> list[Received]:
    """The merchant's payments with ``paid_at > since``, oldest first (at most ``limit``)."""
    rows = uow.session.execute(
        select(Order.public_id, Order.amount, Order.paid_at)
        .where(
            Order.merchant_id == merchant_pk,
            Order.paid_at.is_not(None),
            Order.paid_at > since,
        )
        .order_by(Order.paid_at, Order.id)
        .limit(max(1, min(limit, 100)))
    ).all()
    return [Received(str(oid), int(amount), int(paid or 0)) for oid, amount, paid in rows]
