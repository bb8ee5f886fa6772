"""Interop over HTTP: the FSPIOP endpoints the switch calls (``/fspiop``) and the residents'
cross-provider transfers (``/v1/interop``).

FSPIOP requests are checked (``transport.check_request``: only the switch, by its public
key) and answered ``202`` at once with an empty body, or ``400`` with an ``errorInformation``
body when the headers, signature or body are refused; the real answer leaves later through
the outbox. Each request is one transaction; its messages leave as soon as it commits. A
``POST /quotes`` or ``POST /transfers`` that asked ``Prefer: callback=inline`` gets its answer
(terms, fulfilment or refusal) in a ``200`` instead (``api/inline.py``); callbacks that come
back inline to our own requests run through these endpoints (:func:`take_inline`).

The residents' routes send a request to the switch and wait for their row (woken when the
callback commits, up to ``WAIT_SECONDS``): ``504 interop_timeout`` if none came. Paying a quote is
money-moving: ``Idempotency-Key``, PIN and limits inside the transaction that holds the
money; the answer is ``201`` once the switch's final word is in, else ``202`` with state
``processing`` (poll ``GET /v1/interop/transfers/{id}``).
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from anyio.to_thread import run_sync
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import APIRouter, FastAPI, Request, Response, status
from pydantic import BaseModel, ValidationError

from citywallet.api import inline
from citywallet.api.deps import CurrentUser, RuntimeDep
from citywallet.api.idempotency import IdempotencyKeyHeader, Idempotent, Rendered
from citywallet.api.interop_merchants import MerchantPayee, MerchantRefunds
from citywallet.interop import transport
from citywallet.interop.messages import (
    ErrorCode,
    ErrorMessage,
    PartyLookupResult,
    QuoteRequest,
    QuoteResponse,
    SettlementNotice,
    TransferFulfil,
    TransferPrepare,
    error,
)
from citywallet.interop.moves import MoveAnswer, MovePackage
from citywallet.interop.provider import moving
from citywallet.interop.provider import service as interop
from citywallet.interop.provider.schemas import (
    InteropTransferCreate,
    InteropTransferPublic,
    PartyPublic,
    QuoteCreate,
    QuotePublic,
)
from citywallet.platform.db import UnitOfWork
from citywallet.platform.errors import Conflict, DomainError
from citywallet.runtime import Runtime

PREFIX = "/fspiop"
WAIT_SECONDS = 5.0
M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

fspiop_router = APIRouter(prefix=PREFIX, include_in_schema=False)
router = APIRouter(prefix="/v1/interop", tags=["interop"])


class InteropTimeout(DomainError):
    """The switch did not answer in time (the request may still complete)."""

    code = "interop_timeout"
    status = 504
    title = "The other provider did not answer in time"


class QuoteRefused(Conflict):
    """The payee's provider (or the switch) refused the quote."""

    code = "interop_quote_refused"


# --- FSPIOP: the switch calls these -------------------------------------------------------


def _switch_key(runtime: Runtime) -> Callable[[str], Ed25519PublicKey | None]:
    encoded = runtime.settings.interop_switch_public_key
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(encoded)) if encoded else None
    return lambda source: key if source == interop.SWITCH else None


def _refused(code: ErrorCode, detail: str) -> Response:
    return Response(
        content=error(code, detail[:128]).wire(),
        status_code=status.HTTP_400_BAD_REQUEST,
        media_type="application/json",
    )


async def _receive(request: Request, model: type[M]) -> M | Response:
    """The checked, parsed body of a request from the switch, or the 400 to answer."""
    runtime: Runtime = request.app.state.runtime
    body = await request.body()
    try:
        transport.check_request(
            request.headers,
            method=request.method,
            path=request.url.path.removeprefix(PREFIX),
            body=body,
            key_of=_switch_key(runtime),
            now=datetime.now(UTC),
        )
    except transport.Refused as refused:
        return _refused(refused.code, refused.detail)
    try:
        json.loads(body)
    except ValueError:
        return _refused(ErrorCode.MALFORMED_SYNTAX, "the body is not JSON")
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        missing = any(e["type"] == "missing" for e in exc.errors())
        code = ErrorCode.MISSING_MANDATORY_ELEMENT if missing else ErrorCode.MALFORMED_SYNTAX
        return _refused(code, str(exc.errors()[0].get("msg", "invalid body")))


async def _apply(
    request: Request, fn: Callable[[UnitOfWork], Any], *, answers: str | None = None
) -> Response:
    """Run ``fn`` in one transaction; answer 202, or 200 with the callbacks about
    ``answers`` (``/quotes/{id}``) inline when the switch asked for them."""
    runtime: Runtime = request.app.state.runtime
    courier = runtime.interop_courier
    box = None
    if answers is not None:
        box = inline.mailbox(
            request.headers, courier, base_url=runtime.settings.interop_switch_url,
            resource=answers,
        )  # fmt: skip

    def run() -> None:
        with courier.mailboxes.handling(box):
            runtime.db.transact(fn)

    try:
        await run_sync(run)
    except BaseException:
        if box is not None:
            courier.mailboxes.close(box)
        raise
    return await inline.answer(
        courier, box, Response(status_code=status.HTTP_202_ACCEPTED),
        key=runtime.interop_key, now=lambda: datetime.now(UTC),
    )  # fmt: skip


def take_inline(app: FastAPI, runtime: Runtime) -> None:
    """Ask the switch for callbacks inline and run them through :data:`fspiop_router` (the
    app's lifespan calls this on its event loop, after starting the courier)."""
    runtime.interop_courier.take_inline(
        inline.LocalDispatch(app, fspiop_router.routes, prefix=PREFIX)
    )


@fspiop_router.put("/parties/{id_type}/{identifier}")
async def party_found(request: Request, id_type: str, identifier: str) -> Response:
    """The switch's answer to our lookup."""
    body = await _receive(request, PartyLookupResult)
    if isinstance(body, Response):
        return body
    if id_type != "MSISDN" or body.party.party_identifier != identifier:
        return _refused(ErrorCode.GENERIC_VALIDATION_ERROR, "party does not match the path")
    return await _apply(
        request, lambda uow: interop.on_party(uow, identifier=identifier, result=body, code=None)
    )


@fspiop_router.put("/parties/{id_type}/{identifier}/error")
async def party_error(request: Request, id_type: str, identifier: str) -> Response:
    """Nobody holds the number we looked up (3204), or the lookup failed."""
    body = await _receive(request, ErrorMessage)
    if isinstance(body, Response):
        return body
    if id_type != "MSISDN":
        return _refused(ErrorCode.GENERIC_VALIDATION_ERROR, "unknown party id type")
    code = body.error_information.error_code.value
    return await _apply(
        request, lambda uow: interop.on_party(uow, identifier=identifier, result=None, code=code)
    )


@fspiop_router.post("/quotes")
async def quote_requested(request: Request) -> Response:
    """Another provider's resident wants to pay one of ours: answer with terms."""
    body = await _receive(request, QuoteRequest)
    if isinstance(body, Response):
        return body
    runtime: Runtime = request.app.state.runtime
    return await _apply(
        request,
        lambda uow: interop.on_quote_request(
            uow, request=body, settings=runtime.settings, encryptor=runtime.encryptor,
            now=datetime.now(UTC), business=MerchantPayee(runtime),
        ),
        answers=f"/quotes/{body.quote_id}",
    )  # fmt: skip


@fspiop_router.put("/quotes/{quote_id}")
async def quote_answered(request: Request, quote_id: str) -> Response:
    """The payee's terms for a quote we asked."""
    body = await _receive(request, QuoteResponse)
    if isinstance(body, Response):
        return body
    runtime: Runtime = request.app.state.runtime
    return await _apply(
        request,
        lambda uow: interop.on_quote(
            uow,
            quote_id=quote_id,
            source_fsp=None,
            response=body,
            code=None,
            settings=runtime.settings,
            business=MerchantRefunds(runtime),
        ),
    )


@fspiop_router.put("/quotes/{quote_id}/error")
async def quote_error(request: Request, quote_id: str) -> Response:
    """A quote we asked was refused."""
    body = await _receive(request, ErrorMessage)
    if isinstance(body, Response):
        return body
    code = body.error_information.error_code.value
    runtime: Runtime = request.app.state.runtime
    return await _apply(
        request,
        lambda uow: interop.on_quote(
            uow,
            quote_id=quote_id,
            source_fsp=None,
            response=None,
            code=code,
            settings=runtime.settings,
            business=MerchantRefunds(runtime),
        ),
    )


@fspiop_router.post("/transfers")
async def transfer_prepared(request: Request) -> Response:
    """A prepare for one of our residents: pending credit and the fulfilment."""
    body = await _receive(request, TransferPrepare)
    if isinstance(body, Response):
        return body
    runtime: Runtime = request.app.state.runtime
    return await _apply(
        request,
        lambda uow: interop.on_prepare(
            uow, prepare=body, settings=runtime.settings, encryptor=runtime.encryptor,
            now=datetime.now(UTC), business=MerchantPayee(runtime),
        ),
        answers=f"/transfers/{body.transfer_id}",
    )  # fmt: skip


@fspiop_router.put("/transfers/{transfer_id}")
async def transfer_state(request: Request, transfer_id: str) -> Response:
    """The switch's word on a transfer: COMMITTED posts, ABORTED voids."""
    body = await _receive(request, TransferFulfil)
    if isinstance(body, Response):
        return body
    runtime: Runtime = request.app.state.runtime
    business, refunds = MerchantPayee(runtime), MerchantRefunds(runtime)
    return await _apply(
        request,
        lambda uow: interop.on_state(
            uow, transfer_id=transfer_id, fulfil=body, business=business, refunds=refunds
        ),
    )


@fspiop_router.put("/transfers/{transfer_id}/error")
async def transfer_error(request: Request, transfer_id: str) -> Response:
    """A transfer failed or expired (3303): void what it holds, if final."""
    body = await _receive(request, ErrorMessage)
    if isinstance(body, Response):
        return body
    code = body.error_information.error_code
    return await _apply(
        request,
        lambda uow: interop.on_error(
            uow,
            transfer_id=transfer_id,
            code=code,
            now=datetime.now(UTC),
            business=MerchantPayee(request.app.state.runtime),
            refunds=MerchantRefunds(request.app.state.runtime),
        ),
    )


@fspiop_router.put("/settlementWindows/{window_id}")
async def window_settled(request: Request, window_id: str) -> Response:
    """A closed window's net: posted against the settlement bank once."""
    body = await _receive(request, SettlementNotice)
    if isinstance(body, Response):
        return body
    if body.window_id != window_id:
        return _refused(ErrorCode.GENERIC_VALIDATION_ERROR, "window id does not match the path")
    return await _apply(
        request, lambda uow: interop.on_settlement(uow, notice=body, now=datetime.now(UTC))
    )


@fspiop_router.post("/moves")
async def move_received(request: Request) -> Response:
    """A resident moving in from another cell: import them, answer ``PUT /moves/{id}``."""
    body = await _receive(request, MovePackage)
    if isinstance(body, Response):
        return body
    runtime: Runtime = request.app.state.runtime
    return await _apply(
        request,
        lambda uow: moving.on_package(
            uow, package=body, settings=runtime.settings, encryptor=runtime.encryptor
        ),
    )


@fspiop_router.put("/moves/{move_id}")
async def move_accepted(request: Request, move_id: str) -> Response:
    """The new cell holds the resident we are moving."""
    body = await _receive(request, MoveAnswer)
    if isinstance(body, Response):
        return body
    return await _apply(
        request, lambda uow: moving.on_answer(uow, move_id=move_id, answer=body, refusal=None)
    )


@fspiop_router.put("/moves/{move_id}/error")
async def move_refused(request: Request, move_id: str) -> Response:
    """The new cell (or the switch) refused the move: the freeze is lifted."""
    body = await _receive(request, ErrorMessage)
    if isinstance(body, Response):
        return body
    return await _apply(
        request, lambda uow: moving.on_answer(uow, move_id=move_id, answer=None, refusal=body)
    )


# --- residents ----------------------------------------------------------------------------


def _wait(runtime: Runtime, probe: Callable[[UnitOfWork], T | None], key: str) -> T:
    """What ``probe`` finds once the switch answered about ``key``, or 504
    ``interop_timeout``."""
    found = interop.wait_for(runtime.db, probe, seconds=WAIT_SECONDS, key=key)
    if found is None:
        raise InteropTimeout("The other provider did not answer in time; try again.")
    return found


def _find_party(runtime: Runtime, user_id: str, phone: str) -> interop.PartyView:
    lookup_id = runtime.db.transact(
        lambda uow: interop.start_lookup(
            uow, user_id=user_id, phone=phone, settings=runtime.settings
        )
    )

    def answered(uow: UnitOfWork) -> tuple[interop.Waiting, interop.PartyView | None] | None:
        state, party = interop.lookup_state(uow, lookup_id=lookup_id)
        return None if state.state == "waiting" else (state, party)

    _, party = _wait(runtime, answered, interop.party_key(interop.msisdn(phone)))
    if party is None:
        raise interop.PartyNotFound("No wallet provider holds that number.")
    return party


@router.get("/parties/{phone}", responses={404: {}, 429: {}, 503: {}, 504: {}})
def lookup_party(phone: str, auth: CurrentUser, runtime: RuntimeDep) -> PartyPublic:
    """Who holds a mobile number at another provider, with the masked real name to show
    before the payment (404 ``party_not_found``; 504 ``interop_timeout``)."""
    interop.require_configured(runtime.settings)
    with runtime.db.uow(readonly=True) as uow:
        party = interop.recent_party(uow, phone=phone)
    return PartyPublic.of(party or _find_party(runtime, auth.user_id, phone))


@router.post(
    "/quotes", status_code=status.HTTP_201_CREATED, responses={404: {}, 409: {}, 429: {}, 504: {}}
)
def create_quote(body: QuoteCreate, auth: CurrentUser, runtime: RuntimeDep) -> QuotePublic:
    """Ask the recipient's provider for terms: the amount, the fee, the total, the expiry."""
    interop.require_configured(runtime.settings)
    with runtime.db.uow(readonly=True) as uow:
        party = interop.recent_party(uow, phone=body.phone)
    if party is None:
        party = _find_party(runtime, auth.user_id, body.phone)
    quote_id = runtime.db.transact(
        lambda uow: interop.start_quote(
            uow, user_id=auth.user_id, phone=body.phone, party=party, amount=body.amount,
            currency=body.currency, settings=runtime.settings, encryptor=runtime.encryptor,
            now=datetime.now(UTC),
        )
    )  # fmt: skip
    return QuotePublic.of(wait_for_quote(runtime, auth.user_id, quote_id))


def wait_for_quote(runtime: Runtime, user_id: str, quote_id: str) -> interop.QuoteView:
    """The terms of a quote just asked (``quote_id``: its public id), once the payee's
    provider answered; refused: 404 ``party_not_found`` or 409 ``interop_quote_refused``."""

    def answered(uow: UnitOfWork) -> tuple[interop.Waiting, interop.QuoteView | None] | None:
        state, view = interop.quote_state(uow, user_id=user_id, quote_id=quote_id)
        return None if state.state == "waiting" else (state, view)

    state, view = _wait(runtime, answered, interop.quote_key(quote_id))
    if view is None:
        if state.error_code == ErrorCode.PARTY_NOT_FOUND.value:
            raise interop.PartyNotFound("No wallet provider holds that number.")
        raise QuoteRefused(
            "The recipient's provider refused the payment.", fspiop_code=state.error_code
        )
    return view


def _rendered(view: interop.InteropTransferView) -> Rendered:
    final = view.state != "processing"
    code = status.HTTP_201_CREATED if final else status.HTTP_202_ACCEPTED
    return code, InteropTransferPublic.of(view)


@router.post(
    "/transfers",
    status_code=status.HTTP_201_CREATED,
    response_model=InteropTransferPublic,
    responses={202: {}, 400: {}, 403: {}, 404: {}, 409: {}, 422: {}, 423: {}},
)
def create_transfer(
    body: InteropTransferCreate,
    request: Request,
    auth: CurrentUser,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    """Pay a quote: the amount and fee are held, the switch moves the money; 201 once it is
    committed (or aborted), 202 ``processing`` if the switch has not answered yet."""
    interop.require_configured(runtime.settings)
    call = Idempotent.of(runtime, request, scope=auth.user_id, key=idempotency_key, body=body)
    return pay_quote(
        runtime, call, user_id=auth.user_id, quote_id=body.quote_id, pin=body.pin,
        note=body.note, render=_rendered,
    )  # fmt: skip


def pay_quote(
    runtime: Runtime,
    call: Idempotent,
    *,
    user_id: str,
    quote_id: str,
    pin: str,
    note: str,
    render: Callable[[interop.InteropTransferView], Rendered],
) -> Response:
    """Pay a ready quote under the idempotent ``call`` (PIN, limits, hold and prepare in one
    transaction), then wait for the switch's final word; ``render`` makes the answer."""

    def recover(uow: UnitOfWork) -> Rendered | None:
        found = interop.transfer_for_key(uow, user_id=user_id, idempotency_key=call.key)
        return None if found is None else render(found)

    try:
        started = call.start(
            lambda uow: interop.send_transfer(
                uow, user_id=user_id, quote_id=quote_id, pin=pin, note=note,
                settings=runtime.settings, encryptor=runtime.encryptor,
                idempotency_key=call.key,
            )
        )  # fmt: skip
    except Conflict as exc:  # a duplicate while the first is still waiting for the switch
        if exc.code != "idempotency_key_in_progress":
            raise
        if (replayed := call.replay(recover=recover)) is None:
            raise
        return replayed
    if isinstance(started, Response):
        return started

    def final(uow: UnitOfWork) -> interop.InteropTransferView | None:
        view = interop.get_transfer(uow, user_id=user_id, transfer_id=started.id)
        return None if view.state == "processing" else view

    with contextlib.suppress(InteropTimeout):  # then 202 processing
        _wait(runtime, final, interop.transfer_key(started.id))
    return call.complete(
        lambda uow: interop.get_transfer(uow, user_id=user_id, transfer_id=started.id),
        render,
    )


@router.get("/transfers/{transfer_id}", responses={404: {}})
def get_transfer(transfer_id: str, auth: CurrentUser, runtime: RuntimeDep) -> InteropTransferPublic:
    """One of your cross-provider transfers (another resident's answers 404)."""
    with runtime.db.uow(readonly=True) as uow:
        view = interop.get_transfer(uow, user_id=auth.user_id, transfer_id=transfer_id)
    return InteropTransferPublic.of(view)
