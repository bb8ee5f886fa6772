"""Residents' API: sign-up, login and sessions, real name and tiers, payment PIN.

Thin: parse, authenticate, call one service, shape the answer. See docs/identity.md.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from citywallet.api import problems
from citywallet.api.deps import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    CurrentUser,
    RuntimeDep,
    client_ip,
)
from citywallet.identity import codes, pins, service, sessions
from citywallet.identity.gateways import sandbox_messages
from citywallet.identity.rules import normalize_phone
from citywallet.identity.schemas import (
    AuthPublic,
    CurrentSessionPublic,
    DevSmsPage,
    DevSmsPublic,
    PasswordReset,
    PasswordUpdate,
    PinCreate,
    PinReset,
    PinUpdate,
    RealNameCreate,
    SessionCreate,
    SessionIssuedPublic,
    SessionPage,
    SessionPublic,
    SmsCodeCreate,
    SmsCodePublic,
    TierPublic,
    UserCreate,
    UserPublic,
)
from citywallet.interop.provider import service as interop
from citywallet.platform.db import UnitOfWork
from citywallet.platform.logging import get_logger
from citywallet.platform.outbox import OutboxHandler
from citywallet.runtime import Runtime

log = get_logger(__name__)
router = APIRouter(prefix="/v1", tags=["identity"])
dev_router = APIRouter(prefix="/v1/dev", tags=["sandbox"])


# --- helpers ------------------------------------------------------------------------------


def _deliver(runtime: Runtime, handler: OutboxHandler, sent: codes.CodeSent) -> SmsCodePublic:
    """After commit: hand the code's message to the gateway now (the worker retries)."""
    if sent.outbox_id is not None:
        try:
            codes.deliver_now(runtime.db, message_id=sent.outbox_id, handler=handler)
        except Exception as exc:  # the code is committed: the worker delivers it
            log.warning("immediate sms delivery failed", message_id=sent.outbox_id, error=repr(exc))
    return SmsCodePublic.of(sent)


def _device(request: Request, kind: str, name: str) -> service.Device:
    return service.Device(
        kind=kind,
        name=name,
        user_agent=request.headers.get("user-agent", ""),
        ip=client_ip(request),
    )


def _signed_in(runtime: Runtime, response: Response, result: service.LoginResult) -> AuthPublic:
    issued = result.session
    if issued.kind == "cookie":
        secure = runtime.settings.session_cookie_secure
        max_age = runtime.settings.session_ttl_seconds
        response.set_cookie(
            SESSION_COOKIE, issued.token, max_age=max_age, httponly=True, secure=secure,
            samesite="lax", path="/",
        )  # fmt: skip
        response.set_cookie(
            CSRF_COOKIE, issued.csrf_token, max_age=max_age, httponly=False, secure=secure,
            samesite="strict", path="/",
        )  # fmt: skip
    with runtime.db.uow(readonly=True) as uow:
        profile = service.get_profile(
            uow, user_id=result.user.id, thresholds=runtime.settings.tier_checks
        )
    return AuthPublic(user=UserPublic.of(profile), session=SessionIssuedPublic.of(issued))


def _profile(runtime: Runtime, user_id: str) -> UserPublic:
    with runtime.db.uow(readonly=True) as uow:
        return UserPublic.of(
            service.get_profile(uow, user_id=user_id, thresholds=runtime.settings.tier_checks)
        )


# --- sign-up and login --------------------------------------------------------------------


@router.post(
    "/auth/sms-codes",
    status_code=status.HTTP_202_ACCEPTED,
    responses=problems.responses(429, 503),
)
def request_sms_code(body: SmsCodeCreate, request: Request, runtime: RuntimeDep) -> SmsCodePublic:
    """Text a 6-digit code (sign-up or password reset). Limited per phone (1/min, 10/day)
    and per client IP; over the limit answers 429 ``sms_rate_limited`` with Retry-After.
    Without an SMS gateway: 503 ``adapter_unavailable``, and nothing is stored."""
    handler = runtime.sms_handler()  # before anything is written

    def send(uow: UnitOfWork) -> codes.CodeSent:
        return service.send_sms_code(
            uow,
            phone=body.phone,
            purpose=body.purpose,
            client_ip=client_ip(request),
            settings=runtime.settings,
            encryptor=runtime.encryptor,
        )

    return _deliver(runtime, handler, runtime.db.transact(send))


@router.post(
    "/auth/register", status_code=status.HTTP_201_CREATED, responses=problems.responses(409, 429)
)
def register(
    body: UserCreate, request: Request, response: Response, runtime: RuntimeDep
) -> AuthPublic:
    """Create an account with a mainland mobile number, its SMS code and a password;
    signs in (``session``: ``bearer`` token in the body, or ``cookie``). ``consent`` must
    include ``wallet`` (422 ``consent_required``) and name the documents' current versions
    (409 ``consent_outdated``); it is recorded with the time (docs/identity.md, "Consent")."""
    result = service.register(
        runtime.db,
        phone=body.phone,
        code=body.code,
        password=body.password,
        device=_device(request, body.session, body.device_name),
        settings=runtime.settings,
        encryptor=runtime.encryptor,
        consent=body.consent.to_domain(),
        consent_source="api",
    )
    return _signed_in(runtime, response, result)


@router.post("/auth/login", responses=problems.responses(401, 403, 429))
def login(
    body: SessionCreate, request: Request, response: Response, runtime: RuntimeDep
) -> AuthPublic:
    """Log in with phone and password. Failures are limited per phone and per IP
    (429 ``login_rate_limited``); a frozen account answers 403 ``account_frozen``."""
    result = service.login(
        runtime.db,
        phone=body.phone,
        password=body.password,
        device=_device(request, body.session, body.device_name),
        settings=runtime.settings,
        encryptor=runtime.encryptor,
    )
    return _signed_in(runtime, response, result)


@router.post(
    "/auth/password-reset",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problems.responses(429),
)
def reset_password(body: PasswordReset, request: Request, runtime: RuntimeDep) -> Response:
    """Set a new password with a ``reset_password`` SMS code; every session ends."""
    service.reset_password(
        runtime.db,
        phone=body.phone,
        code=body.code,
        new_password=body.new_password,
        client_ip=client_ip(request),
        settings=runtime.settings,
        encryptor=runtime.encryptor,
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(auth: CurrentUser, runtime: RuntimeDep) -> Response:
    """End this session (and clear its cookie)."""
    runtime.db.transact(
        lambda uow: sessions.revoke_session(
            uow, user_id=auth.user_id, session_id=auth.session_id, reason="logout"
        )
    )
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")
    return response


@router.get("/auth/session")
def current_session(auth: CurrentUser, request: Request) -> CurrentSessionPublic:
    """The session of this request; cookie sessions get their CSRF token again here."""
    cookie = request.cookies.get(SESSION_COOKIE) if auth.via_cookie else None
    return CurrentSessionPublic(
        id=auth.session_id,
        user_id=auth.user_id,
        kind="cookie" if auth.via_cookie else "bearer",
        csrf_token=sessions.csrf_token_for(cookie) if cookie else None,
    )


# --- the account --------------------------------------------------------------------------


@router.get("/me")
def me(auth: CurrentUser, runtime: RuntimeDep) -> UserPublic:
    """The signed-in user's account: tier, verification, PIN status (all masked)."""
    return _profile(runtime, auth.user_id)


@router.put(
    "/me/password", status_code=status.HTTP_204_NO_CONTENT, responses=problems.responses(429)
)
def change_password(body: PasswordUpdate, auth: CurrentUser, runtime: RuntimeDep) -> Response:
    """Change the password; every other session ends."""
    service.change_password(
        runtime.db,
        user_id=auth.user_id,
        old_password=body.old_password,
        new_password=body.new_password,
        keep_session_id=auth.session_id,
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/me/sessions")
def list_sessions(
    auth: CurrentUser,
    runtime: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: str | None = None,
) -> SessionPage:
    """Signed-in devices, newest first (``current`` marks this one)."""
    with runtime.db.uow(readonly=True) as uow:
        views, following = sessions.list_sessions(
            uow, user_id=auth.user_id, limit=limit, cursor=cursor
        )
    return SessionPage(
        items=[SessionPublic.of(v, current_id=auth.session_id) for v in views],
        next_cursor=following,
    )


@router.delete("/me/sessions/{session_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_session(session_id: str, auth: CurrentUser, runtime: RuntimeDep) -> Response:
    """Sign a device out. Another user's session answers 404 ``session_not_found``."""
    runtime.db.transact(
        lambda uow: sessions.revoke_session(uow, user_id=auth.user_id, session_id=session_id)
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- real name and tiers ------------------------------------------------------------------


@router.post("/me/real-name", responses=problems.responses(409, 429, 503))
def verify_real_name(body: RealNameCreate, auth: CurrentUser, runtime: RuntimeDep) -> UserPublic:
    """Verify name + resident ID with the national records (tier 1). One account per person:
    an ID number verified elsewhere answers 409 ``identity_already_used``."""
    service.verify_real_name(
        runtime.db,
        user_id=auth.user_id,
        name=body.name,
        id_number=body.id_number,
        verifier=runtime.identity_verifier,
        settings=runtime.settings,
        encryptor=runtime.encryptor,
    )
    # findable at the switch by mobile number (the message leaves once this commits)
    interop.announce_verified(
        runtime.db, user_id=auth.user_id, settings=runtime.settings, encryptor=runtime.encryptor
    )
    return _profile(runtime, auth.user_id)


@router.post("/me/tier/upgrade", responses=problems.responses(409, 429, 503))
def upgrade_tier(auth: CurrentUser, runtime: RuntimeDep) -> TierPublic:
    """Re-check the verified identity with the authority, then apply the tier the recorded
    external checks allow (binding a bank card adds checks)."""
    return TierPublic.of(
        service.recheck_identity(
            runtime.db,
            user_id=auth.user_id,
            verifier=runtime.identity_verifier,
            settings=runtime.settings,
            encryptor=runtime.encryptor,
        )
    )


# --- payment PIN --------------------------------------------------------------------------


@router.post(
    "/me/payment-pin",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problems.responses(409, 429),
)
def set_payment_pin(body: PinCreate, auth: CurrentUser, runtime: RuntimeDep) -> Response:
    """Set the first payment PIN (6 digits, not an easy one); re-enter the login password."""
    service.check_password(runtime.db, user_id=auth.user_id, password=body.password)
    runtime.db.transact(
        lambda uow: pins.set_payment_pin(
            uow, user_id=auth.user_id, pin=body.pin, encryptor=runtime.encryptor
        )
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put(
    "/me/payment-pin", status_code=status.HTTP_204_NO_CONTENT, responses=problems.responses(429)
)
def change_payment_pin(body: PinUpdate, auth: CurrentUser, runtime: RuntimeDep) -> Response:
    """Change the PIN with the old one (wrong tries count toward the lock)."""
    pins.change_payment_pin(
        runtime.db,
        user_id=auth.user_id,
        old_pin=body.old_pin,
        new_pin=body.new_pin,
        settings=runtime.settings,
        encryptor=runtime.encryptor,
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/me/payment-pin/reset-code",
    status_code=status.HTTP_202_ACCEPTED,
    responses=problems.responses(409, 429, 503),
)
def send_pin_reset_code(request: Request, auth: CurrentUser, runtime: RuntimeDep) -> SmsCodePublic:
    """Text a code to reset the payment PIN to the account's phone."""
    handler = runtime.sms_handler()  # before anything is written
    sent = runtime.db.transact(
        lambda uow: pins.send_pin_reset_code(
            uow,
            user_id=auth.user_id,
            settings=runtime.settings,
            encryptor=runtime.encryptor,
            client_ip=client_ip(request),
        )
    )
    return _deliver(runtime, handler, sent)


@router.post(
    "/me/payment-pin/reset",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problems.responses(409, 429),
)
def reset_payment_pin(body: PinReset, auth: CurrentUser, runtime: RuntimeDep) -> Response:
    """Set a new PIN with the SMS code (also lifts a lock)."""
    pins.reset_payment_pin(
        runtime.db,
        user_id=auth.user_id,
        code=body.code,
        new_pin=body.new_pin,
        settings=runtime.settings,
        encryptor=runtime.encryptor,
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- sandbox only -------------------------------------------------------------------------


@dev_router.get("/sms")
def dev_sms(
    runtime: RuntimeDep,
    phone: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> DevSmsPage:
    """Sandbox only: the messages the sandbox SMS gateway "sent" (newest first)."""
    e164 = normalize_phone(phone) if phone else None
    with runtime.db.uow(readonly=True) as uow:
        messages = sandbox_messages(uow, runtime.encryptor, phone=e164, limit=limit)
    return DevSmsPage(items=[DevSmsPublic.of(m) for m in messages])
