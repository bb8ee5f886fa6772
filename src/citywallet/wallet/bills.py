"""Bills: a resident's history grouped by month (Beijing time), with each month's income
and spending, and each line's split between the resident's own balance and campaign red
packets (restricted money).

The split is read from the ledger, not guessed: a line's transfers (``transfer_ids``) that
debit or credit one of the resident's restricted accounts are the campaign part, the rest
is balance. Only merchant payments and refunds can touch restricted money (it cannot be
transferred or withdrawn), so only their transfers are read. A month's totals count the
lines that succeeded: income is what came in, spending what went out with its fees; of the
spending, ``restricted_spent`` was paid with campaign red packets, and of the income,
``restricted_back`` went back to them (refunds return one's own money first).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select

from citywallet.ledger import service as ledger
from citywallet.platform.db import UnitOfWork
from citywallet.wallet.history import INCOMING, ActivityView
from citywallet.wallet.models import Activity, RestrictedBalance
from citywallet.wallet.spending import current_month, month_bounds

TOUCHES_RESTRICTED = frozenset({"merchant_payment", "merchant_refund"})


@dataclass(frozen=True)
class BillLine:
    """A history line with the part of it that was (or went back to) campaign red packets."""

    line: ActivityView
    restricted: int

    @property
    def own(self) -> int:
        """The part from (or back to) the resident's own balance."""
        return self.line.amount - self.restricted


@dataclass(frozen=True)
class MonthTotals:
    """What came in and went out in one month (lines that succeeded)."""

    month: str  # YYYY-MM, Beijing time
    income: int
    spending: int  # fees included
    restricted_spent: int  # of the spending: campaign red packets
    restricted_back: int  # of the income: refunds back to campaign red packets

    @property
    def own_spent(self) -> int:
        """Of the spending, what left the resident's own balance."""
        return self.spending - self.restricted_spent


@dataclass(frozen=True)
class MonthBill:
    """One month of a page of bills: its totals and the page's lines in it."""

    totals: MonthTotals
    lines: list[BillLine]


def _restricted_accounts(uow: UnitOfWork, user_id: str) -> set[int]:
    query = select(RestrictedBalance.ledger_account_id).where(RestrictedBalance.user_id == user_id)
    return {int(pk) for pk in uow.session.scalars(query)}


def _restricted_parts(
    uow: UnitOfWork, user_id: str, rows: Sequence[tuple[str, str, str]]
) -> dict[str, int]:
    """``{object id: restricted part}`` for ``(object id, kind, transfer ids JSON)`` rows."""
    wanted = [(obj, json.loads(ids)) for obj, kind, ids in rows if kind in TOUCHES_RESTRICTED]
    if not wanted:
        return {}
    accounts = _restricted_accounts(uow, user_id)
    if not accounts:
        return {}
    found = ledger.get_transfers(uow, ids=[t for _, ids in wanted for t in ids])
    parts: dict[str, int] = {}
    for obj, ids in wanted:
        parts[obj] = sum(
            found[t].amount
            for t in ids
            if t in found
            and (found[t].debit_account_id in accounts or found[t].credit_account_id in accounts)
        )
    return parts


def month_totals(uow: UnitOfWork, *, user_id: str, month: str) -> MonthTotals:
    """The resident's income and spending in ``month`` (``YYYY-MM``, Beijing time)."""
    since, until = month_bounds(month)
    rows = list(
        uow.session.execute(
            select(
                Activity.object_id,
                Activity.kind,
                Activity.transfer_ids,
                Activity.amount,
                Activity.fee,
            ).where(
                Activity.user_id == user_id,
                Activity.created_at >= since,
                Activity.created_at < until,
                Activity.status == "succeeded",
            )
        )
    )
    parts = _restricted_parts(uow, user_id, [(r[0], r[1], r[2]) for r in rows])
    income = spending = restricted_spent = restricted_back = 0
    for obj, kind, _ids, amount, fee in rows:
        if kind in INCOMING:
            income += amount
            restricted_back += parts.get(obj, 0)
        else:
            spending += amount + fee
            restricted_spent += parts.get(obj, 0)
    return MonthTotals(month, income, spending, restricted_spent, restricted_back)


def group_by_month(
    uow: UnitOfWork, *, user_id: str, lines: Sequence[ActivityView]
) -> list[MonthBill]:
    """A page of history lines (newest first) grouped by month, each month with its totals
    over the whole month (not just this page) and each line with its restricted part."""
    rows = list(
        uow.session.execute(
            select(Activity.object_id, Activity.kind, Activity.transfer_ids).where(
                Activity.user_id == user_id,
                Activity.object_id.in_([line.id for line in lines]),
            )
        )
    )
    parts = _restricted_parts(uow, user_id, [(r[0], r[1], r[2]) for r in rows]) if rows else {}
    months: list[MonthBill] = []
    for line in lines:
        month = current_month(line.created_at)
        if not months or months[-1].totals.month != month:
            months.append(MonthBill(month_totals(uow, user_id=user_id, month=month), []))
        months[-1].lines.append(BillLine(line, parts.get(line.id, 0)))
    return months
