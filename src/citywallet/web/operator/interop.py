"""Interoperability: this deployment as a switch participant — its id and switch, the
INTEROP_SETTLEMENT position as our books see it, transfers in flight, failed and expired
ones with their error codes, the settlement windows received and the aliases announced."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from citywallet.interop.provider import service as interop
from citywallet.web.i18n import N_
from citywallet.web.operator.shared import OperatorDep
from citywallet.web.session import runtime_of
from citywallet.web.templating import render

router = APIRouter()

STATE_LABELS = {
    "PREPARED": N_("In flight"),
    "COMMITTED": N_("Committed"),
    "ABORTED": N_("Aborted"),
    "EXPIRED": N_("Expired"),
}
ROLE_LABELS = {"payer": N_("We pay"), "payee": N_("We receive")}
ALIAS_LABELS = {
    "register": N_("Registered"),
    "remove": N_("Removed"),
    "delivered": N_("Delivered"),
    "waiting": N_("Waiting for delivery"),
    "failed": N_("Delivery failed"),
}


@router.get("/interop")
def interop_page(request: Request, _viewer: OperatorDep) -> Response:
    """The switch connection, the settlement position, transfers, windows and aliases."""
    runtime = runtime_of(request)
    with runtime.db.uow(readonly=True) as uow:
        view = interop.overview(uow, settings=runtime.settings)
    return render(
        request,
        "operator/interop.html",
        {"view": view, "states": STATE_LABELS, "roles": ROLE_LABELS, "alias_labels": ALIAS_LABELS},
    )
