"""Facts about residents vouched for by an authority (district of residence, social
insurance, …), and which accounts are operators.

Residents cannot set attributes: an operator or an import from the authority's registry
does (by resident ID number, matched through its lookup hash), and every change is written
to the resident's audit trail. Campaign eligibility reads them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, Select, select

from citywallet.identity import keys
from citywallet.identity.errors import UserNotFound
from citywallet.identity.models import Attribute, Operator, RealName, User, UserEvent
from citywallet.identity.queries import user_row
from citywallet.platform.clock import now_us
from citywallet.platform.crypto import Encryptor
from citywallet.platform.db import UnitOfWork
from citywallet.platform.errors import InvalidInput

NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
VALUE_MAX = 100
CHUNK = 900


def _clean(values: Mapping[str, str]) -> dict[str, str]:
    clean = {}
    for name, value in values.items():
        if not NAME.fullmatch(name):
            raise InvalidInput(
                "An attribute name is 1–40 lower-case letters, digits or _ .",
                code="invalid_attribute",
            )
        text = " ".join(str(value).split())
        if len(text) > VALUE_MAX:
            raise InvalidInput(
                f"An attribute value has at most {VALUE_MAX} characters.", code="invalid_attribute"
            )
        clean[name] = text
    return clean


def set_attributes(
    uow: UnitOfWork, *, user_id: str, values: Mapping[str, str], source: str
) -> dict[str, str]:
    """Set (an empty value removes) attributes of a resident; returns all of theirs."""
    clean = _clean(values)
    user = user_row(uow, user_id)
    _apply(uow, user.id, clean, source, now_us())
    return attributes_of(uow, user_id=user_id)


def _apply(uow: UnitOfWork, user_pk: int, values: dict[str, str], source: str, at: int) -> None:
    for name, value in values.items():
        row = uow.session.get(Attribute, (user_pk, name))
        if not value:
            if row is not None:
                uow.session.delete(row)
        elif row is None:
            uow.session.add(
                Attribute(user_id=user_pk, name=name, value=value, source=source, updated_at=at)
            )
        else:
            row.value, row.source, row.updated_at = value, source, at
    detail = ", ".join(f"{name}={v or '(removed)'}" for name, v in sorted(values.items()))
    uow.session.add(
        UserEvent(
            user_id=user_pk, kind="attributes_set", actor=source, detail=detail, created_at=at
        )
    )
    uow.session.flush()


def import_by_id_number(
    uow: UnitOfWork,
    *,
    rows: Sequence[tuple[str, Mapping[str, str]]],
    source: str,
    encryptor: Encryptor | None = None,
) -> tuple[int, int]:
    """Set attributes from an authority's list of (resident ID number, values); returns
    (residents updated, ID numbers with no verified resident here)."""
    enc = keys.encryptor_or_default(encryptor)
    by_hash = {keys.id_number_hash(enc, number.strip().upper()): _clean(v) for number, v in rows}
    hashes = list(by_hash)
    found: dict[str, int] = {}
    for start in range(0, len(hashes), CHUNK):
        chunk = hashes[start : start + CHUNK]
        for id_hash, user_pk in uow.session.execute(
            select(RealName.id_hash, RealName.user_id).where(RealName.id_hash.in_(chunk))
        ):
            found[id_hash] = user_pk
    moment = now_us()
    for id_hash, user_pk in found.items():
        _apply(uow, user_pk, by_hash[id_hash], source, moment)
    return len(found), len(by_hash) - len(found)


@dataclass(frozen=True)
class ResidentFacts:
    """What another feature may judge a resident by (campaign eligibility): no personal
    data, only the keyed hash of the verified ID number (None if not verified)."""

    user_id: str
    id_hash: str | None
    tier: int
    status: str
    attributes: dict[str, str]


def resident_select(user_id: str) -> Select[*tuple[Any, ...]]:
    """The facts of :class:`ResidentFacts` of the resident ``user_id`` in one statement (one
    row per attribute, at least one if the user exists), for a feature to add its own
    columns to (``selected_columns.id_hash`` is the verified-identity hash); read the rows
    with :func:`resident_facts_of`."""
    return (
        select(
            User.public_id,
            User.tier,
            User.status,
            RealName.id_hash,
            Attribute.name.label("attribute"),
            Attribute.value.label("attribute_value"),
        )
        .select_from(User)
        .outerjoin(RealName, RealName.user_id == User.id)
        .outerjoin(Attribute, Attribute.user_id == User.id)
        .where(User.public_id == user_id)
    )


def resident_facts_of(rows: Sequence[Row[Any]]) -> ResidentFacts:
    """The facts in the rows of a :func:`resident_select` (none, or an outer-joined row
    without the user: ``UserNotFound``)."""
    if not rows or rows[0].public_id is None:
        raise UserNotFound("No such user.")
    first = rows[0]
    attributes = {r.attribute: r.attribute_value for r in rows if r.attribute is not None}
    return ResidentFacts(first.public_id, first.id_hash, first.tier, first.status, attributes)


def attributes_of(uow: UnitOfWork, *, user_id: str) -> dict[str, str]:
    """A resident's attributes by name."""
    return _attributes(uow, user_row(uow, user_id).id)


def _attributes(uow: UnitOfWork, user_pk: int) -> dict[str, str]:
    rows = uow.session.execute(
        select(Attribute.name, Attribute.value).where(Attribute.user_id == user_pk)
    )
    return dict(rows.all())


# --- operators ----------------------------------------------------------------------------


def grant_operator(uow: UnitOfWork, *, user_id: str, actor: str) -> None:
    """Let a resident account into the operator API and console (audited)."""
    user = user_row(uow, user_id)
    if uow.session.get(Operator, user.id) is None:
        moment = now_us()
        uow.session.add(Operator(user_id=user.id, granted_by=actor, granted_at=moment))
        uow.session.add(
            UserEvent(user_id=user.id, kind="operator_granted", actor=actor, created_at=moment)
        )
        uow.session.flush()


def revoke_operator(uow: UnitOfWork, *, user_id: str, actor: str) -> None:
    """Take the operator role away (audited)."""
    user = user_row(uow, user_id)
    row = uow.session.get(Operator, user.id)
    if row is not None:
        uow.session.delete(row)
        uow.session.add(
            UserEvent(user_id=user.id, kind="operator_revoked", actor=actor, created_at=now_us())
        )
        uow.session.flush()


def is_operator(uow: UnitOfWork, *, user_id: str) -> bool:
    """Whether the account holds the operator role (and is active)."""
    found = uow.session.scalar(
        select(User.status)
        .join(Operator, Operator.user_id == User.id)
        .where(User.public_id == user_id)
    )
    return found == "active"
