"""Residents' privacy pages: the service agreement and privacy policy (public), consents
per purpose (give or withdraw the optional ones), "download my data" (JSON, CSV), and the
history as a CSV statement for Excel.

Each page calls the same use cases as ``api/privacy.py`` (docs/web-app.md, "Privacy")."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache

from fastapi import APIRouter, Request
from fastapi.responses import Response
from markdown_it import MarkdownIt
from markupsafe import Markup

from citywallet.identity import consent
from citywallet.platform import csvfile
from citywallet.platform.db import UnitOfWork
from citywallet.platform.errors import DomainError, NotFound
from citywallet.wallet import mydata, spending
from citywallet.wallet import service as wallet
from citywallet.wallet.rules import CHINA
from citywallet.web.app.money import KIND_LABELS, STATUS_LABELS
from citywallet.web.forms import done
from citywallet.web.i18n import N_, Translations
from citywallet.web.localized import counterparty
from citywallet.web.session import FormFields, ViewerDep, runtime_of
from citywallet.web.templating import render

router = APIRouter(prefix="/app", include_in_schema=False)

PURPOSE_LABELS = {
    "wallet": N_("The wallet itself"),
    "offers": N_("Personalised offers"),
    "merchant_sharing": N_("Sharing with merchants"),
}
PURPOSE_HINTS = {
    "wallet": N_(
        "Opening and running your wallet: real name, payments, transfers, risk control and "
        "the records the law requires. Needed for the wallet to work."
    ),
    "offers": N_("Campaigns and coupons suggested from what you spend, by category and merchant."),
    "merchant_sharing": N_(
        "Your masked mobile number and name go to merchants you pay, for points and "
        "after-sales service."
    ),
}
DOCUMENT_LABELS = {
    "service_agreement": N_("Service agreement"),
    "privacy_policy": N_("Privacy policy"),
}
SOURCE_LABELS = {"signup": N_("Sign-up"), "settings": N_("Settings"), "api": N_("App (API)")}
DONE = {
    "granted": N_("Your consent is recorded."),
    "withdrawn": N_("Your consent is withdrawn."),
}
HISTORY_COLUMNS = (
    ("time", "Time", "时间"),
    ("id", "Transaction id", "交易编号"),
    ("kind", "Kind", "类型"),
    ("direction", "In/out", "收支"),
    ("amount", "Amount (yuan)", "金额（元）"),
    ("fee", "Fee (yuan)", "手续费（元）"),
    ("status", "Status", "状态"),
    ("counterparty", "Counterparty", "对方"),
    ("note", "Note", "备注"),
)


@cache
def _markdown() -> MarkdownIt:
    # "js-default": CommonMark with tables, raw HTML off (the files are ours, still escaped)
    return MarkdownIt("js-default")


@cache
def _document_html(name: str, lang: str, version: str) -> str:
    return str(_markdown().render(consent.document(name, lang, version).text))


# --- the documents (public) ---------------------------------------------------------------


@router.get("/legal/{name}")
def legal_document(request: Request, name: str, version: str = "") -> Response:
    """The service agreement or the privacy policy in the page's language (``version``: an
    older one); public, so it can be read before signing up."""
    if name not in consent.DOCUMENTS:
        raise NotFound("No such document.", code="document_not_found")
    tr: Translations = request.state.tr
    doc = consent.document(name, tr.lang, version[:16] or None)
    return render(
        request,
        "app/legal.html",
        {
            "doc": doc,
            "body": Markup(_document_html(name, tr.lang, doc.version)),  # noqa: S704 — markdown-it escapes
            "versions": consent.versions(name),
            "document_labels": DOCUMENT_LABELS,
        },
    )


# --- consents -----------------------------------------------------------------------------


def _privacy_page(
    request: Request, user_id: str, errors: dict[str, DomainError] | None = None, status: int = 200
) -> Response:
    runtime = runtime_of(request)
    with runtime.db.uow(readonly=True) as uow:
        items = consent.list_consents(uow, user_id=user_id)
        history = consent.consent_history(uow, user_id=user_id)
    return render(
        request,
        "app/privacy.html",
        {
            "items": items,
            "history": list(reversed(history)),
            "current": consent.current_versions(),
            "purpose_labels": PURPOSE_LABELS,
            "purpose_hints": PURPOSE_HINTS,
            "document_labels": DOCUMENT_LABELS,
            "source_labels": SOURCE_LABELS,
            "field_errors": errors or {},
        },
        status_code=status,
    )


@router.get("/me/privacy")
def privacy_page(request: Request, who: ViewerDep) -> Response:
    """Each purpose's consent, with the versions and time; the optional ones can be given or
    withdrawn; the history of every change."""
    return _privacy_page(request, who.user_id)


@router.post("/me/privacy/{purpose}")
def update_consent(request: Request, purpose: str, who: ViewerDep, fields: FormFields) -> Response:
    """Give (``granted=1``) or withdraw (``granted=0``) an optional purpose."""
    granted = fields.get("granted", "") == "1"

    def work(uow: UnitOfWork) -> consent.ConsentView:
        return consent.set_consent(
            uow, user_id=who.user_id, purpose=purpose, granted=granted, source="settings"
        )

    try:
        runtime_of(request).db.transact(work)
    except DomainError as exc:
        if exc.status == 404:
            raise
        return _privacy_page(request, who.user_id, {"": exc}, exc.status)
    return done("/app/me/privacy", DONE["granted" if granted else "withdrawn"])


# --- download my data ---------------------------------------------------------------------


@router.get("/me/data")
def data_page(request: Request, _who: ViewerDep) -> Response:
    """What "download my data" contains, and the downloads."""
    return render(request, "app/mydata.html", {})


def _export(request: Request, user_id: str) -> mydata.MyData:
    runtime = runtime_of(request)
    with runtime.db.uow(readonly=True) as uow:
        return mydata.export(uow, user_id=user_id, thresholds=runtime.settings.tier_checks)


@router.get("/me/data.json")
def data_json(request: Request, who: ViewerDep) -> Response:
    """The signed-in resident's data as JSON."""
    return Response(
        mydata.to_json(_export(request, who.user_id)),
        media_type="application/json",
        headers={"Content-Disposition": 'attachment; filename="citywallet-my-data.json"'},
    )


@router.get("/me/data.csv")
def data_csv(request: Request, who: ViewerDep, headers: str = "") -> Response:
    """The signed-in resident's data as CSV (UTF-8 BOM; ``?headers=zh``: Chinese headers)."""
    return Response(
        mydata.to_csv(_export(request, who.user_id), headers=csvfile.header_lang(headers)),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="citywallet-my-data.csv"'},
    )


# --- the history as a statement -----------------------------------------------------------


@router.get("/history.csv")
def history_csv(request: Request, who: ViewerDep, month: str = "", headers: str = "") -> Response:
    """A month's history (or all of it) as a CSV statement for Excel: UTF-8 BOM, English or
    (``?headers=zh``) Chinese headers and kinds."""
    tr: Translations = request.state.tr
    lang = csvfile.header_lang(headers)
    since = until = None
    if month:
        since, until = spending.month_bounds(month[:7])
    runtime = runtime_of(request)
    lines: list[list[str]] = []
    cursor: str | None = None
    with runtime.db.uow(readonly=True) as uow:
        while True:
            page = wallet.list_history(
                uow, user_id=who.user_id, since=since, until=until, cursor=cursor, limit=100
            )
            lines.extend(_history_row(tx, tr if lang == "zh" else None) for tx in page.items)
            cursor = page.next_cursor
            if cursor is None:
                break
    text = csvfile.write(csvfile.headers(HISTORY_COLUMNS, lang), lines, bom=True)
    name = f"citywallet-history-{month[:7] or 'all'}.csv"
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _history_row(tx: wallet.ActivityView, tr: Translations | None) -> list[str]:
    moment = datetime.fromtimestamp(tx.created_at / 1_000_000, UTC).astimezone(CHINA)
    kind, status, direction = tx.kind, tx.status, tx.direction
    if tr is not None:
        kind = tr.gettext(KIND_LABELS.get(kind, kind))
        status = tr.gettext(STATUS_LABELS.get(status, status))
        direction = "收入" if direction == "in" else "支出"
    return [
        moment.isoformat(timespec="seconds"),
        tx.id,
        kind,
        direction,
        f"{tx.amount // 100}.{tx.amount % 100:02d}",
        f"{tx.fee // 100}.{tx.fee % 100:02d}",
        status,
        counterparty(tx.counterparty_label, "zh_CN" if tr is not None else "en"),
        tx.note,
    ]
