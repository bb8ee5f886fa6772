"""Ledger-only fixtures for engine tests: funded accounts and plain transfers."""

from __future__ import annotations

from citywallet.ledger import service as ledger
from citywallet.ledger.service import AccountSpec
from citywallet.ledger.types import (
    AccountCode,
    AccountFlags,
    Result,
    TransferCode,
    TransferSpec,
)
from citywallet.platform.db import Database, UnitOfWork

NO_OVERDRAFT = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS


def p2p(tid: str, debit: int, credit: int, amount: int, flags: int = 0) -> TransferSpec:
    """A CNY transfer between two accounts."""
    return TransferSpec(
        id=tid,
        debit_account_id=debit,
        credit_account_id=credit,
        amount=amount,
        ledger="CNY",
        code=TransferCode.P2P,
        flags=flags,
    )


def funded_accounts(db: Database, customers: int, funding: int) -> tuple[int, list[int]]:
    """A bank account and ``customers`` no-overdraft accounts funded with ``funding`` each."""

    def create(uow: UnitOfWork) -> tuple[int, list[int]]:
        bank = ledger.create_accounts(
            uow, accounts=[AccountSpec("CNY", AccountCode.BANK_SETTLEMENT)]
        )[0]
        ids = ledger.create_accounts(
            uow,
            accounts=[
                AccountSpec("CNY", AccountCode.CUSTOMER_WALLET, NO_OVERDRAFT)
                for _ in range(customers)
            ],
        )
        results = ledger.post(uow, transfers=[p2p(f"fund-{i}", bank, i, funding) for i in ids])
        assert set(results) == {Result.OK}
        return bank, ids

    return db.transact(create)
