"""A resident moving to another cell, as identity sees it (docs/interop.md, "Moving a
resident between cells").

At the old cell: :func:`export_profile` reads the profile in clear for the signed package,
:func:`begin_move` freezes the account (no sign-in, no money movement; every session ends),
:func:`cancel_move` lifts that freeze when the move is refused, :func:`finish_move` closes it
as ``moved`` with the cell it went to (sign-in then answers ``account_moved`` with ``cell``).
At the new cell: :func:`import_resident` creates the account from a package: the same
password hash (argon2id: the same password signs in), the phone and real name encrypted
under *this* cell's keys (and their lookup hashes keyed by them), the tier's checks. The
payment PIN does not move: its HMAC key is the old cell's secret; the resident sets a new
one with their password, as after a PIN reset.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from citywallet.identity import keys, sessions
from citywallet.identity.models import ExternalCheck, RealName, User
from citywallet.identity.queries import add_event, new_public_id, user_row
from citywallet.identity.rules import mask_id_number, mask_name, mask_phone, normalize_phone
from citywallet.identity.service import _recompute_tier, _view_of
from citywallet.platform.clock import now_us
from citywallet.platform.config import Settings
from citywallet.platform.crypto import Encryptor
from citywallet.platform.db import UnitOfWork
from citywallet.platform.errors import Conflict

MOVING = "moving to "  # the frozen_reason of an account frozen for a move


@dataclass(frozen=True)
class ProfileExport:
    """What identity holds of a resident, in clear, for the move's signed package."""

    phone: str  # E.164
    password_hash: str
    name: str
    id_number: str
    provider_ref: str
    verified_at: int
    registered_at: int
    checks: list[tuple[str, int]]
    name_masked: str
    status: str


class MoveRefused(Conflict):
    """A move this cell refuses (``reason`` says why)."""

    code = "move_refused"


def export_profile(uow: UnitOfWork, *, user_id: str, encryptor: Encryptor) -> ProfileExport:
    """The resident's profile in clear (refused without a verified real name:
    ``real_name_required``, the new cell registers them by it)."""
    user = user_row(uow, user_id)
    real = uow.session.get(RealName, user.id)
    if real is None:
        raise Conflict(
            "Only a resident with a verified real name can move.", code="real_name_required"
        )
    aad = str(user.id).encode()
    checks = uow.session.execute(
        select(ExternalCheck.kind, ExternalCheck.count)
        .where(ExternalCheck.user_id == user.id)
        .order_by(ExternalCheck.id)
    ).all()
    return ProfileExport(
        phone=encryptor.decrypt(user.phone_enc).decode(),
        password_hash=user.password_hash,
        name=encryptor.decrypt(real.name_enc, aad=aad).decode(),
        id_number=encryptor.decrypt(real.id_number_enc, aad=aad).decode(),
        provider_ref=real.provider_ref,
        verified_at=real.verified_at,
        registered_at=user.created_at,
        checks=[(str(kind), int(count)) for kind, count in checks],
        name_masked=real.name_masked,
        status=user.status,
    )


def begin_move(uow: UnitOfWork, *, user_id: str, to: str) -> None:
    """Freeze the account for its move to ``to``: no sign-in, no payments; sessions end."""
    user = user_row(uow, user_id, for_update=True)
    if user.status != "active":
        raise MoveRefused(f"The account is {user.status}.", reason=f"account_{user.status}")
    user.status, user.frozen_reason, user.updated_at = "frozen", f"{MOVING}{to}", now_us()
    ended = sessions.revoke_all(uow, user_pk=user.id, reason="frozen")
    add_event(uow, user, "move_started", actor="operator", to=to, sessions_ended=ended)


def is_moving(uow: UnitOfWork, *, user_id: str) -> bool:
    """Whether the account is frozen for a move."""
    user = user_row(uow, user_id)
    return user.status == "frozen" and (user.frozen_reason or "").startswith(MOVING)


def cancel_move(uow: UnitOfWork, *, user_id: str, why: str) -> None:
    """The move was refused: lift its freeze (an operator's freeze is left alone)."""
    user = user_row(uow, user_id, for_update=True)
    if user.status == "frozen" and (user.frozen_reason or "").startswith(MOVING):
        user.status, user.frozen_reason, user.updated_at = "active", None, now_us()
        add_event(uow, user, "move_refused", actor="system", why=why)


def finish_move(uow: UnitOfWork, *, user_id: str, to: str) -> None:
    """The wallet now lives at ``to``: the account is ``moved`` for good (sign-in says where)."""
    user = user_row(uow, user_id, for_update=True)
    if user.status == "moved":
        return
    user.status, user.moved_to, user.frozen_reason = "moved", to, None
    user.updated_at = now_us()
    ended = sessions.revoke_all(uow, user_pk=user.id, reason=sessions.CLOSED_REASON)
    add_event(uow, user, "moved", actor="system", to=to, sessions_ended=ended)


def import_resident(
    uow: UnitOfWork,
    *,
    profile: ProfileExport,
    origin: str,
    encryptor: Encryptor,
    settings: Settings,
) -> str:
    """Create the account of a resident moving in from ``origin``; returns its public id.
    Refused (``move_refused``) when the phone or the ID number already has an account here."""
    e164 = normalize_phone(profile.phone)
    phone_key = keys.phone_hash(encryptor, e164)
    id_hash = keys.id_number_hash(encryptor, profile.id_number)
    if uow.session.scalar(select(User.id).where(User.phone_hash == phone_key)) is not None:
        raise MoveRefused("This phone number has an account here.", reason="phone_taken")
    if uow.session.scalar(select(RealName.user_id).where(RealName.id_hash == id_hash)):
        raise MoveRefused("This ID number has an account here.", reason="identity_taken")
    moment = now_us()
    user = User(
        public_id=new_public_id("usr"), phone_hash=phone_key,
        phone_enc=encryptor.encrypt(e164.encode()), phone_masked=mask_phone(e164),
        password_hash=profile.password_hash, status="active", tier=0, external_checks=0,
        created_at=moment, updated_at=moment,
    )  # fmt: skip
    uow.session.add(user)
    uow.session.flush()
    aad = str(user.id).encode()
    uow.session.add(
        RealName(
            user_id=user.id, id_hash=id_hash,
            name_enc=encryptor.encrypt(profile.name.encode(), aad=aad),
            id_number_enc=encryptor.encrypt(profile.id_number.encode(), aad=aad),
            name_masked=mask_name(profile.name),
            id_number_masked=mask_id_number(profile.id_number),
            provider_ref=profile.provider_ref, verified_at=profile.verified_at,
        )
    )  # fmt: skip
    for kind, count in profile.checks:
        uow.session.add(
            ExternalCheck(
                user_id=user.id, kind=kind, count=count, created_at=moment, updated_at=moment
            )
        )
    uow.session.flush()
    add_event(uow, user, "moved_in", actor="system", origin=origin,
              registered_at=profile.registered_at)  # fmt: skip
    _recompute_tier(uow, user, settings.tier_checks, cause="moved_in")
    return user.public_id


def masked_name(uow: UnitOfWork, *, user_id: str) -> str:
    """The resident's masked real name (for the alias), or their masked phone."""
    user = user_row(uow, user_id)
    return _view_of(uow, user).name_masked or user.phone_masked
