"""Money owed and paid out: the balance, settlements to the bank card, and each business
day's statement (on the page and as CSV)."""

from __future__ import annotations

from datetime import date, datetime

from fastapi import APIRouter, Request
from fastapi.responses import Response

from citywallet.ledger import service as ledger
from citywallet.merchant import settlement as settlements
from citywallet.merchant import statements
from citywallet.merchant.models import Merchant
from citywallet.web.merchant.shared import LINE_LABELS, SETTLEMENT_LABELS, ConsoleDep
from citywallet.web.session import runtime_of
from citywallet.web.templating import render

router = APIRouter()
PER_PAGE = 20


def _today(request: Request) -> date:
    zone = statements.business_zone(runtime_of(request).settings)
    return datetime.now(zone).date()


@router.get("/settlements")
def settlement_list(request: Request, console: ConsoleDep, before: str | None = None) -> Response:
    """The balance and the payouts to your bank card, latest business day first."""
    with runtime_of(request).db.uow(readonly=True) as uow:
        row = uow.session.get(Merchant, console.pk)
        assert row is not None
        found = ledger.get_accounts(uow, ids=[row.receivable_account_id, row.settlement_account_id])
        items = settlements.list_settlements(
            uow, merchant_id=console.pk, limit=PER_PAGE, before=before or None
        )
        balance = (
            found[row.receivable_account_id].balance,
            found[row.settlement_account_id].balance,
        )
    return render(
        request,
        "merchant/settlements.html",
        {
            "merchant": console.merchant,
            "receivable": balance[0],
            "in_settlement": balance[1],
            "items": items,
            "next_before": items[-1].id if len(items) == PER_PAGE else None,
            "today": _today(request).isoformat(),
            "labels": SETTLEMENT_LABELS,
        },
    )


def _parse_day(request: Request, day: str) -> date:
    try:
        return date.fromisoformat(day) if day else _today(request)
    except ValueError:
        return _today(request)


@router.get("/statements")
def statement_page(request: Request, console: ConsoleDep, day: str = "") -> Response:
    """One business day's statement: opening balance, every line, closing balance."""
    runtime = runtime_of(request)
    chosen = _parse_day(request, day)
    with runtime.db.uow(readonly=True) as uow:
        found = statements.statement(
            uow, merchant_id=console.pk, day=chosen, settings=runtime.settings
        )
    return render(
        request,
        "merchant/statement.html",
        {
            "merchant": console.merchant,
            "statement": found,
            "day": chosen.isoformat(),
            "labels": LINE_LABELS,
        },
    )


@router.get("/statements/{day}.csv")
def statement_csv(request: Request, day: date, console: ConsoleDep) -> Response:
    """One business day's statement as CSV (the columns of docs/merchant.md)."""
    runtime = runtime_of(request)
    with runtime.db.uow(readonly=True) as uow:
        found = statements.statement(
            uow, merchant_id=console.pk, day=day, settings=runtime.settings
        )
    return Response(
        statements.statement_csv(found),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{console.merchant.id}-{day}.csv"'},
    )
