"""Pure ASGI middleware in front of every route: request body caps, security headers,
request ids with the request metrics.

Pure ASGI (never ``@app.middleware("http")`` / ``BaseHTTPMiddleware``, which runs the rest of
the app in a task of its own behind memory streams on every request): the body cap must see
the raw byte stream, counting bytes as they arrive, before any route or form parser holds
them in memory, and every piece only needs the response's start message. docs/security.md
("Request size", "Headers and files") explains the choices; docs/operations.md the
per-request cost.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping

import structlog
from prometheus_client import Counter, Histogram
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from citywallet.api.problems import problem
from citywallet.platform import failpoints

# Public ledger data (the signing key, inclusion proofs: hashes only): caches may keep it.
PUBLIC_API_PREFIXES = ("/v1/ledger/",)


class BodyTooLarge(Exception):
    """The request body went past its cap while the app was reading it."""


def _too_large(scope: Scope, cap: int) -> ASGIApp:
    response = problem(
        413,
        "payload_too_large",
        "Payload too large",
        f"The request body is larger than {cap} bytes.",
        instance=scope.get("path"),
        extra={"limit": cap},
    )
    # The rest of the body is never read: the server must not wait for it on this connection.
    response.headers["Connection"] = "close"
    return response


def _declared_length(scope: Scope) -> int | None:
    value = Headers(scope=scope).get("content-length")
    return int(value) if value is not None and value.isdigit() else None


class BodyLimit:
    """Answer 413 ``payload_too_large`` (problem+json) to a body over its cap.

    A declared ``Content-Length`` over the cap is refused before anything is read; a chunked
    (or understated) body is counted as it streams and reading stops at the first chunk
    past the cap. ``caps`` gives some routes (method, exact path) a larger cap than
    ``default``.
    """

    def __init__(self, app: ASGIApp, *, default: int, caps: Mapping[tuple[str, str], int]) -> None:
        self.app = app
        self.default = default
        self.caps = dict(caps)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cap = self.caps.get((scope["method"], scope["path"]), self.default)
        declared = _declared_length(scope)
        if declared is not None and declared > cap:
            await _too_large(scope, cap)(scope, receive, send)
            return
        received = 0
        tripped = started = False

        async def counted() -> Message:
            nonlocal received, tripped
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap:
                    tripped = True
                    raise BodyTooLarge
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if tripped and not started:
                return  # whatever the app makes of a cut-off body, the answer is the 413
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except Exception:
            # Parsers wrap errors (FastAPI turns them into a 400): the flag is what counts.
            if not tripped or started:
                raise
        if tripped and not started:
            await _too_large(scope, cap)(scope, receive, send)


class SecurityHeaders:
    """Headers every response gets unless its route set its own:

    - ``X-Content-Type-Options: nosniff`` on everything;
    - ``Cache-Control: no-store`` on the JSON API (tokens and personal data), except its
      public ledger endpoints (pages set their own in :mod:`citywallet.web`);
    - ``Strict-Transport-Security`` when the request came over HTTPS (directly, or through a
      proxy uvicorn trusts, which sets the scheme), unless ``hsts_max_age`` is 0.
    """

    def __init__(self, app: ASGIApp, *, hsts_max_age: int) -> None:
        self.app = app
        self.hsts = f"max-age={hsts_max_age}" if hsts_max_age > 0 else ""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        private_api = path.startswith("/v1/") and not path.startswith(PUBLIC_API_PREFIXES)
        hsts = self.hsts if scope.get("scheme") == "https" else ""

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                if private_api:
                    headers.setdefault("Cache-Control", "no-store")
                if hsts:
                    headers.setdefault("Strict-Transport-Security", hsts)
            await send(message)

        await self.app(scope, receive, with_headers)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


class RequestObserver:
    """Request ids, structured-log context and the request metrics, as pure ASGI.

    Every response carries ``X-Request-ID`` (the caller's, else a new one), bound to the log
    context for the request's lifetime; each request is counted and timed by method, route
    template and status (an exception that escapes the app counts as 500).
    """

    def __init__(self, app: ASGIApp, *, requests: Counter, latency: Histogram) -> None:
        self.app = app
        self.requests = requests
        self.latency = latency

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _header(scope, b"x-request-id") or uuid.uuid4().hex
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500

        async def with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                failpoints.hit("response.before")
                status = message["status"]
                MutableHeaders(scope=message)["x-request-id"] = request_id
            await send(message)

        try:
            await self.app(scope, receive, with_id)
        finally:
            template = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"]
            self.latency.labels(method, template).observe(time.perf_counter() - started)
            self.requests.labels(method, template, str(status)).inc()
            structlog.contextvars.clear_contextvars()
