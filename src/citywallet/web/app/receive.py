"""The personal receive code (收钱码): the resident's own static QR, optionally with an
amount, and paying one that was scanned.

``/app/receive`` shows the code (``wallet.my_receive_code``, an EMVCo payload; the format is
in ``citywallet.wallet.receive_code``); another resident scans it with ``/app/scan`` (camera,
photo or pasted text), whose preview hands a receive code to ``/app/receive/pay``: the
payee's masked real name and the amount (or an amount field) with the PIN, then
``POST /app/transfer/confirm`` moves the money as a P2P transfer. See docs/web-app.md."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from citywallet.identity import service as identity
from citywallet.merchant import images
from citywallet.platform.errors import DomainError
from citywallet.wallet import receive_code
from citywallet.wallet import service as wallet
from citywallet.web.app.money import preview_recipient, transfer_confirm_page
from citywallet.web.forms import parse_amount
from citywallet.web.session import ViewerDep, runtime_of
from citywallet.web.templating import render

router = APIRouter(prefix="/app", include_in_schema=False)
NO_STORE = {"Cache-Control": "no-store"}


def _amount(text: str) -> int | None:
    return parse_amount(text) if text.strip() else None


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


@router.get("/receive")
def receive_page(request: Request, who: ViewerDep, amount: str = "") -> Response:
    """My receive code, with the amount set on this page if any."""
    runtime = runtime_of(request)
    errors: dict[str, DomainError] = {}
    fen: int | None = None
    try:
        fen = _amount(amount[:20])
    except DomainError as exc:
        errors = {"amount": exc}
    with runtime.db.uow(readonly=True) as uow:
        payload = wallet.my_receive_code(uow, user_id=who.user_id, amount=fen)
        profile = identity.get_user(uow, user_id=who.user_id)
    return render(
        request,
        "app/receive.html",
        {
            "payload": payload,
            "amount": fen,
            "form": {"amount": amount[:20] if errors else (_yuan(fen) if fen else "")},
            "qr_url": "/app/receive/qr.svg" + (f"?amount={_yuan(fen)}" if fen else ""),
            "name": profile.name_masked or profile.phone_masked,
            "field_errors": errors,
        },
        status_code=400 if errors else 200,
        headers=NO_STORE,
    )


@router.get("/receive/qr.svg")
def receive_qr(request: Request, who: ViewerDep, amount: str = "") -> Response:
    """The receive code as a QR image."""
    with runtime_of(request).db.uow(readonly=True) as uow:
        payload = wallet.my_receive_code(uow, user_id=who.user_id, amount=_amount(amount[:20]))
    return Response(images.qr_svg(payload), media_type="image/svg+xml", headers=NO_STORE)


@router.get("/receive/pay")
def pay_receive_code(request: Request, who: ViewerDep, payload: str = "") -> Response:
    """A scanned receive code: whom it pays (masked real name) and how much, then the PIN."""
    runtime = runtime_of(request)
    try:
        code = receive_code.parse(payload.strip())
        recipient = preview_recipient(runtime, who.user_id, code.user_id)
    except DomainError as exc:
        return render(
            request,
            "app/scan.html",
            {"field_errors": {"payload": exc}, "form": {"payload": payload}},
            status_code=exc.status,
        )
    form = {"to": code.user_id, "amount": _yuan(code.amount) if code.amount else "", "note": ""}
    return transfer_confirm_page(
        request, recipient, form=form, amount_fixed=code.amount is not None
    )
