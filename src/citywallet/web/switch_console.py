"""The switch's operator console (``/console`` on the switch app): participants with their
positions and headroom (add, change a cap, deactivate), the open settlement window and the
closed windows' reports, failed and expired transfers.

Sign-in is the web layer's (``/login``, the operator role of an account in the switch's own
database; ``citywallet switch operators add PHONE`` creates one). Every action is written to
the operator audit log in the action's own transaction. See docs/interop.md.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from citywallet.identity import audit
from citywallet.interop.switch import registry, windows
from citywallet.interop.switch.service import failed_transfers
from citywallet.platform.db import UnitOfWork
from citywallet.platform.errors import DomainError
from citywallet.web.forms import done, parse_amount
from citywallet.web.i18n import N_
from citywallet.web.operator.shared import actor_of
from citywallet.web.session import FormFields, OperatorDep, Viewer, runtime_of
from citywallet.web.templating import render

router = APIRouter(prefix="/console", include_in_schema=False)
DONE_ADDED = N_("Participant saved.")
DONE_CAP = N_("Net debit cap changed.")
DONE_DEACTIVATED = N_("Participant deactivated.")
DONE_CLOSED = N_("Settlement window closed.")


def _participants_page(
    request: Request,
    errors: dict[str, DomainError] | None = None,
    form: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    with runtime_of(request).db.uow(readonly=True) as uow:
        rows = registry.participants(uow)
    return render(
        request,
        "switch/participants.html",
        {"participants": rows, "field_errors": errors or {}, "form": form or {}},
        status_code=status,
    )


@router.get("")
def participants_page(request: Request, _viewer: OperatorDep) -> Response:
    """Participants, positions and headroom, with the forms that manage them."""
    return _participants_page(request)


def _act(request: Request, viewer: Viewer, action: str, target: str, work: object) -> None:
    def run(uow: UnitOfWork) -> None:
        work(uow)  # type: ignore[operator]
        audit.record(uow, actor=actor_of(viewer), action=action, target_id=target)

    runtime_of(request).db.transact(run)


@router.post("/participants")
def add_participant(request: Request, viewer: OperatorDep, fields: FormFields) -> Response:
    """Register or update a participant."""
    participant_id = fields.get("id", "").strip()
    try:
        cap = parse_amount(fields.get("cap", ""))
        _act(request, viewer, "switch.participant", participant_id or "-",
             lambda uow: registry.add_participant(
                 uow, participant_id=participant_id, name=fields.get("name", ""),
                 public_key=fields.get("public_key", "").strip(),
                 callback_url=fields.get("callback_url", "").strip(), cap=cap,
             ))  # fmt: skip
    except DomainError as exc:
        return _participants_page(request, {"": exc}, dict(fields), status=exc.status)
    return done("/console", DONE_ADDED)


@router.post("/participants/{participant_id}/cap")
def change_cap(
    request: Request, participant_id: str, viewer: OperatorDep, fields: FormFields
) -> Response:
    """Set a participant's net debit cap."""
    try:
        cap = parse_amount(fields.get("cap", ""))
        _act(request, viewer, "switch.cap", participant_id,
             lambda uow: registry.set_cap(uow, participant_id=participant_id, cap=cap))  # fmt: skip
    except DomainError as exc:
        return _participants_page(request, {"": exc}, status=exc.status)
    return done("/console", DONE_CAP)


@router.post("/participants/{participant_id}/deactivate")
def deactivate(
    request: Request, participant_id: str, viewer: OperatorDep, _fields: FormFields
) -> Response:
    """Refuse a participant's new messages."""
    _act(request, viewer, "switch.deactivate", participant_id,
         lambda uow: registry.deactivate(uow, participant_id=participant_id))  # fmt: skip
    return done("/console", DONE_DEACTIVATED)


@router.get("/windows")
def windows_page(request: Request, _viewer: OperatorDep) -> Response:
    """The open window and the closed windows' reports."""
    with runtime_of(request).db.uow(readonly=True) as uow:
        recent = windows.windows(uow, limit=50)
    return render(request, "switch/windows.html", {"windows": recent})


@router.post("/windows/close")
def close_window(request: Request, viewer: OperatorDep, _fields: FormFields) -> Response:
    """Close the open window now (its notices go out through the outbox)."""
    now = datetime.now(UTC)
    with runtime_of(request).db.uow(readonly=True) as uow:
        current = windows.windows(uow, limit=1)
    target = current[0].id if current else "-"
    _act(request, viewer, "switch.close_window", target,
         lambda uow: windows.close_window(uow, now=now))  # fmt: skip
    return done("/console/windows", DONE_CLOSED)


@router.get("/transfers")
def transfers_page(request: Request, _viewer: OperatorDep) -> Response:
    """Aborted and expired transfers, newest first."""
    with runtime_of(request).db.uow(readonly=True) as uow:
        rows = failed_transfers(uow, limit=100)
    return render(request, "switch/transfers.html", {"transfers": rows})


def install(app: FastAPI) -> None:
    """Add the console, the sign-in pages and their static files to the switch's app."""
    from citywallet.api import problems
    from citywallet.web import STATIC, PageMiddleware, common, errors

    problems.install(app)

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/console", status_code=303)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(common.router)
    app.include_router(router)
    errors.install(app)
    app.add_middleware(PageMiddleware)
