"""Forgot password (from the log-in page), and the SMS resend countdown.

``/app/password/forgot``: step 1 texts a ``reset_password`` code to the mobile number
(``identity.send_sms_code``, the call ``POST /v1/auth/sms-codes`` makes; a number without an
account is answered the same and nothing is sent); step 2 (``?sent=1``) takes the code and the
new password twice (``identity.reset_password``, as ``POST /v1/auth/password-reset``: every
session ends) and sends the resident to log in. Signed out, so CSRF uses the ``cw_form``
cookie like sign-up.

Every page that texts a code shows a "send a new code" button that counts down the seconds
until the server accepts another request (``CodeSent.resend_after``, or the ``retry_after``
of a refused ``sms_rate_limited``): ``static/js/resend.js``; the server enforces the
interval whatever the page shows."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from citywallet.identity import codes
from citywallet.identity import service as identity
from citywallet.platform.db import UnitOfWork
from citywallet.platform.errors import DomainError, InvalidInput
from citywallet.web.app.account import MAX_WAIT, deliver_code, wait_of
from citywallet.web.i18n import N_
from citywallet.web.session import (
    FormFields,
    field_errors,
    form_token,
    keep_form_token,
    runtime_of,
    viewer,
)
from citywallet.web.templating import render

router = APIRouter(prefix="/app", include_in_schema=False)
PHONE_COOKIE = "cw_reset_phone"  # step 2's number: kept out of URLs and logs
PATH = "/app/password/forgot"
FIELDS = {
    "invalid_phone": "phone",
    "sms_rate_limited": "phone",
    "sms_code_invalid": "code",
    "sms_code_expired": "code",
    "weak_password": "new_password",
    "password_mismatch": "new_password_again",
}
SENT = N_("If this number has an account, we texted it a code.")
RESET = N_("Your password is changed. Log in with the new one.")


def _page(
    request: Request,
    *,
    phone: str = "",
    sent: bool = False,
    wait: int = 0,
    errors: dict[str, DomainError] | None = None,
    status_code: int = 200,
) -> Response:
    form_token(request)
    page = render(
        request,
        "app/forgot_password.html",
        {
            "form": {"phone": phone},
            "sent": sent,
            "wait": max(0, min(wait, MAX_WAIT)),
            "sandbox": runtime_of(request).settings.sandbox,
            "field_errors": errors or {},
        },
        status_code=status_code,
    )
    return keep_form_token(request, page)


@router.get("/password/forgot")
def forgot_page(request: Request, sent: bool = False, wait: int = 0) -> Response:
    """Step 1: the mobile number; step 2 (``sent``): the code and a new password twice."""
    if viewer(request) is not None:
        return RedirectResponse("/app/me/password", status_code=303)
    phone = request.cookies.get(PHONE_COOKIE, "")[:20] if sent else ""
    return _page(request, phone=phone, sent=sent and bool(phone), wait=wait)


@router.post("/password/forgot/code")
def send_reset_code(request: Request, fields: FormFields) -> Response:
    """Text a password-reset code (rate-limited per phone and address)."""
    runtime = runtime_of(request)
    phone = fields.get("phone", "").strip()
    again = fields.get("again") == "1"

    def send(uow: UnitOfWork) -> codes.CodeSent:
        return identity.send_sms_code(
            uow,
            phone=phone,
            purpose="reset_password",
            client_ip=request.client.host if request.client else None,
            settings=runtime.settings,
            encryptor=runtime.encryptor,
        )

    try:
        handler = runtime.sms_handler()  # no gateway: refused before anything is written
        sent = runtime.db.transact(send)
    except DomainError as exc:
        return _page(
            request, phone=phone, sent=again, wait=wait_of(exc),
            errors=field_errors(exc, {} if again else FIELDS), status_code=exc.status,
        )  # fmt: skip
    deliver_code(runtime, handler, sent)
    response = RedirectResponse(
        f"{PATH}?sent=1&wait={sent.resend_after}&done={quote(SENT)}", status_code=303
    )
    response.set_cookie(
        PHONE_COOKIE, phone, max_age=15 * 60, httponly=True, samesite="strict",
        path=PATH, secure=runtime.settings.session_cookie_secure,
    )  # fmt: skip
    return response


@router.post("/password/forgot")
def reset(request: Request, fields: FormFields) -> Response:
    """Set the new password with the code; every session ends; then log in."""
    runtime = runtime_of(request)
    phone = fields.get("phone", "").strip()
    new_password = fields.get("new_password", "")
    try:
        if new_password != fields.get("new_password_again", ""):
            raise InvalidInput("The two passwords are not the same.", code="password_mismatch")
        identity.reset_password(
            runtime.db,
            phone=phone,
            code=fields.get("code", "").strip(),
            new_password=new_password,
            client_ip=request.client.host if request.client else None,
            settings=runtime.settings,
            encryptor=runtime.encryptor,
        )
    except DomainError as exc:
        return _page(
            request, phone=phone, sent=True, errors=field_errors(exc, FIELDS),
            status_code=exc.status,
        )  # fmt: skip
    response = RedirectResponse(f"/login?done={quote(RESET)}", status_code=303)
    response.delete_cookie(PHONE_COOKIE, path=PATH)
    return response
