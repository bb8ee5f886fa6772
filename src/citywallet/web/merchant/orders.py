"""Orders and payments: search (id or order number, status, date range) with numbered
pages, an order's detail with its refunds, and refunding (full or part, with a reason)
after a confirmation step."""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from citywallet.api.interop_merchants import switch_refunds
from citywallet.identity import service as identity
from citywallet.merchant import service as merchants
from citywallet.platform.db import UnitOfWork
from citywallet.platform.errors import DomainError, InvalidInput
from citywallet.web.forms import parse_amount
from citywallet.web.merchant.shared import (
    ORDER_STATUS_LABELS,
    Console,
    ConsoleDep,
    one_time_key,
)
from citywallet.web.session import FormFields, field_errors, runtime_of
from citywallet.web.templating import render

router = APIRouter()
REFUND_ERRORS = {
    "invalid_amount": "amount",
    "refund_exceeds_paid": "amount",
    "merchant_balance_insufficient": "amount",
}
# The owner's payment PIN confirms a refund; these refusals re-show the confirmation.
PIN_ERRORS = ("pin_incorrect", "pin_locked", "pin_not_set", "pin_reset_required")


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


@router.get("/orders")
def order_list(
    request: Request,
    console: ConsoleDep,
    q: str = "",
    status: str = "",
    since: str = "",
    until: str = "",
    page: int = 1,
) -> Response:
    """Your orders, newest first, found by id or order number, status and dates."""
    runtime = runtime_of(request)
    search = merchants.OrderSearch(
        text=q[:64],
        status=status if status in merchants.ORDER_STATUSES else "",
        since=_day(since),
        until=_day(until),
    )
    with runtime.db.uow(readonly=True) as uow:
        found = merchants.search_orders(
            uow, merchant_pk=console.pk, search=search, settings=runtime.settings, page=page
        )
    query = {
        "q": search.text,
        "status": search.status,
        "since": search.since.isoformat() if search.since else "",
        "until": search.until.isoformat() if search.until else "",
    }
    return render(
        request,
        "merchant/orders.html",
        {
            "merchant": console.merchant,
            "found": found,
            "query": query,
            "statuses": [(s, ORDER_STATUS_LABELS[s]) for s in merchants.ORDER_STATUSES],
            "labels": ORDER_STATUS_LABELS,
        },
    )


def _detail(
    request: Request,
    console: Console,
    order_id: str,
    form: dict[str, str] | None = None,
    errors: dict[str, DomainError] | None = None,
    status_code: int = 200,
) -> Response:
    with runtime_of(request).db.uow(readonly=True) as uow:
        view = merchants.get_order(uow, merchant_pk=console.pk, order_id=order_id)
        made = merchants.list_refunds(uow, merchant_pk=console.pk, order_id=order_id)
    return render(
        request,
        "merchant/order.html",
        {
            "merchant": console.merchant,
            "order": view,
            "refunds": made,
            "refundable": view.amount - view.refunded_amount if view.status == "paid" else 0,
            "labels": ORDER_STATUS_LABELS,
            "form": form or {},
            "field_errors": errors or {},
            "refund_key": one_time_key("R"),
        },
        status_code=status_code,
    )


@router.get("/orders/{order_id}")
def order_detail(request: Request, order_id: str, console: ConsoleDep) -> Response:
    """One order, its refunds, and the refund form."""
    return _detail(request, console, order_id)


def _refund_form(fields: dict[str, str]) -> dict[str, str]:
    return {
        "amount": fields.get("amount", ""),
        "reason": " ".join(fields.get("reason", "").split())[:80],
        "out_refund_no": fields.get("out_refund_no", "") or one_time_key("R"),
    }


@router.get("/orders/{order_id}/refund")
def refund_confirm(
    request: Request,
    order_id: str,
    console: ConsoleDep,
    amount: str = "",
    reason: str = "",
    out_refund_no: str = "",
) -> Response:
    """Check the refund and ask to confirm it (nothing moves yet)."""
    form = _refund_form({"amount": amount, "reason": reason, "out_refund_no": out_refund_no})
    with runtime_of(request).db.uow(readonly=True) as uow:
        view = merchants.get_order(uow, merchant_pk=console.pk, order_id=order_id)
    try:
        fen = parse_amount(form["amount"])
        if view.status != "paid" or fen > view.amount - view.refunded_amount:
            raise InvalidInput(
                "A refund is at most what was paid and not yet refunded.",
                code="refund_exceeds_paid",
            )
    except DomainError as exc:
        return _detail(request, console, order_id, form, field_errors(exc, REFUND_ERRORS), 409)
    return render(
        request,
        "merchant/refund_confirm.html",
        {
            "merchant": console.merchant,
            "order": view,
            "form": form,
            "amount": fen,
            "field_errors": {},
        },
    )


@router.post("/orders/{order_id}/refund/confirmed")
def refund(request: Request, order_id: str, console: ConsoleDep, fields: FormFields) -> Response:
    """Refund the confirmed amount (the same form sent twice refunds once)."""
    form = _refund_form(fields)
    runtime = runtime_of(request)
    made: merchants.RefundView
    pin = fields.get("pin", "")

    def refund_with_pin(uow: UnitOfWork) -> tuple[merchants.RefundView, bool]:
        # another merchant's order is 404 before any PIN is asked for; then the owner's
        # payment PIN, checked in the refund's own transaction
        merchants.get_order(uow, merchant_pk=console.pk, order_id=order_id)
        identity.verify_pin(uow, user_id=console.viewer.user_id, pin=pin)
        return merchants.refund_order(
            uow,
            merchant_pk=console.pk,
            order_id=order_id,
            out_refund_no=form["out_refund_no"],
            amount=amount,
            reason=form["reason"],
            switch=switch_refunds(runtime),
        )

    try:
        amount = parse_amount(form["amount"])
        made, _created = identity.run_confirmed(
            runtime.db, refund_with_pin, settings=runtime.settings
        )
    except DomainError as exc:
        if exc.code in PIN_ERRORS:
            with runtime.db.uow(readonly=True) as uow:
                view = merchants.get_order(uow, merchant_pk=console.pk, order_id=order_id)
            return render(
                request,
                "merchant/refund_confirm.html",
                {
                    "merchant": console.merchant,
                    "order": view,
                    "form": form,
                    "amount": amount,
                    "field_errors": field_errors(exc, {exc.code: "pin"}),
                },
                status_code=exc.status,
            )
        return _detail(
            request, console, order_id, form, field_errors(exc, REFUND_ERRORS), exc.status
        )
    # through the switch, the payer's provider decides
    done = "Refund+sent+through+the+switch" if made.status == "processing" else "Refunded"
    return RedirectResponse(f"/merchant/orders/{made.order_id}?done={done}", status_code=303)
