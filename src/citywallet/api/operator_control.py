"""Dual control over the API (``/v1/operator/proposals``): one operator proposes funding,
issuing or reclaiming a campaign or freezing or unfreezing a resident; another approves
(the action runs in the approver's transaction, exactly once) or rejects it. Operators
only (403 ``operator_required``). docs/api.md, "Dual control"."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from citywallet.api.deps import AuthContext, CurrentOperator, RuntimeDep
from citywallet.control import service as control
from citywallet.control.schemas import (
    ProposalCreate,
    ProposalDecision,
    ProposalList,
    ProposalPublic,
    State,
)
from citywallet.identity import audit
from citywallet.identity.audit import Actor
from citywallet.platform.db import UnitOfWork
from citywallet.runtime import Runtime

router = APIRouter(tags=["operator dual control"])
BATCH_SIZE = 10_000
MAX_BATCHES = 10
DECISION_RESPONSES: dict[int | str, dict[str, str]] = {
    403: {"description": "operator_required, self_approval_refused."},
    404: {"description": "proposal_not_found."},
    409: {
        "description": "proposal_not_pending, proposal_expired, or the action's own refusal "
        "(already_frozen, campaign_state_invalid, still_valid …): the proposal stays pending."
    },
}


def _actor(runtime: Runtime, auth: AuthContext) -> Actor:
    with runtime.db.uow(readonly=True) as uow:
        return audit.actor_of(uow, auth.user_id)


def _executors(runtime: Runtime) -> control.Executors:
    return control.Executors(
        bank=runtime.bank,
        encryptor=runtime.encryptor,
        batch_size=BATCH_SIZE,
        max_batches=MAX_BATCHES,
    )


@router.post(
    "/v1/operator/proposals",
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"description": "The same action was already pending on the target: that one."},
        403: {"description": "operator_required."},
        404: {"description": "campaign_not_found, user_not_found."},
        409: {"description": "already_frozen, not_frozen (the freeze cannot happen now)."},
        422: {"description": "reason_required, invalid_proposal."},
    },
)
def propose(
    body: ProposalCreate, auth: CurrentOperator, runtime: RuntimeDep, response: Response
) -> ProposalPublic:
    """Propose an action under dual control (audited as ``campaign.propose`` /
    ``resident.propose``)."""
    actor = _actor(runtime, auth)
    ttl = runtime.settings.operator_proposal_ttl_seconds

    def work(uow: UnitOfWork) -> tuple[control.ProposalView, bool]:
        return control.propose(
            uow,
            kind=body.kind,
            target_id=body.target_id,
            actor=actor,
            reason=body.reason,
            ttl_seconds=ttl,
        )

    view, created = runtime.db.transact(work)
    if not created:
        response.status_code = status.HTTP_200_OK
    return ProposalPublic.of(view)


@router.get("/v1/operator/proposals", responses={403: {"description": "operator_required."}})
def list_proposals(
    _auth: CurrentOperator,
    runtime: RuntimeDep,
    state: Annotated[State | None, Query()] = "pending",
    target_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> ProposalList:
    """Proposals newest first; by default the queue of pending ones."""
    with runtime.db.uow(readonly=True) as uow:
        items = control.list_proposals(uow, state=state, target_id=target_id, limit=limit)
    return ProposalList(items=[ProposalPublic.of(v) for v in items])


@router.get(
    "/v1/operator/proposals/{proposal_id}",
    responses={
        403: {"description": "operator_required."},
        404: {"description": "proposal_not_found."},
    },
)
def get_proposal(proposal_id: str, _auth: CurrentOperator, runtime: RuntimeDep) -> ProposalPublic:
    """One proposal."""
    with runtime.db.uow(readonly=True) as uow:
        return ProposalPublic.of(control.get_proposal(uow, proposal_id=proposal_id))


@router.post("/v1/operator/proposals/{proposal_id}/approve", responses=DECISION_RESPONSES)
def approve(proposal_id: str, auth: CurrentOperator, runtime: RuntimeDep) -> ProposalPublic:
    """Approve another operator's proposal: the action runs now (issue and reclaim: their
    first batches; go on with ``POST /v1/operator/campaigns/{id}/issue|reclaim``). Approving
    an approved proposal again answers it and runs nothing."""
    view = control.approve(
        runtime.db,
        proposal_id=proposal_id,
        actor=_actor(runtime, auth),
        executors=_executors(runtime),
    )
    return ProposalPublic.of(view)


@router.post("/v1/operator/proposals/{proposal_id}/reject", responses=DECISION_RESPONSES)
def reject(
    proposal_id: str, body: ProposalDecision, auth: CurrentOperator, runtime: RuntimeDep
) -> ProposalPublic:
    """Reject another operator's proposal; nothing of the action happens."""
    view = control.reject_in(
        runtime.db, proposal_id=proposal_id, actor=_actor(runtime, auth), note=body.note
    )
    return ProposalPublic.of(view)
