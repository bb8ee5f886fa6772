"""Passkeys (WebAuthn, the ``webauthn`` package): registration, sign-in and
"fingerprint/face pay".

Every ceremony starts with a challenge this module hands out and stores (its hash, the
nonce it came from, who asked, when it dies); the answer must come back before
``webauthn_challenge_seconds`` and is accepted once. A payment's challenge is derived from
the payment's intent (identity/passkey_rules.py): the assertion confirms that payee, amount
and order and nothing else. User verification (the fingerprint, face or device PIN) is
required in every ceremony, so a passkey is two factors on its own (docs/identity.md).
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    parse_authentication_credential_json,
    parse_client_data_json,
    parse_registration_credential_json,
)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from citywallet.identity import sessions
from citywallet.identity.errors import (
    PasskeyChallengeInvalid,
    PasskeyIntentMismatch,
    PasskeyInvalid,
    PasskeyNotFound,
)
from citywallet.identity.models import Passkey, PasskeyChallenge, User
from citywallet.identity.passkey_rules import challenge_hash, origin_allowed, payment_challenge
from citywallet.identity.queries import active_user_row, add_event, new_public_id
from citywallet.identity.service import Device, LoginResult, get_user
from citywallet.platform.clock import now_us
from citywallet.platform.config import Settings
from citywallet.platform.db import Database, UnitOfWork
from citywallet.platform.errors import Conflict, InvalidInput

SECOND_US = 1_000_000
PURPOSES = ("register", "login", "payment")
# What parsing a malformed credential (a client's JSON) may raise besides WebAuthnException.
MALFORMED = (WebAuthnException, KeyError, TypeError, ValueError, AttributeError, IndexError)


def b64url(data: bytes) -> str:
    """Base64url without padding, as WebAuthn's JSON writes bytes."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    """The bytes of a base64url string (padding optional)."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class PasskeyView:
    """A passkey as its owner sees it in settings."""

    id: str
    name: str
    created_at: int
    last_used_at: int | None


@dataclass(frozen=True)
class Asserted:
    """Who a verified assertion belongs to."""

    user_pk: int
    user_id: str
    passkey_id: str


def _view(row: Passkey) -> PasskeyView:
    return PasskeyView(row.public_id, row.name, row.created_at, row.last_used_at)


def _store_challenge(
    uow: UnitOfWork, settings: Settings, *, purpose: str, user_pk: int | None, nonce: bytes,
    challenge: bytes,
) -> None:  # fmt: skip
    moment = now_us()
    uow.session.add(
        PasskeyChallenge(
            challenge_hash=challenge_hash(challenge), purpose=purpose, user_id=user_pk,
            nonce=b64url(nonce), created_at=moment,
            expires_at=moment + settings.webauthn_challenge_seconds * SECOND_US,
        )
    )  # fmt: skip
    uow.session.flush()


def _options(options: Any) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(options_to_json(options))
    return loaded


def _user_passkeys(uow: UnitOfWork, user_pk: int) -> list[Passkey]:
    return list(
        uow.session.scalars(select(Passkey).where(Passkey.user_id == user_pk).order_by(Passkey.id))
    )


def _descriptors(rows: list[Passkey]) -> list[PublicKeyCredentialDescriptor]:
    known = {t.value for t in AuthenticatorTransport}
    return [
        PublicKeyCredentialDescriptor(
            id=unb64url(r.credential_id),
            transports=[AuthenticatorTransport(t) for t in r.transports.split(",") if t in known],
        )
        for r in rows
    ]


# --- registration ---------------------------------------------------------------------------


def registration_options(uow: UnitOfWork, *, user_id: str, settings: Settings) -> dict[str, Any]:
    """Options for ``navigator.credentials.create()``: a discoverable credential with user
    verification, none of the user's existing passkeys again."""
    user = active_user_row(uow, user_id)
    existing = _user_passkeys(uow, user.id)
    if len(existing) >= settings.max_passkeys:
        raise Conflict("Remove a passkey before adding another.", code="passkey_limit")
    challenge = secrets.token_bytes(32)
    _store_challenge(
        uow, settings, purpose="register", user_pk=user.id, nonce=challenge, challenge=challenge
    )
    options = generate_registration_options(
        rp_id=settings.webauthn_rp_id,
        rp_name=settings.webauthn_rp_name,
        user_id=user.public_id.encode(),
        user_name=user.phone_masked,
        user_display_name=user.phone_masked,
        challenge=challenge,
        timeout=settings.webauthn_challenge_seconds * 1000,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
        exclude_credentials=_descriptors(existing),
    )
    return _options(options)


def _client_data(credential: Mapping[str, Any]) -> tuple[bytes, str]:
    """The challenge and origin the browser wrote into the credential's client data."""
    try:
        response = credential["response"]
        client_data = parse_client_data_json(unb64url(response["clientDataJSON"]))
    except MALFORMED:
        raise PasskeyInvalid("This is not a passkey answer.") from None
    return client_data.challenge, client_data.origin


def _take_challenge(
    uow: UnitOfWork, challenge: bytes, *, purpose: str, user_pk: int | None
) -> PasskeyChallenge:
    """The live challenge row answered by ``challenge``, marked used (row locked)."""
    row = uow.session.scalar(
        select(PasskeyChallenge)
        .where(PasskeyChallenge.challenge_hash == challenge_hash(challenge))
        .with_for_update()
    )
    moment = now_us()
    if (
        row is None
        or row.purpose != purpose
        or (user_pk is not None and row.user_id != user_pk)
        or row.used_at is not None
        or row.expires_at <= moment
    ):
        raise PasskeyChallengeInvalid(
            "This passkey confirmation has expired or was used already: try again."
        )
    row.used_at = moment
    return row


def _origin(origin: str, settings: Settings) -> str:
    if not origin_allowed(origin, rp_id=settings.webauthn_rp_id, allowed=settings.webauthn_origins):
        raise PasskeyInvalid("This passkey answer comes from another site.")
    return origin


def register_passkey(
    uow: UnitOfWork,
    *,
    user_id: str,
    credential: Mapping[str, Any],
    name: str,
    settings: Settings,
) -> PasskeyView:
    """Verify a ``navigator.credentials.create()`` answer and keep the passkey. The edge
    confirms the payment PIN in the same transaction (a stolen session alone cannot add a
    way to pay)."""
    user = active_user_row(uow, user_id, for_update=True)
    challenge, origin = _client_data(credential)
    _take_challenge(uow, challenge, purpose="register", user_pk=user.id)
    try:
        verified = verify_registration_response(
            credential=parse_registration_credential_json(dict(credential)),
            expected_challenge=challenge,
            expected_rp_id=settings.webauthn_rp_id,
            expected_origin=_origin(origin, settings),
            require_user_verification=True,
        )
    except MALFORMED as exc:
        raise PasskeyInvalid(f"The passkey could not be verified: {exc}") from None
    credential_id = b64url(verified.credential_id)
    taken = uow.session.scalar(select(Passkey.id).where(Passkey.credential_id == credential_id))
    if taken is not None:
        raise Conflict("This passkey is registered already.", code="passkey_exists")
    count = uow.session.scalar(select(func.count()).where(Passkey.user_id == user.id)) or 0
    if count >= settings.max_passkeys:
        raise Conflict("Remove a passkey before adding another.", code="passkey_limit")
    response = credential.get("response")
    transports = (response.get("transports") if isinstance(response, dict) else None) or []
    if not isinstance(transports, list):
        transports = []
    row = Passkey(
        public_id=new_public_id("pk"), user_id=user.id, credential_id=credential_id,
        public_key=b64url(verified.credential_public_key), sign_count=verified.sign_count,
        transports=",".join(str(t) for t in transports if isinstance(t, str))[:200],
        name=_clean_name(name), created_at=now_us(), last_used_at=None,
    )  # fmt: skip
    uow.session.add(row)
    uow.session.flush()
    add_event(uow, user, "passkey_added", passkey=row.public_id)
    return _view(row)


def _clean_name(name: str) -> str:
    clean = " ".join(name.split())[:60]
    return clean or "Passkey"


# --- assertions: sign-in and payments ------------------------------------------------------


def _verify_assertion(
    uow: UnitOfWork,
    credential: Mapping[str, Any],
    *,
    challenge: bytes,
    origin: str,
    settings: Settings,
    user_pk: int | None,
) -> Asserted:
    """Check the assertion's signature with the stored public key; move its counter."""
    try:
        parsed = parse_authentication_credential_json(dict(credential))
    except MALFORMED:
        raise PasskeyInvalid("This is not a passkey answer.") from None
    found = uow.session.execute(
        select(Passkey, User.public_id, User.status)
        .join(User, User.id == Passkey.user_id)
        .where(Passkey.credential_id == b64url(parsed.raw_id))
        .with_for_update(of=Passkey)
    ).first()
    if found is None or (user_pk is not None and found[0].user_id != user_pk):
        raise PasskeyInvalid("This passkey is not registered (or was removed).")
    row, public_id, _status = found
    try:
        verified = verify_authentication_response(
            credential=parsed,
            expected_challenge=challenge,
            expected_rp_id=settings.webauthn_rp_id,
            expected_origin=_origin(origin, settings),
            credential_public_key=unb64url(row.public_key),
            credential_current_sign_count=row.sign_count,
            require_user_verification=True,
        )
    except MALFORMED as exc:
        raise PasskeyInvalid(f"The passkey could not be verified: {exc}") from None
    row.sign_count = verified.new_sign_count
    row.last_used_at = now_us()
    uow.session.flush()
    return Asserted(row.user_id, public_id, row.public_id)


def login_options(uow: UnitOfWork, *, settings: Settings) -> dict[str, Any]:
    """Options for ``navigator.credentials.get()`` at sign-in: any of this site's passkeys
    (discoverable credentials: the authenticator offers its accounts)."""
    challenge = secrets.token_bytes(32)
    _store_challenge(
        uow, settings, purpose="login", user_pk=None, nonce=challenge, challenge=challenge
    )
    return _options(
        generate_authentication_options(
            rp_id=settings.webauthn_rp_id,
            challenge=challenge,
            timeout=settings.webauthn_challenge_seconds * 1000,
            user_verification=UserVerificationRequirement.REQUIRED,
        )
    )


def sign_in(uow: UnitOfWork, *, credential: Mapping[str, Any], settings: Settings) -> User:
    """The active user whose passkey signed the sign-in challenge (the caller opens the
    session in this transaction)."""
    challenge, origin = _client_data(credential)
    _take_challenge(uow, challenge, purpose="login", user_pk=None)
    asserted = _verify_assertion(
        uow, credential, challenge=challenge, origin=origin, settings=settings, user_pk=None
    )
    user = active_user_row(uow, asserted.user_id)  # frozen, closed or moved: refused
    add_event(uow, user, "passkey_sign_in", passkey=asserted.passkey_id)
    return user


def payment_options(
    uow: UnitOfWork, *, user_id: str, intent: Mapping[str, object], settings: Settings
) -> dict[str, Any]:
    """Options for ``navigator.credentials.get()`` whose challenge is bound to this payment's
    intent (payee, amount, order): only the user's own passkeys."""
    user = active_user_row(uow, user_id)
    rows = _user_passkeys(uow, user.id)
    if not rows:
        raise Conflict("Add a passkey in settings first.", code="passkey_not_set")
    nonce = secrets.token_bytes(32)
    try:
        challenge = payment_challenge(nonce, intent)
    except ValueError:
        raise InvalidInput("Unknown kind of payment.", code="invalid_intent") from None
    _store_challenge(
        uow, settings, purpose="payment", user_pk=user.id, nonce=nonce, challenge=challenge
    )
    return _options(
        generate_authentication_options(
            rp_id=settings.webauthn_rp_id,
            challenge=challenge,
            timeout=settings.webauthn_challenge_seconds * 1000,
            allow_credentials=_descriptors(rows),
            user_verification=UserVerificationRequirement.REQUIRED,
        )
    )


def confirm_payment(
    uow: UnitOfWork,
    *,
    user_id: str,
    intent: Mapping[str, object],
    credential: Mapping[str, Any],
    settings: Settings,
) -> None:
    """Accept a passkey assertion as the confirmation of exactly this payment, inside the
    payment's transaction (a refusal rolls everything back): its challenge must be the
    user's live payment challenge **and** derive from this intent, else
    ``passkey_intent_mismatch``; it is used up (a replay answers
    ``passkey_challenge_invalid``)."""
    user = active_user_row(uow, user_id)
    challenge, origin = _client_data(credential)
    row = _take_challenge(uow, challenge, purpose="payment", user_pk=user.id)
    try:
        expected = payment_challenge(unb64url(row.nonce), intent)
    except ValueError:
        raise InvalidInput("Unknown kind of payment.", code="invalid_intent") from None
    if not secrets.compare_digest(expected, challenge):
        raise PasskeyIntentMismatch(
            "This fingerprint/face confirmation was for another payment: nothing was paid."
        )
    _verify_assertion(
        uow, credential, challenge=challenge, origin=origin, settings=settings, user_pk=user.id
    )


# --- the owner's list ----------------------------------------------------------------------


def has_passkey(uow: UnitOfWork, *, user_id: str) -> bool:
    """Whether the user registered at least one passkey."""
    found = uow.session.scalar(
        select(Passkey.id).join(User, User.id == Passkey.user_id).where(User.public_id == user_id)
    )
    return found is not None


def list_passkeys(uow: UnitOfWork, *, user_id: str) -> list[PasskeyView]:
    """The user's passkeys, oldest first."""
    user = active_user_row(uow, user_id)
    return [_view(r) for r in _user_passkeys(uow, user.id)]


def _own(uow: UnitOfWork, user: User, passkey_id: str) -> Passkey:
    row = uow.session.scalar(
        select(Passkey).where(Passkey.public_id == passkey_id, Passkey.user_id == user.id)
    )
    if row is None:
        raise PasskeyNotFound("No such passkey.")
    return row


def rename_passkey(uow: UnitOfWork, *, user_id: str, passkey_id: str, name: str) -> PasskeyView:
    """Give one of the user's passkeys another name."""
    user = active_user_row(uow, user_id)
    row = _own(uow, user, passkey_id)
    row.name = _clean_name(name)
    uow.session.flush()
    return _view(row)


def remove_passkey(uow: UnitOfWork, *, user_id: str, passkey_id: str) -> None:
    """Forget one of the user's passkeys: it signs in and pays nothing any more."""
    user = active_user_row(uow, user_id)
    row = _own(uow, user, passkey_id)
    uow.session.delete(row)
    add_event(uow, user, "passkey_removed", passkey=passkey_id)
    uow.session.flush()


def login(
    db: Database, *, credential: Mapping[str, Any], device: Device, settings: Settings
) -> LoginResult:
    """Sign in with a passkey: one transaction checks the assertion and opens the session."""

    def open_session(uow: UnitOfWork) -> LoginResult:
        user = sign_in(uow, credential=credential, settings=settings)
        issued = sessions.create_session(
            uow, user=user, kind=device.kind, device_name=device.name,
            user_agent=device.user_agent, ip=device.ip, ttl_seconds=settings.session_ttl_seconds,
        )  # fmt: skip
        return LoginResult(get_user(uow, user_id=user.public_id), issued)

    return db.transact(open_session)
