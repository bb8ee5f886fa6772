"""Dual control in the console: the queue of proposals waiting for a second operator, one
proposal's page, and approving or rejecting it (another operator only; the action runs in
the approver's transaction). Proposals are made where the action lives: the campaign's
step buttons and the resident's freeze form (:func:`propose_page`). docs/web-operator.md,
"Dual control"."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from citywallet.control import service as control
from citywallet.identity.audit import Actor
from citywallet.platform.errors import DomainError
from citywallet.runtime import Runtime
from citywallet.web.forms import done
from citywallet.web.i18n import N_
from citywallet.web.operator.shared import LABELS, OperatorDep, actor_of, not_found
from citywallet.web.session import FormFields, runtime_of
from citywallet.web.templating import render

router = APIRouter()
BATCH_SIZE = 1_000
BATCHES_PER_REQUEST = 5
KIND_LABELS = {
    "campaign.fund": N_("Fund the campaign"),
    "campaign.issue": N_("Issue the red packets"),
    "campaign.reclaim": N_("Reclaim unused balances"),
    "resident.freeze": N_("Freeze the resident"),
    "resident.unfreeze": N_("Unfreeze the resident"),
}
STATE_LABELS = {
    "pending": N_("Waiting for approval"),
    "approved": N_("Approved"),
    "rejected": N_("Rejected"),
    "expired": N_("Expired"),
}
PROPOSED = N_("Proposed. Another operator must approve it before it happens.")


def executors(runtime: Runtime) -> control.Executors:
    """What approving needs from the running platform."""
    return control.Executors(
        bank=runtime.bank,
        encryptor=runtime.encryptor,
        batch_size=BATCH_SIZE,
        max_batches=BATCHES_PER_REQUEST,
    )


def _labels() -> dict[str, Any]:
    return {**LABELS, "kind": KIND_LABELS, "state": STATE_LABELS}


def propose_page(
    runtime: Runtime, *, kind: str, target_id: str, actor: Actor, reason: str = ""
) -> Response:
    """Make (or find) the proposal and show it; refusals propagate to the caller's page."""
    ttl = runtime.settings.operator_proposal_ttl_seconds

    def work(uow: Any) -> control.ProposalView:
        view, _created = control.propose(
            uow, kind=kind, target_id=target_id, actor=actor, reason=reason, ttl_seconds=ttl
        )
        return view

    view = runtime.db.transact(work)
    return done(f"/operator/proposals/{view.id}", PROPOSED)


@router.get("/proposals")
def queue(request: Request, viewer: OperatorDep, state: str = "pending") -> Response:
    """The proposals waiting for a decision (or those in another state)."""
    chosen = state if state in STATE_LABELS else "pending"
    with runtime_of(request).db.uow(readonly=True) as uow:
        items = control.list_proposals(uow, state=chosen, limit=100)
    return render(
        request,
        "operator/proposals.html",
        {"proposals": items, "state": chosen, "labels": _labels(), "me": viewer.user_id},
    )


def _page(
    request: Request,
    proposal_id: str,
    viewer_id: str,
    extra: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    with runtime_of(request).db.uow(readonly=True) as uow:
        view = control.get_proposal(uow, proposal_id=proposal_id)
    context: dict[str, Any] = {"p": view, "labels": _labels(), "me": viewer_id, "form": {}}
    context.update(extra or {})
    return render(request, "operator/proposal.html", context, status_code=status)


@router.get("/proposals/{proposal_id}")
def proposal(request: Request, proposal_id: str, viewer: OperatorDep) -> Response:
    """One proposal: what, on what, who proposed it when, and its decision."""
    return _page(request, proposal_id, viewer.user_id)


@router.post("/proposals/{proposal_id}/{decision}")
def decide(
    request: Request, proposal_id: str, decision: str, viewer: OperatorDep, fields: FormFields
) -> Response:
    """Approve (the action runs now) or reject; the proposer's own decision is refused."""
    runtime = runtime_of(request)
    actor = actor_of(viewer)
    try:
        if decision == "approve":
            control.approve(
                runtime.db, proposal_id=proposal_id, actor=actor, executors=executors(runtime)
            )
            message = N_("Approved: the action is done.")
        elif decision == "reject":
            control.reject_in(
                runtime.db, proposal_id=proposal_id, actor=actor, note=fields.get("note", "")
            )
            message = N_("Rejected: nothing was done.")
        else:
            raise not_found()
    except DomainError as exc:
        if exc.code in ("proposal_not_found", "http_404"):
            raise
        return _page(
            request,
            proposal_id,
            viewer.user_id,
            {"field_errors": {"": exc}, "form": fields},
            exc.status,
        )
    return done(f"/operator/proposals/{proposal_id}", message)
