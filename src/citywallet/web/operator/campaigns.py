"""Campaigns: the list, the new-campaign form (the service's checks, refusals next to their
fields), the steps (fund, open, close, draw, issue, reclaim: each audited in its own
transaction; issue and reclaim run in batches and show their progress), the live dashboard
(figures and SVG charts from :mod:`citywallet.campaign.reports`) and its CSV export."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from citywallet.campaign import reports
from citywallet.campaign import service as campaigns
from citywallet.control import service as control
from citywallet.control.rules import KINDS as DUAL
from citywallet.identity import audit
from citywallet.identity.audit import Actor
from citywallet.merchant import mcc
from citywallet.platform.db import UnitOfWork
from citywallet.platform.errors import DomainError
from citywallet.runtime import Runtime
from citywallet.web.forms import done
from citywallet.web.i18n import N_
from citywallet.web.operator import campaign_form, pickers, proposals
from citywallet.web.operator.charts import bar_chart, column_chart
from citywallet.web.operator.shared import LABELS, OperatorDep, actor_of, not_found
from citywallet.web.session import FormFields, runtime_of
from citywallet.web.templating import render, yuan

router = APIRouter()
BATCH_SIZE = 1_000  # winners or balances per transaction
BATCHES_PER_REQUEST = 5  # then the page shows the progress and a button to go on
STEPS = ("fund", "open", "close", "draw", "issue", "reclaim")
STEP_DONE = {
    "fund": N_("Funding requested."),
    "open": N_("Registration is open."),
    "close": N_("Registration is closed and the list hash is published."),
    "draw": N_("The draw is done and the seed is revealed."),
    "issue": N_("Red packets issued."),
    "reclaim": N_("Unused balances reclaimed."),
}


@router.get("/campaigns")
def campaign_list(request: Request, _viewer: OperatorDep) -> Response:
    """Every campaign, drafts included, newest first."""
    with runtime_of(request).db.uow(readonly=True) as uow:
        views = campaigns.list_campaigns(uow, include_draft=True)
    return render(request, "operator/campaigns.html", {"campaigns": views, "labels": LABELS})


def _new_page(request: Request, form: dict[str, str], errors: dict[str, Any], code: int = 200
              ) -> Response:  # fmt: skip
    with runtime_of(request).db.uow(readonly=True) as uow:
        choices = pickers.options(uow, request.state.tr)
    return render(
        request,
        "operator/campaign_new.html",
        {
            "form": form,
            "field_errors": errors,
            "prize_rows": range(1, campaign_form.PRIZE_ROWS + 1),
            "choices": choices,
        },
        status_code=code,
    )


@router.get("/campaigns/new")
def new_campaign(request: Request, _viewer: OperatorDep) -> Response:
    """The form for a new campaign."""
    return _new_page(request, {"min_tier": "1"}, {})


@router.post("/campaigns")
def create(
    request: Request,
    viewer: OperatorDep,
    fields: FormFields,
    picked: Annotated[dict[str, str], Depends(pickers.picked_lists)],
) -> Response:
    """Create a draft campaign (audited in the same transaction); the pickers' several
    values each arrive as one comma list."""
    fields = {**fields, **picked}
    runtime = runtime_of(request)
    actor = actor_of(viewer)
    try:
        spec = campaign_form.parse_campaign(fields)

        def work(uow: UnitOfWork) -> campaigns.CampaignView:
            view = campaigns.create_campaign(
                uow, spec=spec, actor=actor.ref, encryptor=runtime.encryptor
            )
            audit.record(uow, actor=actor, action="campaign.create", target_id=view.id,
                         detail=f"{view.name}; budget {yuan(view.budget)}")  # fmt: skip
            return view

        view = runtime.db.transact(work)
    except campaign_form.FieldInvalid as exc:
        return _new_page(request, fields, {exc.field: exc}, exc.status)
    except DomainError as exc:
        field = campaign_form.FIELD_OF_CODE.get(exc.code, "")
        return _new_page(request, fields, {field: exc}, exc.status)
    return done(f"/operator/campaigns/{view.id}", N_("The campaign is created as a draft."))


def _dashboard(request: Request, campaign_id: str) -> dict[str, Any]:
    runtime = runtime_of(request)
    with runtime.db.uow(readonly=True) as uow:
        view = campaigns.get_campaign(uow, campaign_id=campaign_id, include_draft=True)
        data = reports.report(uow, campaign_id=campaign_id)
        trail, _ = audit.list_entries(uow, target_id=campaign_id, limit=30)
        pending = control.list_proposals(uow, state="pending", target_id=campaign_id)
    reclaimable = data.issued_amount - data.spent
    return {
        "campaign": view,
        "report": data,
        "trail": trail,
        "pending": pending,
        "kind_labels": proposals.KIND_LABELS,
        "labels": LABELS,
        "issue_progress": (view.issued, view.winners),
        "reclaim_progress": (max(reclaimable - data.outstanding, 0), max(reclaimable, 0)),
        "by_mcc": bar_chart(
            [(mcc.label(b.key, request.state.tr.lang), b.spent) for b in data.by_mcc]
        ),
        "by_district": bar_chart([(b.key, b.spent) for b in data.by_district]),
        "by_resident_district": bar_chart(
            [(d.district or "—", d.registrations) for d in data.by_resident_district]
        ),
        "daily_registrations": column_chart([(d.day, d.registrations) for d in data.daily]),
        "daily_spent": column_chart([(d.day, d.spent) for d in data.daily]),
    }


@router.get("/campaigns/{campaign_id}")
def campaign_page(request: Request, campaign_id: str, _viewer: OperatorDep) -> Response:
    """A campaign's steps and its live dashboard."""
    return render(request, "operator/campaign.html", _dashboard(request, campaign_id))


@router.get("/campaigns/{campaign_id}/report.csv")
def report_csv(request: Request, campaign_id: str, _viewer: OperatorDep) -> Response:
    """The report as CSV (``section,key,metric,value``; docs/campaigns.md)."""
    with runtime_of(request).db.uow(readonly=True) as uow:
        data = reports.report(uow, campaign_id=campaign_id)
    return Response(
        reports.report_csv(data),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{campaign_id}-report.csv"'},
    )


def _batches(runtime: Runtime, campaign_id: str, actor: Actor, step: str) -> int:
    """Issue or reclaim, one batch per transaction (each with its audit entry)."""
    total = 0
    for number in range(BATCHES_PER_REQUEST):

        def batch(uow: UnitOfWork, first: bool = number == 0) -> int:
            if step == "issue":
                count = campaigns.issue_batch(uow, campaign_id=campaign_id, limit=BATCH_SIZE)
            else:
                count = campaigns.reclaim_batch(uow, campaign_id=campaign_id, limit=BATCH_SIZE)
            if count or first:  # the empty batch that only closes the step is not news
                audit.record(uow, actor=actor, action=f"campaign.{step}",
                             target_id=campaign_id, detail=f"batch of {count}")  # fmt: skip
            return count

        count = runtime.db.transact(batch)
        total += count
        if count == 0:
            break
    return total


def _run_step(runtime: Runtime, campaign_id: str, actor: Actor, step: str) -> None:
    if step == "fund":

        def started(uow: UnitOfWork) -> None:
            audit.record(uow, actor=actor, action="campaign.fund", target_id=campaign_id)

        campaigns.fund_campaign(runtime.db, campaign_id=campaign_id, bank=runtime.bank,
                                encryptor=runtime.encryptor, on_start=started)  # fmt: skip
    elif step in ("issue", "reclaim"):
        _batches(runtime, campaign_id, actor, step)
    else:

        def work(uow: UnitOfWork) -> None:
            if step == "open":
                campaigns.open_registration(uow, campaign_id=campaign_id, actor=actor.ref)
            elif step == "close":
                view = campaigns.close_registration(uow, campaign_id=campaign_id, actor=actor.ref)
                detail = f"{view.registrations} registrations; list hash {view.list_hash}"
                audit.record(uow, actor=actor, action="campaign.close", target_id=campaign_id,
                             detail=detail)  # fmt: skip
                return
            else:
                view = campaigns.draw(uow, campaign_id=campaign_id, actor=actor.ref,
                                      encryptor=runtime.encryptor)  # fmt: skip
                detail = f"{view.winners} winners; seed {view.seed}"
                audit.record(uow, actor=actor, action="campaign.draw", target_id=campaign_id,
                             detail=detail)  # fmt: skip
                return
            audit.record(uow, actor=actor, action=f"campaign.{step}", target_id=campaign_id)

        runtime.db.transact(work)


def _dual_control_step(runtime: Runtime, campaign_id: str, actor: Actor, step: str) -> Response:
    """Under dual control: propose the step; an issue or reclaim another operator approved
    goes on with its next batches."""
    kind = f"campaign.{step}"
    if step in ("issue", "reclaim"):
        with runtime.db.uow(readonly=True) as uow:
            approved = control.approved_proposal(uow, kind=kind, target_id=campaign_id)
        if approved is not None:
            control.continue_batches(runtime.db, kind=kind, target_id=campaign_id, actor=actor,
                                     executors=proposals.executors(runtime),
                                     batches=BATCHES_PER_REQUEST)  # fmt: skip
            return done(f"/operator/campaigns/{campaign_id}", STEP_DONE[step])
    return proposals.propose_page(runtime, kind=kind, target_id=campaign_id, actor=actor)


@router.post("/campaigns/{campaign_id}/{step}")
def campaign_step(
    request: Request, campaign_id: str, step: str, viewer: OperatorDep, _fields: FormFields
) -> Response:
    """One step of the campaign's life; a refusal is shown at the top of the page."""
    if step not in STEPS:
        raise not_found()
    runtime = runtime_of(request)
    try:
        if runtime.settings.operator_dual_control and f"campaign.{step}" in DUAL:
            return _dual_control_step(runtime, campaign_id, actor_of(viewer), step)
        _run_step(runtime, campaign_id, actor_of(viewer), step)
    except DomainError as exc:
        if exc.code == "campaign_not_found":
            raise
        context = _dashboard(request, campaign_id)
        context["field_errors"] = {"": exc}
        return render(request, "operator/campaign.html", context, status_code=exc.status)
    return done(f"/operator/campaigns/{campaign_id}", STEP_DONE[step])
