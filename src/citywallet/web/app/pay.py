"""Residents' wallet pages: scan to pay and the payment code.

- ``/app/scan``: scan a merchant's QR with the camera (BarcodeDetector, where the browser has
  it), upload a photo of it (decoded here with zxing-cpp), or paste its payload; then
  ``/app/scan/preview`` shows whom and how much (``merchants.preview_scan``), the PIN form
  pays it (``merchants.pay_scan``) and ``/app/scan/paid/{order}`` shows the result.
- ``/app/paycode``: the payment code as a Code 128 barcode and a QR that refresh every
  minute (``merchants.current_code`` for a device registered for this web app), and charges
  above the password-free limits waiting for the resident's PIN (``confirm_charge``) or
  refusal (``decline_charge``).

Money-moving forms confirm the payment PIN and carry a one-time key
(:func:`citywallet.web.forms.once`): a double submit moves money once.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from urllib.parse import quote

from fastapi import APIRouter, File, Request, UploadFile
from fastapi.responses import JSONResponse, RedirectResponse, Response

from citywallet.interop.provider import service as interop
from citywallet.merchant import images
from citywallet.merchant import service as merchants
from citywallet.merchant.emv import MerchantCode
from citywallet.merchant.service import DeviceView
from citywallet.platform.db import UnitOfWork
from citywallet.platform.errors import Conflict, DomainError, InvalidInput
from citywallet.runtime import Runtime
from citywallet.wallet import receive_code
from citywallet.web.forms import done, key_or_new, new_key, once, parse_amount
from citywallet.web.i18n import N_
from citywallet.web.session import FormFields, ViewerDep, field_errors, runtime_of
from citywallet.web.templating import render

router = APIRouter(prefix="/app", include_in_schema=False)

WAIT_SECONDS = 5.0  # for the switch's answers, as the API waits
WEB_DEVICE_LABEL = "Web (CityWallet app)"
MAX_IMAGE_BYTES = 8 * 1024 * 1024
MAX_IMAGE_PIXELS = 40_000_000
PAY_FIELDS = {
    "pin_incorrect": "pin",
    "pin_locked": "pin",
    "pin_not_set": "pin",
    "invalid_amount": "amount",
    "amount_required": "amount",
    "amount_too_small": "amount",
    "amount_too_large": "amount",
    "insufficient_balance": "amount",
    "static_code_limit_exceeded": "amount",
    "single_limit_exceeded": "amount",
    "daily_limit_exceeded": "amount",
    "yearly_limit_exceeded": "amount",
}
N_("Paid.")

N_("Payment declined.")
N_("Payment code turned on for this browser.")
N_("Payment sent; the other provider has not confirmed it yet.")
N_("The payment did not go through; nothing was taken.")
SWITCH_RESULT = {  # a payment through the switch: the flash after it
    "committed": "Paid.",
    "processing": "Payment sent; the other provider has not confirmed it yet.",
}
SWITCH_FAILED = "The payment did not go through; nothing was taken."


class InteropUnavailable(Conflict):
    """The merchant's provider refused a payment through the switch, or did not answer."""

    code = "interop_quote_refused"


# --- scan to pay ---------------------------------------------------------------------------


def decode_qr_image(data: bytes) -> str:
    """The text of the first QR code in a photo (``qr_not_found`` if there is none)."""
    import zxingcpp
    from PIL import Image, UnidentifiedImageError

    if len(data) > MAX_IMAGE_BYTES:
        raise InvalidInput("This picture is too large (at most 8 MB).", code="image_too_large")
    try:
        with Image.open(io.BytesIO(data)) as picture:
            width, height = picture.size
            if width * height > MAX_IMAGE_PIXELS:
                raise InvalidInput("This picture is too large.", code="image_too_large")
            picture.load()
            rgb = picture.convert("RGB")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
        raise InvalidInput("This file is not a picture.", code="image_unreadable") from None
    found = zxingcpp.read_barcodes(
        rgb, formats=zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)
    )
    for barcode in found:
        if barcode.text:
            return str(barcode.text)
    raise InvalidInput("No QR code was found in this picture.", code="qr_not_found")


def _scan_page(
    request: Request, errors: dict[str, DomainError], status_code: int = 200
) -> Response:
    return render(
        request,
        "app/scan.html",
        {"field_errors": errors, "form": {}},
        status_code=status_code,
    )


@router.get("/scan")
def scan(request: Request, _viewer: ViewerDep) -> Response:
    return _scan_page(request, {})


@router.post("/scan/image")
def scan_image(
    request: Request,
    _viewer: ViewerDep,
    _fields: FormFields,
    image: UploadFile | None = File(default=None),  # noqa: B008 — FastAPI's way
) -> Response:
    """A photo of the merchant's QR, decoded here, then the preview."""
    try:
        if image is None:
            raise InvalidInput("Choose a picture of the QR code.", code="image_unreadable")
        payload = decode_qr_image(image.file.read(MAX_IMAGE_BYTES + 1))
    except DomainError as exc:
        return _scan_page(request, field_errors(exc, {}), status_code=exc.status)
    return RedirectResponse(f"/app/scan/preview?payload={quote(payload, safe='')}", 303)


def _foreign(runtime: Runtime, payload: str) -> MerchantCode | None:
    return merchants.foreign_code(payload, participant_id=runtime.settings.interop_participant_id)


def _preview(runtime: Runtime, user_id: str, payload: str) -> merchants.ScanPreview:
    foreign = _foreign(runtime, payload)
    if foreign is not None:  # another provider's merchant: paid through the switch
        return merchants.foreign_preview(foreign)
    return runtime.db.transact(
        lambda uow: merchants.preview_scan(
            uow, user_id=user_id, payload=payload, encryptor=runtime.encryptor
        )
    )


def _preview_page(
    request: Request,
    preview: merchants.ScanPreview,
    payload: str,
    *,
    key: str,
    form: dict[str, str],
    errors: dict[str, DomainError],
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "app/pay_preview.html",
        {
            "preview": preview,
            "payload": payload,
            "key": key,
            "form": form,
            "field_errors": errors,
        },
        status_code=status_code,
    )


@router.get("/scan/preview")
def scan_preview(request: Request, viewer: ViewerDep, payload: str = "") -> Response:
    """Whom the resident would pay, and how much (moves nothing)."""
    payload = payload.strip()
    if not payload:
        exc = InvalidInput("Paste the code's text or scan it.", code="qr_empty")
        return render(
            request,
            "app/scan.html",
            {"field_errors": {"payload": exc}, "form": {}},
            status_code=400,
        )
    if receive_code.claims(payload):  # a resident's receive code: a P2P transfer
        return RedirectResponse(f"/app/receive/pay?payload={quote(payload, safe='')}", 303)
    try:
        preview = _preview(runtime_of(request), viewer.user_id, payload)
    except DomainError as exc:
        return render(
            request,
            "app/scan.html",
            {"field_errors": {"payload": exc}, "form": {"payload": payload}},
            status_code=exc.status,
        )
    return _preview_page(request, preview, payload, key=new_key(), form={}, errors={})


@router.post("/scan/pay")
def scan_pay(request: Request, viewer: ViewerDep, fields: FormFields) -> Response:
    """Pay the scanned code with the PIN (a static code: the amount typed). A repeated
    submit of the same form shows the first payment."""
    runtime = runtime_of(request)
    payload = fields.get("payload", "").strip()
    key = fields.get("key", "")
    typed = fields.get("amount", "").strip()
    note = fields.get("note", "")[:128]
    try:
        amount = parse_amount(typed) if typed else None
        foreign = _foreign(runtime, payload)
        if foreign is not None:
            transfer, state = _pay_foreign(
                runtime, viewer.user_id, foreign, payload, amount, note, key, fields
            )
            return done(f"/app/scan/paid/{transfer}", SWITCH_RESULT.get(state, SWITCH_FAILED))
        paid = once(
            runtime,
            user_id=viewer.user_id,
            key=key,
            action="scan_pay",
            fields={"payload": payload, "amount": str(amount), "note": note},
            work=lambda uow: (
                merchants.pay_scan(
                    uow,
                    user_id=viewer.user_id,
                    payload=payload,
                    amount=amount,
                    note=note,
                    encryptor=runtime.encryptor,
                    settings=runtime.settings,
                    pin=fields.get("pin", ""),
                ).order_id
            ),
        )
    except DomainError as exc:
        try:
            preview = _preview(runtime, viewer.user_id, payload)
        except DomainError as gone:
            return render(
                request,
                "app/scan.html",
                {"field_errors": {"payload": gone}, "form": {"payload": payload}},
                status_code=gone.status,
            )
        return _preview_page(
            request,
            preview,
            payload,
            key=key_or_new(key),
            form={"amount": typed, "note": note},
            errors=field_errors(exc, PAY_FIELDS),
            status_code=exc.status,
        )
    return done(f"/app/scan/paid/{paid}", "Paid.")


def _pay_foreign(
    runtime: Runtime,
    user_id: str,
    code: MerchantCode,
    payload: str,
    amount: int | None,
    note: str,
    key: str,
    fields: dict[str, str],
) -> tuple[str, str]:
    """Pay another provider's code through the switch (as ``POST /v1/payments/scan``):
    a quote carrying the payload, then the PIN-confirmed transfer; returns its ``itf_`` id
    and state once the switch decided, or after the wait (state ``processing``)."""
    interop.require_configured(runtime.settings)
    if code.amount is not None and amount not in (None, code.amount):
        raise InvalidInput("This code's order fixes the amount.", code="amount_mismatch")
    amount = code.amount if code.amount is not None else amount
    if amount is None:
        raise InvalidInput("Enter the amount to pay at this counter.", code="amount_required")
    quote_id = runtime.db.transact(
        lambda uow: interop.start_merchant_quote(
            uow, user_id=user_id, merchant_id=code.merchant_id, participant=code.provider or "",
            merchant_name=code.name_zh or code.merchant_name, qr_payload=payload,
            amount=amount, settings=runtime.settings, encryptor=runtime.encryptor,
            now=datetime.now(UTC),
        )
    )  # fmt: skip

    def answered(uow: UnitOfWork) -> interop.Waiting | None:
        state, _ = interop.quote_state(uow, user_id=user_id, quote_id=quote_id)
        return None if state.state == "waiting" else state

    state = interop.wait_for(
        runtime.db, answered, seconds=WAIT_SECONDS, key=interop.quote_key(quote_id)
    )
    if state is None:
        raise InteropUnavailable(
            "The merchant's provider did not answer in time; try again.", code="interop_timeout"
        )
    if state.state != "ready":
        raise InteropUnavailable(
            "The merchant's provider refused this payment.", code="interop_quote_refused"
        )
    transfer = once(
        runtime, user_id=user_id, key=key, action="scan_pay",
        fields={"payload": payload, "amount": str(amount), "note": note},
        work=lambda uow: interop.send_transfer(
            uow, user_id=user_id, quote_id=quote_id, pin=fields.get("pin", ""),
            settings=runtime.settings, encryptor=runtime.encryptor, note=note,
        ).id,
    )  # fmt: skip

    def final(uow: UnitOfWork) -> str | None:
        view = interop.get_transfer(uow, user_id=user_id, transfer_id=transfer)
        return None if view.state == "processing" else view.state

    ended = interop.wait_for(
        runtime.db, final, seconds=WAIT_SECONDS, key=interop.transfer_key(transfer)
    )
    return transfer, ended or "processing"


_SWITCH_STATUS = {"committed": "paid", "processing": "processing"}  # else: failed


@router.get("/scan/paid/{order_id}")
def scan_paid(order_id: str, request: Request, viewer: ViewerDep) -> Response:
    """The result of a payment the resident made (another resident's: 404); ``itf_…``: a
    payment to another provider's merchant through the switch."""
    with runtime_of(request).db.uow(readonly=True) as uow:
        if order_id.startswith("itf_"):
            switched = interop.get_transfer(uow, user_id=viewer.user_id, transfer_id=order_id)
            view = merchants.PaymentView(
                order_id=switched.id, merchant_id="", merchant_name=switched.masked_name,
                amount=switched.amount, restricted_amount=0, currency=switched.currency,
                status=_SWITCH_STATUS.get(switched.state, "failed"), channel="interop_qr",
                paid_at=switched.resolved_at if switched.state == "committed" else None,
            )  # fmt: skip
            return render(
                request, "app/pay_result.html",
                {"payment": view, "provider": switched.participant,
                 "switch_transfer_id": switched.switch_transfer_id},
            )  # fmt: skip
        view = merchants.resident_payment(uow, user_id=viewer.user_id, order_id=order_id)
    return render(request, "app/pay_result.html", {"payment": view})


# --- payment code --------------------------------------------------------------------------


def _web_device(runtime: Runtime, user_id: str) -> DeviceView | None:
    with runtime.db.uow(readonly=True) as uow:
        devices = merchants.list_devices(uow, user_id=user_id)
    for device in devices:
        if device.status == "active" and device.label == WEB_DEVICE_LABEL:
            return device
    return None


@router.get("/paycode")
def paycode(request: Request, viewer: ViewerDep) -> Response:
    """The current payment code (if turned on for this app) and charges to confirm."""
    runtime = runtime_of(request)
    device = _web_device(runtime, viewer.user_id)
    code = None
    if device is not None:
        with runtime.db.uow(readonly=True) as uow:
            code = merchants.current_code(
                uow, user_id=viewer.user_id, device_id=device.id, encryptor=runtime.encryptor
            )
    with runtime.db.uow(readonly=True) as uow:
        pending = merchants.pending_confirmations(uow, user_id=viewer.user_id)
        prefs = merchants.get_prefs(uow, user_id=viewer.user_id, settings=runtime.settings)
    return render(
        request,
        "app/paycode.html",
        {"device": device, "code": code, "pending": pending, "prefs": prefs},
    )


@router.post("/paycode/device")
def paycode_turn_on(request: Request, viewer: ViewerDep, _fields: FormFields) -> Response:
    """Register this web app as a payment-code device (once)."""
    runtime = runtime_of(request)
    if _web_device(runtime, viewer.user_id) is None:
        try:
            runtime.db.transact(
                lambda uow: merchants.register_device(
                    uow,
                    user_id=viewer.user_id,
                    label=WEB_DEVICE_LABEL,
                    encryptor=runtime.encryptor,
                )
            )
        except DomainError as exc:
            with runtime.db.uow(readonly=True) as uow:
                pending = merchants.pending_confirmations(uow, user_id=viewer.user_id)
                prefs = merchants.get_prefs(uow, user_id=viewer.user_id, settings=runtime.settings)
            return render(
                request,
                "app/paycode.html",
                {
                    "device": None,
                    "code": None,
                    "pending": pending,
                    "prefs": prefs,
                    "field_errors": field_errors(exc, {}),
                },
                status_code=exc.status,
            )
    return done("/app/paycode", "Payment code turned on for this browser.")


def _code(runtime: Runtime, user_id: str, device_id: str) -> merchants.CodeView:
    with runtime.db.uow(readonly=True) as uow:
        return merchants.current_code(
            uow, user_id=user_id, device_id=device_id, encryptor=runtime.encryptor
        )


NO_STORE = {"Cache-Control": "no-store"}


@router.get("/paycode/{device_id}/code.json")
def paycode_json(device_id: str, request: Request, viewer: ViewerDep) -> JSONResponse:
    """The code to show now, for the page's refresh (another resident's device: 404)."""
    runtime = runtime_of(request)
    view = _code(runtime, viewer.user_id, device_id)
    with runtime.db.uow(readonly=True) as uow:
        pending = merchants.pending_confirmations(uow, user_id=viewer.user_id)
    return JSONResponse(
        {
            "code": view.code,
            "valid_until_ms": view.valid_until // 1000,
            "barcode_url": f"/app/paycode/{device_id}/barcode.svg?c={view.code}",
            "qr_url": f"/app/paycode/{device_id}/qr.svg?c={view.code}",
            "pending": [f"/app/paycode/confirm/{p.order_id}" for p in pending],
        },
        headers=NO_STORE,
    )


@router.get("/paycode/{device_id}/barcode.svg")
def paycode_barcode(device_id: str, request: Request, viewer: ViewerDep) -> Response:
    view = _code(runtime_of(request), viewer.user_id, device_id)
    return Response(images.barcode_svg(view.code), media_type="image/svg+xml", headers=NO_STORE)


@router.get("/paycode/{device_id}/qr.svg")
def paycode_qr(device_id: str, request: Request, viewer: ViewerDep) -> Response:
    view = _code(runtime_of(request), viewer.user_id, device_id)
    return Response(images.qr_svg(view.code), media_type="image/svg+xml", headers=NO_STORE)


CONFIRM_FIELDS = {"pin_incorrect": "pin", "pin_locked": "pin", "pin_not_set": "pin"}


def _pending_page(
    request: Request,
    payment: merchants.PaymentView,
    *,
    key: str,
    errors: dict[str, DomainError],
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "app/paycode_confirm.html",
        {"payment": payment, "key": key, "field_errors": errors},
        status_code=status_code,
    )


@router.get("/paycode/confirm/{order_id}")
def paycode_confirm_page(order_id: str, request: Request, viewer: ViewerDep) -> Response:
    """A charge above the password-free limits: confirm with the PIN, or decline."""
    with runtime_of(request).db.uow(readonly=True) as uow:
        view = merchants.resident_payment(uow, user_id=viewer.user_id, order_id=order_id)
    return _pending_page(request, view, key=new_key(), errors={})


@router.post("/paycode/confirm/{order_id}")
def paycode_confirm(
    order_id: str, request: Request, viewer: ViewerDep, fields: FormFields
) -> Response:
    runtime = runtime_of(request)
    key = fields.get("key", "")
    try:
        confirmed = once(
            runtime,
            user_id=viewer.user_id,
            key=key,
            action=f"paycode_confirm:{order_id}",
            fields={"order_id": order_id},
            work=lambda uow: (
                merchants.confirm_charge(
                    uow,
                    user_id=viewer.user_id,
                    order_id=order_id,
                    settings=runtime.settings,
                    pin=fields.get("pin", ""),
                    encryptor=runtime.encryptor,
                ).order_id
            ),
        )
    except DomainError as exc:
        with runtime.db.uow(readonly=True) as uow:
            view = merchants.resident_payment(uow, user_id=viewer.user_id, order_id=order_id)
        return _pending_page(
            request,
            view,
            key=key_or_new(key),
            errors=field_errors(exc, CONFIRM_FIELDS),
            status_code=exc.status,
        )
    return done(f"/app/scan/paid/{confirmed}", "Paid.")


@router.post("/paycode/decline/{order_id}")
def paycode_decline(
    order_id: str, request: Request, viewer: ViewerDep, _fields: FormFields
) -> Response:
    runtime = runtime_of(request)
    try:
        runtime.db.transact(
            lambda uow: merchants.decline_charge(uow, user_id=viewer.user_id, order_id=order_id)
        )
    except DomainError as exc:
        with runtime.db.uow(readonly=True) as uow:
            view = merchants.resident_payment(uow, user_id=viewer.user_id, order_id=order_id)
        return _pending_page(
            request, view, key=new_key(), errors=field_errors(exc, {}), status_code=exc.status
        )
    return done("/app/paycode", "Payment declined.")
