"""The audit log: every operator action, newest first, filtered by action, target, operator
and a date range (days in Beijing time), and its CSV export (UTF-8 with a BOM, so Excel
opens it; column headers in the page's language)."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from citywallet.identity import audit
from citywallet.web.i18n import N_, Translations
from citywallet.web.operator.shared import ACTION_LABELS, LABELS, OperatorDep
from citywallet.web.session import runtime_of
from citywallet.web.templating import TIMEZONE, render

router = APIRouter()
GROUPS = ("resident.", "merchant.", "campaign.", "ledger.")
BOM = "\ufeff"
EXPORT_LIMIT = 100_000
CSV_COLUMNS = (
    N_("Time (Beijing)"),
    N_("Operator"),
    N_("Operator's user id"),
    N_("Action"),
    N_("Action code"),
    N_("Target kind"),
    N_("Target id"),
    N_("Reason"),
    N_("Details"),
)


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        return None


def _micros(day: date) -> int:
    start = datetime(day.year, day.month, day.day, tzinfo=TIMEZONE)
    return int(start.timestamp()) * 1_000_000


def _filters(action: str, target: str, actor: str, since: str, until: str) -> dict[str, Any]:
    """The service's filters from the query (unknown actions and unreadable days ignored;
    ``until`` is inclusive: entries before the next day's midnight)."""
    chosen = action if action in ACTION_LABELS or action in GROUPS else ""
    first, last = _day(since), _day(until)
    return {
        "action": chosen or None,
        "target_id": target or None,
        "actor_user_id": actor or None,
        "since": _micros(first) if first else None,
        "until": _micros(last + timedelta(days=1)) if last else None,
    }


@router.get("/audit")
def audit_page(
    request: Request,
    _viewer: OperatorDep,
    action: str = "",
    target: str = "",
    actor: str = "",
    since: str = "",
    until: str = "",
    before: int | None = None,
) -> Response:
    """Entries with their filters; a page of 50 and a link to the next."""
    filters = _filters(action, target, actor, since, until)
    with runtime_of(request).db.uow(readonly=True) as uow:
        entries, next_before = audit.list_entries(uow, before=before, limit=50, **filters)
    return render(
        request,
        "operator/audit.html",
        {
            "entries": entries,
            "next_before": next_before,
            "action": filters["action"] or "",
            "target": target,
            "actor": actor,
            "since": since if _day(since) else "",
            "until": until if _day(until) else "",
            "actions": list(ACTION_LABELS),
            "labels": LABELS,
        },
    )


def audit_csv(entries: list[audit.AuditEntry], tr: Translations) -> str:
    """The entries as CSV text (RFC 4180, CRLF), starting with a BOM."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([tr.gettext(c) for c in CSV_COLUMNS])
    for e in entries:
        moment = datetime.fromtimestamp(e.created_at / 1_000_000, tz=TIMEZONE)
        writer.writerow([
            moment.strftime("%Y-%m-%d %H:%M:%S"),
            e.actor_label,
            e.actor_user_id,
            tr.gettext(ACTION_LABELS.get(e.action, e.action)),
            e.action,
            e.target_kind,
            e.target_id,
            e.reason,
            e.detail,
        ])  # fmt: skip
    return BOM + out.getvalue()


@router.get("/audit.csv")
def audit_export(
    request: Request,
    _viewer: OperatorDep,
    action: str = "",
    target: str = "",
    actor: str = "",
    since: str = "",
    until: str = "",
) -> Response:
    """The filtered entries, oldest first, as a CSV download."""
    filters = _filters(action, target, actor, since, until)
    with runtime_of(request).db.uow(readonly=True) as uow:
        entries = audit.export_entries(uow, limit=EXPORT_LIMIT, **filters)
    name = "audit" + (f"-{since}" if _day(since) else "") + (f"-{until}" if _day(until) else "")
    return Response(
        audit_csv(entries, request.state.tr).encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )
