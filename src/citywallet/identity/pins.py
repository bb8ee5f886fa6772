"""The payment PIN: 6 digits that confirm every payment and transfer.

Stored as HMAC-SHA256 under a key kept outside the database (``Encryptor.keyed_hash``,
purpose ``payment-pin``, with the key id so a rotated key re-hashes at the next correct
entry). The user's public id is part of the hashed value, so two users with the same PIN do
not share a hash. A 6-digit PIN's strength is the key plus the lockout: after
``pin_max_attempts`` wrong tries the PIN is locked for ``pin_lock_seconds`` — a slow hash
would add nothing and cost every payment tens of milliseconds.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from citywallet.identity import codes, keys
from citywallet.identity.errors import PinIncorrect, PinLocked, PinNotSet
from citywallet.identity.models import PaymentPin, RealName, User
from citywallet.identity.queries import active_user_row, add_event, user_row
from citywallet.identity.rules import birth_date_of, pin_weakness
from citywallet.platform.clock import now_us
from citywallet.platform.config import Settings, get_settings
from citywallet.platform.crypto import CryptoError, Encryptor
from citywallet.platform.db import Database, UnitOfWork
from citywallet.platform.errors import Conflict, InvalidInput
from citywallet.platform.logging import get_logger

SECOND_US = 1_000_000
T = TypeVar("T")
PIN_PURPOSE = "payment-pin"
log = get_logger(__name__)


def _pin_hash(enc: Encryptor, user: User, pin: str, key_id: str | None = None) -> tuple[str, str]:
    return enc.keyed_hash(PIN_PURPOSE, f"{user.public_id}:{pin}", key_id=key_id)


def _refuse_weak(uow: UnitOfWork, enc: Encryptor, user: User, pin: str) -> None:
    """Refuse an easy PIN, including one made of the user's own phone, birth date or ID."""
    phone = enc.decrypt(user.phone_enc).decode()
    real = uow.session.get(RealName, user.id)
    id_number = (
        enc.decrypt(real.id_number_enc, aad=str(user.id).encode()).decode() if real else None
    )
    birth = birth_date_of(id_number) if id_number else None
    weakness = pin_weakness(pin, phone=phone, birth_date=birth, id_number=id_number)
    if weakness is not None:
        raise InvalidInput(weakness, code="pin_weak")


def _store(uow: UnitOfWork, enc: Encryptor, user: User, pin: str) -> None:
    key_id, digest = _pin_hash(enc, user, pin)
    row = uow.session.get(PaymentPin, user.id)
    if row is None:
        row = PaymentPin(user_id=user.id, pin_hash=digest, key_id=key_id)
        uow.session.add(row)
    row.pin_hash, row.key_id = digest, key_id
    row.failed_attempts, row.locked_until, row.updated_at = 0, None, now_us()


def set_payment_pin(
    uow: UnitOfWork, *, user_id: str, pin: str, encryptor: Encryptor | None = None
) -> None:
    """Set the first PIN (the edge re-checks the login password before calling this)."""
    enc = keys.encryptor_or_default(encryptor)
    user = active_user_row(uow, user_id, for_update=True)
    if uow.session.get(PaymentPin, user.id) is not None:
        raise Conflict(
            "A payment PIN is already set: change it with the old PIN, or reset it by SMS.",
            code="pin_already_set",
        )
    _refuse_weak(uow, enc, user, pin)
    _store(uow, enc, user, pin)
    add_event(uow, user, "pin_set")


def change_payment_pin(
    db: Database,
    *,
    user_id: str,
    old_pin: str,
    new_pin: str,
    settings: Settings | None = None,
    encryptor: Encryptor | None = None,
) -> None:
    """Change the PIN; the old PIN is checked like a payment (wrong tries count)."""
    enc = keys.encryptor_or_default(encryptor)
    confirm_payment_pin(db, user_id=user_id, pin=old_pin, settings=settings, encryptor=enc)
    if hmac.compare_digest(old_pin, new_pin):
        raise InvalidInput("The new PIN must differ from the old one.", code="pin_unchanged")

    def change(uow: UnitOfWork) -> None:
        user = active_user_row(uow, user_id, for_update=True)
        _refuse_weak(uow, enc, user, new_pin)
        _store(uow, enc, user, new_pin)
        add_event(uow, user, "pin_changed")

    db.transact(change)


def send_pin_reset_code(
    uow: UnitOfWork,
    *,
    user_id: str,
    settings: Settings,
    encryptor: Encryptor | None = None,
    client_ip: str | None = None,
) -> codes.CodeSent:
    """Text a ``reset_pin`` code to the user's own phone."""
    enc = keys.encryptor_or_default(encryptor)
    user = active_user_row(uow, user_id)
    phone = enc.decrypt(user.phone_enc).decode()
    return codes.send_code(
        uow, settings=settings, encryptor=enc, phone=phone, purpose="reset_pin", client_ip=client_ip
    )


def reset_payment_pin(
    db: Database,
    *,
    user_id: str,
    code: str,
    new_pin: str,
    settings: Settings | None = None,
    encryptor: Encryptor | None = None,
) -> None:
    """Set a new PIN with an SMS code (forgotten or locked PIN); clears the lock."""
    cfg = settings if settings is not None else get_settings()
    enc = keys.encryptor_or_default(encryptor)
    with db.uow(readonly=True) as uow:
        user = active_user_row(uow, user_id)
        phone = enc.decrypt(user.phone_enc).decode()
        _refuse_weak(uow, enc, user, new_pin)
    code_id = codes.verify_code(
        db, settings=cfg, encryptor=enc, phone=phone, purpose="reset_pin", code=code
    )

    def reset(uow: UnitOfWork) -> None:
        codes.consume_code(uow, code_id=code_id)
        locked_user = active_user_row(uow, user_id, for_update=True)
        _store(uow, enc, locked_user, new_pin)
        add_event(uow, locked_user, "pin_reset")

    db.transact(reset)


@dataclass(frozen=True)
class PinState:
    """A user's payment-PIN row as a payment reads it (``pin_hash`` None: no PIN set)."""

    user_pk: int
    user_id: str
    pin_hash: str | None
    key_id: str | None
    failed_attempts: int
    locked_until: int | None


class PinMismatch(Exception):
    """A wrong PIN inside a payment's transaction: the caller rolls the payment back, then
    counts the try in a transaction of its own (:func:`run_confirmed`)."""

    def __init__(self, user_id: str) -> None:
        super().__init__(user_id)
        self.user_id = user_id


def check_pin(
    uow: UnitOfWork, state: PinState, pin: str, *, encryptor: Encryptor | None = None
) -> None:
    """Check the payment PIN inside the transaction that moves the money. Raises
    ``pin_not_set`` (409), ``pin_locked`` (423, ``retry_after``), ``pin_reset_required``
    or, for a wrong PIN, :class:`PinMismatch`, which :func:`run_confirmed` turns into a
    counted ``pin_incorrect``. A correct PIN writes only when a failed try or an old key
    must be cleared (nothing on the common path)."""
    enc = keys.encryptor_or_default(encryptor)
    if state.pin_hash is None or state.key_id is None:
        raise PinNotSet("Set a payment PIN first.")
    moment = now_us()
    if state.locked_until is not None and state.locked_until > moment:
        raise _locked(state.user_id, -(-(state.locked_until - moment) // SECOND_US))
    try:
        _, expected = enc.keyed_hash(PIN_PURPOSE, f"{state.user_id}:{pin}", key_id=state.key_id)
    except CryptoError:  # its key was dropped from the ring: only a reset helps
        raise Conflict("Reset your payment PIN by SMS.", code="pin_reset_required") from None
    if not hmac.compare_digest(expected, state.pin_hash):
        raise PinMismatch(state.user_id)
    stale_key = state.key_id != enc.keyring.current
    if state.failed_attempts or state.locked_until is not None or stale_key:
        row = uow.session.get(PaymentPin, state.user_pk, with_for_update=True)
        assert row is not None
        row.failed_attempts, row.locked_until = 0, None
        if stale_key:
            row.key_id, row.pin_hash = enc.keyed_hash(PIN_PURPOSE, f"{state.user_id}:{pin}")
        uow.session.flush()


def _locked(user_id: str, retry_after: int) -> PinLocked:
    log.warning("payment pin locked", user_id=user_id, retry_after=retry_after)
    return PinLocked(
        "Too many wrong PINs: the payment PIN is locked. Wait, or reset it by SMS.",
        retry_after=retry_after,
    )


def count_wrong_pin(db: Database, *, user_id: str, settings: Settings | None = None) -> Exception:
    """Count a wrong PIN in a small transaction of its own (the payment has rolled back);
    returns the refusal to raise: ``pin_incorrect`` with ``attempts_left``, or
    ``pin_locked`` when this try used the last attempt."""
    cfg = settings if settings is not None else get_settings()

    def count(uow: UnitOfWork) -> tuple[str, int]:
        user = user_row(uow, user_id)
        row = uow.session.get(PaymentPin, user.id, with_for_update=True)
        if row is None:  # reset meanwhile
            return "wrong", cfg.pin_max_attempts
        moment = now_us()
        if row.locked_until is not None:
            if row.locked_until > moment:  # a concurrent wrong try locked it
                return "locked", -(-(row.locked_until - moment) // SECOND_US)
            row.locked_until, row.failed_attempts = None, 0
        row.failed_attempts += 1
        row.updated_at = moment
        if row.failed_attempts >= cfg.pin_max_attempts:
            row.locked_until = moment + cfg.pin_lock_seconds * SECOND_US
            add_event(uow, user, "pin_locked", actor="system", seconds=cfg.pin_lock_seconds)
            return "locked", cfg.pin_lock_seconds
        return "wrong", cfg.pin_max_attempts - row.failed_attempts

    outcome, value = db.transact(count)
    if outcome == "locked":
        return _locked(user_id, value)
    return PinIncorrect("Wrong payment PIN.", attempts_left=value)


def run_confirmed(
    db: Database, fn: Callable[[UnitOfWork], T], *, settings: Settings | None = None
) -> T:
    """``db.transact(fn)`` for a use case that checks the PIN inside its transaction
    (:func:`check_pin`): a wrong PIN rolls everything back and is then counted on its own."""
    try:
        return db.transact(fn)
    except PinMismatch as wrong:
        raise count_wrong_pin(db, user_id=wrong.user_id, settings=settings) from None


def pin_state_of(uow: UnitOfWork, user: User) -> PinState:
    """The PIN state of a user row read on its own (routes that are not payments)."""
    row = uow.session.get(PaymentPin, user.id)
    if row is None:
        return PinState(user.id, user.public_id, None, None, 0, None)
    return PinState(
        user.id, user.public_id, row.pin_hash, row.key_id, row.failed_attempts, row.locked_until
    )


def verify_pin(
    uow: UnitOfWork, *, user_id: str, pin: str, encryptor: Encryptor | None = None
) -> None:
    """Check an active user's payment PIN inside ``uow``, for a use case that has not read
    the PIN state with its own rows (top-up, withdrawal, closing): run the use case with
    :func:`run_confirmed`, so a wrong PIN rolls it back and is counted on its own."""
    user = active_user_row(uow, user_id)
    check_pin(uow, pin_state_of(uow, user), pin, encryptor=encryptor)


def confirm_payment_pin(
    db: Database,
    *,
    user_id: str,
    pin: str,
    settings: Settings | None = None,
    encryptor: Encryptor | None = None,
) -> None:
    """Check the payment PIN in a transaction of its own, for a request whose work is not
    a payment (changing settings with the PIN). Raises ``pin_not_set`` (409),
    ``pin_incorrect`` (403, ``attempts_left``), ``pin_locked`` (423, ``retry_after``) or
    ``account_frozen`` (403). Payments check it inside their own transaction instead
    (:func:`check_pin`)."""

    run_confirmed(
        db,
        lambda uow: verify_pin(uow, user_id=user_id, pin=pin, encryptor=encryptor),
        settings=settings,
    )
