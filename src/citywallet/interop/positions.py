"""A participant's position at the switch and its net debit cap, in pure terms.

``position`` is what the participant owes net in the open settlement window (positive: it
has sent more than it received); ``reserved`` is the sum of its prepared, not yet final
transfers; ``cap`` is its net debit cap (the liquidity cover it has deposited). A prepare
may reserve ``amount`` only while ``position + reserved + amount <= cap``: the payer can then
never owe more than its cover, whatever happens to the transfers in flight. Otherwise the
answer is FSPIOP 4001 (payer FSP insufficient liquidity) and nothing changes.

Each function returns a new ``Position``; the switch stores it in the same transaction as the
transfer's new state (one row per participant, locked), which makes the check atomic.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from citywallet.interop.messages import ErrorCode


class PositionError(ValueError):
    """A position operation the state machine can never ask for (a bug, not bad input)."""


@dataclass(frozen=True, slots=True)
class Position:
    participant: str
    cap: int
    position: int = 0
    reserved: int = 0

    def __post_init__(self) -> None:
        if self.cap < 0 or self.reserved < 0:
            raise PositionError("cap and reserved are never negative")

    @property
    def headroom(self) -> int:
        """How much more this participant may reserve now."""
        return self.cap - self.position - self.reserved


@dataclass(frozen=True, slots=True)
class Reservation:
    position: Position
    refused: ErrorCode | None = None

    @property
    def ok(self) -> bool:
        return self.refused is None


def _amount(amount: int) -> int:
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        raise PositionError("amounts are positive integers of fen")
    return amount


def reserve(position: Position, amount: int) -> Reservation:
    """Reserve ``amount`` for a prepare, or refuse with 4001 leaving the position unchanged."""
    if _amount(amount) > position.headroom:
        return Reservation(position, ErrorCode.PAYER_FSP_INSUFFICIENT_LIQUIDITY)
    return Reservation(replace(position, reserved=position.reserved + amount))


def release(position: Position, amount: int) -> Position:
    """Give back a reservation (the transfer was aborted or expired)."""
    if _amount(amount) > position.reserved:
        raise PositionError("releasing more than is reserved")
    return replace(position, reserved=position.reserved - amount)


def commit_payer(position: Position, amount: int) -> Position:
    """The payer's reservation becomes position (it now owes ``amount`` more)."""
    released = release(position, amount)
    return replace(released, position=released.position + amount)


def credit_payee(position: Position, amount: int) -> Position:
    """The payee is owed ``amount`` more: its position goes down (its headroom up)."""
    return replace(position, position=position.position - _amount(amount))


def settle(position: Position, net: int) -> Position:
    """A settled window's net amount leaves the position (it was paid outside the switch)."""
    return replace(position, position=position.position - net)
