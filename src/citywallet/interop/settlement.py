"""Deferred net settlement: a window's committed transfers → net positions that sum to zero.

Participants do not pay each other per transfer. The switch closes a settlement window,
nets every committed transfer in it per participant, and each participant pays (positive net:
it owes) or receives (negative net) its net amount once, against its settlement account.
Each transfer counts once, however often it is listed (a retried commit reaches the window
twice); the same id with other terms is a bug upstream and raises.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


class SettlementError(ValueError):
    """Two different transfers under one id, or a transfer that cannot be settled."""


@dataclass(frozen=True, slots=True)
class CommittedTransfer:
    transfer_id: str
    payer: str
    payee: str
    amount: int

    def __post_init__(self) -> None:
        if self.payer == self.payee:
            raise SettlementError(f"transfer {self.transfer_id}: payer and payee are the same")
        if isinstance(self.amount, bool) or not isinstance(self.amount, int) or self.amount <= 0:
            raise SettlementError(f"transfer {self.transfer_id}: amount must be positive fen")


@dataclass(frozen=True, slots=True)
class SettlementReport:
    window_id: str
    transfer_count: int
    total_amount: int
    positions: tuple[tuple[str, int], ...]  # (participant, net), sorted by participant

    def net(self, participant: str) -> int:
        return dict(self.positions).get(participant, 0)


def unique(transfers: Iterable[CommittedTransfer]) -> list[CommittedTransfer]:
    """The distinct transfers, first listing kept; a reused id with other terms raises."""
    seen: dict[str, CommittedTransfer] = {}
    for transfer in transfers:
        first = seen.setdefault(transfer.transfer_id, transfer)
        if first != transfer:
            raise SettlementError(f"transfer {transfer.transfer_id} listed with different terms")
    return list(seen.values())


def net_positions(transfers: Iterable[CommittedTransfer]) -> dict[str, int]:
    """Per participant: sent minus received, over distinct transfers (zero nets included)."""
    nets: dict[str, int] = {}
    for transfer in unique(transfers):
        nets[transfer.payer] = nets.get(transfer.payer, 0) + transfer.amount
        nets[transfer.payee] = nets.get(transfer.payee, 0) - transfer.amount
    return nets


def close_window(window_id: str, transfers: Iterable[CommittedTransfer]) -> SettlementReport:
    distinct = unique(transfers)
    nets = net_positions(distinct)
    if sum(nets.values()) != 0:  # cannot happen: every transfer adds +a and -a
        raise SettlementError("net positions do not sum to zero")
    return SettlementReport(
        window_id=window_id,
        transfer_count=len(distinct),
        total_amount=sum(t.amount for t in distinct),
        positions=tuple(sorted(nets.items())),
    )
