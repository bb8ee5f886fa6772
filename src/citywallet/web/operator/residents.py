"""Residents: search by phone or ID number (exact numbers, shown masked), an account's
KYC, tier and status, and freezing or unfreezing it with a reason (audited)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from citywallet.control import service as control
from citywallet.identity import audit, residents
from citywallet.identity import service as identity
from citywallet.platform.db import UnitOfWork
from citywallet.platform.errors import DomainError
from citywallet.web.forms import done
from citywallet.web.i18n import N_
from citywallet.web.operator import proposals
from citywallet.web.operator.shared import LABELS, OperatorDep, actor_of, not_found
from citywallet.web.session import FormFields, field_errors, runtime_of
from citywallet.web.templating import render

router = APIRouter()
REASON_ERRORS = {"reason_required": "reason"}  # the service's and the proposal's
DONE = {"freeze": N_("The account is frozen."), "unfreeze": N_("The account is unfrozen.")}


@router.get("/residents")
def search_form(request: Request, _viewer: OperatorDep) -> Response:
    """The search form."""
    return render(request, "operator/residents.html",
                  {"found": [], "searched": False, "labels": LABELS})  # fmt: skip


@router.post("/residents/search")
def search(request: Request, _viewer: OperatorDep, fields: FormFields) -> Response:
    """The hits for an exact number. A POST, so phone and ID numbers never land in URLs,
    browser history or access logs; the number typed is not echoed back either."""
    runtime = runtime_of(request)
    found: list[residents.ResidentSummary] = []
    errors: dict[str, DomainError] = {}
    status = 200
    try:
        with runtime.db.uow(readonly=True) as uow:
            found = residents.search_residents(
                uow, query=fields.get("q", ""), encryptor=runtime.encryptor
            )
    except DomainError as exc:
        errors, status = field_errors(exc, {"invalid_search": "q"}), exc.status
    return render(
        request,
        "operator/residents.html",
        {"found": found, "searched": True, "field_errors": errors, "labels": LABELS},
        status_code=status,
    )


def _detail_page(
    request: Request, user_id: str, extra: dict[str, Any] | None = None, status: int = 200
) -> Response:
    runtime = runtime_of(request)
    with runtime.db.uow(readonly=True) as uow:
        detail = residents.resident_detail(uow, user_id=user_id)
        trail, _ = audit.list_entries(uow, target_id=user_id, limit=20)
        pending = control.list_proposals(uow, state="pending", target_id=user_id)
    context: dict[str, Any] = {
        "resident": detail,
        "trail": trail,
        "labels": LABELS,
        "pending": pending,
        "kind_labels": proposals.KIND_LABELS,
    }
    context.update(extra or {})
    return render(request, "operator/resident.html", context, status_code=status)


@router.get("/residents/{user_id}")
def detail(request: Request, user_id: str, _viewer: OperatorDep) -> Response:
    """One resident: KYC, tier, status, attributes, the account's trail and our actions."""
    return _detail_page(request, user_id)


@router.post("/residents/{user_id}/{action}")
def freeze_or_unfreeze(
    request: Request, user_id: str, action: str, viewer: OperatorDep, fields: FormFields
) -> Response:
    """Freeze or unfreeze with a reason; the audit entry is written in the same transaction."""
    if action not in DONE:
        raise not_found()
    reason = fields.get("reason", "")
    actor = actor_of(viewer)
    runtime = runtime_of(request)

    def work(uow: UnitOfWork) -> None:
        change = identity.freeze_user if action == "freeze" else identity.unfreeze_user
        change(uow, user_id=user_id, reason=reason, actor=actor.ref)
        audit.record(uow, actor=actor, action=f"resident.{action}", target_id=user_id,
                     reason=reason)  # fmt: skip

    try:
        if runtime.settings.operator_dual_control:
            return proposals.propose_page(runtime, kind=f"resident.{action}", target_id=user_id,
                                          actor=actor, reason=reason)  # fmt: skip
        runtime.db.transact(work)
    except DomainError as exc:
        if exc.code == "user_not_found":
            raise
        return _detail_page(
            request,
            user_id,
            {"field_errors": field_errors(exc, REASON_ERRORS), "form": {"reason": reason}},
            status=exc.status,
        )
    return done(f"/operator/residents/{user_id}", DONE[action])
