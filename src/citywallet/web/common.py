"""Pages shared by the three apps: log in and out (one account for all three: a merchant
is a resident who owns a business, an operator a resident with the operator role) and the
language switch."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from citywallet.identity import service as identity
from citywallet.identity import sessions
from citywallet.platform.errors import DomainError
from citywallet.web.i18n import LANG_COOKIE, LANGUAGES
from citywallet.web.session import (
    FormFields,
    form_token,
    keep_form_token,
    runtime_of,
    safe_next,
    sign_in_cookies,
    sign_out_cookies,
    viewer,
)
from citywallet.web.templating import render

router = APIRouter(include_in_schema=False)
LOGIN_FIELDS = {"invalid_phone": "phone", "invalid_credentials": "password"}


@router.get("/")
def home() -> RedirectResponse:
    return RedirectResponse("/app", status_code=303)


@router.get("/app/login")
@router.get("/merchant/login")
@router.get("/operator/login")
@router.get("/app/signin")
def app_login(request: Request) -> RedirectResponse:
    """The addresses people guess: each app's own sign-in leads to the one sign-in page,
    back to that app afterwards."""
    app = request.url.path.split("/")[1]
    return RedirectResponse(f"/login?next=/{app}", status_code=303)


@router.get("/login")
def login_page(request: Request, next: str = "/app") -> Response:
    if viewer(request) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    form_token(request)
    page = render(request, "common/login.html", {"next": safe_next(next), "form": {}})
    return keep_form_token(request, page)


@router.post("/login")
def login(request: Request, fields: FormFields) -> Response:
    target = safe_next(fields.get("next"))
    runtime = runtime_of(request)
    try:
        result = identity.login(
            runtime.db,
            phone=fields.get("phone", ""),
            password=fields.get("password", ""),
            device=identity.Device(
                kind="cookie",
                name="",
                user_agent=request.headers.get("user-agent", ""),
                ip=request.client.host if request.client else "",
            ),
            settings=runtime.settings,
            encryptor=runtime.encryptor,
        )
    except DomainError as exc:
        form_token(request)
        return render(
            request,
            "common/login.html",
            {
                "next": target,
                "form": {"phone": fields.get("phone", "")},
                "field_errors": {LOGIN_FIELDS.get(exc.code, ""): exc},
            },
            status_code=exc.status,
        )
    response = RedirectResponse(target, status_code=303)
    sign_in_cookies(request, response, result.session)
    return response


@router.post("/logout")
def logout(request: Request, _fields: FormFields) -> Response:
    found = viewer(request)
    if found is not None:
        runtime_of(request).db.transact(
            lambda uow: sessions.revoke_session(
                uow, user_id=found.user_id, session_id=found.session_id, reason="logout"
            )
        )
    response = RedirectResponse("/login", status_code=303)
    sign_out_cookies(response)
    return response


@router.get("/lang/{lang}")
def switch_language(lang: str, request: Request, next: str = "/app") -> Response:
    """Remember the visitor's language (a preference, not an action: no CSRF needed)."""
    chosen = lang if lang in LANGUAGES else "zh_CN"
    response = RedirectResponse(safe_next(next), status_code=303)
    response.set_cookie(
        LANG_COOKIE, chosen, max_age=365 * 24 * 3600, samesite="lax", path="/",
        secure=runtime_of(request).settings.session_cookie_secure,
    )  # fmt: skip
    return response


def here(request: Request) -> str:
    """This page's path and query, quoted for a ``next`` parameter."""
    query = f"?{request.url.query}" if request.url.query else ""
    return quote(request.url.path + query, safe="")
