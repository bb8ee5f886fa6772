"""For the merchant's developers: API keys (the secret is shown once, on the page that
creates it), the webhook endpoint and its secret, the delivery log and redelivery."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from citywallet.merchant import service as merchants
from citywallet.platform import ratelimit
from citywallet.platform.db import UnitOfWork
from citywallet.platform.errors import DomainError
from citywallet.web.merchant.shared import EVENT_LABELS, Console, ConsoleDep
from citywallet.web.session import FormFields, field_errors, runtime_of
from citywallet.web.templating import render

router = APIRouter()
SCHEMES = ("hmac-sha256", "ed25519")
PER_PAGE = 20


def _page(
    request: Request,
    console: Console,
    form: dict[str, str] | None = None,
    errors: dict[str, DomainError] | None = None,
    status_code: int = 200,
) -> Response:
    runtime = runtime_of(request)
    with runtime.db.uow(readonly=True) as uow:
        keys = merchants.list_api_keys(uow, merchant_pk=console.pk)
        secret = merchants.webhook_secret(
            uow,
            user_id=console.viewer.user_id,
            merchant_id=console.merchant.id,
            encryptor=runtime.encryptor,
        )
        events = merchants.list_events(uow, merchant_id=console.pk, limit=5)
    return render(
        request,
        "merchant/developers.html",
        {
            "merchant": console.merchant,
            "keys": keys,
            "webhook_secret": secret,
            "events": events,
            "event_labels": EVENT_LABELS,
            "schemes": SCHEMES,
            "form": form or {"notify_url": console.merchant.notify_url or ""},
            "field_errors": errors or {},
        },
        status_code=status_code,
    )


@router.get("/developers")
def developers(request: Request, console: ConsoleDep) -> Response:
    """API keys, the webhook endpoint and secret, the latest events."""
    return _page(request, console)


@router.post("/developers/keys")
def create_key(request: Request, console: ConsoleDep, fields: FormFields) -> Response:
    """Create a key and show its secret on this page, once (never again)."""
    runtime = runtime_of(request)
    label = fields.get("label", "")
    scheme = fields.get("scheme", "hmac-sha256")
    if scheme not in SCHEMES:
        scheme = "hmac-sha256"
    try:
        new = runtime.db.transact(
            lambda uow: merchants.create_api_key(
                uow,
                merchant_pk=console.pk,
                scheme="ed25519" if scheme == "ed25519" else "hmac-sha256",
                label=label,
                encryptor=runtime.encryptor,
            )
        )
    except DomainError as exc:
        return _page(request, console, None, field_errors(exc, {}), exc.status)
    return render(
        request,
        "merchant/key_created.html",
        {"merchant": console.merchant, "key": new.key, "secret": new.secret},
        status_code=201,
    )


@router.post("/developers/keys/{key_id}/revoke")
def revoke_key(request: Request, key_id: str, console: ConsoleDep, _csrf: FormFields) -> Response:
    """Stop accepting a key at once."""
    runtime_of(request).db.transact(
        lambda uow: merchants.revoke_api_key(uow, merchant_pk=console.pk, key_id=key_id)
    )
    return RedirectResponse("/merchant/developers?done=Key+revoked", status_code=303)


@router.post("/developers/webhook")
def set_webhook(request: Request, console: ConsoleDep, fields: FormFields) -> Response:
    """Change the webhook endpoint (https only; private addresses are refused)."""
    runtime = runtime_of(request)
    url = fields.get("notify_url", "")
    try:
        runtime.db.transact(
            lambda uow: merchants.update_merchant(
                uow,
                user_id=console.viewer.user_id,
                merchant_id=console.merchant.id,
                notify_url=url,
                settings=runtime.settings,
            )
        )
    except DomainError as exc:
        errors = field_errors(
            exc, {"notify_url_invalid": "notify_url", "notify_url_forbidden": "notify_url"}
        )
        return _page(request, console, {"notify_url": url}, errors, exc.status)
    return RedirectResponse("/merchant/developers?done=Webhook+saved", status_code=303)


@router.post("/developers/webhook/secret")
def rotate_secret(request: Request, console: ConsoleDep, _csrf: FormFields) -> Response:
    """Replace the webhook secret."""
    runtime = runtime_of(request)
    runtime.db.transact(
        lambda uow: merchants.webhook_secret(
            uow,
            user_id=console.viewer.user_id,
            merchant_id=console.merchant.id,
            encryptor=runtime.encryptor,
            rotate=True,
        )
    )
    return RedirectResponse("/merchant/developers?done=Secret+replaced", status_code=303)


@router.get("/developers/events")
def events(request: Request, console: ConsoleDep, before: str | None = None) -> Response:
    """Every webhook event, newest first."""
    with runtime_of(request).db.uow(readonly=True) as uow:
        found = merchants.list_events(
            uow, merchant_id=console.pk, limit=PER_PAGE, before=before or None
        )
    return render(
        request,
        "merchant/events.html",
        {
            "merchant": console.merchant,
            "events": found,
            "event_labels": EVENT_LABELS,
            "next_before": found[-1].id if len(found) == PER_PAGE else None,
        },
    )


@router.get("/developers/events/{event_id}")
def event_detail(request: Request, event_id: str, console: ConsoleDep) -> Response:
    """An event with the exact body sent and its delivery attempts."""
    with runtime_of(request).db.uow(readonly=True) as uow:
        found = merchants.get_event(uow, merchant_id=console.pk, event_id=event_id)
    return render(
        request,
        "merchant/event.html",
        {"merchant": console.merchant, "event": found, "event_labels": EVENT_LABELS},
    )


@router.post("/developers/events/{event_id}/redeliver")
def redeliver(request: Request, event_id: str, console: ConsoleDep, _csrf: FormFields) -> Response:
    """Send an event again (at most 60 an hour)."""

    def again(uow: UnitOfWork) -> merchants.EventView:
        ratelimit.hit(uow, merchants.REDELIVERIES, console.merchant.id)
        return merchants.redeliver(uow, merchant_id=console.pk, event_id=event_id)

    runtime_of(request).db.transact(again)
    return RedirectResponse(
        f"/merchant/developers/events/{event_id}?done=Sent+again", status_code=303
    )
