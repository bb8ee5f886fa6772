"""Money owed and paid out: the balance, settlements to the bank card, and each business
day's statement (on the page and as CSV)."""

from __future__ import annotations

from datetime import date, datetime

from fastapi import APIRouter, Request
from fastapi.responses import Response

from citywallet.merchant import service as merchants
from citywallet.platform import csvfile
from citywallet.web.merchant.shared import LINE_LABELS, SETTLEMENT_LABELS, ConsoleDep
from citywallet.web.session import runtime_of
from citywallet.web.templating import render

router = APIRouter()
PER_PAGE = 20


def _today(request: Request) -> date:
    zone = merchants.business_zone(runtime_of(request).settings)
    return datetime.now(zone).date()


@router.get("/settlements")
def settlement_list(request: Request, console: ConsoleDep, before: str | None = None) -> Response:
    """The balance and the payouts to your bank card, latest business day first."""
    with runtime_of(request).db.uow(readonly=True) as uow:
        balance = merchants.merchant_balance(uow, merchant_pk=console.pk)
        items = merchants.list_settlements(
            uow, merchant_id=console.pk, limit=PER_PAGE, before=before or None
        )
    return render(
        request,
        "merchant/settlements.html",
        {
            "merchant": console.merchant,
            "receivable": balance.receivable,
            "in_settlement": balance.in_settlement,
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
        found = merchants.statement(
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
def statement_csv(request: Request, day: date, console: ConsoleDep, headers: str = "") -> Response:
    """One business day's statement as CSV (the columns of docs/merchant.md) with a UTF-8
    BOM so Excel opens it; ``?headers=zh``: Chinese headers and line types."""
    runtime = runtime_of(request)
    with runtime.db.uow(readonly=True) as uow:
        found = merchants.statement(uow, merchant_id=console.pk, day=day, settings=runtime.settings)
    chosen = "zh" if csvfile.header_lang(headers) == "zh" else "keys"
    return Response(
        merchants.statement_csv(found, bom=True, headers=chosen),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{console.merchant.id}-{day}.csv"'},
    )
