"""Rendering pages: one Jinja2 environment, the filters every page uses, and
:func:`render`, which gives each template the request's language, CSRF token and viewer.

Money is always shown as ``¥1,234.56`` (:class:`citywallet.money.Money`); times in the
platform's business time zone, in the page's language (Babel)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime
from babel.numbers import format_percent
from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from citywallet.money import Money
from citywallet.web import localized
from citywallet.web.i18n import LABELS, LANGUAGES, Translations

TIMEZONE = ZoneInfo("Asia/Shanghai")


def money(amount: int | None, currency: str = "CNY") -> str:
    """Fen as ``¥1,234.56`` (``—`` for nothing)."""
    return "—" if amount is None else Money(int(amount), currency).format()


def yuan(amount: int | None) -> str:
    """Fen as a plain decimal for a form field (``1234.56``)."""
    return "" if amount is None else Money(int(amount)).format(symbol=False).replace(",", "")


def _moment(value: int | datetime) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(TIMEZONE)
    return datetime.fromtimestamp(value / 1_000_000, UTC).astimezone(TIMEZONE)


def _env() -> Environment:
    env = Environment(
        loader=PackageLoader("citywallet.web", "templates"),
        autoescape=select_autoescape(default=True),
        undefined=StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["money"] = money
    env.filters["yuan"] = yuan
    return env


ENV = _env()


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """The page ``template`` for this request, in its language."""
    tr: Translations = request.state.tr
    locale = tr.locale

    def when(value: int | datetime | None, fmt: str = "medium") -> str:
        return "—" if value is None else format_datetime(_moment(value), fmt, locale=locale)

    def day(value: int | datetime | None, fmt: str = "medium") -> str:
        return "—" if value is None else format_date(_moment(value), fmt, locale=locale)

    def percent(value: float) -> str:
        return format_percent(value, "#,##0.0%", locale=locale)

    values: dict[str, Any] = {
        "request": request,
        "lang": tr.lang,
        "html_lang": tr.html_lang,
        "languages": [(code, LABELS[code]) for code in LANGUAGES],
        "csrf_token": getattr(request.state, "csrf_token", ""),
        "viewer": getattr(request.state, "viewer", None),
        "when": when,
        "day": day,
        "percent": percent,
        "error_text": tr.error,
        "field_errors": {},
        "form": {},
        "flash": request.query_params.get("done", ""),
        **localized.helpers(tr),
    }
    values.update(context or {})
    page = ENV.get_template(template)
    # jinja2.ext.i18n: the request's language for this rendering only
    body = page.render(
        values,
        _=tr.gettext,
        gettext=tr.gettext,
        ngettext=tr.ngettext,
    )
    return HTMLResponse(body, status_code=status_code, headers=headers)
