"""Merchants (BUSINESS parties) as payees, and as payers of refunds: what the provider asks
of the merchant feature.

A resident of another provider who scans one of our merchants' codes pays through the same
FSPIOP steps as a P2P transfer; only the payee's part differs: the merchant's code is
authenticated and quoted, its order held and credited, posted or voided by the merchant
feature. interop does not import merchant (sibling features, docs/layers.md), so the
adapters (api/interop.py) pass an implementation of :class:`BusinessPayee` in. A payee
quote or transfer row of a merchant has no resident: its ``user_id`` is empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from citywallet.interop.messages import QuoteRequest, TransferPrepare
from citywallet.platform.db import UnitOfWork

MERCHANT = ""  # the user_id of a merchant's payee quote and transfer: no resident


@dataclass(frozen=True)
class BusinessTerms:
    """A merchant's terms: ``amount`` crosses the switch, the merchant pays ``fee`` of it."""

    amount: int
    fee: int


class BusinessPayee(Protocol):
    """The merchant feature's part of a payment to one of our merchants (all in ``uow``;
    a refusal raises a ``DomainError`` whose ``code`` is sent as the error's description)."""

    def quote(self, uow: UnitOfWork, *, request: QuoteRequest, expires_at: int) -> BusinessTerms:
        """Authenticate ``request.qr_payload`` and give the merchant's terms."""
        ...

    def prepare(
        self, uow: UnitOfWork, *, quote_id: str, prepare: TransferPrepare, settlement: int
    ) -> None:
        """Hold the order and credit the merchant, pending, from ``settlement``."""
        ...

    def commit(self, uow: UnitOfWork, *, transfer_id: str) -> None:
        """Post the merchant's pending credit: the order is paid."""
        ...

    def abort(self, uow: UnitOfWork, *, transfer_id: str) -> None:
        """Void the merchant's pending credit: the order is open again (or closed)."""
        ...


class BusinessPayer(Protocol):
    """The merchant feature's part of a refund we send through the switch (a merchant's
    payer quote and transfer: ``user_id`` empty; the quote's public id is the refund's)."""

    def hold(self, uow: UnitOfWork, *, owner: str, transfer_id: str, amount: int,
             settlement: int) -> bool:  # fmt: skip
        """Debit the merchant pending toward ``settlement``; ``False``: refused (failed)."""
        ...

    def commit(self, uow: UnitOfWork, *, owner: str) -> None:
        """Post the merchant's pending debit: the refund succeeded."""
        ...

    def fail(self, uow: UnitOfWork, *, owner: str) -> None:
        """Void whatever was held: the refund failed."""
        ...
