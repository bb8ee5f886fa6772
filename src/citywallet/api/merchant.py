"""Merchant routes.

Two audiences, two kinds of credentials:

* ``/v1/merchants/…`` — the owner (a resident signed in with a session) applies, manages
  stores, terminals, API keys, the notify URL and the webhook secret, and prints codes;
* ``/v1/merchant/…`` — the merchant's server or POS, with signed requests
  (docs/merchant-signing.md): orders, payment-code charges, refunds, webhook events,
  settlements and daily statements.

Thin adapters: parse, authorise (objects are looked up together with their merchant, so
another merchant's id answers 404), call one service, render.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response, Security, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyHeader

from citywallet.api import problems
from citywallet.api.deps import CurrentUser, Day, RuntimeDep
from citywallet.api.interop_merchants import switch_refunds
from citywallet.interop.provider import service as interop
from citywallet.merchant import images
from citywallet.merchant import service as merchants
from citywallet.merchant.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyList,
    ApiKeyPublic,
    BalancePublic,
    CodeCharge,
    EventDetailPublic,
    EventList,
    EventPublic,
    MerchantCreate,
    MerchantList,
    MerchantPublic,
    MerchantUpdate,
    OrderCreate,
    OrderList,
    OrderPublic,
    RefundCreate,
    RefundList,
    RefundPublic,
    SettlementList,
    SettlementPublic,
    StaticCodePublic,
    StoreCreate,
    StoreList,
    StorePublic,
    TerminalCreate,
    WebhookSecretPublic,
)
from citywallet.merchant.service import MerchantCaller
from citywallet.platform import ratelimit
from citywallet.platform.db import UnitOfWork
from citywallet.runtime import Runtime

owner_router = APIRouter(prefix="/v1/merchants", tags=["merchant console"])
server_router = APIRouter(prefix="/v1/merchant", tags=["merchant API (signed)"])

SIGNED_RESPONSES: dict[int | str, dict[str, str]] = {
    401: {
        "description": "signature_missing, signature_malformed, signature_scheme_unsupported, "
        "signature_expired, signature_mismatch, nonce_reused, api_key_invalid."
    },
}


# Names the scheme in the OpenAPI document; ``signed_merchant`` checks the signature itself.
SIGNATURE = APIKeyHeader(
    name="Authorization",
    scheme_name="merchantSignature",
    description="CW1-HMAC-SHA256 or CW1-ED25519 request signature (docs/merchant-signing.md).",
    auto_error=False,
)

# A ``before`` that is not one of the caller's ids answers 404, as any other's id does.
LIST_RESPONSES = {**SIGNED_RESPONSES, **problems.responses(404)}
REFUND_WAIT_SECONDS = 2.0  # a refund through the switch: how long to wait for its word


async def signed_merchant(
    request: Request,
    runtime: RuntimeDep,
    _documented: Annotated[str | None, Security(SIGNATURE)] = None,
) -> MerchantCaller:
    """Authenticate a merchant server's signed request (the body is read once here)."""
    return await _signed(request, runtime, defer_nonce=False)


async def signed_merchant_deferred(
    request: Request,
    runtime: RuntimeDep,
    _documented: Annotated[str | None, Security(SIGNATURE)] = None,
) -> MerchantCaller:
    """As :func:`signed_merchant`, leaving the nonce for the route's own transaction."""
    return await _signed(request, runtime, defer_nonce=True)


async def _signed(request: Request, runtime: Runtime, *, defer_nonce: bool) -> MerchantCaller:
    body = await request.body()
    raw_path = request.scope.get("raw_path")  # as sent: percent-encoding intact
    path = raw_path.decode("latin-1") if raw_path else request.url.path
    if request.url.query:
        path += f"?{request.url.query}"
    authorization = request.headers.get("authorization")
    if defer_nonce:  # nothing to write: with its key cached, no worker thread for the check
        caller = merchants.authenticate_cached(
            runtime.db,
            authorization=authorization,
            method=request.method,
            path=path,
            body=body,
            settings=runtime.settings,
        )
        if caller is not None:
            return caller
    return await run_in_threadpool(
        merchants.authenticate,
        runtime.db,
        authorization=authorization,
        method=request.method,
        path=path,
        body=body,
        encryptor=runtime.encryptor,
        settings=runtime.settings,
        defer_nonce=defer_nonce,
    )


SignedMerchant = Annotated[MerchantCaller, Depends(signed_merchant)]
SignedMerchantDeferred = Annotated[MerchantCaller, Depends(signed_merchant_deferred)]


def _owned_pk(runtime: Runtime, user_id: str, merchant_id: str) -> int:
    with runtime.db.uow(readonly=True) as uow:
        return merchants.owned_merchant(uow, user_id=user_id, merchant_id=merchant_id).id


# --- the owner's console ------------------------------------------------------------------


@owner_router.post("", status_code=status.HTTP_201_CREATED, responses=problems.responses(404, 409))
def apply(body: MerchantCreate, auth: CurrentUser, runtime: RuntimeDep) -> MerchantPublic:
    """Apply to become a merchant; an operator reviews the application."""
    application = merchants.MerchantApplication(**body.model_dump())
    view = runtime.db.transact(
        lambda uow: merchants.register_merchant(
            uow,
            user_id=auth.user_id,
            application=application,
            encryptor=runtime.encryptor,
            settings=runtime.settings,
        )
    )
    return MerchantPublic.model_validate(view)


@owner_router.get("")
def list_merchants(auth: CurrentUser, runtime: RuntimeDep) -> MerchantList:
    """The merchants you own."""
    with runtime.db.uow(readonly=True) as uow:
        views = merchants.list_merchants(uow, user_id=auth.user_id)
    return MerchantList(items=[MerchantPublic.model_validate(v) for v in views])


@owner_router.get("/{merchant_id}")
def get_merchant(merchant_id: str, auth: CurrentUser, runtime: RuntimeDep) -> MerchantPublic:
    """One of your merchants."""
    with runtime.db.uow(readonly=True) as uow:
        row = merchants.owned_merchant(uow, user_id=auth.user_id, merchant_id=merchant_id)
        return MerchantPublic.model_validate(merchants.merchant_view(row))


@owner_router.patch("/{merchant_id}")
def update_merchant(
    merchant_id: str, body: MerchantUpdate, auth: CurrentUser, runtime: RuntimeDep
) -> MerchantPublic:
    """Change the default notify URL (loopback and private addresses are refused)."""
    view = runtime.db.transact(
        lambda uow: merchants.update_merchant(
            uow,
            user_id=auth.user_id,
            merchant_id=merchant_id,
            notify_url=body.notify_url,
            settings=runtime.settings,
        )
    )
    return MerchantPublic.model_validate(view)


@owner_router.get("/{merchant_id}/balance")
def get_balance(merchant_id: str, auth: CurrentUser, runtime: RuntimeDep) -> BalancePublic:
    """Money the platform owes you: not yet settled, and on its way to your bank."""
    with runtime.db.uow(readonly=True) as uow:
        row = merchants.owned_merchant(uow, user_id=auth.user_id, merchant_id=merchant_id)
        balance = merchants.merchant_balance(uow, merchant_pk=row.id)
    return BalancePublic(**vars(balance))


@owner_router.get("/{merchant_id}/webhook-secret")
def get_webhook_secret(
    merchant_id: str, auth: CurrentUser, runtime: RuntimeDep
) -> WebhookSecretPublic:
    """The secret your server verifies webhooks with."""
    with runtime.db.uow(readonly=True) as uow:
        secret = merchants.webhook_secret(
            uow, user_id=auth.user_id, merchant_id=merchant_id, encryptor=runtime.encryptor
        )
    return WebhookSecretPublic(secret=secret)


@owner_router.post("/{merchant_id}/webhook-secret")
def rotate_webhook_secret(
    merchant_id: str, auth: CurrentUser, runtime: RuntimeDep
) -> WebhookSecretPublic:
    """Replace the webhook secret (events not yet delivered are signed with the new one)."""
    secret = runtime.db.transact(
        lambda uow: merchants.webhook_secret(
            uow,
            user_id=auth.user_id,
            merchant_id=merchant_id,
            encryptor=runtime.encryptor,
            rotate=True,
        )
    )
    return WebhookSecretPublic(secret=secret)


@owner_router.get("/{merchant_id}/stores")
def list_stores(merchant_id: str, auth: CurrentUser, runtime: RuntimeDep) -> StoreList:
    """Your stores and their terminals."""
    pk = _owned_pk(runtime, auth.user_id, merchant_id)
    with runtime.db.uow(readonly=True) as uow:
        views = merchants.list_stores(uow, merchant_pk=pk)
    return StoreList(items=[StorePublic.of(v) for v in views])


@owner_router.post("/{merchant_id}/stores", status_code=status.HTTP_201_CREATED)
def add_store(
    merchant_id: str, body: StoreCreate, auth: CurrentUser, runtime: RuntimeDep
) -> StorePublic:
    """Open another store."""
    pk = _owned_pk(runtime, auth.user_id, merchant_id)
    view = runtime.db.transact(lambda uow: merchants.add_store(uow, merchant_pk=pk, name=body.name))
    return StorePublic.of(view)


@owner_router.post(
    "/{merchant_id}/stores/{store_id}/terminals", status_code=status.HTTP_201_CREATED
)
def add_terminal(
    merchant_id: str, store_id: str, body: TerminalCreate, auth: CurrentUser, runtime: RuntimeDep
) -> StorePublic:
    """Register a till or POS in a store."""
    pk = _owned_pk(runtime, auth.user_id, merchant_id)
    view = runtime.db.transact(
        lambda uow: merchants.add_terminal(uow, merchant_pk=pk, store_id=store_id, label=body.label)
    )
    return StorePublic.of(view)


def _static_payload(runtime: Runtime, user_id: str, merchant_id: str, store_id: str) -> str:
    pk = _owned_pk(runtime, user_id, merchant_id)
    return runtime.db.transact(  # the QR key is created on first use
        lambda uow: merchants.static_code(
            uow,
            merchant_pk=pk,
            store_id=store_id,
            encryptor=runtime.encryptor,
            provider=runtime.settings.interop_participant_id or None,
        )
    )


@owner_router.get("/{merchant_id}/stores/{store_id}/code")
def get_static_code(
    merchant_id: str, store_id: str, auth: CurrentUser, runtime: RuntimeDep
) -> StaticCodePublic:
    """The store's static code to print at the counter."""
    payload = _static_payload(runtime, auth.user_id, merchant_id, store_id)
    base = f"/v1/merchants/{merchant_id}/stores/{store_id}/code"
    return StaticCodePublic(
        store_id=store_id, payload=payload, png_url=f"{base}.png", svg_url=f"{base}.svg"
    )


@owner_router.get(
    "/{merchant_id}/stores/{store_id}/code.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}},
)
def get_static_code_png(
    merchant_id: str, store_id: str, auth: CurrentUser, runtime: RuntimeDep
) -> Response:
    """The store's static code as a PNG image."""
    payload = _static_payload(runtime, auth.user_id, merchant_id, store_id)
    return Response(images.qr_png(payload), media_type="image/png")


@owner_router.get(
    "/{merchant_id}/stores/{store_id}/code.svg",
    response_class=Response,
    responses={200: {"content": {"image/svg+xml": {}}}},
)
def get_static_code_svg(
    merchant_id: str, store_id: str, auth: CurrentUser, runtime: RuntimeDep
) -> Response:
    """The store's static code as an SVG image."""
    payload = _static_payload(runtime, auth.user_id, merchant_id, store_id)
    return Response(images.qr_svg(payload), media_type="image/svg+xml")


@owner_router.get("/{merchant_id}/api-keys")
def list_api_keys(merchant_id: str, auth: CurrentUser, runtime: RuntimeDep) -> ApiKeyList:
    """Your API keys (never their secrets)."""
    pk = _owned_pk(runtime, auth.user_id, merchant_id)
    with runtime.db.uow(readonly=True) as uow:
        views = merchants.list_api_keys(uow, merchant_pk=pk)
    return ApiKeyList(items=[ApiKeyPublic.model_validate(v) for v in views])


@owner_router.post("/{merchant_id}/api-keys", status_code=status.HTTP_201_CREATED)
def create_api_key(
    merchant_id: str, body: ApiKeyCreate, auth: CurrentUser, runtime: RuntimeDep
) -> ApiKeyCreated:
    """A new key for your server or POS; its secret is in this answer only."""
    pk = _owned_pk(runtime, auth.user_id, merchant_id)
    new = runtime.db.transact(
        lambda uow: merchants.create_api_key(
            uow, merchant_pk=pk, scheme=body.scheme, label=body.label, encryptor=runtime.encryptor
        )
    )
    return ApiKeyCreated(key=ApiKeyPublic.model_validate(new.key), secret=new.secret)


@owner_router.delete("/{merchant_id}/api-keys/{key_id}")
def revoke_api_key(
    merchant_id: str, key_id: str, auth: CurrentUser, runtime: RuntimeDep
) -> ApiKeyPublic:
    """Stop accepting a key at once."""
    pk = _owned_pk(runtime, auth.user_id, merchant_id)
    view = runtime.db.transact(
        lambda uow: merchants.revoke_api_key(uow, merchant_pk=pk, key_id=key_id)
    )
    return ApiKeyPublic.model_validate(view)


# --- the merchant's server and POS (signed) ----------------------------------------------


@server_router.post(
    "/orders",
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": OrderPublic, "description": "The existing order of this out_trade_no."},
        **SIGNED_RESPONSES,
    },
)
def create_order(
    body: OrderCreate, caller: SignedMerchant, runtime: RuntimeDep, response: Response
) -> OrderPublic:
    """Create an order; show ``qr_payload`` as a QR code. The same ``out_trade_no`` with
    the same amount and description returns the existing order (200 instead of 201)."""
    view, created = runtime.db.transact(
        lambda uow: merchants.create_order(
            uow,
            merchant_pk=caller.merchant_pk,
            out_trade_no=body.out_trade_no,
            amount=body.amount,
            currency=body.currency,
            description=body.description,
            store_id=body.store_id,
            terminal_id=body.terminal_id,
            expires_in=body.expires_in,
            notify_url=body.notify_url,
            encryptor=runtime.encryptor,
            settings=runtime.settings,
        )
    )
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return OrderPublic.model_validate(view)


@server_router.get("/orders", responses=LIST_RESPONSES)
def list_orders(
    caller: SignedMerchant,
    runtime: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    before: str | None = None,
) -> OrderList:
    """Your orders, newest first; pass the last id as ``before`` for the next page."""
    with runtime.db.uow(readonly=True) as uow:
        views = merchants.list_orders(
            uow, merchant_pk=caller.merchant_pk, limit=limit, before=before
        )
    return OrderList(
        items=[OrderPublic.model_validate(v) for v in views],
        next_before=views[-1].id if len(views) == limit else None,
    )


@server_router.get("/orders/by-out-trade-no/{out_trade_no}", responses=SIGNED_RESPONSES)
def get_order_by_number(
    out_trade_no: str, caller: SignedMerchant, runtime: RuntimeDep
) -> OrderPublic:
    """An order by your own order number."""
    with runtime.db.uow(readonly=True) as uow:
        view = merchants.get_order(uow, merchant_pk=caller.merchant_pk, out_trade_no=out_trade_no)
    return OrderPublic.model_validate(view)


@server_router.get("/orders/{order_id}", responses=SIGNED_RESPONSES)
def get_order(order_id: str, caller: SignedMerchant, runtime: RuntimeDep) -> OrderPublic:
    """An order by our id (with its dynamic code while it can be paid)."""
    view = runtime.db.transact(
        lambda uow: merchants.get_order(
            uow,
            merchant_pk=caller.merchant_pk,
            order_id=order_id,
            encryptor=runtime.encryptor,
            provider=runtime.settings.interop_participant_id or None,
        )
    )
    return OrderPublic.model_validate(view)


@server_router.post("/orders/{order_id}/close", responses=SIGNED_RESPONSES)
def close_order(order_id: str, caller: SignedMerchant, runtime: RuntimeDep) -> OrderPublic:
    """Close an unpaid order so it can no longer be paid."""
    view = runtime.db.transact(
        lambda uow: merchants.close_order(uow, merchant_pk=caller.merchant_pk, order_id=order_id)
    )
    return OrderPublic.model_validate(view)


@server_router.post(
    "/payments/code",
    response_model=OrderPublic,
    responses={
        **SIGNED_RESPONSES,
        402: {"description": "payment_declined, with ``reason``."},
    },
)
def charge_code(body: CodeCharge, caller: SignedMerchantDeferred, runtime: RuntimeDep) -> Response:
    """Charge a customer's payment code: the order is ``paid``, or
    ``awaiting_confirmation`` (poll it or wait for the webhook); a refusal is 402
    ``payment_declined`` with a ``reason``. Retrying with the same ``out_trade_no`` is safe."""
    view = merchants.charge(
        runtime.db,
        merchant_pk=caller.merchant_pk,
        code=body.code,
        amount=body.amount,
        out_trade_no=body.out_trade_no,
        description=body.description,
        store_id=body.store_id,
        terminal_id=body.terminal_id,
        notify_url=body.notify_url,
        encryptor=runtime.encryptor,
        settings=runtime.settings,
        nonce=caller.nonce,
    )
    # rendered here, in the route's worker thread: a model returned to FastAPI from a sync
    # route is validated again in a second one
    return Response(
        OrderPublic.model_validate(view).model_dump_json(), media_type="application/json"
    )


@server_router.post(
    "/orders/{order_id}/refunds",
    responses={
        **SIGNED_RESPONSES,
        202: {"model": RefundPublic, "description": "Sent through the switch: processing"},
    },
)
def create_refund(
    order_id: str,
    body: RefundCreate,
    caller: SignedMerchant,
    runtime: RuntimeDep,
    response: Response,
) -> RefundPublic:
    """Refund part or all of a paid order. The same ``out_refund_no`` returns the refund
    made before (200); 409 ``refund_exceeds_paid`` or ``merchant_balance_insufficient``.
    An order paid through the switch: 201 once final within a short wait, else 202
    ``processing`` (the ``refund.succeeded`` webhook, or a query, tells the end)."""
    view, created = runtime.db.transact(
        lambda uow: merchants.refund_order(
            uow,
            merchant_pk=caller.merchant_pk,
            order_id=order_id,
            out_refund_no=body.out_refund_no,
            amount=body.amount,
            reason=body.reason,
            switch=switch_refunds(runtime),
        )
    )
    if created and view.status == "processing":
        view = _final_refund(runtime, caller.merchant_pk, view)
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    if view.status == "processing":
        response.status_code = status.HTTP_202_ACCEPTED
    return RefundPublic.model_validate(view)


def _final_refund(
    runtime: Runtime, merchant_pk: int, view: merchants.RefundView
) -> merchants.RefundView:
    """The refund once the switch has decided, or as it is after a short wait."""

    def final(uow: UnitOfWork) -> merchants.RefundView | None:
        now = merchants.get_refund(uow, merchant_pk=merchant_pk, refund_id=view.id)
        return None if now.status == "processing" else now

    return interop.wait_for(runtime.db, final, seconds=REFUND_WAIT_SECONDS) or view


@server_router.get("/orders/{order_id}/refunds", responses=SIGNED_RESPONSES)
def list_refunds(order_id: str, caller: SignedMerchant, runtime: RuntimeDep) -> RefundList:
    """An order's refunds, oldest first."""
    with runtime.db.uow(readonly=True) as uow:
        views = merchants.list_refunds(uow, merchant_pk=caller.merchant_pk, order_id=order_id)
    return RefundList(items=[RefundPublic.model_validate(v) for v in views])


@server_router.get("/refunds/{refund_id}", responses=SIGNED_RESPONSES)
def get_refund(refund_id: str, caller: SignedMerchant, runtime: RuntimeDep) -> RefundPublic:
    """A refund by our id."""
    with runtime.db.uow(readonly=True) as uow:
        view = merchants.get_refund(uow, merchant_pk=caller.merchant_pk, refund_id=refund_id)
    return RefundPublic.model_validate(view)


@server_router.get("/events", responses=LIST_RESPONSES)
def list_events(
    caller: SignedMerchant,
    runtime: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    before: str | None = None,
) -> EventList:
    """Your webhook events, newest first."""
    with runtime.db.uow(readonly=True) as uow:
        views = merchants.list_events(
            uow, merchant_id=caller.merchant_pk, limit=limit, before=before
        )
    return EventList(
        items=[EventPublic.model_validate(v) for v in views],
        next_before=views[-1].id if len(views) == limit else None,
    )


@server_router.get("/events/{event_id}", responses=SIGNED_RESPONSES)
def get_event(event_id: str, caller: SignedMerchant, runtime: RuntimeDep) -> EventDetailPublic:
    """An event with the exact body sent and every delivery attempt."""
    with runtime.db.uow(readonly=True) as uow:
        view = merchants.get_event(uow, merchant_id=caller.merchant_pk, event_id=event_id)
    return EventDetailPublic.model_validate(view)


@server_router.post("/events/{event_id}/redeliver", responses=SIGNED_RESPONSES)
def redeliver_event(event_id: str, caller: SignedMerchant, runtime: RuntimeDep) -> EventPublic:
    """Send an event again (receivers dedupe by its id); at most 60 an hour."""

    def again(uow: UnitOfWork) -> merchants.EventView:
        ratelimit.hit(uow, merchants.REDELIVERIES, caller.merchant_id)
        return merchants.redeliver(uow, merchant_id=caller.merchant_pk, event_id=event_id)

    view = runtime.db.transact(again)
    return EventPublic.model_validate(view)


@server_router.get("/settlements", responses=LIST_RESPONSES)
def list_settlements(
    caller: SignedMerchant,
    runtime: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    before: str | None = None,
) -> SettlementList:
    """Payouts to your bank card, latest business day first."""
    with runtime.db.uow(readonly=True) as uow:
        views = merchants.list_settlements(
            uow, merchant_id=caller.merchant_pk, limit=limit, before=before
        )
    return SettlementList(
        items=[SettlementPublic.model_validate(v) for v in views],
        next_before=views[-1].id if len(views) == limit else None,
    )


@server_router.get("/settlements/{settlement_id}", responses=SIGNED_RESPONSES)
def get_settlement(
    settlement_id: str, caller: SignedMerchant, runtime: RuntimeDep
) -> SettlementPublic:
    """One payout."""
    with runtime.db.uow(readonly=True) as uow:
        view = merchants.get_settlement(
            uow, merchant_id=caller.merchant_pk, settlement_id=settlement_id
        )
    return SettlementPublic.model_validate(view)


@server_router.get("/statements/{day}.csv", responses=SIGNED_RESPONSES, response_class=Response)
def get_statement_csv(
    day: Day,
    caller: SignedMerchant,
    runtime: RuntimeDep,
    headers: Annotated[
        Literal["keys", "zh"],
        Query(description="'keys' (default): column keys; 'zh': Chinese headers and types."),
    ] = "keys",
    bom: Annotated[bool, Query(description="Start with a UTF-8 BOM (for Excel).")] = False,
) -> Response:
    """One business day's statement as CSV (docs/merchant.md lists the columns)."""
    with runtime.db.uow(readonly=True) as uow:
        found = merchants.statement(
            uow, merchant_id=caller.merchant_pk, day=day, settings=runtime.settings
        )
    return Response(
        merchants.statement_csv(found, bom=bom, headers=headers),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{caller.merchant_id}-{day}.csv"'},
    )
