"""The three web apps, server-rendered over the same services as the API:

- ``/app``: the residents' wallet (mobile-first, installable: manifest + service worker);
- ``/merchant``: the merchant console;
- ``/operator``: the operator console (operator role only).

Shared here: languages (:mod:`.i18n`), rendering and formats (:mod:`.templating`), who is
signed in and CSRF (:mod:`.session`), error pages (:mod:`.errors`), log in/out and the
language switch (:mod:`.common`). See docs/web.md.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from citywallet.web import errors
from citywallet.web.i18n import LANG_COOKIE, negotiate, translations

STATIC = Path(__file__).parent / "static"
# Own code only: no inline scripts, no third-party origins.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; "
    "form-action 'self'"
)
# The scan page also compiles WebAssembly (the ZXing reader served from /vendor, web/vendor.py):
# 'wasm-unsafe-eval' allows that and nothing else (no eval of scripts).
CSP_SCAN = CSP.replace("script-src 'self'", "script-src 'self' 'wasm-unsafe-eval'")
SCAN_PATH = "/app/scan"


def install(app: FastAPI) -> None:
    """Add the pages, their static files and their error pages to ``app``."""
    from citywallet.web import app as resident
    from citywallet.web import common, vendor
    from citywallet.web.merchant import routes as merchant
    from citywallet.web.operator import routes as operator

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    vendor.install(app)
    app.include_router(common.router)
    for router in resident.routers:
        app.include_router(router)
    app.include_router(merchant.router)
    app.include_router(operator.router)
    errors.install(app)

    app.add_middleware(PageMiddleware)


# The headers every page gets unless its route set its own.
# (and the Content-Security-Policy: CSP, or CSP_SCAN on the scan pages).
PAGE_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("Cache-Control", "no-store"),
    ("Vary", "Accept-Language, Cookie"),
)


class PageMiddleware:
    """For page requests (pure ASGI): the visitor's language in ``request.state.tr`` before
    the route runs, and the pages' security headers on the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not errors.is_page_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        lang = negotiate(request.cookies.get(LANG_COOKIE), request.headers.get("accept-language"))
        scope.setdefault("state", {})["tr"] = translations(lang)
        path = scope["path"]
        csp = CSP_SCAN if path == SCAN_PATH or path.startswith(SCAN_PATH + "/") else CSP

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("Content-Security-Policy", csp)
                for name, value in PAGE_HEADERS:
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, with_headers)
