"""Who is looking at a page, and CSRF protection for its forms.

Pages use the API's cookie session (``cw_session``, HttpOnly, SameSite=Lax, Secure when the
settings say the site is served over TLS). Every form posts a ``csrf_token`` field:

- signed in: the session's own token (:func:`citywallet.identity.sessions.csrf_token_for`),
  and only that one;
- signed out (log in, sign up): the ``cw_form`` cookie holds a random per-browser value and
  the form's token is a keyed hash of it under a server key (a signed double submit), so
  whoever can plant a cookie still cannot make a token that matches it.

Before the token, a form posted from another site is refused by what the browser says of
the request's origin (:func:`refuse_cross_site`). :func:`viewer` answers ``None`` when
nobody is signed in; :func:`require_viewer` sends the visitor to the log-in page and back
(``next``). A refused POST answers 403 ``csrf_failed`` and changes nothing. docs/security.md
("CSRF") explains the choices.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from citywallet.api.deps import (
    CSRF_COOKIE,
    CSRF_FORM_FIELD,
    SAFE_METHODS,
    SESSION_COOKIE,
    session_cache_of,
)
from citywallet.identity import attributes, sessions
from citywallet.identity import service as identity
from citywallet.identity.errors import AccountClosed, AccountFrozen
from citywallet.platform.errors import DomainError, Forbidden
from citywallet.runtime import Runtime

FORM_COOKIE = "cw_form"
FORM_HASH_PURPOSE = "web-form-csrf"


@dataclass(frozen=True)
class Viewer:
    """The signed-in resident looking at a page."""

    user_id: str
    session_id: str
    phone_masked: str
    status: str
    tier: int
    real_name_verified: bool
    name_masked: str | None
    operator: bool


class LoginRequired(Exception):
    """Raised by :func:`require_viewer`; answered with a redirect to the log-in page."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def viewer(request: Request) -> Viewer | None:
    """The resident signed in with the session cookie, or ``None``."""
    if hasattr(request.state, "viewer_checked"):
        found: Viewer | None = request.state.viewer
        return found
    request.state.viewer_checked = True
    request.state.viewer = None
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    runtime = runtime_of(request)
    cache = session_cache_of(runtime)  # the API's: one revocation drops both
    try:
        auth = sessions.cached(cache, token=token) or sessions.look_up(
            runtime.db, cache, token=token
        )
        if auth is None or auth.kind != "cookie":
            return None
        with runtime.db.uow(readonly=True) as uow:
            user = identity.get_user(uow, user_id=auth.user_id)
            operator = attributes.is_operator(uow, user_id=auth.user_id)
    except (AccountFrozen, AccountClosed):
        return None
    if user.status in ("frozen", "closed", "moved"):
        return None  # frozen or closed in another process within the cache's lifetime
    if auth.needs_touch:
        sessions.record_use(runtime.db, cache, token=token, found=auth)
    found = Viewer(
        user_id=user.id,
        session_id=auth.session_id,
        phone_masked=user.phone_masked,
        status=user.status,
        tier=user.tier,
        real_name_verified=user.real_name_verified,
        name_masked=user.name_masked,
        operator=operator,
    )
    request.state.viewer = found
    request.state.csrf_token = sessions.csrf_token_for(token)
    return found


def require_viewer(request: Request) -> Viewer:
    """The signed-in resident; else off to the log-in page (and back here after)."""
    found = viewer(request)
    if found is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(target)
    return found


def require_operator(request: Request) -> Viewer:
    """A signed-in operator (else 403 ``operator_required``)."""
    found = require_viewer(request)
    if not found.operator:
        raise Forbidden("This needs an operator account.", code="operator_required")
    return found


def login_redirect(next_url: str) -> RedirectResponse:
    return RedirectResponse(f"/login?next={quote(safe_next(next_url))}", status_code=303)


def safe_next(target: str | None, default: str = "/app") -> str:
    """Only a path on this site (no ``//evil.example`` or ``https://…``)."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return default
    return target


def signed_form_token(request: Request, nonce: str) -> str:
    """The signed-out form token for the ``cw_form`` value ``nonce`` (keyed by the server)."""
    _kid, digest = runtime_of(request).encryptor.keyed_hash(FORM_HASH_PURPOSE, nonce)
    return digest


def form_token(request: Request) -> str:
    """The CSRF token for a signed-out form (a new ``cw_form`` value if the visitor has none)."""
    nonce = request.cookies.get(FORM_COOKIE) or getattr(request.state, "new_form_nonce", None)
    if not nonce:
        nonce = secrets.token_urlsafe(24)
        request.state.new_form_nonce = nonce
    token = signed_form_token(request, nonce)
    request.state.csrf_token = token
    return token


def keep_form_token(request: Request, response: Response) -> Response:
    """Set the ``cw_form`` cookie if :func:`form_token` made one for this response."""
    nonce = getattr(request.state, "new_form_nonce", None)
    if nonce:
        response.set_cookie(
            FORM_COOKIE, nonce, httponly=True, samesite="strict", path="/",
            secure=runtime_of(request).settings.session_cookie_secure,
        )  # fmt: skip
    return response


class CsrfFailed(Forbidden):
    code = "csrf_failed"
    title = "Form expired"


# Sec-Fetch-Site values of a request this site's own pages made (``none``: typed or bookmarked).
SAME_ORIGIN_FETCH = frozenset({"same-origin", "none"})


def refuse_cross_site(request: Request) -> None:
    """Refuse an unsafe request another site made (403 ``csrf_failed``), a second line
    behind the token: browsers say where a request comes from in ``Sec-Fetch-Site`` or,
    older ones, ``Origin`` (checked against ``Host``); with neither, the token decides."""
    if request.method in SAFE_METHODS:
        return
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        if fetch_site.lower() not in SAME_ORIGIN_FETCH:
            raise CsrfFailed("This form was sent from another site.")
        return
    origin = request.headers.get("origin")
    if origin is None:
        return
    host = request.headers.get("host", "")
    if origin == "null" or urlsplit(origin).netloc.lower() != host.lower():
        raise CsrfFailed("This form was sent from another site.")


def expected_csrf_token(request: Request) -> str:
    """The token this visitor's forms must carry: the session's when signed in (a
    signed-out form's token never counts then), else the signed ``cw_form`` token."""
    session = request.cookies.get(SESSION_COOKIE)
    if session and viewer(request) is not None:
        return sessions.csrf_token_for(session)
    nonce = request.cookies.get(FORM_COOKIE)
    return signed_form_token(request, nonce) if nonce else ""


async def check_csrf(request: Request) -> dict[str, str]:
    """The posted form's fields, after checking where it comes from and its CSRF token
    (403 ``csrf_failed``)."""
    refuse_cross_site(request)
    form = await request.form()
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    sent = fields.pop(CSRF_FORM_FIELD, "")
    # Who is signed in may need the database: on a worker thread, never the event loop.
    expected = await run_in_threadpool(expected_csrf_token, request)
    if not sent or not expected or not hmac.compare_digest(sent, expected):
        raise CsrfFailed("This form has expired: reload the page and try again.")
    return fields


def sign_in_cookies(request: Request, response: Response, issued: sessions.IssuedSession) -> None:
    """Set the session cookies of a page log-in (as ``POST /v1/auth/login`` does)."""
    settings = runtime_of(request).settings
    max_age = settings.session_ttl_seconds
    response.set_cookie(
        SESSION_COOKIE, issued.token, max_age=max_age, httponly=True,
        secure=settings.session_cookie_secure, samesite="lax", path="/",
    )  # fmt: skip
    response.set_cookie(
        CSRF_COOKIE, issued.csrf_token, max_age=max_age, httponly=False,
        secure=settings.session_cookie_secure, samesite="strict", path="/",
    )  # fmt: skip
    response.delete_cookie(FORM_COOKIE, path="/")


def sign_out_cookies(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")


ViewerDep = Annotated[Viewer, Depends(require_viewer)]
OperatorDep = Annotated[Viewer, Depends(require_operator)]
FormFields = Annotated[dict[str, str], Depends(check_csrf)]


def field_errors(exc: DomainError, fields: dict[str, str]) -> dict[str, DomainError]:
    """Where a refusal is shown on its form: ``fields`` maps error codes to field names;
    any other refusal goes at the top of the form (key ``""``). Templates show it with
    ``forms.field`` / ``forms.form_error`` in the page's language."""
    return {fields.get(exc.code, ""): exc}
