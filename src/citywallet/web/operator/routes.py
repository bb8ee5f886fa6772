"""Pages of the operator console (``/operator``), for residents holding the operator role
(``OperatorDep``: 403 ``operator_required`` for anyone else). One router, made of the
console's parts: :mod:`.residents`, :mod:`.merchants`, :mod:`.campaigns`, :mod:`.ledger`,
:mod:`.interop`, :mod:`.audit_log`. Every action is written to the audit log in its own transaction
(:mod:`citywallet.identity.audit`). See docs/web-operator.md."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from citywallet.campaign import service as campaigns
from citywallet.control import service as control
from citywallet.identity import audit
from citywallet.merchant.service import merchants_by_status
from citywallet.web.operator import (
    audit_log,
    interop,
    ledger,
    merchants,
    proposals,
    residents,
    second_factor,
)
from citywallet.web.operator import campaigns as campaign_pages
from citywallet.web.operator.shared import LABELS, OperatorDep
from citywallet.web.session import runtime_of
from citywallet.web.templating import render

router = APIRouter(prefix="/operator", include_in_schema=False)


@router.get("")
def home(request: Request, _viewer: OperatorDep) -> Response:
    """What needs attention: merchants to review, campaigns, the latest actions."""
    with runtime_of(request).db.uow(readonly=True) as uow:
        waiting = merchants_by_status(uow, status="pending_review", limit=200)
        running = campaigns.list_campaigns(uow, include_draft=True)[:10]
        latest, _ = audit.list_entries(uow, limit=10)
        pending = len(control.list_proposals(uow, state="pending", limit=200))
    return render(request, "operator/home.html",
                  {"waiting": len(waiting), "campaigns": running, "latest": latest,
                   "pending": pending, "labels": LABELS})  # fmt: skip


for part in (residents, merchants, campaign_pages, ledger, interop, audit_log, proposals,
             second_factor):  # fmt: skip
    router.include_router(part.router)
