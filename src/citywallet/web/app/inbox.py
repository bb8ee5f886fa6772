"""Residents' wallet pages: the message centre, the unread badge, hiding the balance.

- ``/app/messages``: my messages, newest first (``inbox.list_messages``); opening one marks
  it read and goes to its object (``POST /app/messages/{id}/open``: ``inbox.mark_read``
  then 303 to the red packet, split, campaign, charge or devices page); "mark all read".
- The badge on the tab bar: :func:`unread_badge`, a template global every ``/app`` page
  calls (one short read for a signed-in resident). ``static/js/app-live.js`` keeps it and
  the "a merchant is waiting for your confirmation" bar current from the server-sent events
  of ``/v1/messages/stream`` (woken after the commit), polling ``/v1/messages/state``
  every 2 s where ``EventSource`` fails.
- Hide/show balance (``POST /app/balance/hide`` and ``/show``): a cookie on this device,
  ``cw_hide_balance``, read by the home page's template, so the amounts are never sent
  while hidden and the choice survives a reload.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from citywallet.inbox import service as inbox
from citywallet.platform.errors import DomainError
from citywallet.web.forms import done
from citywallet.web.i18n import N_
from citywallet.web.session import FormFields, ViewerDep, runtime_of
from citywallet.web.templating import ENV, render

router = APIRouter(prefix="/app", include_in_schema=False)
HIDE_COOKIE = "cw_hide_balance"
HIDE_SECONDS = 365 * 24 * 3600

N_("All messages marked read.")

# What each kind of message says (its params fill the blanks in the template).
KIND_LABELS = {
    "redpacket_received": N_("Red packet"),
    "split_requested": N_("Split bill"),
    "campaign_won": N_("Campaign red packet won"),
    "campaign_drawn": N_("Campaign draw"),
    "charge_waiting": N_("Waiting for your confirmation"),
    "device_signin": N_("New device"),
    "payment_refused": N_("Payment refused"),
}


def unread_badge(request: Request) -> int:
    """The signed-in resident's unread count for the tab bar (0 when signed out)."""
    viewer = getattr(request.state, "viewer", None)
    if viewer is None:
        return 0
    try:
        with runtime_of(request).db.uow(readonly=True) as uow:
            return inbox.unread_count(uow, user_id=viewer.user_id)
    except Exception:  # the badge must never break a page (an error page, say)
        return 0


ENV.globals["unread_badge"] = unread_badge


@router.get("/messages")
def messages(request: Request, viewer: ViewerDep, cursor: str = "") -> Response:
    """My messages, newest first, 20 a page."""
    runtime = runtime_of(request)
    error: dict[str, DomainError] = {}
    try:
        with runtime.db.uow(readonly=True) as uow:
            page = inbox.list_messages(uow, user_id=viewer.user_id, cursor=cursor or None)
    except DomainError as exc:  # a cursor that is not ours: start from the top
        error = {"": exc}
        with runtime.db.uow(readonly=True) as uow:
            page = inbox.list_messages(uow, user_id=viewer.user_id)
    context: dict[str, Any] = {
        "page": page,
        "first_page": not cursor,
        "kind_labels": KIND_LABELS,
        "field_errors": error,
    }
    return render(request, "app/messages.html", context)


@router.post("/messages/{message_id}/open")
def open_message(
    message_id: str, request: Request, viewer: ViewerDep, _fields: FormFields
) -> Response:
    """Mark a message read and go to its object (another resident's: 404)."""
    view = runtime_of(request).db.transact(
        lambda uow: inbox.mark_read(uow, user_id=viewer.user_id, message_id=message_id)
    )
    return RedirectResponse(view.link, status_code=303)


@router.post("/messages/read-all")
def read_all(request: Request, viewer: ViewerDep, _fields: FormFields) -> Response:
    """Mark every message read."""
    runtime_of(request).db.transact(lambda uow: inbox.mark_all_read(uow, user_id=viewer.user_id))
    return done("/app/messages", "All messages marked read.")


def _back(fields: dict[str, str]) -> str:
    """Where to go after toggling: a page of this app (``next``), else home."""
    target = fields.get("next", "")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/app"):
        return "/app"
    return target


def _visibility(request: Request, fields: dict[str, str], *, hide: bool) -> Response:
    response = RedirectResponse(_back(fields), status_code=303)
    if hide:
        response.set_cookie(
            HIDE_COOKIE,
            "1",
            max_age=HIDE_SECONDS,
            httponly=True,
            secure=runtime_of(request).settings.session_cookie_secure,
            samesite="lax",
            path="/app",
        )
    else:
        response.delete_cookie(HIDE_COOKIE, path="/app")
    return response


@router.post("/balance/hide")
def hide_balance(request: Request, _viewer: ViewerDep, fields: FormFields) -> Response:
    """Hide the balance on this device (remembered in a cookie for a year)."""
    return _visibility(request, fields, hide=True)


@router.post("/balance/show")
def show_balance(request: Request, _viewer: ViewerDep, fields: FormFields) -> Response:
    """Show the balance on this device again."""
    return _visibility(request, fields, hide=False)
