"""Merchants: the review queue (approve, or reject with a reason), lists by status,
suspending an active merchant and reactivating a suspended one (each audited)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from citywallet.identity import audit
from citywallet.merchant.service import (
    MERCHANT_STATUSES,
    Review,
    merchants_by_status,
    review_merchant,
)
from citywallet.platform.db import UnitOfWork
from citywallet.platform.errors import DomainError, InvalidInput
from citywallet.web.forms import done
from citywallet.web.i18n import N_
from citywallet.web.operator.shared import LABELS, OperatorDep, actor_of, not_found
from citywallet.web.session import FormFields, runtime_of
from citywallet.web.templating import render

router = APIRouter()
ACTIONS: dict[str, tuple[Review, bool, str]] = {
    # action: (review, reason required, flash)
    "approve": ("approve", False, N_("The merchant is approved.")),
    "reject": ("reject", True, N_("The application is rejected.")),
    "suspend": ("suspend", True, N_("The merchant is suspended.")),
    "reactivate": ("reactivate", False, N_("The merchant is active again.")),
}


def _list_page(
    request: Request, status: str, extra: dict[str, Any] | None = None, code: int = 200
) -> Response:
    with runtime_of(request).db.uow(readonly=True) as uow:
        merchants = merchants_by_status(uow, status=status)
    context: dict[str, Any] = {
        "status": status,
        "statuses": MERCHANT_STATUSES,
        "merchants": merchants,
        "labels": LABELS,
        "errors_for": "",
    }
    context.update(extra or {})
    return render(request, "operator/merchants.html", context, status_code=code)


@router.get("/merchants")
def merchants(request: Request, _viewer: OperatorDep, status: str = "pending_review") -> Response:
    """Merchants in one status; the review queue first."""
    return _list_page(request, status if status in MERCHANT_STATUSES else "pending_review")


@router.post("/merchants/{merchant_id}/{action}")
def review(
    request: Request, merchant_id: str, action: str, viewer: OperatorDep, fields: FormFields
) -> Response:
    """Approve, reject, suspend or reactivate; audited in the same transaction."""
    if action not in ACTIONS:
        raise not_found()
    decision, needs_reason, flash = ACTIONS[action]
    reason = fields.get("reason", "").strip()
    back = fields.get("status", "pending_review")
    back = back if back in MERCHANT_STATUSES else "pending_review"
    actor = actor_of(viewer)

    def work(uow: UnitOfWork) -> None:
        if needs_reason and not reason:
            raise InvalidInput("Say why.", code="reason_required")
        review_merchant(
            uow, merchant_id=merchant_id, action=decision, reason=reason, actor=actor.ref
        )
        audit.record(
            uow, actor=actor, action=f"merchant.{action}", target_id=merchant_id, reason=reason
        )

    try:
        runtime_of(request).db.transact(work)
    except DomainError as exc:
        if exc.code == "merchant_not_found":
            raise
        return _list_page(
            request,
            back,
            {"field_errors": {"reason": exc} if exc.code == "reason_required" else {"": exc},
             "errors_for": f"{merchant_id}:{action}"},
            code=exc.status,
        )  # fmt: skip
    return done(f"/operator/merchants?status={back}", flash)
