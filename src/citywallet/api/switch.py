"""The switch's HTTP application: the FSPIOP endpoints participants call (docs/interop.md).

Each request: read the body, check ``FSPIOP-Signature`` against the sender's registered key
(400 + 3105/3102/3201 when refused), parse the body with its model (400 + 3101/3102), run one
transaction (the service queues every message to send in the outbox; the courier sends
them the moment it commits) and answer 202 with an empty body; the real answer comes as a
callback. Alias registration and removal are synchronous (200 ``{}``). The app's lifespan
runs the courier and a worker thread for the expiry sweep (every 0.5 s) and the settlement
window's auto-close.

A request that asked ``Prefer: callback=inline`` gets its callbacks in a ``200`` answer
instead (``api/inline.py``): the messages its transaction sends back to the requester, or,
when it forwarded a request on (``POST /quotes``, ``POST /transfers`` to the payee), the
answer that comes back within ``inline.WAIT_SECONDS``. Callbacks that come back inline to
the switch's own requests run through these same routes (:class:`LocalDispatch`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import TypeVar

import anyio.to_thread
import httpx2
import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from citywallet.api import inline
from citywallet.interop.inline import Mailbox
from citywallet.interop.messages import (
    AliasRegistration,
    ErrorCode,
    ErrorMessage,
    Message,
    QuoteRequest,
    QuoteResponse,
    TransferFulfil,
    TransferPrepare,
    error,
)
from citywallet.interop.moves import MoveAnswer, MovePackage
from citywallet.interop.switch import moves, registry, retention, service, windows
from citywallet.interop.transport import Courier, Refused, Sender, check_request
from citywallet.platform import outbox
from citywallet.platform.config import get_settings
from citywallet.platform.crypto import interop_seed
from citywallet.platform.db import Database, UnitOfWork
from citywallet.platform.jobs import Worker
from citywallet.platform.logging import configure_logging
from citywallet.runtime import Runtime

log = structlog.get_logger(__name__)

M = TypeVar("M", bound=Message)
KEY_TTL_SECONDS = 1.0
SWEEP_SECONDS = 0.5
WINDOW_CHECK_SECONDS = 1.0
JSON = "application/json"

Work = Callable[[str, bytes, datetime], Callable[[UnitOfWork], None]]  # (source, body, now)


class KeyCache:
    """Active participants' public keys and callback URLs, kept ``ttl`` seconds per process
    (a deactivation, a new key or a new URL takes effect within that time)."""

    def __init__(self, db: Database, ttl: float = KEY_TTL_SECONDS) -> None:
        self._db = db
        self._ttl = ttl
        self._keys: dict[str, tuple[float, Ed25519PublicKey | None, str | None]] = {}
        self._lock = threading.Lock()

    def get(self, participant_id: str) -> Ed25519PublicKey | None:
        """The key of an active participant, or ``None``."""
        return self._entry(participant_id)[1]

    def callback_url(self, participant_id: str) -> str | None:
        """Where an active participant receives its callbacks, or ``None``."""
        return self._entry(participant_id)[2]

    def _entry(self, participant_id: str) -> tuple[float, Ed25519PublicKey | None, str | None]:
        now = time.monotonic()
        with self._lock:
            cached = self._keys.get(participant_id)
        if cached is not None and cached[0] > now:
            return cached

        def read(uow: UnitOfWork) -> tuple[str | None, str | None]:
            b64 = registry.active_key(uow, participant_id)
            return b64, service.callback_url(uow, participant_id) if b64 is not None else None

        b64, url = self._db.transact(read, readonly=True)
        key = registry.public_key_of(b64) if b64 is not None else None
        entry = (now + self._ttl, key, url)
        with self._lock:
            self._keys[participant_id] = entry
        return entry

    def clear(self) -> None:
        """Forget every cached key."""
        with self._lock:
            self._keys.clear()


def _refusal(code: ErrorCode, detail: str, status: int = 400) -> Response:
    body = error(code, detail[:128]).wire()
    return Response(body, status_code=status, media_type=JSON)


def parse(model: type[M], body: bytes) -> M:
    """The body as ``model``, or :class:`Refused` with 3101 (malformed) / 3102 (missing)."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors()
        code = (
            ErrorCode.MISSING_MANDATORY_ELEMENT
            if any(e["type"] == "missing" for e in errors)
            else ErrorCode.MALFORMED_SYNTAX
        )
        first = errors[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise Refused(code, f"{where}: {first['msg']}") from None


class SwitchHttp:
    """What the routes share: the database, the key cache, the courier and the clock."""

    def __init__(
        self,
        db: Database,
        courier: Courier,
        clock: Callable[[], datetime],
        keys: KeyCache,
        signing_key: Ed25519PrivateKey,
    ) -> None:
        self.db = db
        self.courier = courier
        self.clock = clock
        self.keys = keys
        self.signing_key = signing_key

    def sender(self, request: Request, body: bytes, now: datetime) -> str:
        """The verified sender, or :class:`Refused`."""
        return check_request(
            request.headers, method=request.method, path=request.url.path, body=body,
            key_of=self.keys.get, now=now,
        )  # fmt: skip

    def transact(self, work: Callable[[UnitOfWork], None]) -> None:
        """Run ``work`` in one transaction; a concurrent first insert of the same id (a
        duplicated message) loses with IntegrityError and is run again as the duplicate."""
        try:
            self.db.transact(work)
        except IntegrityError:
            self.db.transact(work)

    async def accept(
        self, request: Request, *, error_path: Callable[[bytes], str], work: Work
    ) -> Response:
        """Check, parse (inside ``work``), run; answer 202 (or 200 with the callbacks inline,
        if asked), or 400 with the refusal."""
        body = await request.body()
        boxes: list[Mailbox[outbox.Message] | None] = [None]

        def run() -> Response:
            now = self.clock()
            try:
                source = self.sender(request, body, now)
                job = work(source, body, now)
            except Refused as exc:
                return _refusal(exc.code, exc.detail)
            box = boxes[0] = self._mailbox(request, source, error_path, body)
            with self.courier.mailboxes.handling(box):
                destination = request.headers.get("fspiop-destination")
                known = destination in (None, registry.SWITCH_ID) or self.keys.get(destination)
                if not known:
                    path = error_path(body)
                    code = ErrorCode.DESTINATION_FSP_ERROR

                    def refuse(uow: UnitOfWork) -> None:
                        service.send_to(uow, source, "PUT", path, error(code))

                    self.transact(refuse)
                else:
                    self.transact(job)
            return Response(status_code=202)

        try:
            response = await run_in_threadpool(run)
        except BaseException:
            if boxes[0] is not None:
                self.courier.mailboxes.close(boxes[0])
            raise
        return await inline.answer(
            self.courier, boxes[0], response, key=self.signing_key, now=self.clock
        )

    def _mailbox(
        self, request: Request, source: str, error_path: Callable[[bytes], str], body: bytes
    ) -> Mailbox[outbox.Message] | None:
        """The mailbox for the callbacks answering this request, if it asked for them."""
        base_url = self.keys.callback_url(source)
        if base_url is None:
            return None
        try:
            resource = error_path(body).removesuffix("/error")
        except Refused:
            return None
        return inline.mailbox(request.headers, self.courier, base_url=base_url, resource=resource)


def _sweep(db: Database) -> int:
    """Expire what is due, in batches (their messages leave as each batch commits)."""
    total = 0
    while True:
        done = db.transact(lambda uow: service.expire_due(uow, now=datetime.now(UTC)))
        total += done
        if done < service.SWEEP_BATCH:
            break
    return total


def _auto_close(db: Database, window_seconds: float) -> int:
    closed = db.transact(
        lambda uow: windows.close_if_due(uow, now=datetime.now(UTC), window_seconds=window_seconds)
    )
    return 0 if closed is None else 1


def _fspiop_routes(app: FastAPI) -> list[APIRoute]:
    """The switch's FSPIOP endpoints (this module's routes; not the console's pages)."""
    return [r for r in app.routes if isinstance(r, APIRoute) and r.endpoint.__module__ == __name__]


def create_switch_app(
    runtime: Runtime,
    *,
    start_background: bool = True,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    transport: httpx2.BaseTransport | None = None,
) -> FastAPI:
    """The switch's FastAPI app on ``runtime``'s database; ``start_background`` runs the
    courier (delivery; ``transport``: its HTTP transport, for tests) and the sweep/window
    worker for the app's lifetime."""
    db = runtime.db
    courier = Courier(db, Sender(runtime.interop_key, transport=transport))
    http = SwitchHttp(db, courier, clock, KeyCache(db), runtime.interop_key)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        db.transact(lambda uow: windows.ensure_open(uow, now=clock()))
        stop = threading.Event()
        thread = None
        if start_background:
            courier.start()
            courier.take_inline(inline.LocalDispatch(app, _fspiop_routes(app)))
            worker = Worker(db, handlers={})
            worker.register_periodic("switch.expire", SWEEP_SECONDS, _sweep)
            seconds = runtime.settings.switch_window_seconds
            worker.register_periodic(
                "switch.windows", WINDOW_CHECK_SECONDS, lambda d: _auto_close(d, seconds)
            )
            worker.register_periodic("switch.purge", 3600.0, retention.purge_all)
            thread = threading.Thread(
                target=worker.run_forever, args=(stop,), kwargs={"poll_seconds": 0.1},
                name="switch-worker", daemon=True,
            )  # fmt: skip
            thread.start()
        yield
        stop.set()
        if thread is not None:
            thread.join(timeout=10)
        courier.take_inline(None)
        # off the loop: a send in flight may be running an inline callback on it
        await anyio.to_thread.run_sync(courier.stop)

    app = FastAPI(lifespan=lifespan, title="CityWallet switch", docs_url=None, redoc_url=None)
    app.state.runtime = runtime
    app.state.switch = http
    _routes(app, http)
    _move_routes(app, http)
    from citywallet.web.switch_console import install as install_console

    install_console(app)
    return app


def _routes(app: FastAPI, http: SwitchHttp) -> None:
    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        http.db.transact(lambda uow: uow.session.execute(text("SELECT 1")), readonly=True)
        return {"status": "ok"}

    # ---- aliases (synchronous) ------------------------------------------------------------

    @app.post("/participants/{id_type}/{identifier}")
    async def register_alias(request: Request, id_type: str, identifier: str) -> Response:
        body = await request.body()

        def run() -> Response:
            try:
                source = http.sender(request, body, http.clock())
                registration = parse(AliasRegistration, body)
                http.db.transact(
                    lambda uow: registry.register_alias(
                        uow,
                        source=source,
                        id_type=id_type,
                        identifier=identifier,
                        registration=registration,
                    )
                )
            except Refused as exc:
                return _refusal(exc.code, exc.detail)
            except registry.AliasRefused as exc:
                return _refusal(ErrorCode.GENERIC_VALIDATION_ERROR, exc.detail)
            return JSONResponse({})

        return await run_in_threadpool(run)

    @app.delete("/participants/{id_type}/{identifier}")
    async def remove_alias(request: Request, id_type: str, identifier: str) -> Response:
        body = await request.body()

        def run() -> Response:
            try:
                source = http.sender(request, body, http.clock())
                http.db.transact(
                    lambda uow: registry.remove_alias(
                        uow, source=source, id_type=id_type, identifier=identifier
                    )
                )
            except Refused as exc:
                return _refusal(exc.code, exc.detail)
            except registry.AliasRefused as exc:
                return _refusal(ErrorCode.GENERIC_VALIDATION_ERROR, exc.detail)
            return JSONResponse({})

        return await run_in_threadpool(run)

    # ---- discovery ------------------------------------------------------------------------

    @app.get("/parties/{id_type}/{identifier}")
    async def lookup(request: Request, id_type: str, identifier: str) -> Response:
        def work(source: str, _body: bytes, _now: datetime) -> Callable[[UnitOfWork], None]:
            return lambda uow: service.lookup_party(
                uow, source=source, id_type=id_type, identifier=identifier
            )

        path = f"/parties/{id_type}/{identifier}/error"
        return await http.accept(request, error_path=lambda _b: path, work=work)

    # ---- quotes ---------------------------------------------------------------------------

    @app.post("/quotes")
    async def post_quote(request: Request) -> Response:
        def work(source: str, body: bytes, now: datetime) -> Callable[[UnitOfWork], None]:
            quote = parse(QuoteRequest, body)
            return lambda uow: service.request_quote(uow, source=source, request=quote, now=now)

        def error_path(body: bytes) -> str:
            return f"/quotes/{parse(QuoteRequest, body).quote_id}/error"

        return await http.accept(request, error_path=error_path, work=work)

    @app.put("/quotes/{quote_id}")
    async def put_quote(request: Request, quote_id: str) -> Response:
        def work(source: str, body: bytes, now: datetime) -> Callable[[UnitOfWork], None]:
            answer = parse(QuoteResponse, body)
            return lambda uow: service.answer_quote(
                uow, source=source, quote_id=quote_id, response=answer, now=now
            )

        path = f"/quotes/{quote_id}/error"
        return await http.accept(request, error_path=lambda _b: path, work=work)

    @app.put("/quotes/{quote_id}/error")
    async def put_quote_error(request: Request, quote_id: str) -> Response:
        def work(source: str, body: bytes, now: datetime) -> Callable[[UnitOfWork], None]:
            message = parse(ErrorMessage, body)
            return lambda uow: service.quote_error(
                uow, source=source, quote_id=quote_id, message=message, now=now
            )

        path = f"/quotes/{quote_id}/error"
        return await http.accept(request, error_path=lambda _b: path, work=work)

    # ---- transfers ------------------------------------------------------------------------

    @app.post("/transfers")
    async def post_transfer(request: Request) -> Response:
        def work(source: str, body: bytes, now: datetime) -> Callable[[UnitOfWork], None]:
            prepare = parse(TransferPrepare, body)
            return lambda uow: service.prepare_transfer(
                uow, source=source, prepare=prepare, now=now
            )

        def error_path(body: bytes) -> str:
            return f"/transfers/{parse(TransferPrepare, body).transfer_id}/error"

        return await http.accept(request, error_path=error_path, work=work)

    @app.put("/transfers/{transfer_id}")
    async def put_transfer(request: Request, transfer_id: str) -> Response:
        def work(source: str, body: bytes, now: datetime) -> Callable[[UnitOfWork], None]:
            fulfil = parse(TransferFulfil, body)
            return lambda uow: service.fulfil_transfer(
                uow, source=source, transfer_id=transfer_id, fulfil=fulfil, now=now
            )

        path = f"/transfers/{transfer_id}/error"
        return await http.accept(request, error_path=lambda _b: path, work=work)

    @app.put("/transfers/{transfer_id}/error")
    async def put_transfer_error(request: Request, transfer_id: str) -> Response:
        def work(source: str, body: bytes, now: datetime) -> Callable[[UnitOfWork], None]:
            message = parse(ErrorMessage, body)
            return lambda uow: service.reject_transfer(
                uow, source=source, transfer_id=transfer_id, message=message, now=now
            )

        path = f"/transfers/{transfer_id}/error"
        return await http.accept(request, error_path=lambda _b: path, work=work)

    @app.get("/transfers/{transfer_id}")
    async def get_transfer(request: Request, transfer_id: str) -> Response:
        def work(source: str, _body: bytes, now: datetime) -> Callable[[UnitOfWork], None]:
            return lambda uow: service.query_transfer(
                uow, source=source, transfer_id=transfer_id, now=now
            )

        path = f"/transfers/{transfer_id}/error"
        return await http.accept(request, error_path=lambda _b: path, work=work)


def _move_routes(app: FastAPI, http: SwitchHttp) -> None:
    """Moving a resident between cells: the package and the answer, relayed."""

    @app.post("/moves")
    async def post_move(request: Request) -> Response:
        def work(source: str, body: bytes, now: datetime) -> Callable[[UnitOfWork], None]:
            package = parse(MovePackage, body)
            return lambda uow: moves.relay_package(uow, source=source, package=package, now=now)

        def error_path(body: bytes) -> str:
            return f"/moves/{parse(MovePackage, body).move_id}/error"

        return await http.accept(request, error_path=error_path, work=work)

    @app.put("/moves/{move_id}")
    async def put_move(request: Request, move_id: str) -> Response:
        def work(source: str, body: bytes, now: datetime) -> Callable[[UnitOfWork], None]:
            answer = parse(MoveAnswer, body)
            return lambda uow: moves.relay_answer(
                uow, source=source, move_id=move_id, answer=answer, refusal=None, now=now
            )

        path = f"/moves/{move_id}/error"
        return await http.accept(request, error_path=lambda _b: path, work=work)

    @app.put("/moves/{move_id}/error")
    async def put_move_error(request: Request, move_id: str) -> Response:
        def work(source: str, body: bytes, now: datetime) -> Callable[[UnitOfWork], None]:
            refusal = parse(ErrorMessage, body)
            return lambda uow: moves.relay_answer(
                uow, source=source, move_id=move_id, answer=None, refusal=refusal, now=now
            )

        path = f"/moves/{move_id}/error"
        return await http.accept(request, error_path=lambda _b: path, work=work)


def create_switch_app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` (``citywallet switch serve``)."""
    settings = get_settings()
    configure_logging(level=settings.log_level, json=settings.log_json, file=settings.log_file)
    if not settings.sandbox:
        interop_seed(settings)  # production never generates the switch's key: MissingKeys
    return create_switch_app(Runtime.from_settings(settings))
