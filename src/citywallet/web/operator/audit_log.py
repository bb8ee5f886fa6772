"""The audit log: every operator action, newest first, filtered by action, target or
operator."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from citywallet.identity import audit
from citywallet.web.operator.shared import ACTION_LABELS, LABELS, OperatorDep
from citywallet.web.session import runtime_of
from citywallet.web.templating import render

router = APIRouter()
GROUPS = ("resident.", "merchant.", "campaign.", "ledger.")


@router.get("/audit")
def audit_page(
    request: Request,
    _viewer: OperatorDep,
    action: str = "",
    target: str = "",
    actor: str = "",
    before: int | None = None,
) -> Response:
    """Entries with their filters; a page of 50 and a link to the next."""
    chosen = action if action in ACTION_LABELS or action in GROUPS else ""
    with runtime_of(request).db.uow(readonly=True) as uow:
        entries, next_before = audit.list_entries(
            uow, action=chosen or None, target_id=target or None,
            actor_user_id=actor or None, before=before, limit=50,
        )  # fmt: skip
    return render(
        request,
        "operator/audit.html",
        {"entries": entries, "next_before": next_before, "action": chosen, "target": target,
         "actor": actor, "actions": list(ACTION_LABELS), "labels": LABELS},
    )  # fmt: skip
