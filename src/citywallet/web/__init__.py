"""The three web apps, server-rendered over the same services as the API:

- ``/app``: the residents' wallet (mobile-first, installable: manifest + service worker);
- ``/merchant``: the merchant console;
- ``/operator``: the operator console (operator role only).

Shared here: languages (:mod:`.i18n`), rendering and formats (:mod:`.templating`), who is
signed in and CSRF (:mod:`.session`), error pages (:mod:`.errors`), log in/out and the
language switch (:mod:`.common`). See docs/web.md.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles

from citywallet.web import errors
from citywallet.web.i18n import LANG_COOKIE, negotiate, translations

STATIC = Path(__file__).parent / "static"
# Own code only: no inline scripts, no third-party origins.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; "
    "form-action 'self'"
)


def install(app: FastAPI) -> None:
    """Add the pages, their static files and their error pages to ``app``."""
    from citywallet.web import app as resident
    from citywallet.web import common
    from citywallet.web.merchant import routes as merchant
    from citywallet.web.operator import routes as operator

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(common.router)
    for router in resident.routers:
        app.include_router(router)
    app.include_router(merchant.router)
    app.include_router(operator.router)
    errors.install(app)

    @app.middleware("http")
    async def pages(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        page = errors.is_page(request)
        if page:
            lang = negotiate(
                request.cookies.get(LANG_COOKIE), request.headers.get("accept-language")
            )
            request.state.tr = translations(lang)
        response = await call_next(request)
        if page:
            response.headers.setdefault("Content-Security-Policy", CSP)
            response.headers.setdefault("X-Content-Type-Options", "nosniff")
            response.headers.setdefault("Referrer-Policy", "same-origin")
            response.headers.setdefault("Cache-Control", "no-store")
            response.headers.setdefault("Vary", "Accept-Language, Cookie")
        return response
