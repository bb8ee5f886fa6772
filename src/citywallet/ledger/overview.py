"""Reading the ledger as a whole, for the operator console: totals per account kind and
the latest sealed blocks. Read-only."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from citywallet.ledger.models import Account, Block, TransferRow
from citywallet.ledger.types import AccountCode
from citywallet.platform.db import UnitOfWork


@dataclass(frozen=True)
class KindTotal:
    """The accounts of one kind (``AccountCode``) on one ledger, summed."""

    ledger: str
    code: int
    name: str  # the AccountCode's name, e.g. CUSTOMER_WALLET
    accounts: int
    debits_posted: int
    credits_posted: int
    debits_pending: int
    credits_pending: int

    @property
    def balance(self) -> int:
        """Posted credits minus posted debits (platform mirrors of bank money are negative)."""
        return self.credits_posted - self.debits_posted


@dataclass(frozen=True)
class BlockSummary:
    """A sealed block's header."""

    height: int
    tree_size: int
    merkle_root: str
    block_hash: str
    sealed_at: int
    key_id: str


@dataclass(frozen=True)
class LedgerCounts:
    """How much the ledger holds and how much of it is sealed."""

    transfers: int
    unsealed: int
    blocks: int


def _code_name(code: int) -> str:
    try:
        return AccountCode(code).name
    except ValueError:
        return str(code)


def totals_by_kind(uow: UnitOfWork) -> list[KindTotal]:
    """Every account kind's counters summed, per ledger (currency), by code."""
    rows = uow.session.execute(
        select(
            Account.ledger,
            Account.code,
            func.count(),
            func.coalesce(func.sum(Account.debits_posted), 0),
            func.coalesce(func.sum(Account.credits_posted), 0),
            func.coalesce(func.sum(Account.debits_pending), 0),
            func.coalesce(func.sum(Account.credits_pending), 0),
        )
        .group_by(Account.ledger, Account.code)
        .order_by(Account.ledger, Account.code)
    )
    return [
        KindTotal(
            str(ledger),
            int(code),
            _code_name(int(code)),
            int(n),
            int(dp),
            int(cp),
            int(dpe),
            int(cpe),
        )
        for ledger, code, n, dp, cp, dpe, cpe in rows
    ]


def latest_blocks(uow: UnitOfWork, *, limit: int = 10) -> list[BlockSummary]:
    """The newest sealed blocks, newest first."""
    rows = uow.session.scalars(select(Block).order_by(Block.height.desc()).limit(limit))
    return [
        BlockSummary(b.height, b.tree_size, b.merkle_root, b.block_hash, b.sealed_at, b.key_id)
        for b in rows
    ]


def counts(uow: UnitOfWork) -> LedgerCounts:
    """Transfers recorded, transfers not sealed yet, blocks."""
    transfers = uow.session.scalar(select(func.count()).select_from(TransferRow)) or 0
    unsealed = (
        uow.session.scalar(
            select(func.count()).select_from(TransferRow).where(TransferRow.block_height.is_(None))
        )
        or 0
    )
    blocks = uow.session.scalar(select(func.count()).select_from(Block)) or 0
    return LedgerCounts(int(transfers), int(unsealed), int(blocks))
