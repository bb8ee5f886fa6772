"""Demo data: platform accounts and a little activity so every page and endpoint has content.

Seeding is idempotent: running the demo twice reuses what the first run created.
"""

from __future__ import annotations

from dataclasses import dataclass

from citywallet.ledger import service as ledger
from citywallet.ledger.blocks import seal_all
from citywallet.ledger.types import (
    AccountCode,
    AccountFlags,
    TransferCode,
    TransferFlags,
    TransferSpec,
)
from citywallet.platform.db import UnitOfWork
from citywallet.runtime import Runtime

CUSTOMER = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
PLATFORM_ACCOUNTS = {
    "platform:bank_settlement": (AccountCode.BANK_SETTLEMENT, AccountFlags.NONE),
    "platform:fee_revenue": (AccountCode.FEE_REVENUE, CUSTOMER),
    "platform:redpacket_escrow": (AccountCode.REDPACKET_ESCROW, CUSTOMER),
    "platform:campaign_funds": (AccountCode.CAMPAIGN_FUNDS, CUSTOMER),
}
DEMO_WALLETS = ("demo:alice", "demo:bob", "demo:carol")


@dataclass
class DemoInfo:
    """What the demo seeded, for printing."""

    accounts: dict[str, int]
    sample_transfer: str
    sealed: int


def seed(runtime: Runtime) -> DemoInfo:
    """Create the demo's ledger accounts and activity (once), then seal it."""

    def run(uow: UnitOfWork) -> dict[str, int]:
        ids: dict[str, int] = {}
        wanted = {
            **PLATFORM_ACCOUNTS,
            **dict.fromkeys(DEMO_WALLETS, (AccountCode.CUSTOMER_WALLET, CUSTOMER)),
        }
        for owner, (code, flags) in wanted.items():
            found = ledger.find_account(uow, owner_ref=owner)
            ids[owner] = (
                found
                if found is not None
                else ledger.create_account(
                    uow, ledger="CNY", code=code, flags=flags, owner_ref=owner
                )
            )
        bank = ids["platform:bank_settlement"]
        alice, bob, carol = (ids[w] for w in DEMO_WALLETS)
        ledger.post(uow, transfers=[
            TransferSpec("demo-topup-alice", bank, alice, 500_000, "CNY", TransferCode.TOPUP),
            TransferSpec("demo-topup-bob", bank, bob, 200_000, "CNY", TransferCode.TOPUP),
            TransferSpec("demo-p2p-1", alice, bob, 12_345, "CNY", TransferCode.P2P,
                         reference="demo: dinner"),
            TransferSpec("demo-hold-carol", bob, carol, 5_000, "CNY", TransferCode.P2P,
                         flags=TransferFlags.PENDING, timeout=86_400),
        ])  # fmt: skip
        return ids

    accounts = runtime.db.transact(run)
    signer = runtime.ledger_signer()
    sealed = runtime.db.transact(lambda uow: seal_all(uow, signer))
    return DemoInfo(accounts, "demo-p2p-1", sealed)
