"""Finding residents for the operator console: by phone number or resident ID number
(both stored encrypted: the lookup is by the keyed hash of the exact number, and results
show only masked values), or by public id; and one resident's account at a glance."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select

from citywallet.identity import keys
from citywallet.identity.models import Attribute, RealName, User, UserEvent
from citywallet.identity.queries import user_row
from citywallet.identity.rules import normalize_phone
from citywallet.platform.crypto import Encryptor
from citywallet.platform.db import UnitOfWork
from citywallet.platform.errors import InvalidInput

ID_NUMBER = re.compile(r"[0-9]{17}[0-9X]")
EVENT_KINDS_SHOWN = 20


@dataclass(frozen=True)
class ResidentSummary:
    """A search hit (masked values only)."""

    user_id: str
    phone_masked: str
    name_masked: str | None
    id_number_masked: str | None
    status: str
    tier: int


@dataclass(frozen=True)
class ResidentEvent:
    """One entry of the account's own trail (kind, who, when; no sensitive values)."""

    kind: str
    actor: str
    created_at: int


@dataclass(frozen=True)
class ResidentDetail:
    """A resident as an operator reviews them: KYC, tier, status, attributes, trail."""

    summary: ResidentSummary
    real_name_verified: bool
    verified_at: int | None
    external_checks: int
    frozen_reason: str | None
    attributes: dict[str, str]
    created_at: int
    events: list[ResidentEvent]


def _summary(user: User, real: RealName | None) -> ResidentSummary:
    return ResidentSummary(
        user_id=user.public_id,
        phone_masked=user.phone_masked,
        name_masked=real.name_masked if real else None,
        id_number_masked=real.id_number_masked if real else None,
        status=user.status,
        tier=user.tier,
    )


def search_residents(
    uow: UnitOfWork, *, query: str, encryptor: Encryptor | None = None
) -> list[ResidentSummary]:
    """Residents matching ``query``: a mainland mobile number, an 18-character resident ID
    number (exact numbers: only their keyed hashes are searchable) or a ``usr_…`` id.
    Anything else is refused with ``invalid_search``."""
    text = "".join(query.split()).upper()
    if not text:
        raise InvalidInput(
            "Type a mobile number, a resident ID number or a user id.", code="invalid_search"
        )
    enc = keys.encryptor_or_default(encryptor)
    statement = select(User, RealName).outerjoin(RealName, RealName.user_id == User.id)
    if text.startswith("USR_"):
        statement = statement.where(User.public_id == query.strip())
    elif ID_NUMBER.fullmatch(text):
        statement = statement.where(RealName.id_hash == keys.id_number_hash(enc, text))
    else:
        try:
            e164 = normalize_phone(text)
        except InvalidInput:
            raise InvalidInput(
                "Type a full mobile number (11 digits), a full resident ID number (18 "
                "characters) or a user id.",
                code="invalid_search",
            ) from None
        statement = statement.where(User.phone_hash == keys.phone_hash(enc, e164))
    return [_summary(user, real) for user, real in uow.session.execute(statement.limit(20))]


def resident_detail(uow: UnitOfWork, *, user_id: str) -> ResidentDetail:
    """One resident's account (``user_not_found``)."""
    user = user_row(uow, user_id)
    real = uow.session.get(RealName, user.id)
    attributes = dict(
        uow.session.execute(
            select(Attribute.name, Attribute.value).where(Attribute.user_id == user.id)
        ).all()
    )
    events = [
        ResidentEvent(kind, actor, created_at)
        for kind, actor, created_at in uow.session.execute(
            select(UserEvent.kind, UserEvent.actor, UserEvent.created_at)
            .where(UserEvent.user_id == user.id)
            .order_by(UserEvent.id.desc())
            .limit(EVENT_KINDS_SHOWN)
        )
    ]
    return ResidentDetail(
        summary=_summary(user, real),
        real_name_verified=real is not None,
        verified_at=real.verified_at if real else None,
        external_checks=user.external_checks,
        frozen_reason=user.frozen_reason,
        attributes=attributes,
        created_at=user.created_at,
        events=events,
    )
