"""Reads the merchant console needs beyond the signed API: searching orders with page
numbers, and the store's static code as a printable PDF.

The signed API pages orders by ``before`` cursors; people at a console search by an id or
their own order number, a status and a date range, and jump between numbered pages.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date
from typing import Any

import segno
from sqlalchemy import func, or_, select

from citywallet.merchant.images import QUIET_ZONE
from citywallet.merchant.models import Order
from citywallet.merchant.payments import OrderView, order_view
from citywallet.merchant.rules import OrderStatus
from citywallet.merchant.statements import business_zone, day_window
from citywallet.platform.config import Settings
from citywallet.platform.db import UnitOfWork

ORDER_STATUSES = tuple(OrderStatus)
PER_PAGE = 20


@dataclass(frozen=True)
class OrderSearch:
    """What a console user searches orders by (every part optional)."""

    text: str = ""  # our order id (exact) or the merchant's out_trade_no (prefix)
    status: str = ""  # one of ORDER_STATUSES, or "" for all
    since: date | None = None  # business days, inclusive, in the business time zone
    until: date | None = None


@dataclass(frozen=True)
class OrderPage:
    """One numbered page of a search, newest first."""

    items: list[OrderView]
    total: int
    page: int
    pages: int


def search_orders(
    uow: UnitOfWork,
    *,
    merchant_pk: int,
    search: OrderSearch,
    settings: Settings,
    page: int = 1,
    per_page: int = PER_PAGE,
) -> OrderPage:
    """The merchant's orders matching ``search``, newest first, page ``page`` (from 1)."""
    conditions: list[Any] = [Order.merchant_id == merchant_pk]
    text = search.text.strip()
    if text:
        conditions.append(
            or_(
                Order.public_id == text,
                Order.out_trade_no.startswith(text, autoescape=True),
            )
        )
    if search.status in ORDER_STATUSES:
        conditions.append(Order.status == search.status)
    zone = business_zone(settings)
    if search.since is not None:
        conditions.append(Order.created_at >= day_window(search.since, zone)[0])
    if search.until is not None:
        conditions.append(Order.created_at < day_window(search.until, zone)[1])
    total = int(uow.session.scalar(select(func.count(Order.id)).where(*conditions)) or 0)
    per_page = max(1, min(per_page, 100))
    pages = max(1, -(-total // per_page))
    page = max(1, min(page, pages))
    rows = uow.session.scalars(
        select(Order)
        .where(*conditions)
        .order_by(Order.id.desc())
        .offset((page - 1) * per_page)
        .limit(per_page)
    )
    return OrderPage([order_view(uow, r) for r in rows], total, page, pages)


def qr_pdf(payload: str, *, scale: int = 12) -> bytes:
    """``payload`` as a one-page PDF with its QR code (for printing at the counter)."""
    if not payload:
        raise ValueError("nothing to encode")
    encoding = None if payload.isascii() else "utf-8"
    code = segno.make(payload, error="m", micro=False, encoding=encoding)
    buffer = io.BytesIO()
    code.save(buffer, kind="pdf", scale=scale, border=QUIET_ZONE)
    return buffer.getvalue()
