"""RFC 9457 problem+json responses with stable machine codes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from citywallet.platform.errors import PROBLEM_MEMBERS, DomainError, RateLimited
from citywallet.platform.logging import get_logger

PROBLEM_TYPE_BASE = "https://citywallet.dev/problems/"
log = get_logger("citywallet.api")


def problem(
    status: int,
    code: str,
    title: str,
    detail: str,
    *,
    instance: str | None = None,
    extra: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """A problem+json response; ``code`` is the stable identifier clients switch on.

    ``extra`` members sit beside the standard ones and may not replace any of them
    (``TypeError``); a ``retry_after`` extra is also sent as the ``Retry-After`` header.
    """
    extra = dict(extra or {})
    taken = PROBLEM_MEMBERS.difference({"errors"}).intersection(extra)
    if taken:
        raise TypeError(f"extra members may not be named {', '.join(sorted(taken))}")
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if instance:
        body["instance"] = instance
    body.update(extra)
    sent = dict(headers or {})
    if "retry_after" in extra:
        sent["Retry-After"] = str(extra["retry_after"])
    return JSONResponse(
        body, status_code=status, media_type="application/problem+json", headers=sent
    )


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    extra = dict(exc.extra)
    if isinstance(exc, RateLimited):
        extra["retry_after"] = exc.retry_after
    return problem(
        exc.status, exc.code, exc.title, exc.detail, instance=request.url.path, extra=extra
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]
    return problem(
        422,
        "validation_failed",
        "Invalid request",
        "The request body or parameters are not valid.",
        instance=request.url.path,
        extra={"errors": errors},
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized"}.get(
        exc.status_code, f"http_{exc.status_code}"
    )
    # Starlette's own headers must survive the mapping: a 405 carries ``Allow``.
    return problem(
        exc.status_code,
        code,
        str(exc.detail),
        str(exc.detail),
        instance=request.url.path,
        headers=exc.headers,
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled_error", path=request.url.path, error=repr(exc))
    return problem(
        500,
        "internal_error",
        "Internal error",
        "Something went wrong on our side; nothing was changed.",
        instance=request.url.path,
    )


def install(app: FastAPI) -> None:
    """Map every error to problem+json; never leak a stack trace."""
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
