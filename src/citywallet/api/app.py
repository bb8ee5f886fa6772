"""The FastAPI application factory: routers, problem+json errors, request metrics."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable

import structlog
from fastapi import FastAPI, Request, Response
from prometheus_client import Counter, Histogram

import citywallet
from citywallet.api import health, ledger, problems
from citywallet.runtime import Runtime

REQUESTS = Counter("citywallet_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "citywallet_http_request_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)


def create_app(runtime: Runtime | None = None) -> FastAPI:
    """Build the HTTP application around ``runtime`` (default: from the environment)."""
    app = FastAPI(
        title="CityWallet API",
        version=citywallet.__version__,
        description="Wallets, payments, red packets and campaigns on a tamper-evident ledger. "
        "Amounts are integers in minor units (fen) with an ISO 4217 currency; errors are "
        "RFC 9457 problem+json with a stable `code`.",
    )
    app.state.runtime = runtime or Runtime.from_settings()
    problems.install(app)
    app.include_router(health.router)
    app.include_router(ledger.router)

    @app.middleware("http")
    async def observe(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        template = getattr(route, "path", "unmatched")
        LATENCY.labels(request.method, template).observe(time.perf_counter() - started)
        REQUESTS.labels(request.method, template, str(response.status_code)).inc()
        response.headers["x-request-id"] = request_id
        structlog.contextvars.clear_contextvars()
        return response

    return app


def create_app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` (reads settings from the environment)."""
    return create_app()
