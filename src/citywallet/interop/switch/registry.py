"""Participants (with their positions) and the alias directory of the switch.

A participant is a provider or a cell: an id, a name, its Ed25519 public key (base64 of 32
bytes), the base URL of its FSPIOP endpoints, currency CNY and a net debit cap. Its position
columns live on the same row, so a prepare locks one row to check and reserve.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select

from citywallet.interop.messages import CURRENCY, MAX_AMOUNT, AliasRegistration, check_identifier
from citywallet.interop.switch.models import Alias, Move, Participant
from citywallet.platform.clock import now_us
from citywallet.platform.db import UnitOfWork
from citywallet.platform.errors import DomainError

SWITCH_ID = "switch"  # the switch's own FSPIOP-Source
_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
_URL = re.compile(r"https?://[^\s]{1,490}")


class ParticipantRefused(DomainError):
    """A participant's settings the switch will not take."""

    code = "participant_invalid"


class UnknownParticipant(DomainError):
    """No participant with that id."""

    code = "participant_unknown"
    status = 404


class AliasRefused(DomainError):
    """An alias registration or removal refused (answered 400 with FSPIOP 3100)."""

    code = "alias_refused"


@dataclass(frozen=True, slots=True)
class ParticipantView:
    id: str
    name: str
    public_key: str
    callback_url: str
    currency: str
    cap: int
    position: int
    reserved: int
    active: bool

    @property
    def headroom(self) -> int:
        """How much more it may reserve now."""
        return self.cap - self.position - self.reserved


def view(row: Participant) -> ParticipantView:
    """The read-only picture of a participant row."""
    return ParticipantView(
        row.id, row.name, row.public_key, row.callback_url, row.currency, row.cap,
        row.position, row.reserved, row.active,
    )  # fmt: skip


def public_key_of(b64: str) -> Ed25519PublicKey:
    """The Ed25519 public key from base64 of its 32 raw bytes; ValueError otherwise."""
    try:
        raw = base64.b64decode(b64, validate=True)
    except ValueError as exc:
        raise ValueError("the public key is not base64") from exc
    if len(raw) != 32:
        raise ValueError("the public key must be 32 bytes")
    return Ed25519PublicKey.from_public_bytes(raw)


def _check(participant_id: str, name: str, public_key: str, callback_url: str, cap: int) -> None:
    if not _ID.fullmatch(participant_id) or participant_id == SWITCH_ID:
        raise ParticipantRefused("the id is 1-32 of a-z 0-9 - (and not 'switch')")
    if not 1 <= len(name.strip()) <= 100:
        raise ParticipantRefused("the name is 1-100 characters")
    try:
        public_key_of(public_key)
    except ValueError as exc:
        raise ParticipantRefused(str(exc)) from None
    if not _URL.fullmatch(callback_url):
        raise ParticipantRefused("the callback URL is an http(s) URL")
    if not 0 <= cap <= MAX_AMOUNT:
        raise ParticipantRefused("the cap is whole fen, not negative")


def add_participant(
    uow: UnitOfWork,
    *,
    participant_id: str,
    name: str,
    public_key: str,
    callback_url: str,
    cap: int,
) -> Literal["added", "updated", "unchanged"]:
    """Register a participant; the same values again change nothing, others update it (and
    re-activate it). Its position is kept."""
    _check(participant_id, name, public_key, callback_url, cap)
    row = _lock(uow, participant_id)
    moment = now_us()
    if row is None:
        uow.session.add(
            Participant(
                id=participant_id,
                name=name.strip(),
                public_key=public_key,
                callback_url=callback_url.rstrip("/"),
                currency=CURRENCY,
                cap=cap,
                position=0,
                reserved=0,
                active=True,
                created_at=moment,
                updated_at=moment,
            )
        )
        uow.session.flush()
        return "added"
    wanted = (name.strip(), public_key, callback_url.rstrip("/"), cap, True)
    if (row.name, row.public_key, row.callback_url, row.cap, row.active) == wanted:
        return "unchanged"
    row.name, row.public_key, row.callback_url, row.cap, row.active = wanted
    row.updated_at = moment
    uow.session.flush()
    return "updated"


def _lock(uow: UnitOfWork, participant_id: str) -> Participant | None:
    uow.session.flush()
    statement = (
        select(Participant)
        .where(Participant.id == participant_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return uow.session.execute(statement).scalar_one_or_none()


def _existing(uow: UnitOfWork, participant_id: str) -> Participant:
    row = _lock(uow, participant_id)
    if row is None:
        raise UnknownParticipant(f"no participant {participant_id}")
    return row


def set_cap(uow: UnitOfWork, *, participant_id: str, cap: int) -> ParticipantView:
    """Change a net debit cap (lowering it below the position only stops new prepares)."""
    if not 0 <= cap <= MAX_AMOUNT:
        raise ParticipantRefused("the cap is whole fen, not negative")
    row = _existing(uow, participant_id)
    row.cap, row.updated_at = cap, now_us()
    uow.session.flush()
    return view(row)


def deactivate(uow: UnitOfWork, *, participant_id: str) -> ParticipantView:
    """Refuse the participant's new messages; transfers in flight still finish or expire."""
    row = _existing(uow, participant_id)
    row.active, row.updated_at = False, now_us()
    uow.session.flush()
    return view(row)


def participants(uow: UnitOfWork) -> list[ParticipantView]:
    """Every participant, by id."""
    rows = uow.session.execute(select(Participant).order_by(Participant.id)).scalars()
    return [view(row) for row in rows]


def participant(uow: UnitOfWork, participant_id: str) -> ParticipantView | None:
    """One participant, active or not."""
    row = uow.session.get(Participant, participant_id)
    return view(row) if row is not None else None


def active_key(uow: UnitOfWork, participant_id: str) -> str | None:
    """The base64 public key of an active participant (``None``: unknown or inactive)."""
    row = uow.session.execute(
        select(Participant.public_key).where(
            Participant.id == participant_id, Participant.active.is_(True)
        )
    ).first()
    return row[0] if row is not None else None


def is_active(uow: UnitOfWork, participant_id: str) -> bool:
    """Whether ``participant_id`` is a known, active participant."""
    return active_key(uow, participant_id) is not None


# ---- aliases ------------------------------------------------------------------------------


def register_alias(
    uow: UnitOfWork,
    *,
    source: str,
    id_type: str,
    identifier: str,
    registration: AliasRegistration,
) -> None:
    """``POST /participants/{type}/{id}``: the holder registers (or renames) its alias; or
    the holder hands it over (``fspId`` another participant) to the cell that accepted the
    resident's move, in one step: no moment where nobody holds it."""
    _check_alias(id_type, identifier)
    row = uow.session.execute(
        select(Alias)
        .where(Alias.id_type == id_type, Alias.identifier == identifier)
        .with_for_update()
    ).scalar_one_or_none()
    if registration.fsp_id != source:
        if row is None or row.fsp_id != source or not _moved(uow, source, registration, identifier):
            raise AliasRefused("an alias is registered by its own provider (fspId = sender)")
        row.fsp_id, row.masked_name = registration.fsp_id, registration.masked_name
        row.updated_at = now_us()
        uow.session.flush()
        return
    if row is None:
        uow.session.add(
            Alias(
                id_type=id_type,
                identifier=identifier,
                fsp_id=source,
                masked_name=registration.masked_name,
                updated_at=now_us(),
            )
        )
    elif row.fsp_id != source:
        raise AliasRefused("another participant holds this alias: it must remove it first")
    elif row.masked_name != registration.masked_name:
        row.masked_name, row.updated_at = registration.masked_name, now_us()
    uow.session.flush()


def _moved(uow: UnitOfWork, source: str, registration: AliasRegistration, identifier: str) -> bool:
    """Whether the resident holding ``identifier`` at ``source`` moved to ``fspId`` (the
    switch relayed the package and the new cell accepted it)."""
    found = uow.session.scalar(
        select(Move.move_id).where(
            Move.source == source,
            Move.destination == registration.fsp_id,
            Move.identifier == identifier,
            Move.state == "ACCEPTED",
        )
    )
    return found is not None


def remove_alias(uow: UnitOfWork, *, source: str, id_type: str, identifier: str) -> None:
    """``DELETE /participants/{type}/{id}``: only the holder; an unknown alias is fine."""
    _check_alias(id_type, identifier)
    row = uow.session.execute(
        select(Alias)
        .where(Alias.id_type == id_type, Alias.identifier == identifier)
        .with_for_update()
    ).scalar_one_or_none()
    if row is None:
        return
    if row.fsp_id != source:
        raise AliasRefused("another participant holds this alias")
    uow.session.delete(row)
    uow.session.flush()


def _check_alias(id_type: str, identifier: str) -> None:
    try:
        check_identifier(id_type, identifier)
    except ValueError as exc:
        raise AliasRefused(str(exc)) from None


@dataclass(frozen=True, slots=True)
class AliasView:
    fsp_id: str
    masked_name: str


def display_name(uow: UnitOfWork, fsp_id: str) -> str | None:
    """A participant's display name as registered (``None``: unknown participant)."""
    name = uow.session.scalar(select(Participant.name).where(Participant.id == fsp_id))
    return name or None


def lookup_alias(uow: UnitOfWork, *, id_type: str, identifier: str) -> AliasView | None:
    """Who holds the alias, if an active participant does."""
    row = uow.session.execute(
        select(Alias.fsp_id, Alias.masked_name)
        .join(Participant, Participant.id == Alias.fsp_id)
        .where(
            Alias.id_type == id_type,
            Alias.identifier == identifier,
            Participant.active.is_(True),
        )
    ).first()
    return AliasView(row[0], row[1]) if row is not None else None
