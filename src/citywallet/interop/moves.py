"""Moving a resident between cells: the move's state machine and the package (pure).

A move runs at the old cell, step by step, each step one transaction that records the new
state on the move's row, so a second run after a crash resumes where the first stopped
(docs/interop.md, "Moving a resident between cells"):

```
 frozen ──package queued──▶ sent ──accepted──▶ accepted ──quote asked──▶ quoting
   │                         │                   │ (balance 0)            │ terms
   │                         └──refused──▶ refused (the freeze is lifted) ▼
   │                                             │                 transferring
   │                                             │                  │ committed  ▲ aborted/expired:
   │                                             ▼                  ▼            │ back to accepted
   │                                          transferred ◀─────────┘
   │                                             │ alias handed over
   │                                             ▼
   │                                          alias_sent ──directory names the new cell──▶ done
```

``refused`` and ``done`` are final. Money moves only between ``accepted`` and
``transferred``, so a refused move never moved money; ``done`` is reached only through
``transferred`` and ``alias_sent``.

The package is what the old cell tells the new one (``POST /moves`` through the switch):
the profile (identity with PII in clear *inside the signed message only*: the receiver
encrypts it under its own keys), the bound cards, the tier's checks, the password hash and
the history lines. Models are strict like :mod:`citywallet.interop.messages`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, model_validator

from citywallet.interop.messages import Amount, Message, MessageId, ParticipantId

MAX_LINES = 5_000  # history lines in one package; a longer history is refused (documented)


class MoveState(StrEnum):
    """Where a move stands at the old cell."""

    FROZEN = "frozen"
    SENT = "sent"
    ACCEPTED = "accepted"
    QUOTING = "quoting"
    TRANSFERRING = "transferring"
    TRANSFERRED = "transferred"
    ALIAS_SENT = "alias_sent"
    DONE = "done"
    REFUSED = "refused"


class MoveEvent(StrEnum):
    """What happens to a move."""

    PACKAGE_QUEUED = "package_queued"
    ACCEPTED = "accepted"
    REFUSED = "refused"
    QUOTE_ASKED = "quote_asked"
    QUOTE_FAILED = "quote_failed"
    PREPARED = "prepared"
    COMMITTED = "committed"
    TRANSFER_FAILED = "transfer_failed"
    NOTHING_TO_MOVE = "nothing_to_move"
    ALIAS_QUEUED = "alias_queued"
    ALIAS_CONFIRMED = "alias_confirmed"


FINAL = frozenset({MoveState.DONE, MoveState.REFUSED})

_S, _E = MoveState, MoveEvent
TRANSITIONS: dict[tuple[MoveState, MoveEvent], MoveState] = {
    (_S.FROZEN, _E.PACKAGE_QUEUED): _S.SENT,
    (_S.SENT, _E.ACCEPTED): _S.ACCEPTED,
    (_S.SENT, _E.REFUSED): _S.REFUSED,
    (_S.ACCEPTED, _E.QUOTE_ASKED): _S.QUOTING,
    (_S.ACCEPTED, _E.NOTHING_TO_MOVE): _S.TRANSFERRED,
    (_S.QUOTING, _E.PREPARED): _S.TRANSFERRING,
    (_S.QUOTING, _E.QUOTE_FAILED): _S.ACCEPTED,
    (_S.TRANSFERRING, _E.COMMITTED): _S.TRANSFERRED,
    (_S.TRANSFERRING, _E.TRANSFER_FAILED): _S.ACCEPTED,
    (_S.TRANSFERRED, _E.ALIAS_QUEUED): _S.ALIAS_SENT,
    (_S.ALIAS_SENT, _E.ALIAS_CONFIRMED): _S.DONE,
}


class MoveTransitionError(ValueError):
    """An event that does not apply to the move's state (a bug or a stale message)."""


def advance(state: MoveState, event: MoveEvent) -> MoveState:
    """The state after ``event``; :class:`MoveTransitionError` if it does not apply."""
    following = TRANSITIONS.get((state, event))
    if following is None:
        raise MoveTransitionError(f"{event.value} does not apply to a move {state.value}")
    return following


def holds_money_in_flight(state: MoveState) -> bool:
    """Whether the old wallet's balance may be on its way (a hold the switch resolves)."""
    return state in (MoveState.QUOTING, MoveState.TRANSFERRING)


# --- the package ----------------------------------------------------------------------------

Digits = Annotated[str, Field(pattern=r"^[0-9]{12,19}$")]
Text100 = Annotated[str, Field(max_length=100)]


class MovedCheck(Message):
    """One external check the tier counts (``resident_id``, ``bank_card``…)."""

    kind: Annotated[str, Field(min_length=1, max_length=100)]
    count: Annotated[int, Field(ge=1, le=100)]


class MovedCard(Message):
    """A bound debit card: the number (re-encrypted and re-hashed by the receiver) and the
    bank's reference of its four-element check."""

    card_number: Digits
    bank_code: Annotated[str, Field(min_length=1, max_length=16)]
    bank_name: Text100
    check_ref: Annotated[str, Field(max_length=64)]
    bound_at: Annotated[int, Field(ge=0)]


class MovedProfile(Message):
    """The resident: phone, password hash (argon2id, so the same password signs in), tier's
    checks and the verified real name (in clear only inside this signed message)."""

    phone: Annotated[str, Field(pattern=r"^1[3-9][0-9]{9}$")]
    password_hash: Annotated[str, Field(pattern=r"^\$argon2id\$", max_length=200)]
    name: Annotated[str, Field(min_length=1, max_length=64)]
    id_number: Annotated[str, Field(pattern=r"^[0-9]{17}[0-9X]$")]
    provider_ref: Annotated[str, Field(max_length=64)]
    verified_at: Annotated[int, Field(ge=0)]
    registered_at: Annotated[int, Field(ge=0)]
    checks: list[MovedCheck]


class MovedLine(Message):
    """A history line as the old cell shows it (read-only at the new cell)."""

    object_id: Annotated[str, Field(min_length=1, max_length=40)]
    kind: Annotated[str, Field(min_length=1, max_length=24)]
    amount: Annotated[int, Field(gt=0)]
    fee: Annotated[int, Field(ge=0)]
    currency: Literal["CNY"]
    status: Annotated[str, Field(min_length=1, max_length=16)]
    counterparty_label: Text100
    note: Annotated[str, Field(max_length=200)]
    reference: Annotated[str, Field(max_length=40)] | None = None
    created_at: Annotated[int, Field(ge=0)]


class MovePackage(Message):
    """``POST /moves``: one resident's wallet, from ``fromFsp`` to ``toFsp``."""

    move_id: MessageId
    from_fsp: ParticipantId
    to_fsp: ParticipantId
    user_id: Annotated[str, Field(min_length=1, max_length=40)]  # at the old cell
    balance: Amount  # what the switch transfer will bring (for the receiver to expect)
    profile: MovedProfile
    cards: Annotated[list[MovedCard], Field(max_length=20)]
    history: Annotated[list[MovedLine], Field(max_length=MAX_LINES)]

    @model_validator(mode="after")
    def _coherent(self) -> MovePackage:
        if self.from_fsp == self.to_fsp:
            raise ValueError("a move goes to another cell")
        ids = [line.object_id for line in self.history]
        if len(set(ids)) != len(ids):
            raise ValueError("history lines have unique object ids")
        numbers = [card.card_number for card in self.cards]
        if len(set(numbers)) != len(numbers):
            raise ValueError("a card appears once")
        return self


class MoveAnswer(Message):
    """``PUT /moves/{id}``: the new cell holds the resident (its new user id)."""

    move_state: Literal["ACCEPTED"] = "ACCEPTED"
    user_id: Annotated[str, Field(min_length=1, max_length=40)]


@dataclass(frozen=True)
class PackageProblem:
    """Why a receiver refuses a package (its FSPIOP description)."""

    reason: str


def check_package(
    package: MovePackage, *, receiver: str, sender: str | None, kinds: frozenset[str]
) -> PackageProblem | None:
    """What the receiving cell refuses in a well-formed package: not addressed to it, not
    from the cell that names itself (``sender``: the switch's word on who sent it, when it
    knows), history kinds it does not know."""
    if package.to_fsp != receiver:
        return PackageProblem("not_for_this_cell")
    if sender is not None and package.from_fsp != sender:
        return PackageProblem("sender_mismatch")
    unknown = {line.kind for line in package.history} - kinds
    if unknown:
        return PackageProblem("unknown_history_kind")
    return None
