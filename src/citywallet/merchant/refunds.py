"""Refunds: full or partial, several up to the paid amount, each under its own number.

A refund locks its order, so concurrent partial refunds of one order queue up and can
never together exceed what was paid. It returns the fee in proportion (``rules.fee_back``)
and takes the money from the merchant's receivable balance, fee first, as one linked batch:
the payer's own money comes back first, then any restricted (red-packet) part, to its
balance while valid or else to the funder (:mod:`citywallet.wallet.restricted`);
if the balance (already settled to the bank) cannot cover it, the ledger refuses and so do
we (``merchant_balance_insufficient``). The refund number makes it idempotent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from citywallet.ledger import service as ledger
from citywallet.ledger.types import Result, TransferCode
from citywallet.merchant import webhooks
from citywallet.merchant.errors import MerchantBalanceInsufficient, RefundNotFound
from citywallet.merchant.interop_refunds import PROCESSING, SwitchRefunds, paid_through
from citywallet.merchant.lookup import one_row
from citywallet.merchant.models import Order, Refund
from citywallet.merchant.onboarding import merchant_by_pk
from citywallet.merchant.payments import INTEROP_CHANNEL, linked, order_row
from citywallet.merchant.refund_rules import (
    REFUNDABLE_STATUS,
    Paid,
    RefundAccounts,
    check_amount,
    refund_legs,
    refundable_payer,
    split_refund,
)
from citywallet.merchant.rules import validate_out_no
from citywallet.money import Money
from citywallet.platform.clock import now_us
from citywallet.platform.db import UnitOfWork
from citywallet.platform.errors import Conflict, InvalidInput
from citywallet.wallet import accounts, history, restricted
from citywallet.wallet.accounts import CURRENCY
from citywallet.wallet.closure import wallet_closed
from citywallet.wallet.people import new_id

REASON_MAX = 80


@dataclass(frozen=True)
class RefundView:
    """A refund as its merchant sees it."""

    id: str
    order_id: str
    out_trade_no: str
    out_refund_no: str
    amount: int
    fee_back: int
    currency: str
    reason: str
    status: str
    created_at: int


def refund_view(refund: Refund, order: Order) -> RefundView:
    """The merchant's view of a refund row."""
    return RefundView(
        id=refund.public_id,
        order_id=order.public_id,
        out_trade_no=order.out_trade_no,
        out_refund_no=refund.out_refund_no,
        amount=refund.amount,
        fee_back=refund.fee_back,
        currency=CURRENCY,
        reason=refund.reason,
        status=refund.status,
        created_at=refund.created_at,
    )


def _paid(order: Order) -> Paid:
    return Paid(
        amount=order.amount,
        fee=order.fee,
        restricted=order.restricted_amount,
        refunded=order.refunded_amount,
        restricted_refunded=order.restricted_refunded,
    )


def refund_data(view: RefundView) -> dict[str, Any]:
    """A refund as webhook events carry it."""
    return {
        "object": "refund",
        "id": view.id,
        "order_id": view.order_id,
        "out_trade_no": view.out_trade_no,
        "out_refund_no": view.out_refund_no,
        "amount": view.amount,
        "fee_back": view.fee_back,
        "currency": view.currency,
        "status": view.status,
        "created_at": view.created_at,
    }


def refund_order(
    uow: UnitOfWork,
    *,
    merchant_pk: int,
    out_refund_no: str,
    amount: int,
    order_id: str | None = None,
    out_trade_no: str | None = None,
    reason: str = "",
    switch: SwitchRefunds | None = None,
) -> tuple[RefundView, bool]:
    """Refund part or all of a paid order; returns (refund, created).

    An order paid through the switch is refunded through ``switch`` (without one it is
    refused, ``refund_through_switch_unavailable``): the refund is ``processing`` until
    the switch's word (:mod:`citywallet.merchant.interop_refunds`).

    The same ``out_refund_no`` for the same order and amount returns the refund made
    before; with another order or amount it is refused (``out_refund_no_exists``).
    """
    validate_out_no(out_refund_no, field="out_refund_no")
    check_amount(amount)
    order = order_row(
        uow, merchant_pk=merchant_pk, order_id=order_id, out_trade_no=out_trade_no, for_update=True
    )
    existing = uow.session.scalar(
        select(Refund).where(
            Refund.merchant_id == merchant_pk, Refund.out_refund_no == out_refund_no
        )
    )
    if existing is not None:
        if existing.order_id != order.id or existing.amount != amount:
            raise Conflict(
                "This out_refund_no belongs to another refund.", code="out_refund_no_exists"
            )
        return refund_view(existing, order), False
    if order.channel == INTEROP_CHANNEL:  # the payer is another provider's resident
        if switch is None:
            raise Conflict(
                "This order was paid through the switch, and this deployment is not "
                "connected to it.",
                code="refund_through_switch_unavailable",
            )
        return _refund_through_switch(
            uow, order=order, merchant_pk=merchant_pk, out_refund_no=out_refund_no,
            amount=amount, reason=reason, switch=switch,
        ), True  # fmt: skip
    payer = refundable_payer(status=order.status, payer_user_id=order.payer_user_id)
    split = split_refund(_paid(order), amount)
    merchant = merchant_by_pk(uow, merchant_pk)
    public_id = new_id("rfd")
    wallets = accounts.lock_wallets(uow, user_ids=[payer])
    moment = now_us()
    if split.own and wallet_closed(uow, user_id=payer):
        # as WeChat Pay's USER_ACCOUNT_ABNORMAL: the payer's own money has nowhere to go
        raise Conflict(
            "The payer has closed their wallet: refund their own money another way.",
            code="payer_wallet_closed",
        )
    givebacks = (
        restricted.plan_return(
            uow, payment_ref=order.public_id, amount=split.restricted, moment=moment
        )
        if split.restricted
        else []
    )
    legs = linked(
        refund_legs(
            public_id,
            split,
            RefundAccounts(
                fee=merchant.fee_account_id,
                receivable=merchant.receivable_account_id,
                payer=wallets[payer],
            ),
            givebacks,
            currency=CURRENCY,
        )
    )
    restricted.record_return(uow, givebacks=givebacks, moment=moment)
    refund = Refund(
        public_id=public_id,
        merchant_id=merchant_pk,
        order_id=order.id,
        out_refund_no=out_refund_no,
        amount=amount,
        fee_back=split.fee_back,
        restricted_amount=split.restricted,
        reason=" ".join(reason.split())[:REASON_MAX],
        status="succeeded",
        transfer_ids=json.dumps([leg.id for leg in legs]),
        created_at=moment,
    )
    uow.session.add(refund)
    order.refunded_amount += amount
    order.refunded_fee += split.fee_back
    order.restricted_refunded += split.restricted
    order.updated_at = moment
    history.record(
        uow,
        user_id=payer,
        object_id=public_id,
        kind="merchant_refund",
        amount=amount,
        currency=CURRENCY,
        status="succeeded",
        transfer_ids=[leg.id for leg in legs if leg.code != TransferCode.FEE],
        counterparty_label=merchant.name_zh,
        note=refund.reason,
        reference=order.public_id,
    )
    uow.session.flush()
    view = refund_view(refund, order)
    webhooks.emit(
        uow,
        merchant=merchant,
        type="refund.succeeded",
        object_id=public_id,
        data=refund_data(view),
        url=order.notify_url,
    )
    # Last, as for payments: the merchant's accounts stay locked only until the commit.
    results = ledger.post(uow, transfers=legs)
    if Result.EXCEEDS_CREDITS in results:
        raise MerchantBalanceInsufficient(
            f"The merchant's balance cannot cover a refund of {Money(amount)}: it has been "
            "settled to the bank already. Top up the merchant balance or refund later.",
        )
    if not all(r.on_books for r in results):
        raise RuntimeError(f"ledger refused refund {public_id}: {results}")
    return view, True


def _refund_through_switch(
    uow: UnitOfWork,
    *,
    order: Order,
    merchant_pk: int,
    out_refund_no: str,
    amount: int,
    reason: str,
    switch: SwitchRefunds,
) -> RefundView:
    """Reserve the amount on the order and send the refund through the switch; it stays
    ``processing`` until the switch's word."""
    if order.status != REFUNDABLE_STATUS:
        raise Conflict("Only a paid order can be refunded.", code="order_not_paid")
    payment = paid_through(uow, order)
    split = split_refund(_paid(order), amount)
    merchant = merchant_by_pk(uow, merchant_pk)
    receivable = ledger.get_account(uow, account_id=merchant.receivable_account_id)
    assert receivable is not None
    if receivable.available < amount - split.fee_back:  # the hold checks it again later
        raise MerchantBalanceInsufficient(
            f"The merchant's balance cannot cover a refund of {Money(amount)}: it has been "
            "settled to the bank already. Top up the merchant balance or refund later.",
        )
    moment = now_us()
    refund = Refund(
        public_id=new_id("rfd"),
        merchant_id=merchant_pk,
        order_id=order.id,
        out_refund_no=out_refund_no,
        amount=amount,
        fee_back=split.fee_back,
        restricted_amount=0,  # red packets are not spent at another provider's merchants
        reason=" ".join(reason.split())[:REASON_MAX],
        status=PROCESSING,
        transfer_ids="[]",
        created_at=moment,
    )
    uow.session.add(refund)
    order.refunded_amount += amount  # reserved: a failed refund gives it back
    order.refunded_fee += split.fee_back
    order.updated_at = moment
    uow.session.flush()
    switch.send(
        uow, refund_id=refund.public_id, merchant_id=merchant.public_id,
        payer_fsp=payment.payer_fsp, payer_identifier=payment.payer_identifier, amount=amount,
    )  # fmt: skip
    return refund_view(refund, order)


def get_refund(
    uow: UnitOfWork,
    *,
    merchant_pk: int,
    refund_id: str | None = None,
    out_refund_no: str | None = None,
) -> RefundView:
    """Query a refund by our id or the merchant's refund number."""
    query = select(Refund).where(Refund.merchant_id == merchant_pk)
    if refund_id is not None:
        query = query.where(Refund.public_id == refund_id)
    elif out_refund_no is not None:
        query = query.where(Refund.out_refund_no == out_refund_no)
    else:
        raise InvalidInput("Give the refund id or out_refund_no.", code="refund_reference_required")
    refund = one_row(uow, query, RefundNotFound("No such refund."))
    order = uow.session.get(Order, refund.order_id)
    assert order is not None
    return refund_view(refund, order)


def list_refunds(uow: UnitOfWork, *, merchant_pk: int, order_id: str) -> list[RefundView]:
    """An order's refunds, oldest first."""
    order = order_row(uow, merchant_pk=merchant_pk, order_id=order_id)
    rows = uow.session.scalars(
        select(Refund).where(Refund.order_id == order.id).order_by(Refund.id)
    )
    return [refund_view(r, order) for r in rows]
