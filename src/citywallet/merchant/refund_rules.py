"""Pure refund rules: how much of an order a refund may take, the fee it returns, and
where each fen goes. No DB, no web, no clock; ``merchant.refunds`` locks the rows, calls
these and posts what they say.

A refund of ``amount`` fen of a paid order (one with a payer):

* takes at most what is left of the order: its amount less what earlier refunds took
  (``refund_exceeds_paid`` with ``refundable`` else), so no sequence of refunds ever
  returns more than was paid;
* returns the fee in proportion to what has been refunded *in total*
  (:func:`citywallet.merchant.rules.fee_back`): any sequence of partial refunds that adds
  up to the whole order returns exactly the whole fee, never more;
* gives the payer's own money back first, and the restricted (red-packet) part only once
  the own part is all returned (:func:`citywallet.wallet.rules.refund_parts`); the
  restricted part goes back last spent first, each piece to the balance it came from while
  that balance is active and its source valid, else to the source's funder as a campaign
  reclaim (:func:`citywallet.wallet.rules.returns_to_balance`, decided by
  ``wallet.restricted.plan_return``, which locks the rows it reads);
* is posted as one linked batch (:func:`refund_legs`): the fee back (merchant's fee
  account → receivable) first, so that the receivable can pay with it, then receivable →
  the payer's wallet for the own part, then receivable → each restricted piece's account.
  The merchant's receivable so loses ``amount - fee_back``; the payer and the funders
  gain ``amount`` together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from citywallet.ledger.types import TransferCode, TransferSpec
from citywallet.merchant.rules import fee_back
from citywallet.money import Money
from citywallet.platform.errors import Conflict, InvalidInput
from citywallet.wallet.rules import refund_parts

REFUNDABLE_STATUS = "paid"


@dataclass(frozen=True)
class Paid:
    """What an order took (``restricted`` of its ``amount`` from restricted balances) and
    what earlier refunds gave back of it."""

    amount: int
    fee: int
    restricted: int = 0
    refunded: int = 0
    restricted_refunded: int = 0

    @property
    def refundable(self) -> int:
        """What is left to refund."""
        return self.amount - self.refunded

    def after(self, split: RefundSplit) -> Paid:
        """The order once ``split`` is refunded too."""
        return Paid(
            amount=self.amount,
            fee=self.fee,
            restricted=self.restricted,
            refunded=self.refunded + split.amount,
            restricted_refunded=self.restricted_refunded + split.restricted,
        )


@dataclass(frozen=True)
class RefundSplit:
    """One refund: ``own + restricted == amount``; ``fee_back`` returns to the merchant."""

    amount: int
    fee_back: int
    own: int
    restricted: int


@dataclass(frozen=True)
class RefundAccounts:
    """The ledger accounts a refund moves money between (``payer``: the payer's wallet)."""

    fee: int
    receivable: int
    payer: int


class Giveback(Protocol):
    """A restricted piece to give back (``wallet.restricted.Giveback``)."""

    @property
    def account_id(self) -> int: ...

    @property
    def amount(self) -> int: ...

    @property
    def to_funder(self) -> bool: ...


def check_amount(amount: int) -> int:
    """A refund is a positive number of fen (``invalid_amount``)."""
    if amount <= 0:
        raise InvalidInput("A refund amount is a positive number of fen.", code="invalid_amount")
    return amount


def refundable_payer(*, status: str, payer_user_id: str | None) -> str:
    """The payer to refund; only a paid order has one (``order_not_paid``)."""
    if status != REFUNDABLE_STATUS or payer_user_id is None:
        raise Conflict("Only a paid order can be refunded.", code="order_not_paid")
    return payer_user_id


def split_refund(paid: Paid, amount: int) -> RefundSplit:
    """What a refund of ``amount`` returns: the fee share and the own and restricted
    parts; refused when it is not positive or exceeds what is left."""
    check_amount(amount)
    left = paid.refundable
    if amount > left:
        raise Conflict(
            f"Only {Money(left)} of this order is left to refund.",
            code="refund_exceeds_paid",
            refundable=left,
        )
    back = fee_back(amount=paid.amount, fee=paid.fee, refunded_before=paid.refunded, refund=amount)
    own, restricted = refund_parts(
        amount=amount,
        own_paid=paid.amount - paid.restricted,
        own_returned=paid.refunded - paid.restricted_refunded,
        restricted_paid=paid.restricted,
        restricted_returned=paid.restricted_refunded,
    )
    return RefundSplit(amount=amount, fee_back=back, own=own, restricted=restricted)


def refund_legs(
    refund_id: str,
    split: RefundSplit,
    accounts: RefundAccounts,
    givebacks: Sequence[Giveback],
    *,
    currency: str,
) -> list[TransferSpec]:
    """The refund's ledger transfers, in posting order (not linked yet): the fee back,
    the own part to the payer, each restricted piece to its account (to a funder as a
    campaign reclaim). ``givebacks`` must add up to the restricted part."""
    if sum(g.amount for g in givebacks) != split.restricted:
        raise ValueError("the givebacks must add up to the restricted part of the refund")

    def leg(suffix: str, debit: int, credit: int, amount: int, code: int) -> TransferSpec:
        return TransferSpec(
            id=f"{refund_id}.{suffix}",
            debit_account_id=debit,
            credit_account_id=credit,
            amount=amount,
            ledger=currency,
            code=code,
            reference=refund_id,
        )

    receivable = accounts.receivable
    legs = []
    if split.fee_back:
        legs.append(leg("fee", accounts.fee, receivable, split.fee_back, TransferCode.FEE))
    if split.own:
        legs.append(leg("refund", receivable, accounts.payer, split.own, TransferCode.REFUND))
    legs.extend(
        leg(
            f"rp{index}",
            receivable,
            giveback.account_id,
            giveback.amount,
            TransferCode.CAMPAIGN_RECLAIM if giveback.to_funder else TransferCode.REFUND,
        )
        for index, giveback in enumerate(givebacks)
    )
    return legs
