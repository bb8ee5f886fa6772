"""Campaign routes: residents see campaigns, register and check the draw; operators run
campaigns (create, fund, open, close, draw, issue, reclaim), read reports and set
residents' attributes.

Thin adapters: parse, authorise (operator routes need :data:`~citywallet.api.deps.
CurrentOperator`: 403 ``operator_required`` for anyone else), call one service, render.
Drafts are invisible to residents (404 ``campaign_not_found``). Every operator action is
recorded with the operator's user id as its actor.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status

from citywallet.api.deps import CurrentOperator, CurrentUser, RuntimeDep
from citywallet.campaign import reports
from citywallet.campaign import service as campaigns
from citywallet.campaign.schemas import (
    AttributesPublic,
    AttributesSet,
    BatchProgress,
    CampaignCreate,
    CampaignList,
    CampaignPublic,
    FundingResult,
    RegistrationPublic,
    ReportPublic,
)
from citywallet.control import service as control
from citywallet.control.errors import DualControlRequired
from citywallet.identity import attributes, audit
from citywallet.platform.db import UnitOfWork
from citywallet.runtime import Runtime

router = APIRouter(tags=["campaigns"])
operator_router = APIRouter(tags=["campaign operators"])

BatchSize = Annotated[int, Query(ge=1, le=50_000)]
MaxBatches = Annotated[int, Query(ge=1, le=100)]

STATE_RESPONSES: dict[int | str, dict[str, str]] = {
    403: {"description": "operator_required."},
    404: {"description": "campaign_not_found."},
    409: {
        "description": "campaign_state_invalid (not in the state this step needs), "
        "registration_window_open, campaign_not_funded, draw_too_early, still_valid, "
        "dual_control_required (fund, issue, reclaim: propose at /v1/operator/proposals; "
        "issue and reclaim go on here once a proposal is approved)."
    },
}


def _actor(auth: Any) -> str:
    return f"operator:{auth.user_id}"


def _log(uow: UnitOfWork, auth: Any, action: str, target_id: str, detail: str = "") -> None:
    """The operator audit log's entry of an action, in the action's own transaction (as
    the operator console writes it)."""
    actor = audit.actor_of(uow, auth.user_id)
    audit.record(uow, actor=actor, action=action, target_id=target_id, detail=detail)


# --- residents ----------------------------------------------------------------------------


@router.get("/v1/campaigns")
def list_campaigns(_auth: CurrentUser, runtime: RuntimeDep) -> CampaignList:
    """Campaigns open to the public (not drafts), newest first."""
    with runtime.db.uow(readonly=True) as uow:
        views = campaigns.list_campaigns(uow)
    return CampaignList(items=[CampaignPublic.of(v) for v in views])


@router.get("/v1/campaigns/{campaign_id}", responses={404: {"description": "campaign_not_found"}})
def get_campaign(campaign_id: str, _auth: CurrentUser, runtime: RuntimeDep) -> CampaignPublic:
    """One campaign, with its seed commitment (and the seed and list hash once published)."""
    with runtime.db.uow(readonly=True) as uow:
        return CampaignPublic.of(campaigns.get_campaign(uow, campaign_id=campaign_id))


@router.post(
    "/v1/campaigns/{campaign_id}/registrations",
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"description": "You had registered already: your registration."},
        403: {
            "description": "not eligible: real_name_required, tier_too_low, "
            "district_not_eligible, attribute_not_eligible, account_not_active."
        },
        404: {"description": "campaign_not_found."},
        409: {"description": "registration_closed."},
    },
)
def register(
    campaign_id: str, auth: CurrentUser, runtime: RuntimeDep, response: Response
) -> RegistrationPublic:
    """Register for the lottery (one entry per person, by resident ID; repeating it returns
    the same registration with 200)."""

    def work(uow: UnitOfWork) -> tuple[campaigns.RegistrationView, bool]:
        return campaigns.register(
            uow, campaign_id=campaign_id, user_id=auth.user_id, hide_draft=True
        )

    view, created = runtime.db.transact(work)
    if not created:
        response.status_code = status.HTTP_200_OK
    return RegistrationPublic.of(view)


@router.get(
    "/v1/campaigns/{campaign_id}/registration",
    responses={404: {"description": "campaign_not_found, registration_not_found."}},
)
def my_registration(campaign_id: str, auth: CurrentUser, runtime: RuntimeDep) -> RegistrationPublic:
    """Your registration: after the draw, won or lost, your rank, prize and ticket."""
    with runtime.db.uow(readonly=True) as uow:
        campaigns.get_campaign(uow, campaign_id=campaign_id)
        view = campaigns.my_registration(uow, campaign_id=campaign_id, user_id=auth.user_id)
    return RegistrationPublic.of(view)


def draw_file_response(data: bytes, *, headers: Mapping[str, str] | None = None) -> Response:
    """The canonical draw file as served, with its SHA-256 in ``Content-Digest`` (RFC 9530)
    and as the ``ETag``, so a client can check it got the published bytes."""
    digest = hashlib.sha256(data).digest()
    return Response(
        data,
        media_type="application/json",
        headers={
            "Content-Digest": f"sha-256=:{base64.b64encode(digest).decode()}:",
            "ETag": f'"{digest.hex()}"',
            **(headers or {}),
        },
    )


@router.get(
    "/v1/campaigns/{campaign_id}/draw",
    response_class=Response,
    responses={
        200: {
            "description": "The draw file's canonical bytes; `Content-Digest` and `ETag` carry "
            "their SHA-256.",
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
        404: {"description": "campaign_not_found."},
        409: {"description": "not_drawn (the draw has not happened yet)."},
    },
)
def draw_file(campaign_id: str, _auth: CurrentUser, runtime: RuntimeDep) -> Response:
    """The published draw file (format ``citywallet-campaign-draw/1``, docs/campaign-draw.md),
    byte for byte the canonical file: the seed, every registration id and the winners."""
    with runtime.db.uow(readonly=True) as uow:
        campaigns.get_campaign(uow, campaign_id=campaign_id)
        data = campaigns.published_draw(uow, campaign_id=campaign_id)
    return draw_file_response(data)


# --- operators ----------------------------------------------------------------------------


def _view(runtime: RuntimeDep, campaign_id: str) -> CampaignPublic:
    with runtime.db.uow(readonly=True) as uow:
        view = campaigns.get_campaign(uow, campaign_id=campaign_id, include_draft=True)
    return CampaignPublic.of(view)


@operator_router.post(
    "/v1/operator/campaigns",
    status_code=status.HTTP_201_CREATED,
    responses={
        403: {"description": "operator_required."},
        422: {
            "description": "budget_mismatch, windows_out_of_order, invalid_bank_account, "
            "invalid_eligibility, invalid_mcc, invalid_min_spend, validation_failed."
        },
    },
)
def create_campaign(
    body: CampaignCreate, auth: CurrentOperator, runtime: RuntimeDep
) -> CampaignPublic:
    """Create a campaign (a draft, with its seed commitment published from now on)."""
    spec = body.spec()

    def create(uow: UnitOfWork) -> campaigns.CampaignView:
        view = campaigns.create_campaign(
            uow, spec=spec, actor=_actor(auth), encryptor=runtime.encryptor
        )
        _log(uow, auth, "campaign.create", view.id, f"{spec.name}; budget {spec.budget}")
        return view

    return CampaignPublic.of(runtime.db.transact(create))


@operator_router.get("/v1/operator/campaigns")
def operator_list(_auth: CurrentOperator, runtime: RuntimeDep) -> CampaignList:
    """Every campaign, drafts included, newest first."""
    with runtime.db.uow(readonly=True) as uow:
        views = campaigns.list_campaigns(uow, include_draft=True)
    return CampaignList(items=[CampaignPublic.of(v) for v in views])


@operator_router.get("/v1/operator/campaigns/{campaign_id}", responses=STATE_RESPONSES)
def operator_get(campaign_id: str, _auth: CurrentOperator, runtime: RuntimeDep) -> CampaignPublic:
    """One campaign, drafts included."""
    return _view(runtime, campaign_id)


@operator_router.post("/v1/operator/campaigns/{campaign_id}/fund", responses=STATE_RESPONSES)
def fund(campaign_id: str, auth: CurrentOperator, runtime: RuntimeDep) -> FundingResult:
    """Collect the budget from the funder's bank account (repeatable until ``funded``).
    Under dual control (the default) refused with 409 ``dual_control_required``: propose
    ``campaign.fund`` at ``/v1/operator/proposals`` and have another operator approve it."""
    _refuse_alone(runtime)
    outcome = campaigns.fund_campaign(
        runtime.db,
        campaign_id=campaign_id,
        bank=runtime.bank,
        encryptor=runtime.encryptor,
        on_start=lambda uow: _log(uow, auth, "campaign.fund", campaign_id),
    )
    return FundingResult(funding_status=outcome, campaign=_view(runtime, campaign_id))


@operator_router.post("/v1/operator/campaigns/{campaign_id}/open", responses=STATE_RESPONSES)
def open_registration(
    campaign_id: str, auth: CurrentOperator, runtime: RuntimeDep
) -> CampaignPublic:
    """Open registration (draft → open); residents register during its window."""

    def step(uow: UnitOfWork) -> campaigns.CampaignView:
        view = campaigns.open_registration(uow, campaign_id=campaign_id, actor=_actor(auth))
        _log(uow, auth, "campaign.open", campaign_id)
        return view

    view = runtime.db.transact(step)
    return CampaignPublic.of(view)


@operator_router.post("/v1/operator/campaigns/{campaign_id}/close", responses=STATE_RESPONSES)
def close_registration(
    campaign_id: str, auth: CurrentOperator, runtime: RuntimeDep
) -> CampaignPublic:
    """Close registration once its window has passed and publish the list hash."""

    def step(uow: UnitOfWork) -> campaigns.CampaignView:
        view = campaigns.close_registration(uow, campaign_id=campaign_id, actor=_actor(auth))
        _log(uow, auth, "campaign.close", campaign_id)
        return view

    view = runtime.db.transact(step)
    return CampaignPublic.of(view)


@operator_router.post("/v1/operator/campaigns/{campaign_id}/draw", responses=STATE_RESPONSES)
def run_draw(campaign_id: str, auth: CurrentOperator, runtime: RuntimeDep) -> CampaignPublic:
    """Draw the winners (funded, at or after the draw time): reveals the seed."""

    def step(uow: UnitOfWork) -> campaigns.CampaignView:
        view = campaigns.draw(
            uow, campaign_id=campaign_id, actor=_actor(auth), encryptor=runtime.encryptor
        )
        _log(uow, auth, "campaign.draw", campaign_id, f"{view.winners} winners")
        return view

    view = runtime.db.transact(step)
    return CampaignPublic.of(view)


DUAL_CONTROL_TEXT = (
    "This step needs two operators: propose it at /v1/operator/proposals and have another "
    "operator approve it."
)


def _refuse_alone(runtime: Runtime) -> None:
    """Under dual control, a step one operator may not take alone."""
    if runtime.settings.operator_dual_control:
        raise DualControlRequired(DUAL_CONTROL_TEXT)


def _in_batches(
    runtime: Runtime,
    auth: Any,
    campaign_id: str,
    step: str,
    one_batch: Callable[..., int],
    batch_size: int,
    max_batches: int,
) -> BatchProgress:
    """Run ``one_batch`` (issue or reclaim) one transaction at a time, each batch that moved
    money with its audit entry, until it reports 0 or ``max_batches`` ran."""
    processed = batches = 0
    done = False
    while batches < max_batches and not done:

        def batch(uow: UnitOfWork) -> int:
            if runtime.settings.operator_dual_control and not control.approved_proposal(
                uow, kind=f"campaign.{step}", target_id=campaign_id
            ):
                raise DualControlRequired(DUAL_CONTROL_TEXT)
            count = one_batch(uow, campaign_id=campaign_id, limit=batch_size)
            if count:
                _log(uow, auth, f"campaign.{step}", campaign_id, f"batch of {count}")
            return count

        count = runtime.db.transact(batch)
        batches += 1
        processed += count
        done = count == 0
    return BatchProgress(
        processed=processed, batches=batches, done=done, campaign=_view(runtime, campaign_id)
    )


@operator_router.post("/v1/operator/campaigns/{campaign_id}/issue", responses=STATE_RESPONSES)
def issue(
    campaign_id: str,
    auth: CurrentOperator,
    runtime: RuntimeDep,
    batch_size: BatchSize = 10_000,
    max_batches: MaxBatches = 10,
) -> BatchProgress:
    """Give winners their red packets, ``batch_size`` per transaction, at most
    ``max_batches`` per call; call again until ``done``. Under dual control, only once
    another operator approved a ``campaign.issue`` proposal (else 409
    ``dual_control_required``)."""
    return _in_batches(
        runtime, auth, campaign_id, "issue", campaigns.issue_batch, batch_size, max_batches
    )


@operator_router.post("/v1/operator/campaigns/{campaign_id}/reclaim", responses=STATE_RESPONSES)
def reclaim(
    campaign_id: str,
    auth: CurrentOperator,
    runtime: RuntimeDep,
    batch_size: BatchSize = 10_000,
    max_batches: MaxBatches = 10,
) -> BatchProgress:
    """After the validity window, return unused balances to the campaign account, in
    batches as :func:`issue`; the campaign ends when all are back."""
    return _in_batches(
        runtime, auth, campaign_id, "reclaim", campaigns.reclaim_batch, batch_size, max_batches
    )


@operator_router.get("/v1/operator/campaigns/{campaign_id}/report", responses=STATE_RESPONSES)
def report(campaign_id: str, _auth: CurrentOperator, runtime: RuntimeDep) -> ReportPublic:
    """The campaign's figures (docs/campaigns.md)."""
    with runtime.db.uow(readonly=True) as uow:
        return ReportPublic.of(reports.report(uow, campaign_id=campaign_id))


@operator_router.get(
    "/v1/operator/campaigns/{campaign_id}/report.csv",
    responses={200: {"content": {"text/csv": {}}}, **STATE_RESPONSES},
    response_class=Response,
)
def report_csv(campaign_id: str, _auth: CurrentOperator, runtime: RuntimeDep) -> Response:
    """The report as CSV: ``section,key,metric,value`` rows (docs/campaigns.md)."""
    with runtime.db.uow(readonly=True) as uow:
        data = reports.report(uow, campaign_id=campaign_id)
    return Response(
        reports.report_csv(data),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{campaign_id}-report.csv"'},
    )


@operator_router.put(
    "/v1/operator/residents/{user_id}/attributes",
    responses={
        403: {"description": "operator_required."},
        404: {"description": "user_not_found."},
        422: {"description": "invalid_attribute."},
    },
)
def set_attributes(
    user_id: str, body: AttributesSet, auth: CurrentOperator, runtime: RuntimeDep
) -> AttributesPublic:
    """Set a resident's attributes (an empty value removes one); written to their audit
    trail with the operator as the actor."""

    def update(uow: UnitOfWork) -> dict[str, str]:
        values = attributes.set_attributes(
            uow, user_id=user_id, values=body.values, source=_actor(auth)
        )
        _log(uow, auth, "resident.attributes", user_id, ", ".join(sorted(body.values)))
        return values

    values = runtime.db.transact(update)
    return AttributesPublic(user_id=user_id, attributes=values)
