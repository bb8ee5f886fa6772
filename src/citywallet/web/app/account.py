"""Residents' wallet pages: sign-up, real name and tiers, bank cards, devices, password, PIN
reset by SMS, closing the wallet, the PWA's files.

Each page calls the same identity and wallet use cases as ``api/identity.py`` and
``api/wallet.py`` (see docs/web-app.md)."""

from __future__ import annotations

import io
import json
from functools import cache
from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from PIL import Image, ImageDraw

from citywallet.identity import codes, consent, pins, sessions
from citywallet.identity import service as identity
from citywallet.interop.provider import service as interop
from citywallet.platform.db import UnitOfWork
from citywallet.platform.errors import DomainError, InvalidInput, NotFound, RateLimited
from citywallet.platform.logging import get_logger
from citywallet.platform.outbox import OutboxHandler
from citywallet.runtime import Runtime
from citywallet.wallet import service as wallet
from citywallet.web.forms import done
from citywallet.web.i18n import N_, Translations
from citywallet.web.session import (
    FormFields,
    ViewerDep,
    field_errors,
    form_token,
    keep_form_token,
    login_redirect,
    runtime_of,
    sign_in_cookies,
    sign_out_cookies,
    viewer,
)
from citywallet.web.templating import render

log = get_logger("citywallet.web.app")
router = APIRouter(prefix="/app", include_in_schema=False)
STATIC_JS = Path(__file__).resolve().parents[1] / "static" / "js"
THEME = "#c8102e"
ICON_SIZES = (192, 512)

SIGNUP_FIELDS = {
    "invalid_phone": "phone",
    "sms_rate_limited": "phone",
    "phone_already_registered": "phone",
    "sms_code_invalid": "code",
    "sms_code_expired": "code",
    "weak_password": "password",
    "consent_required": "consent",
    "consent_outdated": "consent",
    "invalid_consent": "consent",
}
REAL_NAME_FIELDS = {
    "invalid_name": "name",
    "invalid_id_number": "id_number",
    "identity_check_failed": "id_number",
    "identity_already_used": "id_number",
}
PIN_FIELDS = {
    "password_incorrect": "password",
    "invalid_credentials": "password",
    "pin_weak": "new_pin",
    "pin_unchanged": "new_pin",
    "pin_incorrect": "old_pin",
    "pin_locked": "old_pin",
    "pin_mismatch": "new_pin_again",
}
CARD_FIELDS = {
    "invalid_card_number": "card_number",
    "card_not_supported": "card_number",
    "card_already_bound": "card_number",
    "card_check_failed": "card_number",
    "card_holder_mismatch": "card_number",
    "invalid_phone": "card_phone",
}
PASSWORD_FIELDS = {
    "password_incorrect": "old_password",
    "password_rate_limited": "old_password",
    "weak_password": "new_password",
}
PIN_RESET_FIELDS = {
    "sms_code_invalid": "code",
    "sms_code_expired": "code",
    "pin_weak": "new_pin",
    "pin_unchanged": "new_pin",
    "pin_mismatch": "new_pin_again",
}
CLOSE_FIELDS = {"pin_incorrect": "pin", "pin_locked": "pin"}
DONE = {
    "code": N_("We sent you a code."),
    "verified": N_("Your real name is verified."),
    "tier": N_("Your tier was checked again."),
    "pin": N_("Your payment PIN is saved."),
    "card": N_("The card is bound."),
    "unbound": N_("The card is unbound."),
    "revoked": N_("That device is signed out."),
    "password": N_("Your password is changed. Your other devices are signed out."),
    "pin_code": N_("We texted a code to your mobile number."),
    "pin_reset": N_("Your new payment PIN is saved."),
}


MAX_WAIT = 3600  # seconds: the longest resend countdown a page shows


def wait_of(exc: DomainError) -> int:
    """Seconds a refused SMS request says to wait (0 for other refusals): the countdown of
    "send a new code" (``static/js/resend.js``; the server enforces the interval anyway)."""
    return min(exc.retry_after, MAX_WAIT) if isinstance(exc, RateLimited) else 0


def _done(path: str, what: str) -> RedirectResponse:
    return done(path, DONE[what])


def _device(request: Request) -> identity.Device:
    return identity.Device(
        kind="cookie",
        name="",
        user_agent=request.headers.get("user-agent", ""),
        ip=request.client.host if request.client else "",
    )


# --- the installable app's files ----------------------------------------------------------


@router.get("/manifest.webmanifest")
def manifest(request: Request) -> Response:
    """The web app manifest, named in the visitor's language."""
    tr: Translations = request.state.tr
    body = {
        "name": tr.gettext("CityWallet"),
        "short_name": tr.gettext("CityWallet"),
        "description": tr.gettext("Your city's wallet: pay, transfer, red packets."),
        "lang": tr.html_lang,
        "start_url": "/app",
        "scope": "/app",
        "id": "/app",
        "display": "standalone",
        "orientation": "portrait",
        "theme_color": THEME,
        "background_color": "#f6f6f8",
        "icons": [
            {
                "src": f"/app/icons/{size}.png",
                "sizes": f"{size}x{size}",
                "type": "image/png",
                "purpose": "any maskable",
            }
            for size in ICON_SIZES
        ],
    }
    return Response(
        json.dumps(body, ensure_ascii=False),
        media_type="application/manifest+json",
        headers={"Cache-Control": "no-cache"},
    )


@cache
def _service_worker() -> bytes:
    return (STATIC_JS / "app-sw.js").read_bytes()


@router.get("/sw.js")
def service_worker() -> Response:
    """The service worker. Its scope is ``/app``: the home page and the manifest's start_url
    are ``/app`` itself, which a scope of ``/app/`` would leave out."""
    return Response(
        _service_worker(),
        media_type="text/javascript",
        headers={"Service-Worker-Allowed": "/app", "Cache-Control": "no-cache"},
    )


@cache
def icon_png(size: int) -> bytes:
    """The app icon: a wallet with a gold clasp on the city red, drawn at ``size`` pixels."""
    scale = 4  # draw large, then shrink: smooth edges
    big = size * scale
    image = Image.new("RGBA", (big, big), THEME)
    draw = ImageDraw.Draw(image)
    unit = big / 16
    # the wallet's body, with a darker flap behind it
    draw.rounded_rectangle(
        (3 * unit, 4 * unit, 13 * unit, 12.5 * unit), radius=1.2 * unit, fill="#9e0c24"
    )
    draw.rounded_rectangle(
        (2.5 * unit, 5.2 * unit, 13.5 * unit, 13 * unit), radius=1.3 * unit, fill="#ffffff"
    )
    # the clasp: a gold tab with a coin
    draw.rounded_rectangle(
        (9.5 * unit, 7.6 * unit, 14 * unit, 10.6 * unit), radius=0.9 * unit, fill="#f4c542"
    )
    draw.ellipse((10.6 * unit, 8.3 * unit, 12.2 * unit, 9.9 * unit), fill="#c8102e")
    # two stitched lines on the body
    for y in (7.2, 11.2):
        draw.line((4 * unit, y * unit, 8.4 * unit, y * unit), fill="#f3d0d6", width=int(unit / 2))
    small = image.resize((size, size), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    small.save(out, format="PNG", optimize=True)
    return out.getvalue()


@router.get("/icons/{size}.png")
def icon(size: int) -> Response:
    """The app icon at 192 or 512 pixels."""
    if size not in ICON_SIZES:
        raise NotFound("No icon of that size.", code="not_found")
    return Response(
        icon_png(size), media_type="image/png", headers={"Cache-Control": "public, max-age=86400"}
    )


@router.get("/offline")
def offline(request: Request) -> Response:
    """What the service worker shows when there is no network (no personal data)."""
    return render(request, "app/offline.html")


# --- sign-up ------------------------------------------------------------------------------


def _signup_page(
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
        "app/signup.html",
        {
            "form": {"phone": phone},
            "sent": sent,
            "wait": max(0, min(wait, MAX_WAIT)),
            "sandbox": runtime_of(request).settings.sandbox,
            "consent_versions": consent.current_versions(),
            "field_errors": errors or {},
        },
        status_code=status_code,
    )
    return keep_form_token(request, page)


SIGNUP_PHONE_COOKIE = "cw_signup_phone"  # step 2's number: kept out of URLs and logs


@router.get("/signup")
def signup_page(request: Request, sent: bool = False, wait: int = 0) -> Response:
    """Step 1: the phone number; step 2 (``sent``): the SMS code and a password (and a new
    code once ``wait`` seconds have passed)."""
    if viewer(request) is not None:
        return RedirectResponse("/app", status_code=303)
    phone = request.cookies.get(SIGNUP_PHONE_COOKIE, "")[:20] if sent else ""
    return _signup_page(request, phone=phone, sent=sent and bool(phone), wait=wait)


def deliver_code(runtime: Runtime, handler: OutboxHandler, sent: codes.CodeSent) -> None:
    """After commit: hand the code to the SMS gateway now (the worker retries on failure)."""
    if sent.outbox_id is None:
        return
    try:
        codes.deliver_now(runtime.db, message_id=sent.outbox_id, handler=handler)
    except Exception as exc:  # the code is committed: the worker delivers it
        log.warning("immediate sms delivery failed", message_id=sent.outbox_id, error=repr(exc))


@router.post("/signup/code")
def send_signup_code(request: Request, fields: FormFields) -> Response:
    """Text a sign-up code to the phone (rate-limited per phone and address)."""
    runtime = runtime_of(request)
    phone = fields.get("phone", "").strip()

    def send(uow: UnitOfWork) -> codes.CodeSent:
        return identity.send_sms_code(
            uow,
            phone=phone,
            purpose="register",
            client_ip=request.client.host if request.client else None,
            settings=runtime.settings,
            encryptor=runtime.encryptor,
        )

    try:
        handler = runtime.sms_handler()  # no gateway: refused before anything is written
        sent = runtime.db.transact(send)
    except DomainError as exc:
        again = fields.get("again") == "1"  # "send a new code" on step 2
        return _signup_page(
            request, phone=phone, sent=again, wait=wait_of(exc),
            errors=field_errors(exc, {} if again else SIGNUP_FIELDS), status_code=exc.status,
        )  # fmt: skip
    deliver_code(runtime, handler, sent)
    response = RedirectResponse(
        f"/app/signup?sent=1&wait={sent.resend_after}&done={quote(DONE['code'])}",
        status_code=303,
    )
    response.set_cookie(
        SIGNUP_PHONE_COOKIE, phone, max_age=15 * 60, httponly=True, samesite="strict",
        path="/app/signup", secure=runtime.settings.session_cookie_secure,
    )  # fmt: skip
    return response


def _signup_consent(fields: dict[str, str]) -> consent.SignupConsent:
    """The consents ticked on the sign-up form and the document versions it showed."""
    return consent.SignupConsent(
        agreement_version=fields.get("agreement_version", "")[:16],
        privacy_version=fields.get("privacy_version", "")[:16],
        purposes=frozenset(p for p in consent.PURPOSES if fields.get(f"consent_{p}") == "1"),
    )


@router.post("/signup")
def signup(request: Request, fields: FormFields) -> Response:
    """Create the account with the code and a password, and sign in."""
    runtime = runtime_of(request)
    phone = fields.get("phone", "").strip()
    try:
        result = identity.register(
            runtime.db,
            phone=phone,
            code=fields.get("code", "").strip(),
            password=fields.get("password", ""),
            device=_device(request),
            settings=runtime.settings,
            encryptor=runtime.encryptor,
            consent=_signup_consent(fields),
            consent_source="signup",
        )
    except DomainError as exc:
        return _signup_page(
            request,
            phone=phone,
            sent=True,
            errors=field_errors(exc, SIGNUP_FIELDS),
            status_code=exc.status,
        )
    response = RedirectResponse("/app/me?welcome=1", status_code=303)
    sign_in_cookies(request, response, result.session)
    response.delete_cookie(SIGNUP_PHONE_COOKIE, path="/app/signup")
    return response


# --- me: profile, tier and limits ---------------------------------------------------------


@router.get("/me")
def me(request: Request, who: ViewerDep, welcome: bool = False) -> Response:
    """The account: verification, tier and what its limits leave, PIN, links."""
    runtime = runtime_of(request)
    with runtime.db.uow(readonly=True) as uow:
        profile = identity.get_profile(
            uow, user_id=who.user_id, thresholds=runtime.settings.tier_checks
        )
        view = wallet.wallet_view(uow, user_id=who.user_id, settings=runtime.settings)
        cards = wallet.list_cards(uow, user_id=who.user_id)
    return render(
        request,
        "app/me.html",
        {"profile": profile, "wallet": view, "cards": cards, "welcome": welcome},
    )


@router.post("/me/tier")
def upgrade_tier(request: Request, who: ViewerDep, _fields: FormFields) -> Response:
    """Re-check the identity and apply the tier the recorded checks allow."""
    runtime = runtime_of(request)
    identity.recheck_identity(
        runtime.db,
        user_id=who.user_id,
        verifier=runtime.identity_verifier,
        settings=runtime.settings,
        encryptor=runtime.encryptor,
    )
    return _done("/app/me", "tier")


# --- real name ----------------------------------------------------------------------------


@router.get("/me/verify")
def verify_page(request: Request, _who: ViewerDep) -> Response:
    """The real-name form (name + resident ID number)."""
    return render(request, "app/verify.html", {"form": {}})


@router.post("/me/verify")
def verify(request: Request, who: ViewerDep, fields: FormFields) -> Response:
    """Verify the name and ID number with the national records (tier 1)."""
    runtime = runtime_of(request)
    name, id_number = fields.get("name", "").strip(), fields.get("id_number", "").strip()
    try:
        identity.verify_real_name(
            runtime.db,
            user_id=who.user_id,
            name=name,
            id_number=id_number,
            verifier=runtime.identity_verifier,
            settings=runtime.settings,
            encryptor=runtime.encryptor,
        )
    except DomainError as exc:
        return render(
            request,
            "app/verify.html",
            {"form": {"name": name}, "field_errors": field_errors(exc, REAL_NAME_FIELDS)},
            status_code=exc.status,
        )
    # findable at the switch by mobile number (the message leaves once this commits)
    interop.announce_verified(
        runtime.db, user_id=who.user_id, settings=runtime.settings, encryptor=runtime.encryptor
    )
    return _done("/app/me", "verified")


# --- payment PIN --------------------------------------------------------------------------


def _pin_page(
    request: Request, who_id: str, errors: dict[str, DomainError], status: int
) -> Response:
    runtime = runtime_of(request)
    with runtime.db.uow(readonly=True) as uow:
        profile = identity.get_profile(uow, user_id=who_id)
    return render(
        request,
        "app/pin.html",
        {"pin_set": profile.pin_set, "field_errors": errors},
        status_code=status,
    )


@router.get("/me/pin")
def pin_page(request: Request, who: ViewerDep) -> Response:
    """Set the first payment PIN (with the password) or change it (with the old PIN)."""
    return _pin_page(request, who.user_id, {}, 200)


@router.post("/me/pin")
def save_pin(request: Request, who: ViewerDep, fields: FormFields) -> Response:
    runtime = runtime_of(request)
    new_pin = fields.get("new_pin", "")
    try:
        if new_pin != fields.get("new_pin_again", ""):  # nothing is checked or saved
            raise InvalidInput("The two PINs are not the same.", code="pin_mismatch")
        if fields.get("old_pin") is not None:
            pins.change_payment_pin(
                runtime.db,
                user_id=who.user_id,
                old_pin=fields.get("old_pin", ""),
                new_pin=new_pin,
                settings=runtime.settings,
                encryptor=runtime.encryptor,
            )
        else:
            identity.check_password(
                runtime.db, user_id=who.user_id, password=fields.get("password", "")
            )
            runtime.db.transact(
                lambda uow: pins.set_payment_pin(
                    uow, user_id=who.user_id, pin=new_pin, encryptor=runtime.encryptor
                )
            )
    except DomainError as exc:
        return _pin_page(request, who.user_id, field_errors(exc, PIN_FIELDS), exc.status)
    return _done("/app/me", "pin")


# --- bank cards ---------------------------------------------------------------------------


def _cards_page(
    request: Request,
    who_id: str,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, DomainError] | None = None,
    status: int = 200,
) -> Response:
    runtime = runtime_of(request)
    with runtime.db.uow(readonly=True) as uow:
        cards = wallet.list_cards(uow, user_id=who_id)
    return render(
        request,
        "app/cards.html",
        {
            "cards": cards,
            "sandbox": runtime.bank.sandbox,
            "form": form or {},
            "field_errors": errors or {},
        },
        status_code=status,
    )


@router.get("/me/cards")
def cards_page(request: Request, who: ViewerDep) -> Response:
    """Bound cards (masked) and the form to bind one."""
    return _cards_page(request, who.user_id)


@router.post("/me/cards")
def bind_card(request: Request, who: ViewerDep, fields: FormFields) -> Response:
    """Bind a debit card in the verified name (four-element check at the bank)."""
    runtime = runtime_of(request)
    number = "".join(fields.get("card_number", "").split())
    phone = fields.get("card_phone", "").strip()
    try:
        wallet.bind_card(
            runtime.db,
            bank=runtime.bank,
            user_id=who.user_id,
            card_number=number,
            phone=phone,
            encryptor=runtime.encryptor,
            settings=runtime.settings,
        )
    except DomainError as exc:
        return _cards_page(
            request,
            who.user_id,
            form={"card_phone": phone},
            errors=field_errors(exc, CARD_FIELDS),
            status=exc.status,
        )
    return _done("/app/me/cards", "card")


@router.post("/me/cards/{card_id}/unbind")
def unbind_card(card_id: str, request: Request, who: ViewerDep, _fields: FormFields) -> Response:
    """Unbind a card (its number is erased); another resident's card is 404."""
    runtime_of(request).db.transact(
        lambda uow: wallet.unbind_card(uow, user_id=who.user_id, card_id=card_id)
    )
    return _done("/app/me/cards", "unbound")


# --- devices ------------------------------------------------------------------------------


@router.get("/me/devices")
def devices(request: Request, who: ViewerDep) -> Response:
    """Signed-in devices, newest first, each with a sign-out button."""
    with runtime_of(request).db.uow(readonly=True) as uow:
        views, _ = sessions.list_sessions(uow, user_id=who.user_id, limit=100)
    return render(request, "app/devices.html", {"sessions": views, "current": who.session_id})


@router.post("/me/devices/{session_id}/revoke")
def revoke_device(
    session_id: str, request: Request, who: ViewerDep, _fields: FormFields
) -> Response:
    """Sign a device out (another resident's session is 404)."""
    runtime_of(request).db.transact(
        lambda uow: sessions.revoke_session(uow, user_id=who.user_id, session_id=session_id)
    )
    if session_id == who.session_id:
        return RedirectResponse("/login", status_code=303)
    return _done("/app/me/devices", "revoked")


# --- login password -----------------------------------------------------------------------


@router.get("/me/password")
def password_page(request: Request, _who: ViewerDep) -> Response:
    """Change the login password: the current one, then the new one."""
    return render(request, "app/password.html")


@router.post("/me/password")
def change_password(request: Request, who: ViewerDep, fields: FormFields) -> Response:
    """Check the current password, store the new one; every other session ends (this one
    stays signed in), as ``PUT /v1/me/password`` does."""
    try:
        identity.change_password(
            runtime_of(request).db,
            user_id=who.user_id,
            old_password=fields.get("old_password", ""),
            new_password=fields.get("new_password", ""),
            keep_session_id=who.session_id,
        )
    except DomainError as exc:
        return render(
            request,
            "app/password.html",
            {"field_errors": field_errors(exc, PASSWORD_FIELDS)},
            status_code=exc.status,
        )
    return _done("/app/me", "password")


# --- payment PIN reset by SMS -------------------------------------------------------------


def _pin_reset_page(
    request: Request,
    *,
    sent: bool,
    wait: int = 0,
    errors: dict[str, DomainError] | None = None,
    status: int = 200,
) -> Response:
    return render(
        request,
        "app/pin_reset.html",
        {
            "sent": sent,
            "wait": max(0, min(wait, MAX_WAIT)),
            "sandbox": runtime_of(request).settings.sandbox,
            "field_errors": errors or {},
        },
        status_code=status,
    )


@router.get("/me/pin/reset")
def pin_reset_page(
    request: Request, _who: ViewerDep, sent: bool = False, wait: int = 0
) -> Response:
    """Forgot or locked PIN: step 1 texts a code; step 2 (``sent``) the code and the new PIN
    twice (a new code once ``wait`` seconds have passed)."""
    return _pin_reset_page(request, sent=sent, wait=wait)


@router.post("/me/pin/reset/code")
def send_pin_reset_code(request: Request, who: ViewerDep, fields: FormFields) -> Response:
    """Text a ``reset_pin`` code to the account's own phone (rate-limited)."""
    runtime = runtime_of(request)
    try:
        handler = runtime.sms_handler()  # no gateway: refused before anything is written
        sent = runtime.db.transact(
            lambda uow: pins.send_pin_reset_code(
                uow,
                user_id=who.user_id,
                settings=runtime.settings,
                encryptor=runtime.encryptor,
                client_ip=request.client.host if request.client else None,
            )
        )
    except DomainError as exc:
        return _pin_reset_page(
            request, sent=fields.get("again") == "1", wait=wait_of(exc),
            errors=field_errors(exc, {}), status=exc.status,
        )  # fmt: skip
    deliver_code(runtime, handler, sent)
    return RedirectResponse(
        f"/app/me/pin/reset?sent=1&wait={sent.resend_after}&done={quote(DONE['pin_code'])}",
        status_code=303,
    )


@router.post("/me/pin/reset")
def reset_pin(request: Request, who: ViewerDep, fields: FormFields) -> Response:
    """Set a new PIN with the SMS code (also lifts a PIN lock)."""
    runtime = runtime_of(request)
    new_pin = fields.get("new_pin", "")
    try:
        if new_pin != fields.get("new_pin_again", ""):
            raise InvalidInput("The two PINs are not the same.", code="pin_mismatch")
        pins.reset_payment_pin(
            runtime.db,
            user_id=who.user_id,
            code=fields.get("code", "").strip(),
            new_pin=new_pin,
            settings=runtime.settings,
            encryptor=runtime.encryptor,
        )
    except DomainError as exc:
        return _pin_reset_page(
            request, sent=True, errors=field_errors(exc, PIN_RESET_FIELDS), status=exc.status
        )
    return _done("/app/me", "pin_reset")


# --- closing the wallet and the account ---------------------------------------------------

CLOSED_COOKIE = "cw_closed"  # what went back to funders, for the "closed" page only


def _close_page(
    request: Request, who_id: str, errors: dict[str, DomainError] | None = None, status: int = 200
) -> Response:
    runtime = runtime_of(request)
    with runtime.db.uow(readonly=True) as uow:
        view = wallet.wallet_view(uow, user_id=who_id, settings=runtime.settings)
    return render(
        request,
        "app/close.html",
        {"wallet": view, "field_errors": errors or {}},
        status_code=status,
    )


@router.get("/me/close")
def close_page(request: Request, who: ViewerDep) -> Response:
    """What closing does (own balance must be zero; campaign money goes back to its funder;
    the account cannot be used again) and the confirmation with the payment PIN."""
    return _close_page(request, who.user_id)


def _close_and_unlist(
    uow: UnitOfWork, runtime: Runtime, *, user_id: str, pin: str
) -> wallet.ClosureView:
    """Close the wallet and, in the same transaction, remove its alias at the switch."""
    closed = wallet.close_wallet(
        uow, user_id=user_id, actor="user", pin=pin, encryptor=runtime.encryptor
    )
    interop.remove_alias(
        uow, user_id=user_id, settings=runtime.settings, encryptor=runtime.encryptor
    )
    return closed


@router.post("/me/close")
def close(request: Request, who: ViewerDep, fields: FormFields) -> Response:
    """``wallet.close_wallet`` with the PIN checked inside, in one transaction (as
    ``POST /v1/wallet/close``); sign out and show the "closed" page."""
    runtime = runtime_of(request)
    try:
        closed = identity.run_confirmed(
            runtime.db,
            lambda uow: _close_and_unlist(
                uow, runtime, user_id=who.user_id, pin=fields.get("pin", "")
            ),
            settings=runtime.settings,
        )
    except DomainError as exc:
        return _close_page(request, who.user_id, field_errors(exc, CLOSE_FIELDS), exc.status)
    response = RedirectResponse("/app/closed", status_code=303)
    sign_out_cookies(response)
    response.set_cookie(
        CLOSED_COOKIE, str(closed.restricted_returned), max_age=10 * 60, httponly=True,
        samesite="strict", path="/app/closed", secure=runtime.settings.session_cookie_secure,
    )  # fmt: skip
    return response


@router.get("/closed")
def closed_page(request: Request) -> Response:
    """The goodbye page, right after closing (a short-lived cookie carries what went back to
    funders); without it, a visitor is sent to log in and a signed-in resident home."""
    returned = request.cookies.get(CLOSED_COOKIE, "")
    if not returned.isdigit():
        if viewer(request) is not None:
            return RedirectResponse("/app", status_code=303)
        return login_redirect("/app/closed")
    return render(request, "app/closed.html", {"returned": int(returned)})
