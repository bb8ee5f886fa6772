"""The operator console's second factor: after the password, an operator types the code of
their authenticator app (TOTP) once per session; one without an authenticator sets it up
here first (scan the QR or type the secret, then confirm with a code). A passkey verified in
the session counts the same (:func:`citywallet.identity.totp.mark_verified`). These pages
need the operator role but not the second factor (``web.session.OperatorDep``)."""

from __future__ import annotations

from typing import Any

import segno
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from markupsafe import Markup

from citywallet.identity import totp
from citywallet.platform.errors import DomainError
from citywallet.web.operator.shared import SECOND_FACTOR_PAGE
from citywallet.web.session import FormFields, OperatorDep, runtime_of, safe_next
from citywallet.web.templating import render

router = APIRouter()


def _page(
    request: Request,
    viewer_id: str,
    next_url: str,
    errors: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    runtime = runtime_of(request)
    with runtime.db.uow(readonly=True) as uow:
        enrolled = totp.enrolled(uow, user_id=viewer_id)
    context: dict[str, Any] = {"enrolled": enrolled, "next": next_url, "field_errors": errors or {}}
    if not enrolled:
        enrolment = runtime.db.transact(
            lambda uow: totp.start_enrolment(
                uow,
                user_id=viewer_id,
                encryptor=runtime.encryptor,
                issuer=runtime.settings.operator_totp_issuer,
            )
        )
        qr = segno.make(enrolment.uri, error="m", micro=False)
        context["qr"] = Markup(qr.svg_inline(scale=4, title="otpauth"))  # noqa: S704 - segno's own SVG
        context["secret"] = " ".join(enrolment.secret[i : i + 4] for i in range(0, 32, 4))
    return render(request, "operator/second_factor.html", context, status_code=status)


@router.get("/second-factor")
def second_factor(request: Request, viewer: OperatorDep, next: str = "/operator") -> Response:
    """The code form (and, the first time, the authenticator's set-up)."""
    return _page(request, viewer.user_id, safe_next(next, "/operator"))


@router.post("/second-factor")
def check(request: Request, viewer: OperatorDep, fields: FormFields) -> Response:
    """Check the code; right: this session has passed its second factor, back to the page."""
    runtime = runtime_of(request)
    target = safe_next(fields.get("next"), "/operator")
    if not target.startswith("/operator") or target.startswith(SECOND_FACTOR_PAGE):
        target = "/operator"
    try:
        totp.check_code(
            runtime.db,
            user_id=viewer.user_id,
            session_id=viewer.session_id,
            code=fields.get("code", ""),
            encryptor=runtime.encryptor,
        )
    except DomainError as exc:
        return _page(request, viewer.user_id, target, {"code": exc}, exc.status)
    return RedirectResponse(target, status_code=303)
