"""Passkeys and step-up: register, list, rename and remove passkeys; sign in with one; ask
for a payment's passkey challenge; ask for a step-up SMS code (docs/identity.md)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response, status

from citywallet.api import problems
from citywallet.api.deps import CurrentUser, RuntimeDep, client_ip
from citywallet.api.identity import _deliver, _device, _signed_in
from citywallet.identity import passkeys, second_factor
from citywallet.identity.passkey_rules import charge_intent, scan_intent, transfer_intent
from citywallet.identity.passkey_schemas import (
    PasskeyList,
    PasskeyPublic,
    PasskeyRegistration,
    PasskeyRename,
    PasskeySignIn,
    PaymentIntent,
)
from citywallet.identity.schemas import AuthPublic, SmsCodePublic
from citywallet.identity.service import run_confirmed, verify_pin
from citywallet.platform.db import UnitOfWork
from citywallet.platform.errors import InvalidInput

router = APIRouter(tags=["passkeys"])

Options = dict[str, Any]


@router.get("/v1/passkeys")
def list_passkeys(auth: CurrentUser, runtime: RuntimeDep) -> PasskeyList:
    """Your passkeys (sign-in and fingerprint/face pay), oldest first."""
    with runtime.db.uow(readonly=True) as uow:
        views = passkeys.list_passkeys(uow, user_id=auth.user_id)
    return PasskeyList(items=[PasskeyPublic.of(v) for v in views])


@router.post("/v1/passkeys/registration-options", responses=problems.responses(409))
def registration_options(auth: CurrentUser, runtime: RuntimeDep) -> Options:
    """Options for ``navigator.credentials.create()`` (a discoverable credential with user
    verification); answer within ``webauthn_challenge_seconds`` at POST /v1/passkeys."""
    return runtime.db.transact(
        lambda uow: passkeys.registration_options(
            uow, user_id=auth.user_id, settings=runtime.settings
        )
    )


@router.post("/v1/passkeys", status_code=status.HTTP_201_CREATED, responses=problems.responses(409))
def register(body: PasskeyRegistration, auth: CurrentUser, runtime: RuntimeDep) -> PasskeyPublic:
    """Keep a new passkey, confirmed with the payment PIN. Refused: ``passkey_invalid``,
    ``passkey_challenge_invalid`` (expired or used), ``passkey_exists``, ``passkey_limit``."""

    def add(uow: UnitOfWork) -> passkeys.PasskeyView:
        verify_pin(uow, user_id=auth.user_id, pin=body.pin, encryptor=runtime.encryptor)
        return passkeys.register_passkey(
            uow, user_id=auth.user_id, credential=body.credential, name=body.name,
            settings=runtime.settings,
        )  # fmt: skip

    return PasskeyPublic.of(run_confirmed(runtime.db, add, settings=runtime.settings))


@router.patch("/v1/passkeys/{passkey_id}")
def rename(
    passkey_id: str, body: PasskeyRename, auth: CurrentUser, runtime: RuntimeDep
) -> PasskeyPublic:
    """Give a passkey another name."""
    view = runtime.db.transact(
        lambda uow: passkeys.rename_passkey(
            uow, user_id=auth.user_id, passkey_id=passkey_id, name=body.name
        )
    )
    return PasskeyPublic.of(view)


@router.delete("/v1/passkeys/{passkey_id}", status_code=status.HTTP_204_NO_CONTENT)
def remove(passkey_id: str, auth: CurrentUser, runtime: RuntimeDep) -> Response:
    """Remove a passkey: it signs in and pays nothing any more."""
    runtime.db.transact(
        lambda uow: passkeys.remove_passkey(uow, user_id=auth.user_id, passkey_id=passkey_id)
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def intent_of(body: PaymentIntent) -> dict[str, object]:
    """The intent a payment's passkey challenge is bound to (identity/passkey_rules.py)."""
    if body.kind == "scan" and body.payload:
        return scan_intent(payload=body.payload, amount=body.amount, currency=body.currency)
    if body.kind == "transfer" and body.to and body.amount is not None:
        return transfer_intent(to=body.to, amount=body.amount, currency=body.currency)
    if body.kind == "charge" and body.order_id:
        return charge_intent(order_id=body.order_id)
    raise InvalidInput(
        "scan needs payload; transfer needs to and amount; charge needs order_id.",
        code="invalid_intent",
    )


@router.post("/v1/passkeys/payment-options", responses=problems.responses(409))
def payment_options(body: PaymentIntent, auth: CurrentUser, runtime: RuntimeDep) -> Options:
    """Options for ``navigator.credentials.get()`` whose challenge is bound to this payment
    (payee, amount, order): send the assertion as ``passkey`` with exactly this payment
    (POST /v1/payments/scan, POST /v1/wallet/transfers). It is used once, within
    ``webauthn_challenge_seconds``; another payment answers ``passkey_intent_mismatch``."""
    intent = intent_of(body)
    return runtime.db.transact(
        lambda uow: passkeys.payment_options(
            uow, user_id=auth.user_id, intent=intent, settings=runtime.settings
        )
    )


@router.post("/v1/auth/passkey/options")
def login_options(runtime: RuntimeDep) -> Options:
    """Options for ``navigator.credentials.get()`` at sign-in (any passkey of this site)."""
    return runtime.db.transact(lambda uow: passkeys.login_options(uow, settings=runtime.settings))


@router.post("/v1/auth/passkey", responses=problems.responses(403))
def login(
    body: PasskeySignIn, request: Request, response: Response, runtime: RuntimeDep
) -> AuthPublic:
    """Sign in with a passkey (as POST /v1/auth/login); refused: ``passkey_invalid``,
    ``passkey_challenge_invalid``, ``account_frozen``."""
    result = passkeys.login(
        runtime.db, credential=body.credential,
        device=_device(request, body.session, body.device_name), settings=runtime.settings,
    )  # fmt: skip
    return _signed_in(runtime, response, result)


@router.post(
    "/v1/step-up/sms-codes",
    status_code=status.HTTP_202_ACCEPTED,
    responses=problems.responses(429, 503),
)
def step_up_code(request: Request, auth: CurrentUser, runtime: RuntimeDep) -> SmsCodePublic:
    """Text a ``step_up`` code to your own phone: send it as ``sms_code`` with the PIN when
    a payment answered ``step_up_required`` (limited like every SMS code)."""
    handler = runtime.sms_handler()
    sent = runtime.db.transact(
        lambda uow: second_factor.send_sms_code(
            uow,
            user_id=auth.user_id,
            settings=runtime.settings,
            encryptor=runtime.encryptor,
            client_ip=client_ip(request),
        )
    )
    return _deliver(runtime, handler, sent)
