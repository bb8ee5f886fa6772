"""Passkeys in the residents' app: the list in settings (add, rename, remove) and a
payment form's passkey challenge (static/js/pinpad.js asks for it, then the form posts the
assertion with the payment). Adding and signing in run in the browser against the API
(static/js/passkeys.js)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from citywallet.identity import passkeys
from citywallet.identity.passkey_rules import scan_intent, transfer_intent
from citywallet.platform.errors import DomainError, InvalidInput
from citywallet.web.forms import done, parse_amount
from citywallet.web.i18n import N_
from citywallet.web.session import FormFields, ViewerDep, runtime_of
from citywallet.web.templating import render

router = APIRouter(prefix="/app", include_in_schema=False)


@router.get("/me/passkeys")
def passkeys_page(request: Request, viewer: ViewerDep) -> Response:
    """The resident's passkeys, and a button to add this device's."""
    with runtime_of(request).db.uow(readonly=True) as uow:
        items = passkeys.list_passkeys(uow, user_id=viewer.user_id)
    return render(request, "app/passkeys.html", {"passkeys": items})


@router.post("/me/passkeys/{passkey_id}/rename")
def rename(passkey_id: str, request: Request, viewer: ViewerDep, fields: FormFields) -> Response:
    """Give a passkey another name."""
    runtime_of(request).db.transact(
        lambda uow: passkeys.rename_passkey(
            uow, user_id=viewer.user_id, passkey_id=passkey_id, name=fields.get("name", "")
        )
    )
    return done("/app/me/passkeys", N_("Saved."))


@router.post("/me/passkeys/{passkey_id}/remove")
def remove(passkey_id: str, request: Request, viewer: ViewerDep, _fields: FormFields) -> Response:
    """Remove a passkey."""
    runtime_of(request).db.transact(
        lambda uow: passkeys.remove_passkey(uow, user_id=viewer.user_id, passkey_id=passkey_id)
    )
    return done("/app/me/passkeys", N_("Passkey removed."))


def _intent(fields: dict[str, str]) -> dict[str, object]:
    """The intent of a payment form, read as its own route reads it."""
    kind = fields.get("intent", "")
    typed = fields.get("amount", "").strip()
    if kind == "scan":
        amount = parse_amount(typed) if typed else None
        return scan_intent(payload=fields.get("payload", "").strip(), amount=amount)
    if kind == "transfer":
        return transfer_intent(to=fields.get("to", "").strip(), amount=parse_amount(typed))
    raise InvalidInput("Unknown kind of payment.", code="invalid_intent")


@router.post("/passkeys/pay-options")
def pay_options(request: Request, viewer: ViewerDep, fields: FormFields) -> Response:
    """The passkey challenge of the payment form posted here (JSON options, or a problem)."""
    runtime = runtime_of(request)
    try:
        intent = _intent(fields)
        options: dict[str, Any] = runtime.db.transact(
            lambda uow: passkeys.payment_options(
                uow, user_id=viewer.user_id, intent=intent, settings=runtime.settings
            )
        )
    except DomainError as exc:
        return JSONResponse({"code": exc.code}, status_code=exc.status)
    return JSONResponse(options)
