"""Refunds of orders paid through the switch: a new switch transfer back to the payer.

The merchant's part (docs/interop.md, "Refunds back through the switch"). The refund entry
points (:func:`citywallet.merchant.refunds.refund_order`) apply the usual rules, reserve
the amount on the order and hand the refund to a :class:`SwitchRefunds` (the provider's
payer machinery, wired by the adapters: merchant and interop do not import each other).
The provider then calls back, one step per switch message, in that message's transaction:

- :func:`hold_refund` once the resident's provider has quoted: the fee share comes back to
  the receivable (posted: a pending credit could not cover the debit) linked with the
  receivable's *pending* debit toward the switch settlement account; refused (the refund
  fails) when the receivable no longer covers it.
- :func:`commit_refund` (COMMITTED): post the debit; the refund succeeded;
  ``refund.succeeded``.
- :func:`fail_refund` (refused quote, abort, expiry): void the debit and take the fee share
  back to the fee account; the refund failed and its amount is refundable again.

Each step is idempotent: a refund leaves ``processing`` once.
"""

from __future__ import annotations

import json
from typing import Protocol

from sqlalchemy import select

from citywallet.ledger import service as ledger
from citywallet.ledger.types import Result, TransferCode, TransferFlags, TransferSpec
from citywallet.merchant import webhooks
from citywallet.merchant.models import InteropPayment, Order, Refund
from citywallet.merchant.onboarding import merchant_by_pk
from citywallet.merchant.payments import linked
from citywallet.platform.clock import now_us
from citywallet.platform.db import UnitOfWork
from citywallet.platform.errors import Conflict
from citywallet.wallet.accounts import CURRENCY

PROCESSING, SUCCEEDED, FAILED = "processing", "succeeded", "failed"


class SwitchRefunds(Protocol):
    """The provider's part: send a refund to the payer's provider through the switch."""

    def send(
        self,
        uow: UnitOfWork,
        *,
        refund_id: str,
        merchant_id: str,
        payer_fsp: str,
        payer_identifier: str,
        amount: int,
    ) -> None:
        """Ask the payer's provider for terms to send ``amount`` to ``payer_identifier``."""
        ...


def paid_through(uow: UnitOfWork, order: Order) -> InteropPayment:
    """The committed switch payment of an ``interop_qr`` order (its payer's provider and
    number)."""
    row = uow.session.scalar(
        select(InteropPayment).where(
            InteropPayment.order_public_id == order.public_id,
            InteropPayment.merchant_id == order.merchant_id,
            InteropPayment.state == "committed",
        )
    )
    if row is None:
        raise Conflict("Only a paid order can be refunded.", code="order_not_paid")
    return row


def _hold_ids(refund: Refund) -> tuple[str, str]:
    return f"{refund.public_id}.sw", f"{refund.public_id}.fee"


def _refund(uow: UnitOfWork, refund_id: str) -> tuple[Refund, Order] | None:
    refund = uow.session.scalar(
        select(Refund)
        .where(Refund.public_id == refund_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if refund is None:
        return None
    order = uow.session.scalar(
        select(Order)
        .where(Order.id == refund.order_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    assert order is not None
    return refund, order


def hold_refund(
    uow: UnitOfWork, *, refund_id: str, transfer_id: str, amount: int, settlement: int
) -> bool:
    """Debit the merchant's receivable pending toward ``settlement`` (the fee share back
    first, linked); returns whether the prepare may go. ``False``: the refund failed
    (the receivable cannot cover it, or it is no longer processing, or the terms are for
    another amount) and nothing was held."""
    found = _refund(uow, refund_id)
    if found is None:
        return False
    refund, order = found
    if refund.status != PROCESSING or refund.transfer_ids != "[]" or amount != refund.amount:
        if refund.status == PROCESSING:
            _fail(uow, refund, order, held=False)
        return False
    merchant = merchant_by_pk(uow, refund.merchant_id)
    out_id, fee_id = _hold_ids(refund)
    legs = []
    if refund.fee_back:  # posted: a pending credit would not cover the pending debit
        legs.append(
            TransferSpec(
                id=fee_id, debit_account_id=merchant.fee_account_id,
                credit_account_id=merchant.receivable_account_id, amount=refund.fee_back,
                ledger=CURRENCY, code=TransferCode.FEE, reference=transfer_id,
            )
        )  # fmt: skip
    legs.append(
        TransferSpec(
            id=out_id, debit_account_id=merchant.receivable_account_id,
            credit_account_id=settlement, amount=refund.amount, ledger=CURRENCY,
            code=TransferCode.REFUND, flags=TransferFlags.PENDING,
            timeout=0,  # only the switch's final word resolves it
            reference=transfer_id,
        )
    )  # fmt: skip
    results = ledger.post(uow, transfers=linked(legs))
    if Result.EXCEEDS_CREDITS in results:  # settled to the bank since the refund was asked
        _fail(uow, refund, order, held=False)
        return False
    if not all(r.on_books for r in results):
        raise RuntimeError(f"ledger refused the refund hold {refund.public_id}: {results}")
    refund.transfer_ids = json.dumps([leg.id for leg in legs])
    uow.session.flush()
    return True


def commit_refund(uow: UnitOfWork, *, refund_id: str) -> None:
    """The switch committed the refund's transfer: post the holds, the refund succeeded,
    the merchant's ``refund.succeeded`` webhook. Final already: nothing changes."""
    found = _refund(uow, refund_id)
    if found is None or found[0].status != PROCESSING:
        return
    refund, order = found
    held = json.loads(refund.transfer_ids)
    out_id, _ = _hold_ids(refund)
    posts = [
        TransferSpec(
            id=f"{out_id}.post", amount=None, flags=TransferFlags.POST_PENDING,
            pending_id=out_id, reference=refund.public_id,
        )
    ]  # fmt: skip
    results = ledger.post(uow, transfers=posts)
    if not all(r.on_books for r in results):
        raise RuntimeError(f"ledger refused the refund commit {refund.public_id}: {results}")
    refund.status = SUCCEEDED
    refund.transfer_ids = json.dumps([*held, *(p.id for p in posts)])
    order.updated_at = now_us()
    uow.session.flush()
    # imported here: refunds imports this module for its entry point
    from citywallet.merchant.refunds import refund_data, refund_view

    merchant = merchant_by_pk(uow, refund.merchant_id)
    view = refund_view(refund, order)
    webhooks.emit(
        uow, merchant=merchant, type="refund.succeeded", object_id=refund.public_id,
        data=refund_data(view), url=order.notify_url,
    )  # fmt: skip


def fail_refund(uow: UnitOfWork, *, refund_id: str) -> None:
    """The refund's quote was refused or its transfer aborted or expired: void what was
    held; the refund failed and its amount is refundable again. Final already: nothing."""
    found = _refund(uow, refund_id)
    if found is None or found[0].status != PROCESSING:
        return
    _fail(uow, found[0], found[1], held=found[0].transfer_ids != "[]")


def _fail(uow: UnitOfWork, refund: Refund, order: Order, *, held: bool) -> None:
    if held:
        merchant = merchant_by_pk(uow, refund.merchant_id)
        out_id, fee_id = _hold_ids(refund)
        undo = [
            TransferSpec(
                id=f"{out_id}.void", amount=None, flags=TransferFlags.VOID_PENDING,
                pending_id=out_id, reference=refund.public_id,
            )
        ]  # fmt: skip
        if refund.fee_back:  # the fee share goes back where it came from
            undo.append(
                TransferSpec(
                    id=f"{fee_id}.back", debit_account_id=merchant.receivable_account_id,
                    credit_account_id=merchant.fee_account_id, amount=refund.fee_back,
                    ledger=CURRENCY, code=TransferCode.FEE, reference=refund.public_id,
                )
            )  # fmt: skip
        results = ledger.post(uow, transfers=linked(undo))
        if not all(r.on_books for r in results):
            raise RuntimeError(f"ledger refused the refund void {refund.public_id}: {results}")
        refund.transfer_ids = json.dumps([*json.loads(refund.transfer_ids), *(u.id for u in undo)])
    refund.status = FAILED
    order.refunded_amount -= refund.amount
    order.refunded_fee -= refund.fee_back
    order.updated_at = now_us()
    uow.session.flush()
