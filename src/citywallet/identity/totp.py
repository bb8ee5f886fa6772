"""Operators' second factor: TOTP enrolment and checks, and the record that a session has
passed a second factor (TOTP here, or a passkey: :func:`mark_verified` with
``factor="passkey"`` is the hook the passkey sign-in calls).

The secret is stored encrypted (AES-GCM, the field key ring, the user id as associated
data) and confirmed by a first code before it counts. Wrong codes are limited per operator
(``totp_attempts_exceeded``, 429). docs/security.md, "Operators' second factor".
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import BigInteger, String, delete, select
from sqlalchemy.orm import Mapped, mapped_column

from citywallet.identity import totp_rules
from citywallet.identity.queries import user_row
from citywallet.platform import ratelimit
from citywallet.platform.clock import now_us
from citywallet.platform.crypto import Encryptor
from citywallet.platform.db import Base, BigId, Database, UnitOfWork
from citywallet.platform.errors import Conflict, InvalidInput, NotFound

FACTORS = ("totp", "passkey")
ATTEMPTS = ratelimit.Rule("operator_totp", 5, 900, code="totp_attempts_exceeded")


class OperatorTotp(Base):
    """An operator's TOTP secret (one per user)."""

    __tablename__ = "identity_operator_totp"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(40), unique=True)  # usr_…
    secret_enc: Mapped[str] = mapped_column(String(400))
    confirmed_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_step: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[int] = mapped_column(BigInteger)


class SessionFactor(Base):
    """A session that has passed a second factor (and which)."""

    __tablename__ = "identity_session_factors"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[str] = mapped_column(String(40))
    factor: Mapped[str] = mapped_column(String(16))
    verified_at: Mapped[int] = mapped_column(BigInteger)


class TotpCodeWrong(InvalidInput):
    code = "totp_code_wrong"


class TotpNotEnrolled(NotFound):
    code = "totp_not_enrolled"


class TotpAlreadyEnrolled(Conflict):
    code = "totp_already_enrolled"


@dataclass(frozen=True)
class Enrolment:
    """What the enrolment page shows: the secret (to type) and the URI (to scan)."""

    secret: str
    uri: str
    confirmed: bool


def _aad(user_id: str) -> bytes:
    return f"operator-totp:{user_id}".encode()


def _row(uow: UnitOfWork, user_id: str, *, lock: bool = False) -> OperatorTotp | None:
    query = select(OperatorTotp).where(OperatorTotp.user_id == user_id)
    if lock:
        query = query.with_for_update()
    return uow.session.scalar(query)


def enrolled(uow: UnitOfWork, *, user_id: str) -> bool:
    """Whether the operator has a confirmed TOTP secret."""
    row = _row(uow, user_id)
    return row is not None and row.confirmed_at is not None


def start_enrolment(
    uow: UnitOfWork, *, user_id: str, encryptor: Encryptor, issuer: str
) -> Enrolment:
    """A secret to enrol (the unconfirmed one kept, or a new one); refused once confirmed
    (``totp_already_enrolled``: the platform owner resets it, ``citywallet operators
    reset-totp``)."""
    user = user_row(uow, user_id)
    row = _row(uow, user_id, lock=True)
    if row is not None and row.confirmed_at is not None:
        raise TotpAlreadyEnrolled("An authenticator is already set up for this account.")
    if row is None:
        secret = totp_rules.new_secret()
        row = OperatorTotp(
            user_id=user_id,
            secret_enc=encryptor.encrypt(secret.encode(), aad=_aad(user_id)),
            confirmed_at=None,
            last_step=0,
            created_at=now_us(),
        )
        uow.session.add(row)
        uow.session.flush()
    else:
        secret = encryptor.decrypt(row.secret_enc, aad=_aad(user_id)).decode()
    uri = totp_rules.provisioning_uri(secret, account=user.phone_masked, issuer=issuer)
    return Enrolment(secret=secret, uri=uri, confirmed=False)


def check_code(
    db: Database,
    *,
    user_id: str,
    session_id: str,
    code: str,
    encryptor: Encryptor,
    now: int | None = None,
) -> None:
    """Check a code (confirming the enrolment if it was not yet) and mark the session as
    having passed the second factor; ``totp_code_wrong`` (422), ``totp_not_enrolled``
    (404), ``totp_attempts_exceeded`` (429) change nothing else."""
    moment = now if now is not None else now_us()
    ratelimit.reserve(db, (ATTEMPTS, user_id), now=moment)

    def work(uow: UnitOfWork) -> bool:
        row = _row(uow, user_id, lock=True)
        if row is None:
            raise TotpNotEnrolled("Set up an authenticator first.")
        secret = encryptor.decrypt(row.secret_enc, aad=_aad(user_id)).decode()
        step = totp_rules.matching_step(
            secret, code, now_seconds=moment / 1_000_000, last_step=row.last_step
        )
        if step is None:
            return False
        row.last_step = step
        if row.confirmed_at is None:
            row.confirmed_at = moment
        mark_verified(uow, session_id=session_id, user_id=user_id, factor="totp", now=moment)
        ratelimit.reset(uow, ATTEMPTS, user_id)
        return True

    if not db.transact(work):
        raise TotpCodeWrong("That code is not right. Type the 6 digits your app shows now.")


def mark_verified(
    uow: UnitOfWork, *, session_id: str, user_id: str, factor: str, now: int | None = None
) -> None:
    """Record that ``session_id`` passed a second factor (``totp`` or ``passkey``)."""
    if factor not in FACTORS:
        raise ValueError(f"unknown second factor {factor!r}")
    uow.session.execute(delete(SessionFactor).where(SessionFactor.session_id == session_id))
    uow.session.add(
        SessionFactor(
            session_id=session_id,
            user_id=user_id,
            factor=factor,
            verified_at=now if now is not None else now_us(),
        )
    )
    uow.session.flush()


def session_factor(uow: UnitOfWork, *, session_id: str) -> str | None:
    """The second factor this session passed (``totp``, ``passkey``) or ``None``."""
    return uow.session.scalar(
        select(SessionFactor.factor).where(SessionFactor.session_id == session_id)
    )


def reset(uow: UnitOfWork, *, user_id: str) -> bool:
    """Remove an operator's authenticator (they enrol again at the next sign-in)."""
    result = uow.session.execute(delete(OperatorTotp).where(OperatorTotp.user_id == user_id))
    return bool(getattr(result, "rowcount", 0))
