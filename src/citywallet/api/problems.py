"""RFC 9457 problem+json responses with stable machine codes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from citywallet.platform import metrics
from citywallet.platform.db import is_unavailable
from citywallet.platform.errors import (
    PROBLEM_MEMBERS,
    DatabaseUnavailable,
    DomainError,
    RateLimited,
)
from citywallet.platform.logging import get_logger

PROBLEM_TYPE_BASE = "https://citywallet.dev/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"
log = get_logger("citywallet.api")


class Problem(BaseModel):
    """An RFC 9457 problem: every error answer of the API has this shape."""

    model_config = ConfigDict(extra="allow")  # an error's own data (``retry_after`` …)

    type: str = Field(description="A URI naming the problem type (ends in ``code``).")
    title: str
    status: int = Field(ge=400, le=599)
    detail: str
    code: str = Field(description="Stable machine code; switch on this, never on ``detail``.")
    instance: str | None = Field(default=None, description="The request path.")
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="validation_failed: each invalid field (loc, msg, type)."
    )


PROBLEM_SCHEMA_REF = {"$ref": "#/components/schemas/Problem"}
_REASONS = {
    400: "Bad request (e.g. idempotency_key_required).",
    401: "Missing or bad credentials (unauthorized, or the signature's code).",
    402: "Payment declined (the reason is in ``reason``).",
    403: "Not allowed (csrf_failed, operator_required, account_frozen, pin_incorrect …).",
    404: "Unknown, or another user's object (``*_not_found``).",
    405: "Method not allowed (see ``Allow``).",
    409: "Conflicts with the current state (the ``code`` says which).",
    413: "Request body too large.",
    422: "Invalid input (validation_failed with ``errors``, or a rule's own code).",
    423: "Payment PIN locked (see ``Retry-After``).",
    429: "Too many attempts (see ``Retry-After``).",
    503: "A service this needs did not answer (see ``Retry-After``).",
}
_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries for what a route answers beyond what ``_implied_statuses``
    derives for it (409, 429, 503 …); each is documented as problem+json."""
    return {s: {"model": Problem, "description": _REASONS.get(s, "Refused.")} for s in statuses}


def _body_fields(operation: dict[str, Any], schemas: dict[str, Any]) -> set[str]:
    content = operation.get("requestBody", {}).get("content", {})
    fields: set[str] = set()
    for media in content.values():
        schema = media.get("schema", {})
        ref = schema.get("$ref", "")
        if ref.startswith("#/components/schemas/"):
            schema = schemas.get(ref.rsplit("/", 1)[-1], {})
        fields |= set(schema.get("properties", {}))
    return fields


def _implied_statuses(operation: dict[str, Any], schemas: dict[str, Any]) -> set[int]:
    """What any operation like this can answer, whatever it does (one rule for all)."""
    implied: set[int] = set()
    parameters = operation.get("parameters", [])
    names = {p.get("name", "").lower() for p in parameters}
    if parameters or "requestBody" in operation:
        implied.add(422)
    if "requestBody" in operation:
        implied.add(400)  # a body that is not even text in its declared encoding
    schemes = {name for entry in operation.get("security", []) for name in entry}
    if schemes:
        implied.add(401)  # no or ended session, a bad signature
    if "session" in schemes:
        implied.add(403)  # csrf_failed, account_frozen, operator_required …
    if any(p.get("in") == "path" for p in parameters):
        implied.add(404)
    if "idempotency-key" in names:
        implied |= {400, 409, 422}  # missing or malformed key; in progress; reused
    if "pin" in _body_fields(operation, schemas):
        implied |= {403, 409, 423}  # pin_incorrect, pin_not_set, pin_locked
    return implied


def _document(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document, with every error answer documented as problem+json."""
    if app.openapi_schema:
        return app.openapi_schema
    document = get_openapi(
        title=app.title,
        version=app.version,
        openapi_version=app.openapi_version,
        description=app.description,
        routes=app.routes,
    )
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            answered = operation.setdefault("responses", {})
            for status in sorted(_implied_statuses(operation, schemas)):
                answered.setdefault(str(status), {"description": _REASONS[status]})
            for status, response in answered.items():
                if status.isdigit() and int(status) >= 400:
                    response["content"] = {PROBLEM_MEDIA_TYPE: {"schema": PROBLEM_SCHEMA_REF}}
                    if int(status) in (423, 429, 503):
                        response.setdefault("headers", _RETRY_AFTER)
    app.openapi_schema = document
    return document


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
    if status < 500:
        metrics.REFUSALS.labels(code).inc()
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
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=sent)


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    extra = dict(exc.extra)
    if isinstance(exc, RateLimited | DatabaseUnavailable):
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
    code = {
        400: "bad_request",
        401: "unauthorized",
        404: "not_found",
        405: "method_not_allowed",
    }.get(exc.status_code, f"http_{exc.status_code}")
    headers = dict(exc.headers or {})  # Starlette's own headers survive the mapping
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(allowed_methods(request))
    return problem(
        exc.status_code,
        code,
        str(exc.detail),
        str(exc.detail),
        instance=request.url.path,
        headers=headers,
    )


def allowed_methods(request: Request) -> list[str]:
    """Every method some route offers at this path (Starlette's ``Allow`` names only the
    first route's, so ``DELETE /login`` would say ``GET`` though ``POST`` works too)."""
    routes = request.app.router.routes
    return [
        method
        for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
        if any(r.matches({**request.scope, "method": method})[0] == Match.FULL for r in routes)
    ]


def database_trouble(exc: Exception) -> DatabaseUnavailable | None:
    """The 503 to answer for a database that is unreachable or read-only (logged here,
    once, as a warning: no traceback, it is not a bug), or ``None`` for any other error."""
    if not isinstance(exc, DBAPIError) or not is_unavailable(exc):
        return None
    log.warning("database_unavailable", error=type(exc.orig).__name__)
    return DatabaseUnavailable("The database is not reachable just now; try again shortly.")


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    unavailable = database_trouble(exc)
    if unavailable is None:
        return await _unexpected(request, exc)
    return await _domain_error(request, unavailable)


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
    """Map every error to problem+json, never leaking a stack trace; document them all."""
    app.openapi = lambda: _document(app)  # type: ignore[method-assign]
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(Exception, _unexpected)
