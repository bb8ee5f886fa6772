"""The switch's transfer state machine, as pure functions (docs/interop.md).

    RECEIVED ──reserved──▶ RESERVED ──valid fulfilment──▶ COMMITTED
        │                     ├──payee rejects──────────▶ ABORTED
        ├──over the cap──▶ ABORTED
        └──expiry─────────────┴──expiry─────────────────▶ EXPIRED

``step(record, event)`` maps the stored record of one transfer (``None`` before its first
prepare) and one input to the new record and the effects the switch must perform in the same
transaction: position changes (reserve, commit, release) and messages to send (through the
outbox). Every input is safe to repeat and to arrive late or out of order: a record only moves
forward, each position effect happens at most once per transfer (a reserve, then either one
commit or one release), and a final state never changes again. A resent prepare with the same
body gets the current state (or nothing while in flight); with another body it gets 3106.

Participant checks (known, active, signature) happen before ``step``; ``step`` checks what
depends on the transfer: who may send what, the body hash, the condition and the expiry.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from citywallet.interop.conditions import matches
from citywallet.interop.messages import ErrorCode, FspiopCode, TransferPrepare


class State(StrEnum):
    RECEIVED = "RECEIVED"  # prepare accepted, payer's position not yet reserved
    RESERVED = "RESERVED"  # position reserved, prepare forwarded to the payee
    COMMITTED = "COMMITTED"
    ABORTED = "ABORTED"
    EXPIRED = "EXPIRED"  # on the wire: transferState ABORTED with error 3303

    @property
    def final(self) -> bool:
        return self in (State.COMMITTED, State.ABORTED, State.EXPIRED)


@dataclass(frozen=True, slots=True)
class Transfer:
    """What the switch stores of one transfer."""

    prepare: TransferPrepare
    digest: str
    state: State
    fulfilment: str | None = None

    @property
    def transfer_id(self) -> str:
        return self.prepare.transfer_id

    @property
    def payer(self) -> str:
        return self.prepare.payer_fsp

    @property
    def payee(self) -> str:
        return self.prepare.payee_fsp

    @property
    def amount(self) -> int:
        return self.prepare.amount.amount


# ---- inputs -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Prepare:
    """``POST /transfers`` from ``source``."""

    source: str
    prepare: TransferPrepare
    now: datetime


@dataclass(frozen=True, slots=True)
class PositionChecked:
    """The outcome of reserving the payer's position (positions.reserve) for a RECEIVED one."""

    transfer_id: str
    reserved: bool


@dataclass(frozen=True, slots=True)
class Fulfil:
    """``PUT /transfers/{id}`` with COMMITTED and a fulfilment, from ``source``."""

    source: str
    transfer_id: str
    fulfilment: str
    now: datetime


@dataclass(frozen=True, slots=True)
class Reject:
    """``PUT /transfers/{id}/error`` (or transferState ABORTED) from ``source``."""

    source: str
    transfer_id: str
    code: FspiopCode
    now: datetime


@dataclass(frozen=True, slots=True)
class Timeout:
    """The expiry sweep looked at this transfer at ``now``."""

    transfer_id: str
    now: datetime


@dataclass(frozen=True, slots=True)
class Query:
    """``GET /transfers/{id}`` from ``source`` (after a lost callback)."""

    source: str
    transfer_id: str


Event = Prepare | PositionChecked | Fulfil | Reject | Timeout | Query


# ---- effects ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReservePosition:
    """Reserve ``amount`` on the payer's position against its net debit cap (positions.py)."""

    participant: str
    amount: int


@dataclass(frozen=True, slots=True)
class CommitPosition:
    """Turn the payer's reservation into position, and credit the payee's position."""

    payer: str
    payee: str
    amount: int


@dataclass(frozen=True, slots=True)
class ReleasePosition:
    participant: str
    amount: int


@dataclass(frozen=True, slots=True)
class ForwardPrepare:
    """Send the prepare on to the payee's provider."""

    to: str


@dataclass(frozen=True, slots=True)
class NotifyState:
    """Send ``PUT /transfers/{id}`` with the transfer's state (and fulfilment if committed)."""

    to: str
    state: State


@dataclass(frozen=True, slots=True)
class SendError:
    """Send ``PUT /transfers/{id}/error`` with ``code``."""

    to: str
    code: FspiopCode


Effect = (
    ReservePosition | CommitPosition | ReleasePosition | ForwardPrepare | NotifyState | SendError
)


@dataclass(frozen=True, slots=True)
class Outcome:
    """The record to store (unchanged when nothing happened; ``None``: store nothing)."""

    transfer: Transfer | None
    effects: tuple[Effect, ...] = ()


def step(transfer: Transfer | None, event: Event) -> Outcome:
    """The one place transfers change; see the module docstring."""
    event_id = event.prepare.transfer_id if isinstance(event, Prepare) else event.transfer_id
    if transfer is not None and event_id != transfer.transfer_id:
        raise ValueError(f"an event for {event_id} given the record of {transfer.transfer_id}")
    if isinstance(event, Prepare):
        return _prepare(transfer, event)
    if transfer is None:
        if isinstance(event, Fulfil | Reject | Query):
            return Outcome(None, (SendError(event.source, ErrorCode.TRANSFER_ID_NOT_FOUND),))
        return Outcome(None)  # a position result or a sweep for a transfer never stored
    if isinstance(event, PositionChecked):
        return _position_checked(transfer, event)
    if isinstance(event, Timeout):
        return _timeout(transfer, event)
    if event.source not in (transfer.payer, transfer.payee):
        # Do not tell a third party that this transfer exists.
        return Outcome(transfer, (SendError(event.source, ErrorCode.TRANSFER_ID_NOT_FOUND),))
    if isinstance(event, Query):
        return Outcome(transfer, (_state_message(transfer, event.source),))
    if isinstance(event, Fulfil):
        return _fulfil(transfer, event)
    return _reject(transfer, event)


def _state_message(transfer: Transfer, to: str) -> Effect:
    if transfer.state is State.EXPIRED:
        return SendError(to, ErrorCode.TRANSFER_EXPIRED)
    return NotifyState(to, transfer.state)


def _prepare(transfer: Transfer | None, event: Prepare) -> Outcome:
    prepare = event.prepare
    if event.source != prepare.payer_fsp:
        return Outcome(transfer, (SendError(event.source, ErrorCode.GENERIC_VALIDATION_ERROR),))
    if transfer is not None:
        if transfer.digest != prepare.digest():
            return Outcome(transfer, (SendError(event.source, ErrorCode.MODIFIED_REQUEST),))
        if transfer.state.final:
            return Outcome(transfer, (_state_message(transfer, event.source),))
        return Outcome(transfer)  # in flight: the answer will come
    if event.now >= prepare.expiration:
        return Outcome(None, (SendError(event.source, ErrorCode.TRANSFER_EXPIRED),))
    received = Transfer(prepare=prepare, digest=prepare.digest(), state=State.RECEIVED)
    return Outcome(received, (ReservePosition(received.payer, received.amount),))


def _position_checked(transfer: Transfer, event: PositionChecked) -> Outcome:
    if transfer.state is not State.RECEIVED:
        return Outcome(transfer)  # a repeated result: the first one was applied
    if not event.reserved:
        aborted = replace(transfer, state=State.ABORTED)
        return Outcome(
            aborted, (SendError(transfer.payer, ErrorCode.PAYER_FSP_INSUFFICIENT_LIQUIDITY),)
        )
    reserved = replace(transfer, state=State.RESERVED)
    return Outcome(reserved, (ForwardPrepare(transfer.payee),))


def _fulfil(transfer: Transfer, event: Fulfil) -> Outcome:
    if event.source != transfer.payee:
        return Outcome(transfer, (SendError(event.source, ErrorCode.GENERIC_VALIDATION_ERROR),))
    if transfer.state.final:
        return Outcome(transfer, (_state_message(transfer, event.source),))
    if transfer.state is State.RECEIVED:
        # The payee cannot have seen a prepare not yet forwarded: refuse, change nothing.
        return Outcome(transfer, (SendError(event.source, ErrorCode.GENERIC_VALIDATION_ERROR),))
    if event.now >= transfer.prepare.expiration:
        return _expire(transfer)
    if not matches(transfer.prepare.ilp_condition, event.fulfilment):
        return Outcome(transfer, (SendError(event.source, ErrorCode.GENERIC_VALIDATION_ERROR),))
    committed = replace(transfer, state=State.COMMITTED, fulfilment=event.fulfilment)
    return Outcome(
        committed,
        (
            CommitPosition(transfer.payer, transfer.payee, transfer.amount),
            NotifyState(transfer.payer, State.COMMITTED),
            NotifyState(transfer.payee, State.COMMITTED),
        ),
    )


def _reject(transfer: Transfer, event: Reject) -> Outcome:
    if transfer.state.final:
        if transfer.state is State.COMMITTED:
            return Outcome(transfer, (NotifyState(event.source, State.COMMITTED),))
        return Outcome(transfer)
    if event.source != transfer.payee or transfer.state is not State.RESERVED:
        return Outcome(transfer, (SendError(event.source, ErrorCode.GENERIC_VALIDATION_ERROR),))
    aborted = replace(transfer, state=State.ABORTED)
    return Outcome(
        aborted,
        (ReleasePosition(transfer.payer, transfer.amount), SendError(transfer.payer, event.code)),
    )


def _timeout(transfer: Transfer, event: Timeout) -> Outcome:
    if transfer.state.final or event.now < transfer.prepare.expiration:
        return Outcome(transfer)
    return _expire(transfer)


def _expire(transfer: Transfer) -> Outcome:
    expired = replace(transfer, state=State.EXPIRED)
    if transfer.state is State.RECEIVED:
        return Outcome(expired, (SendError(transfer.payer, ErrorCode.TRANSFER_EXPIRED),))
    return Outcome(
        expired,
        (
            ReleasePosition(transfer.payer, transfer.amount),
            SendError(transfer.payer, ErrorCode.TRANSFER_EXPIRED),
            SendError(transfer.payee, ErrorCode.TRANSFER_EXPIRED),
        ),
    )
