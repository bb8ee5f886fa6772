"""Errors on pages: a page never shows a stack trace. Requests for pages (``/app``,
``/merchant``, ``/operator``, ``/login`` …) get an HTML error page in their language; every
other request keeps the API's problem+json answer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import RedirectResponse, Response

from citywallet.api.problems import allowed_methods, database_trouble
from citywallet.platform.errors import DomainError
from citywallet.platform.logging import get_logger
from citywallet.web.i18n import translations
from citywallet.web.session import LoginRequired, login_redirect
from citywallet.web.templating import render

log = get_logger("citywallet.web")
PAGE_PREFIXES = (
    "/app",
    "/merchant",
    "/operator",
    "/console",
    "/login",
    "/logout",
    "/signup",
    "/lang",
)
Handler = Callable[[Request, Exception], Awaitable[Response]]


def is_page(request: Request) -> bool:
    return is_page_path(request.url.path)


def is_page_path(path: str) -> bool:
    """Whether ``path`` is one of the pages' (an HTML answer) rather than the API's."""
    return path == "/" or any(
        path == prefix or path.startswith(prefix + "/") for prefix in PAGE_PREFIXES
    )


def _page(
    request: Request,
    status: int,
    code: str,
    detail: str,
    headers: Mapping[str, str] | None = None,
) -> Response:
    if not hasattr(request.state, "tr"):
        request.state.tr = translations("zh_CN")
    return render(
        request,
        "common/error.html",
        {"status": status, "code": code, "detail": detail},
        status_code=status,
        headers=dict(headers or {}),
    )


PAGE_HANDLED = (DomainError, RequestValidationError, StarletteHTTPException, DBAPIError, Exception)


def install(app: FastAPI) -> None:
    """Wrap the API's exception handlers: pages get pages."""
    api: dict[type[Exception], Handler] = {
        kind: cast(Handler, app.exception_handlers[kind])
        for kind in PAGE_HANDLED
        if kind in app.exception_handlers
    }

    async def login_required(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, LoginRequired)
        elsewhere = getattr(exc, "redirect_to", None)  # e.g. the operator's second factor
        if elsewhere:
            return RedirectResponse(elsewhere, status_code=303)
        return login_redirect(exc.next_url)

    def wrap(kind: type[Exception]) -> Handler:
        fallback = api[kind]

        async def handler(request: Request, exc: Exception) -> Response:
            if not is_page(request):
                return await fallback(request, exc)
            if isinstance(exc, DomainError):
                return _page(request, exc.status, exc.code, exc.detail)
            if isinstance(exc, StarletteHTTPException):
                headers = dict(exc.headers or {})  # as on the API: a 405 names every method
                if exc.status_code == 405:
                    headers["Allow"] = ", ".join(allowed_methods(request))
                return _page(request, exc.status_code, f"http_{exc.status_code}", "", headers)
            if isinstance(exc, RequestValidationError):
                return _page(request, 422, "validation_failed", "")
            unavailable = database_trouble(exc)
            if unavailable is not None:
                retry = {"Retry-After": str(unavailable.retry_after)}
                return _page(request, 503, unavailable.code, unavailable.detail, retry)
            log.error("page_error", path=request.url.path, error=repr(exc))
            return _page(request, 500, "internal_error", "")

        return handler

    app.add_exception_handler(LoginRequired, login_required)
    for kind in api:
        app.add_exception_handler(kind, wrap(kind))
