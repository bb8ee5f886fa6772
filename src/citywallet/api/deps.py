"""Dependencies shared by the routers (Annotated aliases, as in full-stack-fastapi-template)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BeforeValidator
from starlette.concurrency import run_in_threadpool

from citywallet.identity import attributes, sessions
from citywallet.identity.session_cache import SessionCache
from citywallet.platform.errors import Forbidden, Unauthorized
from citywallet.runtime import Runtime

SESSION_COOKIE = "cw_session"
CSRF_COOKIE = "cw_csrf"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FORM_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def get_runtime(request: Request) -> Runtime:
    """The runtime the app was built with (async: no worker thread for a lookup)."""
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]

_ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _iso_day(value: object) -> object:
    # pydantic reads "0" or "1700000000" as a Unix time; a day in a URL is YYYY-MM-DD only.
    if isinstance(value, str) and _ISO_DAY.fullmatch(value):
        return value
    raise ValueError("a day is written YYYY-MM-DD")


Day = Annotated[date, BeforeValidator(_iso_day)]


def client_ip(request: Request) -> str:
    """The caller's address: the TCP peer's, or ``X-Forwarded-For`` when the peer is one of
    ``CITYWALLET_TRUSTED_PROXIES`` (uvicorn's proxy headers, set up by ``citywallet serve``)."""
    return request.client.host if request.client else ""


@dataclass(frozen=True)
class AuthContext:
    """Who is calling, and how they proved it."""

    user_id: str
    session_id: str
    via_cookie: bool


async def _csrf_form_field(request: Request) -> str | None:
    """The ``csrf_token`` field of a form post (pages), if there is one."""
    if request.method in SAFE_METHODS:
        return None
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        return None
    value = (await request.form()).get(CSRF_FORM_FIELD)
    return value if isinstance(value, str) else None


# Names the scheme in the OpenAPI document (each operation lists who may call it);
# ``current_user`` reads the header itself, so this never refuses anything on its own.
BEARER = HTTPBearer(
    scheme_name="session",
    description="A session token from POST /v1/auth/login (pages use the session cookie).",
    auto_error=False,
)


async def current_user(
    request: Request,
    runtime: RuntimeDep,
    form_csrf: Annotated[str | None, Depends(_csrf_form_field)],
    _documented: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)] = None,
) -> AuthContext:
    """Authenticate by ``Authorization: Bearer <token>`` or the session cookie.

    Cookie sessions must echo their CSRF token (header ``X-CSRF-Token`` or form field
    ``csrf_token``) on unsafe methods; browsers attach cookies to cross-site requests,
    never an Authorization header, so bearer requests need no such check.

    A session this process looked up in the last ``session_cache_seconds`` is answered from
    its cache without any SQL or worker thread (docs/security.md, "Session cache").
    """
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("Use 'Authorization: Bearer <token>'.")
        token, via_cookie = token.strip(), False
    else:
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie:
            raise Unauthorized("Sign in first.")
        token, via_cookie = cookie, True
    cache = session_cache_of(runtime)
    found = sessions.cached(cache, token=token)
    if found is None:
        found = await run_in_threadpool(sessions.look_up, runtime.db, cache, token=token)
    if found is None or found.kind != ("cookie" if via_cookie else "bearer"):
        raise Unauthorized("The session has ended or is not valid; sign in again.")
    if via_cookie and request.method not in SAFE_METHODS:
        candidate = request.headers.get(CSRF_HEADER) or form_csrf
        if not sessions.csrf_matches(token, candidate):
            raise Forbidden(
                f"Missing or wrong CSRF token: send the {CSRF_HEADER} header.", code="csrf_failed"
            )
    if found.needs_touch:
        await run_in_threadpool(sessions.record_use, runtime.db, cache, token=token, found=found)
    return AuthContext(found.user_id, found.session_id, via_cookie)


def session_cache_of(runtime: Runtime) -> SessionCache:
    """This process's session cache for the runtime's database."""
    settings = runtime.settings
    return sessions.session_cache(
        runtime.db,
        ttl_seconds=settings.session_cache_seconds,
        max_entries=settings.session_cache_size,
    )


CurrentUser = Annotated[AuthContext, Depends(current_user)]


def current_operator(auth: CurrentUser, runtime: RuntimeDep) -> AuthContext:
    """A signed-in account that holds the operator role (else 403 ``operator_required``)."""
    with runtime.db.uow(readonly=True) as uow:
        allowed = attributes.is_operator(uow, user_id=auth.user_id)
    if not allowed:
        raise Forbidden("This needs an operator account.", code="operator_required")
    return auth


CurrentOperator = Annotated[AuthContext, Depends(current_operator)]
