"""Residents' use cases: sign-up, login, real name and tiers, freezing, closing — and the
contract other
features use (``get_user``, ``find_user_by_phone``, ``verified_identity``,
``record_external_checks``, ``confirm_payment_pin``, ``close_account``).

Functions taking ``uow`` never commit. A few take the :class:`Database` instead and run
transactions of their own, because a failure must be recorded even though the request then
fails (a wrong password or PIN counts toward a lock) or because they call something slow
that must not run while SQLite's writer lock is held (argon2, the identity verifier).
The ``encryptor`` and ``settings`` keywords default to the runtime's (see ``keys``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from functools import cache
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError

from citywallet.identity import codes, keys, sessions
from citywallet.identity import consent as consent_rules
from citywallet.identity.consent import SignupConsent
from citywallet.identity.errors import (
    AccountClosed,
    AccountFrozen,
    AccountMoved,
    IdentityServiceUnavailable,
)
from citywallet.identity.gateways import IdentityVerifier
from citywallet.identity.models import ExternalCheck, PaymentPin, RealName, User
from citywallet.identity.pins import (  # the contract
    PinMismatch as PinMismatch,
)
from citywallet.identity.pins import (
    PinState,
)
from citywallet.identity.pins import check_pin as check_pin
from citywallet.identity.pins import confirm_payment_pin as confirm_payment_pin
from citywallet.identity.pins import run_confirmed as run_confirmed
from citywallet.identity.pins import verify_pin as verify_pin
from citywallet.identity.queries import active_user_row, add_event, new_public_id, user_row
from citywallet.identity.rules import (
    checks_to_next_tier,
    mask_id_number,
    mask_name,
    mask_phone,
    normalize_name,
    normalize_phone,
    password_weakness,
    tier_for_checks,
    validate_resident_id,
)
from citywallet.inbox import service as inbox
from citywallet.inbox.kinds import DEVICE_SIGNIN
from citywallet.platform import ratelimit
from citywallet.platform.clock import now_us
from citywallet.platform.config import Settings, get_settings
from citywallet.platform.crypto import Encryptor
from citywallet.platform.db import Database, UnitOfWork
from citywallet.platform.errors import Conflict, InvalidInput, Unauthorized
from citywallet.platform.logging import get_logger

CHINA = timezone(timedelta(hours=8))
log = get_logger(__name__)  # security events, with masked values only
RESIDENT_ID_CHECK = "resident_id"


@dataclass(frozen=True)
class UserView:
    """A user as other features see them: no clear personal data."""

    id: str
    phone_masked: str
    status: str  # "active" | "frozen" | "closed" | "moved"
    tier: int  # 0..3
    real_name_verified: bool
    name_masked: str | None


@dataclass(frozen=True)
class UserProfile:
    """The user's own account page."""

    user: UserView
    id_number_masked: str | None
    external_checks: int
    checks_to_next_tier: int | None
    pin_set: bool
    created_at: int


@dataclass(frozen=True)
class VerifiedIdentity:
    """The verified legal identity (clear values: for the four-element card check only)."""

    name: str
    id_number: str
    id_hash: str


@dataclass(frozen=True)
class TierStatus:
    """Where a user stands on the tier ladder."""

    tier: int
    external_checks: int
    checks_to_next_tier: int | None


@dataclass(frozen=True)
class LoginResult:
    """A signed-in user and their new session."""

    user: UserView
    session: sessions.IssuedSession


@cache
def _hasher() -> PasswordHasher:
    return PasswordHasher()  # argon2id, RFC 9106 low-memory profile


@cache
def _dummy_hash() -> str:
    return _hasher().hash("not-a-real-password")


def _settings(settings: Settings | None) -> Settings:
    return settings if settings is not None else get_settings()


def _view(user: User, name_masked: str | None) -> UserView:
    return UserView(
        id=user.public_id,
        phone_masked=user.phone_masked,
        status=user.status,
        tier=user.tier,
        real_name_verified=name_masked is not None,
        name_masked=name_masked,
    )


def _view_of(uow: UnitOfWork, user: User) -> UserView:
    name_masked = uow.session.scalar(
        select(RealName.name_masked).where(RealName.user_id == user.id)
    )
    return _view(user, name_masked)


# --- the contract -------------------------------------------------------------------------


@dataclass(frozen=True)
class Mover:
    """A resident about to move money, with their PIN state: what a payment reads of
    identity, in one statement joined to the feature's own rows (:func:`mover_select`)."""

    user: UserView
    pin: PinState


def mover_select(*, pin: bool = True) -> Select[*tuple[Any, ...]]:
    """The columns of a :class:`Mover` (users, their masked real name and PIN), for a
    feature to join its own rows to and filter on ``user_id`` or ``phone_hash``; read the
    rows back with :func:`mover_of`. Without ``pin``, only the user's public facts (``user_id``,
    ``status``, ``tier``, ``phone_masked``, ``name_masked``: NULL without a verified real
    name), for a feature that decides a request in one statement of its own and needs no PIN
    (the red-packet grab)."""
    query = select(
        User.id.label("user_pk"),
        User.public_id.label("user_id"),
        User.phone_hash.label("phone_hash"),
        User.phone_masked,
        User.status,
        User.tier,
        RealName.name_masked,
    ).outerjoin(RealName, RealName.user_id == User.id)
    if not pin:
        return query
    return query.add_columns(
        PaymentPin.pin_hash,
        PaymentPin.key_id,
        PaymentPin.failed_attempts,
        PaymentPin.locked_until,
    ).outerjoin(PaymentPin, PaymentPin.user_id == User.id)


def mover_of(row: Any) -> Mover:
    """The :class:`Mover` of a row selected with :func:`mover_select`'s columns."""
    user = UserView(
        id=row.user_id,
        phone_masked=row.phone_masked,
        status=row.status,
        tier=row.tier,
        real_name_verified=row.name_masked is not None,
        name_masked=row.name_masked,
    )
    pin = PinState(
        row.user_pk, row.user_id, row.pin_hash, row.key_id, row.failed_attempts or 0,
        row.locked_until,
    )  # fmt: skip
    return Mover(user, pin)


def phone_lookup_hash(phone: str, encryptor: Encryptor | None = None) -> str:
    """The lookup hash a user's phone is found by (``invalid_phone`` if it is no mainland
    mobile number), for :func:`mover_select`'s ``phone_hash``."""
    return keys.phone_hash(keys.encryptor_or_default(encryptor), normalize_phone(phone))


def get_user(uow: UnitOfWork, *, user_id: str) -> UserView:
    """The user with public id ``user_id`` (``user_not_found`` otherwise)."""
    return _view_of(uow, user_row(uow, user_id))


def find_user_by_phone(
    uow: UnitOfWork, *, phone: str, encryptor: Encryptor | None = None
) -> UserView | None:
    """The user registered with ``phone`` (any common format), or ``None``.

    A string that is no mainland mobile number raises ``invalid_phone``.
    """
    e164 = normalize_phone(phone)
    phone_key = keys.phone_hash(keys.encryptor_or_default(encryptor), e164)
    user = uow.session.scalar(select(User).where(User.phone_hash == phone_key))
    return None if user is None else _view_of(uow, user)


def verified_identity(
    uow: UnitOfWork, *, user_id: str, encryptor: Encryptor | None = None
) -> VerifiedIdentity | None:
    """The user's verified name and ID number in clear, or ``None`` if not verified."""
    user = user_row(uow, user_id)
    real = uow.session.get(RealName, user.id)
    if real is None:
        return None
    enc = keys.encryptor_or_default(encryptor)
    aad = str(user.id).encode()
    return VerifiedIdentity(
        name=enc.decrypt(real.name_enc, aad=aad).decode(),
        id_number=enc.decrypt(real.id_number_enc, aad=aad).decode(),
        id_hash=real.id_hash,
    )


def record_external_checks(
    uow: UnitOfWork,
    *,
    user_id: str,
    count: int,
    kind: str,
    thresholds: Sequence[int] | None = None,
) -> int:
    """Record ``count`` successful external checks of ``kind``; recompute and return the tier.

    Checks count once per ``kind``: recording the same kind again keeps the larger count, so
    name ``kind`` after the evidence (``bank_card:<card fingerprint>``), not the channel —
    binding the same card twice must not climb the ladder.
    """
    if count < 1 or not kind:
        raise InvalidInput("A check has a kind and a positive count.", code="invalid_check")
    user = user_row(uow, user_id, for_update=True)
    moment = now_us()
    check = uow.session.scalar(
        select(ExternalCheck).where(ExternalCheck.user_id == user.id, ExternalCheck.kind == kind)
    )
    if check is None:
        uow.session.add(
            ExternalCheck(
                user_id=user.id, kind=kind, count=count, created_at=moment, updated_at=moment
            )
        )
    elif count > check.count:
        check.count = count
        check.updated_at = moment
    uow.session.flush()
    return _recompute_tier(uow, user, _thresholds(thresholds), cause=kind)


def _thresholds(thresholds: Sequence[int] | None) -> Sequence[int]:
    return thresholds if thresholds is not None else get_settings().tier_checks


def _recompute_tier(uow: UnitOfWork, user: User, thresholds: Sequence[int], *, cause: str) -> int:
    total = uow.session.scalar(
        select(func.coalesce(func.sum(ExternalCheck.count), 0)).where(
            ExternalCheck.user_id == user.id
        )
    )
    user.external_checks = int(total or 0)
    tier = tier_for_checks(user.external_checks, thresholds)
    if tier != user.tier:
        add_event(uow, user, "tier_changed", actor="system", old=user.tier, new=tier, cause=cause)
        user.tier = tier
    user.updated_at = now_us()
    return tier


# --- profile and listing ------------------------------------------------------------------


def get_profile(
    uow: UnitOfWork, *, user_id: str, thresholds: Sequence[int] | None = None
) -> UserProfile:
    """The user's own view of their account (all masked)."""
    user = user_row(uow, user_id)
    real = uow.session.get(RealName, user.id)
    pin_set = uow.session.get(PaymentPin, user.id) is not None
    return UserProfile(
        user=_view(user, real.name_masked if real else None),
        id_number_masked=real.id_number_masked if real else None,
        external_checks=user.external_checks,
        checks_to_next_tier=checks_to_next_tier(user.external_checks, _thresholds(thresholds)),
        pin_set=pin_set,
        created_at=user.created_at,
    )


def list_users(
    uow: UnitOfWork, *, limit: int = 50, after: int | None = None
) -> tuple[list[UserView], int | None]:
    """Users, newest first, a page at a time (operators and the CLI)."""
    query = (
        select(User, RealName.name_masked)
        .outerjoin(RealName, RealName.user_id == User.id)
        .order_by(User.id.desc())
        .limit(limit + 1)
    )
    if after is not None:
        query = query.where(User.id < after)
    rows = uow.session.execute(query).all()
    page = rows[:limit]
    return [_view(u, n) for u, n in page], (page[-1][0].id if len(rows) > limit else None)


# --- sign-up and login --------------------------------------------------------------------


@dataclass(frozen=True)
class Device:
    """Where a session is opened from."""

    kind: str = "bearer"  # bearer | cookie
    name: str = ""
    user_agent: str = ""
    ip: str = ""


def _prove_phone_with_password(
    db: Database,
    cfg: Settings,
    enc: Encryptor,
    *,
    phone: str,
    code: str,
    password: str,
    purpose: str,
    client_ip: str | None,
) -> tuple[str, int, str, str]:
    """Normalise the phone, refuse a weak password, check the SMS code (counting a wrong try
    in its own transaction) and hash the password outside any transaction.

    Returns (E.164 phone, code id to consume, password hash, phone lookup hash).
    """
    e164 = normalize_phone(phone)
    if (weakness := password_weakness(password)) is not None:
        raise InvalidInput(weakness, code="weak_password")
    code_id = codes.verify_code(
        db,
        settings=cfg,
        encryptor=enc,
        phone=e164,
        purpose=purpose,
        code=code,
        client_ip=client_ip,
    )
    password_hash = _hasher().hash(password)  # slow: outside any transaction
    return e164, code_id, password_hash, keys.phone_hash(enc, e164)


def register(
    db: Database,
    *,
    phone: str,
    code: str,
    password: str,
    device: Device,
    settings: Settings | None = None,
    encryptor: Encryptor | None = None,
    consent: SignupConsent | None = None,
    consent_source: str = "api",
) -> LoginResult:
    """Create an account from a phone number proven by an SMS code, and sign it in.

    ``consent``: what the resident accepted (the API and the pages require it; checked
    before anything is written, recorded in the sign-up's transaction, docs/identity.md
    "Consent"). Without it (trusted provisioning) no consent is recorded."""
    if consent is not None:
        consent_rules.check_signup(consent)
    cfg, enc = _settings(settings), keys.encryptor_or_default(encryptor)
    e164, code_id, password_hash, phone_key = _prove_phone_with_password(
        db,
        cfg,
        enc,
        phone=phone,
        code=code,
        password=password,
        purpose="register",
        client_ip=device.ip or None,
    )

    def create(uow: UnitOfWork) -> LoginResult:
        codes.consume_code(uow, code_id=code_id)
        if uow.session.scalar(select(User.id).where(User.phone_hash == phone_key)) is not None:
            raise _phone_taken()
        moment = now_us()
        user = User(
            public_id=new_public_id("usr"),
            phone_hash=phone_key,
            phone_enc=enc.encrypt(e164.encode()),
            phone_masked=mask_phone(e164),
            password_hash=password_hash,
            status="active",
            tier=0,
            external_checks=0,
            created_at=moment,
            updated_at=moment,
        )
        uow.session.add(user)
        uow.session.flush()
        add_event(uow, user, "registered")
        if consent is not None:
            consent_rules.record_signup(uow, user=user, consent=consent, source=consent_source)
        session = _open_session(uow, user, device, cfg)
        return LoginResult(_view(user, None), session)

    try:
        result = db.transact(create)
    except IntegrityError:  # a concurrent sign-up with the same phone won
        raise _phone_taken() from None
    log.info("user registered", user_id=result.user.id, phone_masked=result.user.phone_masked)
    return result


def provision_account(
    db: Database,
    *,
    phone: str,
    password: str,
    encryptor: Encryptor | None = None,
) -> UserView:
    """Create an account without an SMS code, for whoever runs the CLI on the database (the
    switch's console operators: the switch sends no SMS)."""
    enc = keys.encryptor_or_default(encryptor)
    e164 = normalize_phone(phone)
    if (weakness := password_weakness(password)) is not None:
        raise InvalidInput(weakness, code="weak_password")
    password_hash = _hasher().hash(password)  # slow: outside any transaction
    phone_key = keys.phone_hash(enc, e164)

    def create(uow: UnitOfWork) -> UserView:
        if uow.session.scalar(select(User.id).where(User.phone_hash == phone_key)) is not None:
            raise _phone_taken()
        moment = now_us()
        user = User(
            public_id=new_public_id("usr"), phone_hash=phone_key,
            phone_enc=enc.encrypt(e164.encode()), phone_masked=mask_phone(e164),
            password_hash=password_hash, status="active", tier=0, external_checks=0,
            created_at=moment, updated_at=moment,
        )  # fmt: skip
        uow.session.add(user)
        uow.session.flush()
        add_event(uow, user, "registered")
        return _view(user, None)

    return db.transact(create)


def _phone_taken() -> Conflict:
    return Conflict(
        "This phone number already has an account: log in instead.",
        code="phone_already_registered",
    )


def _open_session(
    uow: UnitOfWork, user: User, device: Device, settings: Settings
) -> sessions.IssuedSession:
    return sessions.create_session(
        uow,
        user=user,
        kind=device.kind,
        device_name=device.name,
        user_agent=device.user_agent,
        ip=device.ip,
        ttl_seconds=settings.session_ttl_seconds,
    )


def login_rules(settings: Settings) -> tuple[ratelimit.Rule, ratelimit.Rule]:
    """Failed logins allowed per phone and per client IP in a window."""
    window = settings.login_failure_window_seconds
    return (
        ratelimit.Rule(
            "login_fail_phone", settings.login_failures_per_phone, window, "login_rate_limited"
        ),
        ratelimit.Rule(
            "login_fail_ip", settings.login_failures_per_ip, window, "login_rate_limited"
        ),
    )


def login(
    db: Database,
    *,
    phone: str,
    password: str,
    device: Device,
    settings: Settings | None = None,
    encryptor: Encryptor | None = None,
) -> LoginResult:
    """Check the password and open a session; failures are counted per phone and per IP."""
    cfg, enc = _settings(settings), keys.encryptor_or_default(encryptor)
    e164 = normalize_phone(phone)
    phone_key = keys.phone_hash(enc, e164)
    by_phone, by_ip = login_rules(cfg)
    slots = [(by_phone, phone_key)] + ([(by_ip, device.ip)] if device.ip else [])
    ratelimit.reserve(db, *slots)  # before the slow hash, so parallel tries see each other
    with db.uow(readonly=True) as uow:
        found = uow.session.execute(
            select(User.password_hash, User.status, User.moved_to).where(
                User.phone_hash == phone_key
            )
        ).first()
    stored, status, moved_to = found if found is not None else (_dummy_hash(), "missing", None)
    try:  # slow: outside any transaction; unknown phones cost the same time
        _hasher().verify(stored, password)
        correct = found is not None
    except (VerificationError, InvalidHashError):
        correct = False
    if not correct:  # the reserved slots stay taken: they counted this failure
        log.info("login failed", phone_masked=mask_phone(e164), ip=device.ip)
        raise Unauthorized("Wrong phone number or password.", code="invalid_credentials")
    _refuse_inactive(status, moved_to)
    rehash = _hasher().check_needs_rehash(stored)
    new_hash = _hasher().hash(password) if rehash else None

    def open_session(uow: UnitOfWork) -> LoginResult:
        user = uow.session.scalar(select(User).where(User.phone_hash == phone_key))
        if user is None:
            raise Unauthorized("Wrong phone number or password.", code="invalid_credentials")
        _refuse_inactive(user.status, user.moved_to)  # frozen, closed or moved meanwhile
        ratelimit.reset(uow, by_phone, phone_key)  # the owner is back: forget the failures
        if device.ip:
            ratelimit.release(uow, by_ip, device.ip)  # only failures count against an address
        if new_hash is not None:
            user.password_hash = new_hash
        known = sessions.seen_before(
            uow, user=user, device_name=device.name, user_agent=device.user_agent
        )
        issued = _open_session(uow, user, device, cfg)
        if not known:  # the message centre: "signed in on a new device", to the devices page
            inbox.record(
                uow,
                user_id=user.public_id,
                kind=DEVICE_SIGNIN,
                ref=issued.id,
                params={"device": device.name or sessions.device_from_agent(device.user_agent)},
            )
        return LoginResult(_view_of(uow, user), issued)

    return db.transact(open_session)


def _refuse_inactive(status: str, moved_to: str | None = None) -> None:
    """A frozen account (``account_frozen``), a closed one (``account_closed``) or one whose
    wallet moved to another cell (``account_moved`` with ``cell``), 403 all: said only to
    whoever knows the password or holds a code, never to a guess."""
    if status == "moved":
        raise AccountMoved(
            f"This wallet moved to {moved_to}: sign in there with the same password.",
            cell=moved_to or "",
        )
    if status == "frozen":
        raise AccountFrozen("This account is frozen; contact customer service.")
    if status == "closed":
        raise AccountClosed("This account was closed by its owner; it cannot be used again.")


def send_sms_code(
    uow: UnitOfWork,
    *,
    phone: str,
    purpose: str,
    client_ip: str | None = None,
    settings: Settings | None = None,
    encryptor: Encryptor | None = None,
) -> codes.CodeSent:
    """Text a sign-up or password-reset code to ``phone`` (rate-limited)."""
    cfg, enc = _settings(settings), keys.encryptor_or_default(encryptor)
    e164 = normalize_phone(phone)
    if purpose not in ("register", "reset_password"):
        raise InvalidInput("Ask for a 'register' or 'reset_password' code.", code="invalid_purpose")
    exists = uow.session.scalar(
        select(User.id).where(User.phone_hash == keys.phone_hash(enc, e164))
    )
    return codes.send_code(
        uow,
        settings=cfg,
        encryptor=enc,
        phone=e164,
        purpose=purpose,
        client_ip=client_ip,
        deliver=purpose == "register" or exists is not None,
    )


def reset_password(
    db: Database,
    *,
    phone: str,
    code: str,
    new_password: str,
    client_ip: str | None = None,
    settings: Settings | None = None,
    encryptor: Encryptor | None = None,
) -> None:
    """Set a new password with a ``reset_password`` code; ends every session."""
    cfg, enc = _settings(settings), keys.encryptor_or_default(encryptor)
    _e164, code_id, password_hash, phone_key = _prove_phone_with_password(
        db,
        cfg,
        enc,
        phone=phone,
        code=code,
        password=new_password,
        purpose="reset_password",
        client_ip=client_ip,
    )

    def reset(uow: UnitOfWork) -> None:
        codes.consume_code(uow, code_id=code_id)
        user = uow.session.scalar(select(User).where(User.phone_hash == phone_key))
        if user is None:
            raise codes.SmsCodeInvalid("No valid code: ask for a new one.", attempts_left=0)
        _refuse_inactive(user.status)
        user.password_hash, user.updated_at = password_hash, now_us()
        ended = sessions.revoke_all(uow, user_pk=user.id, reason="password_reset")
        ratelimit.reset(uow, login_rules(cfg)[0], phone_key)
        add_event(uow, user, "password_reset", sessions_ended=ended)

    db.transact(reset)


def change_password(
    db: Database,
    *,
    user_id: str,
    old_password: str,
    new_password: str,
    keep_session_id: str | None = None,
) -> None:
    """Change the password after re-checking the old one; ends the other sessions."""
    if (weakness := password_weakness(new_password)) is not None:
        raise InvalidInput(weakness, code="weak_password")
    check_password(db, user_id=user_id, password=old_password)
    password_hash = _hasher().hash(new_password)

    def change(uow: UnitOfWork) -> None:
        user = active_user_row(uow, user_id, for_update=True)
        user.password_hash, user.updated_at = password_hash, now_us()
        ended = sessions.revoke_all(
            uow, user_pk=user.id, reason="password_changed", keep_session_id=keep_session_id
        )
        add_event(uow, user, "password_changed", sessions_ended=ended)

    db.transact(change)


PASSWORD_RECHECK = ratelimit.Rule("password_recheck", 5, 900, "password_rate_limited")


def check_password(db: Database, *, user_id: str, password: str) -> None:
    """Re-authenticate a signed-in user (before sensitive changes); wrong tries are limited."""
    ratelimit.reserve(db, (PASSWORD_RECHECK, user_id))  # before the slow hash
    with db.uow(readonly=True) as uow:
        stored = active_user_row(uow, user_id).password_hash
    try:
        _hasher().verify(stored, password)
    except (VerificationError, InvalidHashError):
        raise InvalidInput("Wrong password.", code="password_incorrect") from None
    db.transact(lambda uow: ratelimit.release(uow, PASSWORD_RECHECK, user_id))  # not a failure


# --- real name and tiers ------------------------------------------------------------------


def verify_real_name(
    db: Database,
    *,
    user_id: str,
    name: str,
    id_number: str,
    verifier: IdentityVerifier,
    settings: Settings | None = None,
    encryptor: Encryptor | None = None,
    today: date | None = None,
) -> UserView:
    """Verify name + resident ID with the authority; one verified identity per person.

    The verifier is called outside any transaction (it is slow); the identity is then stored
    under a unique keyed hash of the ID number, so a second account with the same ID number
    is refused (``identity_already_used``) even if both race.
    """
    cfg, enc = _settings(settings), keys.encryptor_or_default(encryptor)
    clean_name = normalize_name(name)
    resident = validate_resident_id(id_number, today=today or _today())
    id_hash = keys.id_number_hash(enc, resident.number)
    attempts = _verify_rule()

    def precheck(uow: UnitOfWork) -> None:
        user = active_user_row(uow, user_id)
        if uow.session.get(RealName, user.id) is not None:
            raise Conflict("Your real name is already verified.", code="already_verified")
        if uow.session.scalar(select(RealName.user_id).where(RealName.id_hash == id_hash)):
            raise _identity_used()
        ratelimit.hit(uow, attempts, user_id)  # committed: every external check costs

    db.transact(precheck)
    check = verifier.verify(clean_name, resident.number)
    if check.reason == "unavailable":
        raise IdentityServiceUnavailable("The verification service did not answer; try again.")
    if not check.matched:
        log.info("real name declined", user_id=user_id, reason=check.reason)
        raise InvalidInput(
            "The name and ID number do not match the national records.",
            code="identity_check_failed",
            reason=check.reason,
        )

    def store(uow: UnitOfWork) -> UserView:
        user = active_user_row(uow, user_id, for_update=True)
        if uow.session.get(RealName, user.id) is not None:
            raise Conflict("Your real name is already verified.", code="already_verified")
        aad = str(user.id).encode()
        uow.session.add(
            RealName(
                user_id=user.id,
                id_hash=id_hash,
                name_enc=enc.encrypt(clean_name.encode(), aad=aad),
                id_number_enc=enc.encrypt(resident.number.encode(), aad=aad),
                name_masked=mask_name(clean_name),
                id_number_masked=mask_id_number(resident.number),
                provider_ref=check.provider_ref,
                verified_at=now_us(),
            )
        )
        uow.session.flush()
        add_event(uow, user, "real_name_verified", provider_ref=check.provider_ref)
        record_external_checks(
            uow, user_id=user_id, count=1, kind=RESIDENT_ID_CHECK, thresholds=cfg.tier_checks
        )
        return _view_of(uow, user)

    try:
        view = db.transact(store)
    except IntegrityError:
        raise _identity_used() from None
    log.info("real name verified", user_id=user_id, provider_ref=check.provider_ref)
    return view


def _verify_rule() -> ratelimit.Rule:
    """Calls to the identity verifier per user per day (each one is billed)."""
    return ratelimit.Rule("identity_verify", 5, 86_400, "identity_verify_rate_limited")


def _identity_used() -> Conflict:
    return Conflict(
        "This ID number is already verified on another account: one wallet per person.",
        code="identity_already_used",
    )


def recheck_identity(
    db: Database,
    *,
    user_id: str,
    verifier: IdentityVerifier,
    settings: Settings | None = None,
    encryptor: Encryptor | None = None,
) -> TierStatus:
    """Upgrade: re-check the stored identity with the verifier, then apply the tier the
    recorded checks allow. A tier never rises on stored data alone."""
    cfg, enc = _settings(settings), keys.encryptor_or_default(encryptor)
    with db.uow(readonly=True) as uow:
        active_user_row(uow, user_id)
        identity = verified_identity(uow, user_id=user_id, encryptor=enc)
    if identity is None:
        raise Conflict("Verify your real name first.", code="real_name_required")
    ratelimit.reserve(db, (_verify_rule(), user_id))  # before the call: each one is billed
    check = verifier.verify(identity.name, identity.id_number)
    if check.reason == "unavailable":
        raise IdentityServiceUnavailable("The verification service did not answer; try again.")
    if not check.matched:
        raise Conflict(
            "Your identity could not be confirmed again; contact customer service.",
            code="identity_recheck_failed",
            reason=check.reason,
        )

    def apply(uow: UnitOfWork) -> TierStatus:
        user = active_user_row(uow, user_id, for_update=True)
        add_event(uow, user, "identity_rechecked", provider_ref=check.provider_ref)
        tier = _recompute_tier(uow, user, cfg.tier_checks, cause="recheck")
        return TierStatus(
            tier, user.external_checks, checks_to_next_tier(user.external_checks, cfg.tier_checks)
        )

    return db.transact(apply)


# --- operators ----------------------------------------------------------------------------


def freeze_user(uow: UnitOfWork, *, user_id: str, reason: str, actor: str) -> UserView:
    """Freeze an account (no login, no money movement) and end all its sessions."""
    if not reason.strip():
        raise InvalidInput("Say why the account is frozen.", code="reason_required")
    user = user_row(uow, user_id, for_update=True)
    if user.status == "closed":
        raise Conflict("The account is closed: there is nothing to freeze.", code="already_closed")
    if user.status == "frozen":
        raise Conflict("The account is already frozen.", code="already_frozen")
    user.status, user.frozen_reason, user.updated_at = "frozen", reason.strip()[:500], now_us()
    ended = sessions.revoke_all(uow, user_pk=user.id, reason="frozen")
    add_event(uow, user, "frozen", actor=actor, reason=reason.strip(), sessions_ended=ended)
    log.warning("user frozen", user_id=user_id, actor=actor)
    return _view_of(uow, user)


def unfreeze_user(uow: UnitOfWork, *, user_id: str, reason: str, actor: str) -> UserView:
    """Lift a freeze (the user logs in again)."""
    if not reason.strip():
        raise InvalidInput("Say why the account is unfrozen.", code="reason_required")
    user = user_row(uow, user_id, for_update=True)
    if user.status != "frozen":
        raise Conflict("The account is not frozen.", code="not_frozen")
    user.status, user.frozen_reason, user.updated_at = "active", None, now_us()
    add_event(uow, user, "unfrozen", actor=actor, reason=reason.strip())
    return _view_of(uow, user)


def close_account(uow: UnitOfWork, *, user_id: str, actor: str = "user") -> UserView:
    """Close an account for good at its owner's request: status ``closed``, every session
    ended, an event recorded. The caller (the wallet's closing) settled the money first.

    Refuses a frozen account (``account_frozen``) and one already closed (``already_closed``).
    The records stay (one verified identity per person still holds), so neither the phone
    number nor the ID number can open another account."""
    user = user_row(uow, user_id, for_update=True)
    if user.status == "closed":
        raise Conflict("The account is already closed.", code="already_closed")
    if user.status == "frozen":
        raise AccountFrozen("This account is frozen; contact customer service.")
    user.status, user.updated_at = "closed", now_us()
    ended = sessions.revoke_all(uow, user_pk=user.id, reason=sessions.CLOSED_REASON)
    add_event(uow, user, "closed", actor=actor, sessions_ended=ended)
    log.info("account closed", user_id=user_id, actor=actor)
    return _view_of(uow, user)


def user_phone(uow: UnitOfWork, *, user_id: str, encryptor: Encryptor | None = None) -> str:
    """The user's phone number in E.164 (to send them an SMS; never for display)."""
    user = user_row(uow, user_id)
    return keys.encryptor_or_default(encryptor).decrypt(user.phone_enc).decode()


def _today() -> date:
    """Today in China (birth dates in ID numbers are Chinese calendar dates)."""
    return datetime.now(CHINA).date()
