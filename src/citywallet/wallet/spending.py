"""Where a resident's money went: spending at merchants by category and by merchant for one
month, and the month-to-month trend.

Spending is read from the resident's history: a merchant payment counts its whole order
amount (own money and restricted red-packet money alike), a merchant refund takes its amount
back from the payment's merchant and month of the refund. Categories come from the merchant's
ISO 18245 category code (MCC), grouped into a few families people recognise
(:func:`category_of`). Months are Beijing-time calendar months.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select

from citywallet.merchant import mcc
from citywallet.platform.clock import now_us
from citywallet.platform.db import UnitOfWork
from citywallet.platform.errors import InvalidInput
from citywallet.wallet.models import Activity
from citywallet.wallet.rules import CHINA

CATEGORIES = tuple(mcc.CATEGORY_NAMES)


def category_of(code: str) -> str:
    """The spending category of an ISO 18245 merchant category code (``other`` if unknown);
    the table is :mod:`citywallet.merchant.mcc`'s."""
    return mcc.category_of(code)


@dataclass(frozen=True)
class SpendLine:
    """Net spending in one category or at one merchant."""

    key: str  # category key, or merchant public id
    label_zh: str
    label_en: str
    amount: int  # fen, payments less refunds
    count: int  # payments
    mcc: str = ""  # a merchant's category code (empty for a category line)


@dataclass(frozen=True)
class MonthTotal:
    """Net spending in one month."""

    month: str  # "YYYY-MM"
    amount: int


@dataclass(frozen=True)
class SpendingOverview:
    """A month's spending by category and merchant, and the trend up to it."""

    month: str
    total: int
    payments: int
    by_category: list[SpendLine]
    by_merchant: list[SpendLine]
    trend: list[MonthTotal]  # oldest first, ends with ``month``


def _month_start(year: int, month: int) -> int:
    return int(datetime(year, month, 1, tzinfo=CHINA).timestamp() * 1_000_000)


def _shift(year: int, month: int, by: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + by
    return index // 12, index % 12 + 1


def _month_of(moment: int) -> str:
    local = datetime.fromtimestamp(moment / 1_000_000, tz=UTC).astimezone(CHINA)
    return f"{local:%Y-%m}"


def parse_month(value: str) -> tuple[int, int]:
    """``YYYY-MM`` as (year, month) (``invalid_month`` otherwise)."""
    try:
        parsed = datetime.strptime(value, "%Y-%m")
    except ValueError:
        raise InvalidInput("A month is written YYYY-MM.", code="invalid_month") from None
    return parsed.year, parsed.month


def month_bounds(value: str) -> tuple[int, int]:
    """The first microsecond of the month ``YYYY-MM`` (Beijing time) and of the next."""
    year, month = parse_month(value)
    return _month_start(year, month), _month_start(*_shift(year, month, 1))


def current_month(now: int | None = None) -> str:
    """This month (Beijing time) as ``YYYY-MM``."""
    return _month_of(now if now is not None else now_us())


def spending_overview(
    uow: UnitOfWork,
    *,
    user_id: str,
    month: str | None = None,
    months: int = 6,
    now: int | None = None,
) -> SpendingOverview:
    """The resident's spending at merchants in ``month`` (default: this month) by category
    and by merchant (largest first), and the monthly totals of the ``months`` months ending
    with it."""
    chosen = month or current_month(now)
    year, mon = parse_month(chosen)
    months = max(1, min(months, 24))
    first = _month_start(*_shift(year, mon, -(months - 1)))
    end = _month_start(*_shift(year, mon, 1))
    rows: Sequence[Activity] = list(
        uow.session.scalars(
            select(Activity).where(
                Activity.user_id == user_id,
                Activity.kind.in_(("merchant_payment", "merchant_refund")),
                Activity.status == "succeeded",
                Activity.created_at >= first,
                Activity.created_at < end,
            )
        )
    )
    # a refund names its order; the order's payment line names the merchant
    orders = {r.reference for r in rows if r.kind == "merchant_refund" and r.reference}
    merchant_of_order: dict[str, str] = {}
    if orders:
        for payment in uow.session.scalars(
            select(Activity).where(
                Activity.user_id == user_id,
                Activity.kind == "merchant_payment",
                Activity.object_id.in_(sorted(orders)),
            )
        ):
            if payment.reference:
                merchant_of_order[payment.object_id] = payment.reference
    trend = {
        f"{y:04d}-{m:02d}": 0 for y, m in (_shift(year, mon, -k) for k in range(months - 1, -1, -1))
    }
    per_merchant: dict[str, int] = {}
    counts: dict[str, int] = {}
    payments = 0
    for row in rows:
        sign = 1 if row.kind == "merchant_payment" else -1
        trend[_month_of(row.created_at)] = trend.get(_month_of(row.created_at), 0) + sign * (
            row.amount
        )
        if _month_of(row.created_at) != chosen:
            continue
        merchant = (
            row.reference
            if row.kind == "merchant_payment"
            else merchant_of_order.get(row.reference or "", "")
        ) or ""
        per_merchant[merchant] = per_merchant.get(merchant, 0) + sign * row.amount
        if sign > 0:
            counts[merchant] = counts.get(merchant, 0) + 1
            payments += 1
    by_merchant: list[SpendLine] = []
    by_category: dict[str, tuple[int, int]] = {}
    for merchant_id, amount in per_merchant.items():
        name_zh, name_en, code = _merchant_facts(uow, merchant_id)
        by_merchant.append(
            SpendLine(merchant_id, name_zh, name_en, amount, counts.get(merchant_id, 0), code)
        )
        key = category_of(code)
        total, count = by_category.get(key, (0, 0))
        by_category[key] = (total + amount, count + counts.get(merchant_id, 0))
    by_merchant.sort(key=lambda line: (-line.amount, line.key))
    categories = sorted(
        (
            SpendLine(key, *mcc.CATEGORY_NAMES[key], amount, count)
            for key, (amount, count) in by_category.items()
        ),
        key=lambda line: (-line.amount, line.key),
    )
    return SpendingOverview(
        month=chosen,
        total=sum(per_merchant.values()),
        payments=payments,
        by_category=categories,
        by_merchant=by_merchant,
        trend=[MonthTotal(key, amount) for key, amount in trend.items()],
    )


def _merchant_facts(uow: UnitOfWork, merchant_id: str) -> tuple[str, str, str]:
    """(Chinese name, English name, MCC) of a merchant, through the merchant feature."""
    from citywallet.merchant.errors import MerchantNotFound
    from citywallet.merchant.onboarding import merchant_by_public_id

    if not merchant_id:
        return "", "", ""
    try:
        row = merchant_by_public_id(uow, merchant_id)
    except MerchantNotFound:
        return merchant_id, merchant_id, ""
    return row.name_zh, row.name_en, row.mcc
