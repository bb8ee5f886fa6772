"""Residents paying merchants: scan a merchant's code, show a payment code, confirm charges.

Money-moving ``POST``s confirm the payment PIN and go through
:class:`~citywallet.api.idempotency.Idempotent`, as the wallet's do.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request, Response, status

from citywallet.api.confirming import confirm_charge, confirm_scan, second_factor_code
from citywallet.api.deps import CurrentUser, RuntimeDep
from citywallet.api.idempotency import IdempotencyKeyHeader, Idempotent, Rendered
from citywallet.api.interop import pay_quote, wait_for_quote
from citywallet.api.wallet import MONEY_RESPONSES
from citywallet.identity.service import run_confirmed
from citywallet.interop.provider import service as interop
from citywallet.merchant import images
from citywallet.merchant import service as merchants
from citywallet.merchant.emv import MerchantCode
from citywallet.merchant.schemas import (
    CodePublic,
    DeviceCreate,
    DeviceCreated,
    DeviceList,
    DevicePublic,
    PaymentList,
    PaymentPublic,
    PinConfirm,
    PrefsPublic,
    PrefsUpdate,
    ScanPay,
    ScanPreviewPublic,
    ScanPreviewRequest,
)
from citywallet.platform.clock import to_datetime
from citywallet.platform.db import UnitOfWork
from citywallet.platform.errors import InvalidInput
from citywallet.runtime import Runtime

router = APIRouter(prefix="/v1/payments", tags=["payments"])
paycode_router = APIRouter(prefix="/v1/paycode", tags=["payments"])


@router.post("/scan/preview")
def preview_scan(
    body: ScanPreviewRequest, auth: CurrentUser, runtime: RuntimeDep
) -> ScanPreviewPublic:
    """Decode a scanned merchant code: whom you would pay and how much (moves nothing).
    A foreign or altered code is refused (``qr_foreign``, ``qr_crc_mismatch``,
    ``qr_tampered``, …)."""
    foreign = merchants.foreign_code(
        body.payload, participant_id=runtime.settings.interop_participant_id
    )
    if foreign is not None:  # another provider's merchant: paid through the switch
        return ScanPreviewPublic.model_validate(merchants.foreign_preview(foreign))
    view = runtime.db.transact(
        lambda uow: merchants.preview_scan(
            uow, user_id=auth.user_id, payload=body.payload, encryptor=runtime.encryptor
        )
    )
    return ScanPreviewPublic.model_validate(view)


@router.post(
    "/scan",
    status_code=status.HTTP_201_CREATED,
    response_model=PaymentPublic,
    responses=MONEY_RESPONSES,
)
def pay_scan(
    body: ScanPay,
    request: Request,
    auth: CurrentUser,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    """Pay a scanned merchant code with your PIN: a dynamic code pays its order, a static
    code pays the ``amount`` you enter (static codes: at most 500 yuan a day). Another
    provider's code is paid through the switch: 201 ``paid`` or ``failed`` once the switch
    has decided, 202 ``processing`` if not yet (docs/interop.md)."""
    call = Idempotent.of(runtime, request, scope=auth.user_id, key=idempotency_key, body=body)
    foreign = merchants.foreign_code(
        body.payload, participant_id=runtime.settings.interop_participant_id
    )
    if foreign is not None:
        return _pay_foreign(runtime, call, auth.user_id, body, foreign)
    sms_code_id = second_factor_code(runtime, user_id=auth.user_id, sms_code=body.sms_code)

    def pay(uow: UnitOfWork) -> merchants.PaymentView:
        pin = confirm_scan(
            uow, runtime, user_id=auth.user_id, session_id=auth.session_id,
            payload=body.payload, amount=body.amount, pin=body.pin, passkey=body.passkey,
            sms_code_id=sms_code_id,
        )  # fmt: skip
        return merchants.pay_scan(
            uow,
            user_id=auth.user_id,
            payload=body.payload,
            amount=body.amount,
            note=body.note,
            encryptor=runtime.encryptor,
            settings=runtime.settings,
            pin=pin,
        )

    return call.run(pay, lambda view: (status.HTTP_201_CREATED, PaymentPublic.model_validate(view)))


@router.get("/pending")
def pending(auth: CurrentUser, runtime: RuntimeDep) -> PaymentList:
    """Payment-code charges above your password-free limits, waiting for you to confirm."""
    with runtime.db.uow(readonly=True) as uow:
        views = merchants.pending_confirmations(uow, user_id=auth.user_id)
    return PaymentList(items=[PaymentPublic.model_validate(v) for v in views])


@router.get("/{order_id}")
def get_payment(order_id: str, auth: CurrentUser, runtime: RuntimeDep) -> PaymentPublic:
    """A payment you made (or are asked to confirm)."""
    with runtime.db.uow(readonly=True) as uow:
        view = merchants.resident_payment(uow, user_id=auth.user_id, order_id=order_id)
    return PaymentPublic.model_validate(view)


@router.post("/{order_id}/confirm", response_model=PaymentPublic, responses=MONEY_RESPONSES)
def confirm(
    order_id: str,
    body: PinConfirm,
    request: Request,
    auth: CurrentUser,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    """Confirm a payment-code charge with your PIN: it is paid now."""
    call = Idempotent.of(runtime, request, scope=auth.user_id, key=idempotency_key, body=body)
    return call.run(
        lambda uow: merchants.confirm_charge(
            uow,
            user_id=auth.user_id,
            order_id=order_id,
            settings=runtime.settings,
            pin=confirm_charge(
                uow,
                runtime,
                user_id=auth.user_id,
                order_id=order_id,
                pin=body.pin,
                passkey=body.passkey,
            ),
            encryptor=runtime.encryptor,
        ),
        lambda view: (status.HTTP_200_OK, PaymentPublic.model_validate(view)),
    )


@router.post("/{order_id}/decline")
def decline(order_id: str, auth: CurrentUser, runtime: RuntimeDep) -> PaymentPublic:
    """Refuse a payment-code charge; the merchant's order closes."""
    view = runtime.db.transact(
        lambda uow: merchants.decline_charge(uow, user_id=auth.user_id, order_id=order_id)
    )
    return PaymentPublic.model_validate(view)


# --- payment codes ------------------------------------------------------------------------


@paycode_router.post("/devices", status_code=status.HTTP_201_CREATED)
def register_device(body: DeviceCreate, auth: CurrentUser, runtime: RuntimeDep) -> DeviceCreated:
    """Register this device to show payment codes; keep the secret on the device."""
    new = runtime.db.transact(
        lambda uow: merchants.register_device(
            uow, user_id=auth.user_id, label=body.label, encryptor=runtime.encryptor
        )
    )
    return DeviceCreated(
        device=DevicePublic.model_validate(new.device), secret=new.secret, slot=new.slot
    )


@paycode_router.get("/devices")
def list_devices(auth: CurrentUser, runtime: RuntimeDep) -> DeviceList:
    """Your payment-code devices."""
    with runtime.db.uow(readonly=True) as uow:
        views = merchants.list_devices(uow, user_id=auth.user_id)
    return DeviceList(items=[DevicePublic.model_validate(v) for v in views])


@paycode_router.delete("/devices/{device_id}")
def revoke_device(device_id: str, auth: CurrentUser, runtime: RuntimeDep) -> DevicePublic:
    """Stop accepting a device's codes (a lost phone)."""
    view = runtime.db.transact(
        lambda uow: merchants.revoke_device(uow, user_id=auth.user_id, device_id=device_id)
    )
    return DevicePublic.model_validate(view)


def _code(runtime: Runtime, user_id: str, device_id: str) -> merchants.CodeView:
    with runtime.db.uow(readonly=True) as uow:
        return merchants.current_code(
            uow, user_id=user_id, device_id=device_id, encryptor=runtime.encryptor
        )


@paycode_router.get("/devices/{device_id}/code")
def current_code(device_id: str, auth: CurrentUser, runtime: RuntimeDep) -> CodePublic:
    """The code to show now (the web app's; an installed app computes it offline)."""
    view = _code(runtime, auth.user_id, device_id)
    base = f"/v1/paycode/devices/{device_id}/code"
    return CodePublic(
        code=view.code,
        valid_until=to_datetime(view.valid_until),
        barcode_svg_url=f"{base}/barcode.svg",
        qr_svg_url=f"{base}/qr.svg",
    )


@paycode_router.get(
    "/devices/{device_id}/code/barcode.svg",
    response_class=Response,
    responses={200: {"content": {"image/svg+xml": {}}}},
)
def current_barcode(device_id: str, auth: CurrentUser, runtime: RuntimeDep) -> Response:
    """The current code as a Code 128 barcode."""
    view = _code(runtime, auth.user_id, device_id)
    return Response(
        images.barcode_svg(view.code),
        media_type="image/svg+xml",
        headers={"Cache-Control": "no-store"},
    )


@paycode_router.get(
    "/devices/{device_id}/code/qr.svg",
    response_class=Response,
    responses={200: {"content": {"image/svg+xml": {}}}},
)
def current_qr(device_id: str, auth: CurrentUser, runtime: RuntimeDep) -> Response:
    """The current code as a QR code."""
    view = _code(runtime, auth.user_id, device_id)
    return Response(
        images.qr_svg(view.code), media_type="image/svg+xml", headers={"Cache-Control": "no-store"}
    )


@paycode_router.get("/prefs")
def get_prefs(auth: CurrentUser, runtime: RuntimeDep) -> PrefsPublic:
    """Your password-free limits for payment codes."""
    with runtime.db.uow(readonly=True) as uow:
        view = merchants.get_prefs(uow, user_id=auth.user_id, settings=runtime.settings)
    return PrefsPublic.model_validate(view)


@paycode_router.put("/prefs")
def set_prefs(body: PrefsUpdate, auth: CurrentUser, runtime: RuntimeDep) -> PrefsPublic:
    """Change your password-free limits (with your PIN, checked in the same transaction)."""
    view = run_confirmed(
        runtime.db,
        lambda uow: merchants.set_prefs(
            uow,
            user_id=auth.user_id,
            enabled=body.enabled,
            per_payment=body.per_payment,
            per_day=body.per_day,
            settings=runtime.settings,
            pin=body.pin,
            encryptor=runtime.encryptor,
        ),
        settings=runtime.settings,
    )
    return PrefsPublic.model_validate(view)


_SCAN_STATUS = {"committed": "paid", "processing": "processing"}  # else: failed


def _pay_foreign(
    runtime: Runtime, call: Idempotent, user_id: str, body: ScanPay, code: MerchantCode
) -> Response:
    """Pay another provider's merchant code through the switch: a quote carrying the
    payload (its provider authenticates it), then the provider's payer transfer."""
    interop.require_configured(runtime.settings)
    assert code.provider is not None  # a foreign code names its provider
    pin = body.pin
    if pin is None:  # a passkey confirms payments of this provider only
        raise InvalidInput(
            "Confirm a payment through the switch with the payment PIN.", code="pin_required"
        )
    if code.amount is not None and body.amount not in (None, code.amount):
        raise InvalidInput("This code's order fixes the amount.", code="amount_mismatch")
    amount = code.amount if code.amount is not None else body.amount
    if amount is None:
        raise InvalidInput("Enter the amount to pay at this counter.", code="amount_required")
    name = code.name_zh or code.merchant_name
    quote_id = runtime.db.transact(
        lambda uow: interop.start_merchant_quote(
            uow, user_id=user_id, merchant_id=code.merchant_id, participant=code.provider or "",
            merchant_name=name, qr_payload=body.payload.strip(), amount=amount,
            settings=runtime.settings, encryptor=runtime.encryptor, now=datetime.now(UTC),
        )
    )  # fmt: skip
    wait_for_quote(runtime, user_id, quote_id)

    def render(view: interop.InteropTransferView) -> Rendered:
        final = view.state != "processing"
        return (
            status.HTTP_201_CREATED if final else status.HTTP_202_ACCEPTED,
            PaymentPublic(
                order_id=code.order_ref or view.id,
                merchant_id=code.merchant_id,
                merchant_name=name,
                amount=view.amount,
                restricted_amount=0,
                currency=view.currency,
                status=_SCAN_STATUS.get(view.state, "failed"),
                channel="interop_qr",
                paid_at=to_datetime(view.resolved_at)
                if view.state == "committed" and view.resolved_at
                else None,
                provider=code.provider,
                switch_transfer_id=view.switch_transfer_id,
                transfer_id=view.id,
            ),
        )

    return pay_quote(
        runtime, call, user_id=user_id, quote_id=quote_id, pin=pin, note=body.note,
        render=render,
    )  # fmt: skip
