"""What one source's restricted money became: the figures its owner reports (a campaign's
reports, say), summed by the database so millions of balances are never fetched.

The owner names the source by the key :func:`citywallet.wallet.restricted.source_by_ref`
returned; it never reads the restricted tables itself (docs/layers.md). Amounts are minor
units; "spent" is net of refunds (what payments took, less what refunds gave back to the
balances or to the funder).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeVarTuple

from sqlalchemy import Select, func, select

from citywallet.platform.clock import DAY_US
from citywallet.platform.db import UnitOfWork
from citywallet.wallet.models import RestrictedBalance, RestrictedUse

_Columns = TypeVarTuple("_Columns")
_NET_SPENT = RestrictedUse.spent - RestrictedUse.returned - RestrictedUse.returned_to_funder


@dataclass(frozen=True)
class SourceTotals:
    """A source's balances and the payments that spent from them."""

    issued_count: int  # balances opened
    issued_amount: int  # granted to them
    reclaimed: int  # returned to the funder at expiry or wallet closure
    claimed: int  # balances spent from at least once
    payments: int  # payments that used the source's money
    spent_gross: int
    refunded: int  # given back to the balances by refunds
    returned_to_funder: int  # refunds after the validity window, to the funder
    own_amount: int  # the payers' own money in the same payments


@dataclass(frozen=True)
class SpendingBreakdown:
    """Spending at merchants of one category (MCC) or district."""

    key: str
    payments: int
    spent: int  # net of refunds
    own_amount: int  # residents' own money in the same payments


@dataclass(frozen=True)
class DaySpending:
    """Spending on one day, counted on the day of the payment."""

    day: int  # days since 1970-01-01 at the caller's UTC offset
    payments: int
    spent: int  # net of later refunds of those payments


def _of_source(query: Select[*_Columns], source_id: int) -> Select[*_Columns]:
    """``query`` of uses narrowed to the uses of one source's balances."""
    return query.join(RestrictedBalance, RestrictedBalance.id == RestrictedUse.balance_id).where(
        RestrictedBalance.source_id == source_id
    )


def totals(uow: UnitOfWork, *, source_id: int) -> SourceTotals:
    """The source's issued, reclaimed and spent figures now."""
    issued_count, issued_amount, reclaimed = uow.session.execute(
        select(
            func.count(RestrictedBalance.id),
            func.coalesce(func.sum(RestrictedBalance.granted), 0),
            func.coalesce(func.sum(RestrictedBalance.reclaimed), 0),
        ).where(RestrictedBalance.source_id == source_id)
    ).one()
    uses = _of_source(
        select(
            func.count(func.distinct(RestrictedUse.balance_id)),
            func.count(func.distinct(RestrictedUse.payment_ref)),
            func.coalesce(func.sum(RestrictedUse.spent), 0),
            func.coalesce(func.sum(RestrictedUse.returned), 0),
            func.coalesce(func.sum(RestrictedUse.returned_to_funder), 0),
            func.coalesce(func.sum(RestrictedUse.own_amount), 0),
        ),
        source_id,
    )
    spending = uow.session.execute(uses).one()
    return SourceTotals(*(int(v) for v in (issued_count, issued_amount, reclaimed, *spending)))


def spending_by(
    uow: UnitOfWork, *, source_id: int, key: Literal["mcc", "district"]
) -> list[SpendingBreakdown]:
    """The source's spending by the merchants' MCC or district, in key order."""
    column = RestrictedUse.mcc if key == "mcc" else RestrictedUse.district
    query = _of_source(
        select(
            column,
            func.count(RestrictedUse.id),
            func.coalesce(func.sum(_NET_SPENT), 0),
            func.coalesce(func.sum(RestrictedUse.own_amount), 0),
        ),
        source_id,
    )
    rows = uow.session.execute(query.group_by(column).order_by(column))
    return [SpendingBreakdown(str(k), int(n), int(spent), int(own)) for k, n, spent, own in rows]


def spending_by_day(uow: UnitOfWork, *, source_id: int, utc_offset_us: int) -> list[DaySpending]:
    """The source's spending per day at ``utc_offset_us`` (days with none left out)."""
    day = (RestrictedUse.created_at + utc_offset_us) // DAY_US
    query = _of_source(
        select(day, func.count(func.distinct(RestrictedUse.payment_ref)), func.sum(_NET_SPENT)),
        source_id,
    )
    rows = uow.session.execute(query.group_by(day).order_by(day))
    return [DaySpending(int(d), int(n), int(net or 0)) for d, n, net in rows]


def active_balances(uow: UnitOfWork, *, source_id: int) -> int:
    """How many of the source's balances are not reclaimed yet."""
    count: int | None = uow.session.scalar(
        select(func.count())
        .select_from(RestrictedBalance)
        .where(RestrictedBalance.source_id == source_id, RestrictedBalance.status == "active")
    )
    return count or 0
