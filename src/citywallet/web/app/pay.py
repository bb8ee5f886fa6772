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
from urllib.parse import quote

from fastapi import APIRouter, File, Request, UploadFile
from fastapi.responses import JSONResponse, RedirectResponse, Response

from citywallet.merchant import images
from citywallet.merchant import service as merchants
from citywallet.merchant.service import DeviceView
from citywallet.platform.errors import DomainError, InvalidInput
from citywallet.runtime import Runtime
from citywallet.web.forms import done, key_or_new, new_key, once, parse_amount
from citywallet.web.i18n import N_
from citywallet.web.session import FormFields, ViewerDep, field_errors, runtime_of
from citywallet.web.templating import render

router = APIRouter(prefix="/app", include_in_schema=False)

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


def _preview(runtime: Runtime, user_id: str, payload: str) -> merchants.ScanPreview:
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


@router.get("/scan/paid/{order_id}")
def scan_paid(order_id: str, request: Request, viewer: ViewerDep) -> Response:
    """The result of a payment the resident made (another resident's: 404)."""
    with runtime_of(request).db.uow(readonly=True) as uow:
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
