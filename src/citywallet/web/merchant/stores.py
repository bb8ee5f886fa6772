"""Stores and their printable static codes (PNG, SVG, PDF, a print page), and the cashier:
a dynamic code for an amount (the page polls until it is paid) or a scanned payment code
charged at once (above the customer's password-free limit they confirm on their phone)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from citywallet.merchant import images
from citywallet.merchant import service as merchants
from citywallet.platform.errors import DomainError
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
CASHIER_ERRORS = {
    "invalid_amount": "amount",
    "amount_too_large": "amount",
    "invalid_paycode": "code",
    "paycode_foreign": "code",
    "paycode_invalid": "code",
    "paycode_expired": "code",
    "paycode_malformed": "code",
    "payment_declined": "code",
}


def _stores_page(
    request: Request,
    console: Console,
    form: dict[str, str] | None = None,
    errors: dict[str, DomainError] | None = None,
    status_code: int = 200,
) -> Response:
    with runtime_of(request).db.uow(readonly=True) as uow:
        found = merchants.list_stores(uow, merchant_pk=console.pk)
    return render(
        request,
        "merchant/stores.html",
        {
            "merchant": console.merchant,
            "stores": found,
            "form": form or {},
            "field_errors": errors or {},
        },
        status_code=status_code,
    )


@router.get("/stores")
def stores(request: Request, console: ConsoleDep) -> Response:
    """Your stores, each with its static code to print."""
    return _stores_page(request, console)


@router.post("/stores")
def add_store(request: Request, console: ConsoleDep, fields: FormFields) -> Response:
    """Open another store."""
    name = fields.get("name", "")
    try:
        runtime_of(request).db.transact(
            lambda uow: merchants.add_store(uow, merchant_pk=console.pk, name=name)
        )
    except DomainError as exc:
        errors = field_errors(exc, {"invalid_merchant_field": "name", "too_many_stores": "name"})
        return _stores_page(request, console, {"name": name}, errors, exc.status)
    return RedirectResponse("/merchant/stores?done=Store+opened", status_code=303)


def _static_payload(request: Request, console: Console, store_id: str) -> str:
    runtime = runtime_of(request)
    return runtime.db.transact(  # the QR key is created on first use
        lambda uow: merchants.static_code(
            uow,
            merchant_pk=console.pk,
            store_id=store_id,
            encryptor=runtime.encryptor,
            provider=runtime.settings.interop_participant_id or None,
        )
    )


def _download(content: bytes | str, media_type: str, filename: str) -> Response:
    return Response(
        content,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get("/stores/{store_id}/code.png")
def code_png(request: Request, store_id: str, console: ConsoleDep) -> Response:
    """The store's static code as a PNG file."""
    payload = _static_payload(request, console, store_id)
    return _download(images.qr_png(payload), "image/png", f"{store_id}.png")


@router.get("/stores/{store_id}/code.svg")
def code_svg(
    request: Request, store_id: str, console: ConsoleDep, inline: bool = False
) -> Response:
    """The store's static code as an SVG file (``inline`` to show it on a page)."""
    payload = _static_payload(request, console, store_id)
    if inline:
        return Response(images.qr_svg(payload), media_type="image/svg+xml")
    return _download(images.qr_svg(payload), "image/svg+xml", f"{store_id}.svg")


@router.get("/stores/{store_id}/code.pdf")
def code_pdf(request: Request, store_id: str, console: ConsoleDep) -> Response:
    """The store's static code as a one-page PDF."""
    payload = _static_payload(request, console, store_id)
    return _download(merchants.qr_pdf(payload), "application/pdf", f"{store_id}.pdf")


@router.get("/stores/{store_id}/print")
def print_code(request: Request, store_id: str, console: ConsoleDep) -> Response:
    """A page to print and put at the counter: the code, the merchant's and store's names."""
    with runtime_of(request).db.uow(readonly=True) as uow:
        store = merchants.store_row(uow, merchant_pk=console.pk, store_id=store_id)
        name = store.name
    _static_payload(request, console, store_id)
    return render(
        request,
        "merchant/print.html",
        {"merchant": console.merchant, "store_id": store_id, "store_name": name},
    )


# --- the cashier --------------------------------------------------------------------------


def _cashier_page(
    request: Request,
    console: Console,
    form: dict[str, str] | None = None,
    errors: dict[str, DomainError] | None = None,
    status_code: int = 200,
) -> Response:
    with runtime_of(request).db.uow(readonly=True) as uow:
        found = merchants.list_stores(uow, merchant_pk=console.pk)
    return render(
        request,
        "merchant/cashier.html",
        {
            "merchant": console.merchant,
            "stores": found,
            "form": form or {},
            "field_errors": errors or {},
            "order_key": one_time_key("C"),
            "charge_key": one_time_key("P"),
        },
        status_code=status_code,
    )


@router.get("/cashier")
def cashier(request: Request, console: ConsoleDep) -> Response:
    """Enter an amount for a dynamic code, or scan the customer's payment code."""
    return _cashier_page(request, console)


@router.post("/cashier/orders")
def cashier_order(request: Request, console: ConsoleDep, fields: FormFields) -> Response:
    """Create the order for the typed amount and show its code."""
    runtime = runtime_of(request)
    form = {"amount": fields.get("amount", ""), "description": fields.get("description", "")}
    try:
        amount = parse_amount(form["amount"])
        view, _created = runtime.db.transact(
            lambda uow: merchants.create_order(
                uow,
                merchant_pk=console.pk,
                out_trade_no=fields.get("out_trade_no") or one_time_key("C"),
                amount=amount,
                description=form["description"],
                store_id=fields.get("store_id") or None,
                encryptor=runtime.encryptor,
                settings=runtime.settings,
            )
        )
    except DomainError as exc:
        errors = field_errors(exc, {**CASHIER_ERRORS, "invalid_description": "description"})
        return _cashier_page(request, console, form, errors, exc.status)
    return RedirectResponse(f"/merchant/cashier/orders/{view.id}", status_code=303)


@router.post("/cashier/charge")
def cashier_charge(request: Request, console: ConsoleDep, fields: FormFields) -> Response:
    """Charge a scanned payment code (a USB scanner types it into the field)."""
    runtime = runtime_of(request)
    form = {"charge_amount": fields.get("charge_amount", ""), "code": fields.get("code", "")}
    try:
        amount = parse_amount(form["charge_amount"])
        view = merchants.charge(
            runtime.db,
            merchant_pk=console.pk,
            code=form["code"],
            amount=amount,
            out_trade_no=fields.get("out_trade_no") or one_time_key("P"),
            store_id=fields.get("store_id") or None,
            encryptor=runtime.encryptor,
            settings=runtime.settings,
        )
    except DomainError as exc:
        errors = field_errors(exc, {**CASHIER_ERRORS, "invalid_amount": "charge_amount"})
        return _cashier_page(request, console, form, errors, exc.status)
    return RedirectResponse(f"/merchant/cashier/orders/{view.id}", status_code=303)


def _order(request: Request, console: Console, order_id: str) -> merchants.OrderView:
    runtime = runtime_of(request)
    return runtime.db.transact(
        lambda uow: merchants.get_order(
            uow,
            merchant_pk=console.pk,
            order_id=order_id,
            encryptor=runtime.encryptor,
            provider=runtime.settings.interop_participant_id or None,
        )
    )


@router.get("/cashier/orders/{order_id}")
def cashier_order_page(request: Request, order_id: str, console: ConsoleDep) -> Response:
    """The order's code for the customer to scan; the page follows it until it is paid."""
    view = _order(request, console, order_id)
    return render(
        request,
        "merchant/cashier_order.html",
        {
            "merchant": console.merchant,
            "order": view,
            "status_label": ORDER_STATUS_LABELS.get(view.status, view.status),
        },
    )


@router.get("/cashier/orders/{order_id}/code.svg")
def cashier_code(request: Request, order_id: str, console: ConsoleDep) -> Response:
    """The order's dynamic code (404 once it can no longer be paid)."""
    view = _order(request, console, order_id)
    if view.qr_payload is None:
        return Response(status_code=404)
    return Response(images.qr_svg(view.qr_payload), media_type="image/svg+xml")


@router.get("/cashier/orders/{order_id}/status")
def cashier_status(request: Request, order_id: str, console: ConsoleDep) -> JSONResponse:
    """The order's status, for the cashier page's polling."""
    with runtime_of(request).db.uow(readonly=True) as uow:
        view = merchants.get_order(uow, merchant_pk=console.pk, order_id=order_id)
    return JSONResponse({"id": view.id, "status": view.status})
