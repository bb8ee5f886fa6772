"""Pages of the merchant console (``/merchant``): the overview (status, balance, choosing
one of several merchants) and the application form. The other pages live in
:mod:`.stores` (stores, printable codes, the cashier), :mod:`.orders` (orders and refunds),
:mod:`.finance` (settlements and statements) and :mod:`.developers` (API keys, webhooks);
their routers are included into :data:`router`, the one ``web/__init__.py`` installs.
See docs/web-merchant.md."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from citywallet.merchant.service import (
    MerchantApplication,
    merchant_balance,
    owned_merchant,
    received_since,
    register_merchant,
    takings_today,
)
from citywallet.platform.clock import now_us
from citywallet.platform.errors import DomainError
from citywallet.wallet import cards
from citywallet.web.merchant import developers, finance, orders, stores
from citywallet.web.merchant.shared import MERCHANT_COOKIE, STATUS_LABELS, ConsoleDep, owned
from citywallet.web.session import FormFields, ViewerDep, runtime_of
from citywallet.web.templating import money, render

router = APIRouter(prefix="/merchant", include_in_schema=False)

APPLICATION_FIELDS = (
    "name_zh",
    "name_en",
    "city_zh",
    "city_en",
    "uscc",
    "mcc",
    "district",
    "address",
    "contact_name",
    "contact_phone",
    "settlement_card_id",
    "notify_url",
)
APPLY_ERRORS = {
    "invalid_uscc": "uscc",
    "merchant_exists": "uscc",
    "invalid_mcc": "mcc",
    "invalid_phone": "contact_phone",
    "card_not_found": "settlement_card_id",
    "notify_url_invalid": "notify_url",
    "notify_url_forbidden": "notify_url",
}


@router.get("")
def overview(request: Request, viewer: ViewerDep) -> Response:
    """The chosen merchant's status and balance; the application form for a newcomer."""
    merchants, merchant, pk = owned(request, viewer)
    if merchant is None:
        return RedirectResponse("/merchant/apply", status_code=303)
    runtime = runtime_of(request)
    as_of = now_us()
    with runtime.db.uow(readonly=True) as uow:
        balance = merchant_balance(uow, merchant_pk=pk)
        takings = takings_today(uow, merchant_pk=pk, settings=runtime.settings, moment=as_of)
    return render(
        request,
        "merchant/overview.html",
        {
            "merchant": merchant,
            "merchants": merchants,
            "status_label": STATUS_LABELS.get(merchant.status, merchant.status),
            "receivable": balance.receivable,
            "in_settlement": balance.in_settlement,
            "takings": takings,
            "as_of": as_of,
        },
    )


@router.get("/takings.json")
def takings_json(request: Request, console: ConsoleDep, since: int = 0) -> Response:
    """For the overview's script: today's takings, and the payments received after
    ``since`` (µs; the overview's ``as_of``, then the last one announced), oldest first."""
    runtime = runtime_of(request)
    with runtime.db.uow(readonly=True) as uow:
        takings = takings_today(uow, merchant_pk=console.pk, settings=runtime.settings)
        received = received_since(uow, merchant_pk=console.pk, since=max(0, since))
    return JSONResponse(
        {
            "day": takings.day.isoformat(),
            "count": takings.count,
            "amount": takings.amount,
            "amount_text": money(takings.amount),
            "received": [
                {
                    "order_id": r.order_id,
                    "amount": r.amount,
                    "yuan": spoken_yuan(r.amount),
                    "paid_at": r.paid_at,
                }
                for r in received
            ],
        },
        headers={"Cache-Control": "no-store"},
    )


def spoken_yuan(fen: int) -> str:
    """Fen as yuan the way a payment speaker says it: ``88``, ``12.3``, ``0.05``."""
    whole, frac = divmod(fen, 100)
    return f"{whole}.{frac:02d}".rstrip("0").rstrip(".") if frac else str(whole)


@router.post("/select")
def select(request: Request, viewer: ViewerDep, fields: FormFields) -> Response:
    """Show another of your merchants (another resident's answers 404)."""
    merchant_id = fields.get("merchant_id", "")
    with runtime_of(request).db.uow(readonly=True) as uow:
        owned_merchant(uow, user_id=viewer.user_id, merchant_id=merchant_id)
    response = RedirectResponse("/merchant", status_code=303)
    response.set_cookie(
        MERCHANT_COOKIE, merchant_id, httponly=True, samesite="lax", path="/merchant",
        secure=runtime_of(request).settings.session_cookie_secure,
    )  # fmt: skip
    return response


def _apply_page(
    request: Request,
    viewer_id: str,
    form: dict[str, str],
    errors: dict[str, DomainError] | None = None,
    status_code: int = 200,
) -> Response:
    with runtime_of(request).db.uow(readonly=True) as uow:
        bound = [c for c in cards.list_cards(uow, user_id=viewer_id) if c.status == "active"]
    return render(
        request,
        "merchant/apply.html",
        {"cards": bound, "form": form, "field_errors": errors or {}},
        status_code=status_code,
    )


def apply_errors(exc: DomainError) -> dict[str, DomainError]:
    """Where an application's refusal shows: a field named in the message, else the top."""
    if exc.code == "invalid_merchant_field":
        named = exc.detail.split(" ", 1)[0]
        if named in APPLICATION_FIELDS:
            return {named: exc}
    return {APPLY_ERRORS.get(exc.code, ""): exc}


@router.get("/apply")
def apply_form(request: Request, viewer: ViewerDep) -> Response:
    """Apply to become a merchant (settlement to one of your bound cards)."""
    return _apply_page(request, viewer.user_id, {})


@router.post("/apply")
def apply(request: Request, viewer: ViewerDep, fields: FormFields) -> Response:
    """Send the application; an operator reviews it."""
    form = {name: fields.get(name, "") for name in APPLICATION_FIELDS}
    application = MerchantApplication(
        **{k: v for k, v in form.items() if k != "notify_url"},
        notify_url=form["notify_url"] or None,
    )
    runtime = runtime_of(request)
    try:
        view = runtime.db.transact(
            lambda uow: register_merchant(
                uow,
                user_id=viewer.user_id,
                application=application,
                encryptor=runtime.encryptor,
                settings=runtime.settings,
            )
        )
    except DomainError as exc:
        return _apply_page(request, viewer.user_id, form, apply_errors(exc), exc.status)
    response = RedirectResponse("/merchant?done=Application+sent", status_code=303)
    response.set_cookie(
        MERCHANT_COOKIE, view.id, httponly=True, samesite="lax", path="/merchant",
        secure=runtime.settings.session_cookie_secure,
    )  # fmt: skip
    return response


for sub in (stores.router, orders.router, finance.router, developers.router):
    router.include_router(sub)
