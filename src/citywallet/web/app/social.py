"""Residents' wallet pages: red packets, groups and campaigns.

- ``/app/redpackets``: packets open to the resident, received and sent
  (``redpacket.list_packets``); send one (``send_packet``, PIN, one-time key); open one
  (``grab``: read-only checks, then one write) with a short animation; the details list
  with every share and the best-luck mark (``get_packet``).
- ``/app/redpackets/groups``: the resident's groups (``list_groups``), create one
  (``create_group``), add members by phone (``add_members``), a group's packets
  (``list_group_packets``).
- ``/app/campaigns``: campaigns (``campaign.service.list_campaigns``) and the resident's
  restricted balances (``wallet.restricted.balances_of``) with their expiry and where they
  can be spent; a campaign's page registers (``register``; eligibility refusals shown) and,
  after the draw, shows the result and its check (``campaign.resident.draw_check``), which
  the page's script recomputes in the browser; ``draw.json`` is the published draw file.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from citywallet.api.campaigns import draw_file_response
from citywallet.campaign import resident
from citywallet.campaign import service as campaigns
from citywallet.platform.errors import DomainError, InvalidInput, NotFound
from citywallet.redpacket import service as redpacket
from citywallet.runtime import Runtime
from citywallet.wallet import restricted
from citywallet.web.forms import done, key_or_new, new_key, once, parse_amount
from citywallet.web.i18n import N_
from citywallet.web.session import FormFields, Viewer, ViewerDep, field_errors, runtime_of
from citywallet.web.templating import render

router = APIRouter(prefix="/app", include_in_schema=False)

TABS = ("available", "received", "sent")
SEND_FIELDS = {
    "pin_incorrect": "pin",
    "pin_locked": "pin",
    "pin_not_set": "pin",
    "invalid_amount": "amount",
    "amount_too_small": "amount",
    "amount_too_large": "amount",
    "packet_too_large": "amount",
    "insufficient_balance": "amount",
    "share_too_small": "amount",
    "too_many_shares": "shares",
    "invalid_shares": "shares",
    "invalid_share_count": "shares",
    "greeting_too_long": "greeting",
    "single_limit_exceeded": "amount",
    "daily_limit_exceeded": "amount",
    "yearly_limit_exceeded": "amount",
    "recipient_not_found": "to",
    "recipient_unavailable": "to",
    "cannot_pay_self": "to",
    "invalid_phone": "to",
    "redpacket_target_required": "to",
    "redpacket_group_not_found": "group",
    "invalid_redpacket_kind": "kind",
}
GROUP_FIELDS = {
    "invalid_group_name": "name",
    "recipient_not_found": "members",
    "invalid_phone": "members",
    "redpacket_group_full": "members",
    "cannot_pay_self": "members",
    "recipient_unavailable": "members",
    "no_members_given": "members",
}
N_("Red packet sent.")
N_("Group created.")
N_("Members added.")
N_("You are registered.")


def _phones(text: str) -> list[str]:
    """Phone numbers typed one per line or separated by commas."""
    return [p.strip() for p in re.split(r"[,，;；\n]+", text) if p.strip()]


# --- red packets ---------------------------------------------------------------------------


@router.get("/redpackets")
def packets(request: Request, viewer: ViewerDep, tab: str = "available") -> Response:
    """Packets open to the resident, received, or sent."""
    chosen = tab if tab in TABS else "available"
    with runtime_of(request).db.uow(readonly=True) as uow:
        page = redpacket.list_packets(uow, user_id=viewer.user_id, role=chosen, limit=50)
    return render(
        request, "app/redpacket_list.html", {"tab": chosen, "tabs": TABS, "items": page.items}
    )


def _groups(runtime: Runtime, viewer: Viewer) -> list[redpacket.GroupView]:
    with runtime.db.uow(readonly=True) as uow:
        return redpacket.list_groups(uow, user_id=viewer.user_id, limit=100).items


def _send_page(
    request: Request,
    viewer: Viewer,
    *,
    form: dict[str, str],
    key: str,
    errors: dict[str, DomainError],
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "app/redpacket_send.html",
        {
            "groups": _groups(runtime_of(request), viewer),
            "form": form,
            "key": key,
            "field_errors": errors,
        },
        status_code=status_code,
    )


@router.get("/redpackets/send")
def send_form(request: Request, viewer: ViewerDep, group: str = "", to: str = "") -> Response:
    form = {"target": "group" if group else "person", "group": group, "to": to}
    form.update({"kind": "lucky", "shares": "2" if group else "1"})
    return _send_page(request, viewer, form=form, key=new_key(), errors={})


@router.post("/redpackets/send")
def send(request: Request, viewer: ViewerDep, fields: FormFields) -> Response:
    """Send a red packet to one person (by phone) or to a group, with the PIN."""
    runtime = runtime_of(request)
    key = fields.get("key", "")
    to_group = fields.get("target") == "group"
    try:
        amount = parse_amount(fields.get("amount", ""))
        shares_text = fields.get("shares", "1").strip() or "1"
        if to_group and not shares_text.isdigit():
            raise InvalidInput("Enter how many shares, like 5.", code="invalid_shares")
        shares = int(shares_text) if to_group else 1
        kind = (fields.get("kind") or "lucky") if to_group else "single"
        to = None if to_group else fields.get("to", "").strip()
        group_id = fields.get("group", "") if to_group else None
        if to_group and not group_id:
            raise InvalidInput("Choose a group.", code="redpacket_group_not_found")
        if not to_group and not to:
            raise InvalidInput("Enter the mobile number.", code="redpacket_target_required")
        greeting = fields.get("greeting", "")
        sent = once(
            runtime,
            user_id=viewer.user_id,
            key=key,
            action="redpacket_send",
            fields={
                "amount": str(amount),
                "to": to or "",
                "group": group_id or "",
                "kind": kind,
                "shares": str(shares),
                "greeting": greeting,
            },
            work=lambda uow: (
                redpacket.send_packet(
                    uow,
                    user_id=viewer.user_id,
                    amount=amount,
                    to=to,
                    group_id=group_id,
                    kind=kind,
                    shares=shares,
                    greeting=greeting,
                    encryptor=runtime.encryptor,
                    settings=runtime.settings,
                    pin=fields.get("pin", ""),
                ).id
            ),
        )
    except DomainError as exc:
        form = {k: v for k, v in fields.items() if k not in ("pin", "key")}
        return _send_page(
            request,
            viewer,
            form=form,
            key=key_or_new(key),
            errors=field_errors(exc, SEND_FIELDS),
            status_code=exc.status,
        )
    return done(f"/app/redpackets/{sent}", "Red packet sent.")


# --- groups (before /redpackets/{packet_id}) -----------------------------------------------


def _groups_page(
    request: Request,
    viewer: Viewer,
    *,
    form: dict[str, str],
    errors: dict[str, DomainError],
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "app/group_list.html",
        {"groups": _groups(runtime_of(request), viewer), "form": form, "field_errors": errors},
        status_code=status_code,
    )


@router.get("/redpackets/groups")
def groups(request: Request, viewer: ViewerDep) -> Response:
    return _groups_page(request, viewer, form={}, errors={})


@router.post("/redpackets/groups")
def create_group(request: Request, viewer: ViewerDep, fields: FormFields) -> Response:
    """Create a group the resident owns, with members by phone."""
    runtime = runtime_of(request)
    try:
        view = runtime.db.transact(
            lambda uow: redpacket.create_group(
                uow,
                user_id=viewer.user_id,
                name=fields.get("name", ""),
                members=_phones(fields.get("members", "")),
                encryptor=runtime.encryptor,
                settings=runtime.settings,
            )
        )
    except DomainError as exc:
        return _groups_page(
            request,
            viewer,
            form=fields,
            errors=field_errors(exc, GROUP_FIELDS),
            status_code=exc.status,
        )
    return done(f"/app/redpackets/groups/{view.id}", "Group created.")


def _group_page(
    request: Request,
    viewer: Viewer,
    group_id: str,
    *,
    form: dict[str, str],
    errors: dict[str, DomainError],
    status_code: int = 200,
) -> Response:
    with runtime_of(request).db.uow(readonly=True) as uow:
        group = redpacket.get_group(uow, user_id=viewer.user_id, group_id=group_id)
        page = redpacket.list_group_packets(
            uow, user_id=viewer.user_id, group_id=group_id, limit=50
        )
    return render(
        request,
        "app/group_detail.html",
        {"group": group, "items": page.items, "form": form, "field_errors": errors},
        status_code=status_code,
    )


@router.get("/redpackets/groups/{group_id}")
def group(group_id: str, request: Request, viewer: ViewerDep) -> Response:
    """A group the resident belongs to (else 404): members and packets."""
    return _group_page(request, viewer, group_id, form={}, errors={})


@router.post("/redpackets/groups/{group_id}/members")
def add_members(group_id: str, request: Request, viewer: ViewerDep, fields: FormFields) -> Response:
    """The owner adds members by phone."""
    runtime = runtime_of(request)
    try:
        runtime.db.transact(
            lambda uow: redpacket.add_members(
                uow,
                user_id=viewer.user_id,
                group_id=group_id,
                members=_phones(fields.get("members", "")),
                encryptor=runtime.encryptor,
                settings=runtime.settings,
            )
        )
    except DomainError as exc:
        if exc.code == "redpacket_group_not_found":
            raise
        return _group_page(
            request,
            viewer,
            group_id,
            form=fields,
            errors=field_errors(exc, GROUP_FIELDS),
            status_code=exc.status,
        )
    return done(f"/app/redpackets/groups/{group_id}", "Members added.")


# --- one packet ----------------------------------------------------------------------------


def _packet_page(
    request: Request,
    viewer: Viewer,
    packet_id: str,
    *,
    opened: bool = False,
    errors: dict[str, DomainError] | None = None,
    status_code: int = 200,
) -> Response:
    with runtime_of(request).db.uow(readonly=True) as uow:
        view = redpacket.get_packet(uow, user_id=viewer.user_id, packet_id=packet_id)
    may_open = (
        view.my_claim is None
        and view.status == "active"
        and (view.recipient_id == viewer.user_id or view.group_id is not None)
    )
    return render(
        request,
        "app/redpacket_detail.html",
        {
            "packet": view,
            "may_open": may_open,
            "opened": opened and view.my_claim is not None,
            "field_errors": errors or {},
        },
        status_code=status_code,
    )


@router.get("/redpackets/{packet_id}")
def packet(packet_id: str, request: Request, viewer: ViewerDep, opened: int = 0) -> Response:
    """A packet the resident sent, was sent, may open or opened (else 404)."""
    return _packet_page(request, viewer, packet_id, opened=bool(opened))


@router.post("/redpackets/{packet_id}/open")
def open_packet(
    packet_id: str, request: Request, viewer: ViewerDep, _fields: FormFields
) -> Response:
    """Open a packet: the share moves into the wallet (once per person)."""
    runtime = runtime_of(request)
    try:
        redpacket.grab(
            runtime.db, user_id=viewer.user_id, packet_id=packet_id, settings=runtime.settings
        )
    except DomainError as exc:
        if exc.code == "redpacket_already_claimed":  # a double submit: show the share
            return RedirectResponse(f"/app/redpackets/{packet_id}", status_code=303)
        if exc.code == "redpacket_not_found":
            raise
        return _packet_page(
            request, viewer, packet_id, errors=field_errors(exc, {}), status_code=exc.status
        )
    return RedirectResponse(f"/app/redpackets/{packet_id}?opened=1", status_code=303)


# --- campaigns -----------------------------------------------------------------------------


def _balances(runtime: Runtime, viewer: Viewer) -> list[dict[str, Any]]:
    with runtime.db.uow(readonly=True) as uow:
        views = restricted.balances_of(uow, user_id=viewer.user_id)
        return [
            {"view": v, "places": resident.places(uow, merchant_ids=v.merchant_ids)} for v in views
        ]


@router.get("/campaigns")
def campaign_list(request: Request, viewer: ViewerDep) -> Response:
    """Campaigns (open ones first) and the resident's campaign red packets."""
    runtime = runtime_of(request)
    with runtime.db.uow(readonly=True) as uow:
        views = campaigns.list_campaigns(uow)
    order = {"open": 0, "closed": 1, "drawn": 2, "issued": 3}
    views.sort(key=lambda v: order.get(v.status, 9))
    return render(
        request,
        "app/campaign_list.html",
        {"campaigns": views, "balances": _balances(runtime, viewer)},
    )


def _campaign_page(
    request: Request,
    viewer: Viewer,
    campaign_id: str,
    *,
    errors: dict[str, DomainError] | None = None,
    status_code: int = 200,
) -> Response:
    runtime = runtime_of(request)
    with runtime.db.uow(readonly=True) as uow:
        view = campaigns.get_campaign(uow, campaign_id=campaign_id)  # drafts: 404
        try:
            mine = campaigns.my_registration(uow, campaign_id=campaign_id, user_id=viewer.user_id)
        except NotFound:
            mine = None
        check = (
            resident.draw_check(uow, campaign_id=campaign_id, user_id=viewer.user_id)
            if mine is not None
            else None
        )
        places = resident.places(uow, merchant_ids=view.merchant_ids)
    return render(
        request,
        "app/campaign_detail.html",
        {
            "campaign": view,
            "mine": mine,
            "check": check,
            "places": places,
            "field_errors": errors or {},
        },
        status_code=status_code,
    )


@router.get("/campaigns/{campaign_id}")
def campaign(campaign_id: str, request: Request, viewer: ViewerDep) -> Response:
    """One campaign: register, or the draw result and its check."""
    return _campaign_page(request, viewer, campaign_id)


@router.post("/campaigns/{campaign_id}/register")
def register(
    campaign_id: str, request: Request, viewer: ViewerDep, _fields: FormFields
) -> Response:
    """Register for the lottery (once per person); eligibility refusals shown on the page."""
    runtime = runtime_of(request)

    def work(uow: Any) -> None:
        campaigns.get_campaign(uow, campaign_id=campaign_id)  # drafts: 404
        campaigns.register(uow, campaign_id=campaign_id, user_id=viewer.user_id)

    try:
        runtime.db.transact(work)
    except DomainError as exc:
        if exc.code == "campaign_not_found":
            raise
        return _campaign_page(
            request, viewer, campaign_id, errors=field_errors(exc, {}), status_code=exc.status
        )
    return done(f"/app/campaigns/{campaign_id}", "You are registered.")


@router.get("/campaigns/{campaign_id}/draw.json")
def draw_file(campaign_id: str, request: Request, _viewer: ViewerDep) -> Response:
    """The published draw file (``citywallet-campaign-draw/1``), to recompute the draw."""
    with runtime_of(request).db.uow(readonly=True) as uow:
        campaigns.get_campaign(uow, campaign_id=campaign_id)
        data = campaigns.published_draw(uow, campaign_id=campaign_id)
    return draw_file_response(
        data, headers={"Content-Disposition": f'attachment; filename="{campaign_id}-draw.json"'}
    )
