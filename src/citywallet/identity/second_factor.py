"""Step-up at payment time: asks for a second factor when the rules say so
(identity/stepup.py), and checks the one given.

A payment confirmed by a passkey needs no more (a passkey with user verification is two
factors). One confirmed by the PIN alone is refused with ``step_up_required`` (403, with the
accepted ``factors`` and the ``reasons``) when a rule applies, unless it also carries an SMS
code sent for ``step_up`` to the resident's own phone. The small payments below every
threshold read nothing here.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select

from citywallet.identity import codes, keys
from citywallet.identity.errors import StepUpRequired
from citywallet.identity.models import LoginSession
from citywallet.identity.passkeys import has_passkey
from citywallet.identity.queries import active_user_row
from citywallet.identity.stepup import Facts, Thresholds, accepted_factors, may_need, reasons
from citywallet.platform.clock import now_us
from citywallet.platform.config import Settings
from citywallet.platform.crypto import Encryptor
from citywallet.platform.db import Database, UnitOfWork

SMS_PURPOSE = "step_up"


def thresholds(settings: Settings) -> Thresholds:
    """The step-up thresholds of these settings."""
    return Thresholds(
        amount=settings.step_up_amount,
        new_payee_amount=settings.step_up_new_payee_amount,
        new_device_amount=settings.step_up_new_device_amount,
        new_device_seconds=settings.step_up_new_device_seconds,
    )


def require(
    uow: UnitOfWork,
    *,
    user_id: str,
    session_id: str | None,
    amount: int | None,
    payee_known: Callable[[], bool],
    by_passkey: bool,
    sms_code_id: int | None,
    settings: Settings,
) -> None:
    """Inside the payment's transaction, before it moves money: refuse with
    ``step_up_required`` a PIN-only payment that the rules send to a second factor; consume
    the SMS code (checked beforehand by :func:`check_sms_code`) that answers it."""
    limits = thresholds(settings)
    if by_passkey or amount is None or not may_need(amount, limits):
        return
    opened = None
    if session_id is not None:
        opened = uow.session.scalar(
            select(LoginSession.created_at).where(LoginSession.public_id == session_id)
        )
    user = active_user_row(uow, user_id)
    moment = now_us()
    facts = Facts(
        payee_known=amount < limits.new_payee_amount or payee_known(),
        session_created_at=opened if opened is not None else moment,
        account_created_at=user.created_at,
        now=moment,
    )
    why = reasons(amount, facts, limits)
    if not why:
        return
    if sms_code_id is not None:
        codes.consume_code(uow, code_id=sms_code_id)
        return
    raise StepUpRequired(
        "This payment needs a second confirmation: your fingerprint/face (passkey) or a "
        "code sent to your phone, besides the payment PIN.",
        factors=accepted_factors(has_passkey=has_passkey(uow, user_id=user_id)),
        reasons=why,
    )


def _phone(db: Database, user_id: str, enc: Encryptor) -> str:
    with db.uow(readonly=True) as uow:
        user = active_user_row(uow, user_id)
        return enc.decrypt(user.phone_enc).decode()


def send_sms_code(
    uow: UnitOfWork,
    *,
    user_id: str,
    settings: Settings,
    encryptor: Encryptor | None = None,
    client_ip: str | None = None,
) -> codes.CodeSent:
    """Text a ``step_up`` code to the user's own phone (limited like every SMS code)."""
    enc = keys.encryptor_or_default(encryptor)
    user = active_user_row(uow, user_id)
    phone = enc.decrypt(user.phone_enc).decode()
    return codes.send_code(
        uow, settings=settings, encryptor=enc, phone=phone, purpose=SMS_PURPOSE,
        client_ip=client_ip,
    )  # fmt: skip


def check_sms_code(
    db: Database,
    *,
    user_id: str,
    code: str,
    settings: Settings,
    encryptor: Encryptor | None = None,
) -> int:
    """Check a ``step_up`` SMS code in a transaction of its own (a wrong try is counted);
    returns its id for the payment's transaction to consume."""
    enc = keys.encryptor_or_default(encryptor)
    return codes.verify_code(
        db, settings=settings, encryptor=enc, phone=_phone(db, user_id, enc),
        purpose=SMS_PURPOSE, code=code,
    )  # fmt: skip
