"""What a payment needs of its merchant that rarely changes, cached per process.

A payment reads its merchant's fee rate, ledger accounts, owner, name and webhook URL from
here; a change of the webhook URL in this process drops the entry at once, other processes
see it within ``FACTS_TTL_SECONDS``. Whether the merchant may take payments is **not**
cached: the statement that moves the payment's order checks the merchant's status.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from citywallet.merchant.errors import MerchantNotFound
from citywallet.merchant.models import Merchant
from citywallet.platform.cache import TtlCache
from citywallet.platform.db import UnitOfWork
from citywallet.wallet.rules import Shop

FACTS_TTL_SECONDS = 30.0


@dataclass(frozen=True)
class MerchantFacts:
    """A merchant's fixed facts (its status is not one of them)."""

    id: int
    public_id: str
    owner_user_id: str
    name_zh: str
    district: str
    mcc: str
    fee_rate_bp: int
    receivable_account_id: int
    fee_account_id: int
    notify_url: str | None

    @property
    def shop(self) -> Shop:
        """Where restricted money looks whether it may be spent here."""
        return Shop(self.public_id, self.district, self.mcc)


_FACTS: TtlCache[MerchantFacts] = TtlCache("merchant.facts", ttl=FACTS_TTL_SECONDS)


def merchant_facts(
    uow: UnitOfWork, *, merchant_id: str | None = None, merchant_pk: int | None = None
) -> MerchantFacts:
    """A merchant's facts by public id or key (``merchant_not_found`` otherwise)."""

    def load() -> MerchantFacts:
        where = Merchant.public_id == merchant_id if merchant_id else Merchant.id == merchant_pk
        row = uow.session.scalar(select(Merchant).where(where))
        if row is None:
            raise MerchantNotFound("No such merchant.")
        return MerchantFacts(
            row.id, row.public_id, row.owner_user_id, row.name_zh, row.district, row.mcc,
            row.fee_rate_bp, row.receivable_account_id, row.fee_account_id, row.notify_url,
        )  # fmt: skip

    return _FACTS.get(uow, merchant_id if merchant_id is not None else merchant_pk, load)


def forget_merchant(uow: UnitOfWork, merchant: Merchant) -> None:
    """Drop a merchant's cached facts (its webhook URL changed)."""
    _FACTS.forget(uow, merchant.public_id)
    _FACTS.forget(uow, merchant.id)
