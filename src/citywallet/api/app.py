"""The FastAPI application factory: routers, problem+json errors, request metrics.

Every middleware is pure ASGI (api/middleware.py, web/__init__.py): outermost the security
headers, then the body caps, the request id and metrics, the pages' language and headers."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import anyio.to_thread
from fastapi import FastAPI
from starlette.types import ASGIApp

import citywallet
from citywallet import web
from citywallet.api import (
    campaigns,
    health,
    identity,
    interop,
    ledger,
    merchant,
    messages,
    operator_control,
    passkeys,
    payments,
    privacy,
    problems,
    receiving,
    redpackets,
    tracing,
    wallet,
)
from citywallet.api.middleware import BodyLimit, RequestObserver, SecurityHeaders
from citywallet.identity import sessions
from citywallet.inbox import bell
from citywallet.platform import metrics
from citywallet.platform.config import Settings, get_settings
from citywallet.platform.logging import configure_logging
from citywallet.runtime import Runtime, refuse_unsafe_start


def create_app(runtime: Runtime | None = None, *, start_worker: bool = False) -> FastAPI:
    """Build the HTTP application around ``runtime`` (default: from the environment).

    ``start_worker`` runs the background worker in a thread for the app's lifetime (what
    ``citywallet serve`` does by default; jobs are claimed through the database, so several
    server processes each running one is safe).
    """
    runtime = runtime or Runtime.from_settings()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Sync routes and dependencies run on anyio's worker threads: bounded by a setting
        # (docs/operations.md, "Threads and connections").
        anyio.to_thread.current_default_thread_limiter().total_tokens = (
            runtime.settings.http_threads
        )
        stop = threading.Event()
        thread = None
        connected = bool(runtime.settings.interop_participant_id)
        if connected:  # FSPIOP messages leave right after their commit (docs/interop.md)
            runtime.interop_courier.start()
            interop.take_inline(_app, runtime)  # callbacks ride back on the answers
        if start_worker:
            from citywallet.tasks import build_worker

            worker = build_worker(runtime)
            thread = threading.Thread(
                target=worker.run_forever,
                args=(stop,),
                kwargs={"poll_seconds": runtime.settings.worker_poll_seconds},
                name="citywallet-worker",
                daemon=True,
            )
            thread.start()
        yield
        stop.set()
        if thread is not None:
            thread.join(timeout=10)
        if connected:
            runtime.interop_courier.take_inline(None)
            # off the loop: a send in flight may be running an inline callback on it
            await anyio.to_thread.run_sync(runtime.interop_courier.stop)
        sessions.flush_touches(runtime.db)  # the sessions' last_seen_at (docs/identity.md)
        if _app.state.tracer_provider is not None:
            _app.state.tracer_provider.shutdown()  # the spans still batched
        bell.stop_listening(runtime.db.url)  # the message centre's NOTIFY listener, if any

    app = FastAPI(
        lifespan=lifespan,
        title="CityWallet API",
        version=citywallet.__version__,
        description="Wallets, payments, red packets and campaigns on a tamper-evident ledger. "
        "Amounts are integers in minor units (fen) with an ISO 4217 currency; errors are "
        "RFC 9457 problem+json with a stable `code`.",
    )
    app.state.runtime = runtime
    problems.install(app)
    app.include_router(health.router)
    app.include_router(ledger.router)
    app.include_router(identity.router)
    app.include_router(passkeys.router)
    app.include_router(privacy.router)
    app.include_router(wallet.router)
    app.include_router(receiving.router)
    app.include_router(payments.router)
    app.include_router(payments.paycode_router)
    app.include_router(merchant.owner_router)
    app.include_router(merchant.server_router)
    app.include_router(redpackets.router)
    app.include_router(messages.router)
    app.include_router(campaigns.router)
    app.include_router(campaigns.operator_router)
    app.include_router(operator_control.router)
    if runtime.settings.interop_participant_id:  # connected to a switch (docs/interop.md)
        app.include_router(interop.router)
        app.include_router(interop.fspiop_router)
    if runtime.settings.sandbox:
        app.include_router(identity.dev_router)
    web.install(app)  # the pages (after the API's error handlers, which it wraps)

    app.add_middleware(RequestObserver, requests=metrics.REQUESTS, latency=metrics.LATENCY)
    install_guards(app, runtime.settings)
    app.state.tracer_provider = tracing.install_from_settings(
        app, runtime.db.engine, runtime.settings.traces
    )
    return app


def install_guards(app: FastAPI, settings: Settings) -> None:
    """Outermost: the security headers, then the body caps (pure ASGI, see api/middleware)."""
    caps = {
        ("POST", "/app/scan/image"): settings.max_upload_bytes,
        ("POST", "/v1/operator/campaigns"): settings.max_campaign_body_bytes,
        ("POST", "/operator/campaigns"): settings.max_campaign_body_bytes,
    }
    app.add_middleware(BodyLimit, default=settings.max_body_bytes, caps=caps)
    app.add_middleware(SecurityHeaders, hsts_max_age=settings.hsts_max_age_seconds)


def create_app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` (reads settings from the environment); refuses an
    unsafe production start even when uvicorn is run without ``citywallet serve``."""
    settings = get_settings()
    # each server process
    configure_logging(level=settings.log_level, json=settings.log_json, file=settings.log_file)
    refuse_unsafe_start(settings)
    runtime = Runtime.from_settings()
    return create_app(runtime, start_worker=runtime.settings.run_worker_in_server)


def create_app_behind_proxies() -> ASGIApp:
    """:func:`create_app_from_env` for servers without forwarded-header handling of their
    own (``citywallet serve --server granian``): ``X-Forwarded-For``/``-Proto`` are
    believed from ``CITYWALLET_TRUSTED_PROXIES`` only, by uvicorn's middleware (what
    ``citywallet serve`` gives uvicorn), and from no one when it is empty."""
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    app = create_app_from_env()
    trusted = [e.strip() for e in get_settings().trusted_proxies.split(",") if e.strip()]
    if not trusted:
        return app
    # uvicorn types ASGI apps more narrowly than Starlette: the same protocol.
    return cast(ASGIApp, ProxyHeadersMiddleware(cast(Any, app), trusted_hosts=trusted))
