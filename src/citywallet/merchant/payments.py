"""Orders and how residents pay them: dynamic and static merchant-presented QR codes.

A payment is one transaction: lock the order (dynamic code), lock the payer's wallet and
their restricted balances usable at this merchant (campaign red packets: they pay first,
see :mod:`citywallet.wallet.restricted`), check and count the payer's tier limits on their
own money (and, for a static code, the daily static-code cap), post the legs and the
merchant fee as one linked batch, write the payer's history line and the merchant's
webhook event. Ledger transfer ids derive from the order's id (``ord_….rp0``… for
restricted money, ``ord_….pay`` for the payer's own, ``ord_….fee``): even a bug could not
pay one order twice.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import exists, literal, null, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from citywallet.identity.service import UserView
from citywallet.ledger import service as ledger
from citywallet.ledger.types import Result, TransferCode, TransferFlags, TransferSpec
from citywallet.merchant import emv, webhooks
from citywallet.merchant.errors import OrderNotFound, OrderNotPayable
from citywallet.merchant.facts import MerchantFacts, merchant_facts
from citywallet.merchant.models import Merchant, Order, Store, Terminal
from citywallet.merchant.onboarding import (
    merchant_by_pk,
    merchant_by_public_id,
    require_active,
    store_row,
    terminal_row,
    valid_notify_url,
)
from citywallet.merchant.rules import OrderStatus, clean_description, fee_for, validate_out_no
from citywallet.money import Money
from citywallet.platform.cache import TtlCache
from citywallet.platform.clock import now_us
from citywallet.platform.config import Settings
from citywallet.platform.crypto import Encryptor, get_or_create_secret
from citywallet.platform.db import DriverSql, UnitOfWork
from citywallet.platform.errors import Conflict, InvalidInput
from citywallet.wallet import history, restricted
from citywallet.wallet.accounts import CURRENCY
from citywallet.wallet.errors import InsufficientBalance
from citywallet.wallet.funding import validate_amount
from citywallet.wallet.limits import reserve_outflow
from citywallet.wallet.people import Party, active_user, lock_parties, new_id
from citywallet.wallet.rules import CHINA, Shop

SECOND_US = 1_000_000
MAX_TTL_SECONDS = 7 * 24 * 3600
QR_KEY_NAME = "merchant.qr_mac"
MAX_PREVIEW_AMOUNT = 10**12  # a static code's amount is not known yet: show all usable
INTEROP_CHANNEL = "interop_qr"  # an order paid (or being paid) through the switch


def shop_of(merchant: Merchant) -> Shop:
    """What restricted money looks at to decide whether it may be spent here."""
    return Shop(merchant.public_id, merchant.district, merchant.mcc)


@dataclass(frozen=True)
class OrderView:
    """An order as its merchant sees it."""

    id: str
    merchant_id: str
    store_id: str | None
    terminal_id: str | None
    out_trade_no: str
    amount: int
    currency: str
    description: str
    channel: str | None
    status: str
    fee: int
    refunded_amount: int
    refunded_fee: int
    expires_at: int
    paid_at: int | None
    closed_at: int | None
    created_at: int
    decline_code: str | None
    qr_payload: str | None  # the dynamic code to show while the order can be paid


@dataclass(frozen=True)
class ScanPreview:
    """What a resident sees after scanning, before confirming with the PIN."""

    kind: str  # "static" | "dynamic"
    merchant_id: str
    merchant_name: str
    merchant_name_en: str
    store_name: str
    amount: int | None  # None: a static code, the resident types the amount
    currency: str
    order_id: str | None
    description: str
    restricted_usable: int  # restricted money (red packets) this payment would use first
    provider: str | None = None  # another provider's code: its switch participant id


@dataclass(frozen=True)
class PaymentView:
    """A merchant payment as the resident who paid sees it."""

    order_id: str
    merchant_id: str
    merchant_name: str
    amount: int
    restricted_amount: int  # of which restricted money (campaign red packets)
    currency: str
    status: str
    channel: str
    paid_at: int | None


# --- the QR key and codes -----------------------------------------------------------------


_QR_KEYS: TtlCache[bytes] = TtlCache("merchant.qr_key", ttl=None)  # a key never changes


def qr_key(uow: UnitOfWork, encryptor: Encryptor) -> bytes:
    """The platform's key that authenticates the merchant codes it prints (read once per
    process and database)."""

    def load() -> bytes:
        secret, _ = get_or_create_secret(
            uow, encryptor, name=QR_KEY_NAME, create=lambda: (secrets.token_bytes(32), None)
        )
        return secret

    return _QR_KEYS.get(uow, id(encryptor), load)


def _code_for(
    merchant: Merchant,
    store: Store,
    *,
    amount: int | None = None,
    order_ref: str | None = None,
    terminal: str | None = None,
    provider: str | None = None,
) -> emv.MerchantCode:
    return emv.MerchantCode(
        merchant_id=merchant.public_id,
        store_id=store.public_id,
        mcc=merchant.mcc,
        merchant_name=merchant.name_en,
        merchant_city=merchant.city_en,
        name_zh=merchant.name_zh[:25],
        city_zh=merchant.city_zh,
        amount=amount,
        order_ref=order_ref,
        terminal=terminal,
        provider=provider or None,
    )


def static_code(
    uow: UnitOfWork,
    *,
    merchant_pk: int,
    store_id: str,
    encryptor: Encryptor,
    provider: str | None = None,
) -> str:
    """The reusable EMV payload printed at a store's counter (the resident types the amount);
    ``provider``: this deployment's switch participant id, named in the code."""
    merchant = merchant_by_pk(uow, merchant_pk)
    store = store_row(uow, merchant_pk=merchant_pk, store_id=store_id)
    return emv.build(_code_for(merchant, store, provider=provider), key=qr_key(uow, encryptor))


def _dynamic_code(
    uow: UnitOfWork, order: Order, encryptor: Encryptor, provider: str | None
) -> str | None:
    if order.status != OrderStatus.CREATED or order.store_id is None:
        return None
    merchant = merchant_by_pk(uow, order.merchant_id)
    store = uow.session.get(Store, order.store_id)
    assert store is not None
    terminal = uow.session.get(Terminal, order.terminal_id) if order.terminal_id else None
    code = _code_for(
        merchant,
        store,
        amount=order.amount,
        order_ref=order.public_id,
        terminal=terminal.label if terminal else None,
        provider=provider,
    )
    return emv.build(code, key=qr_key(uow, encryptor))


def _decode(uow: UnitOfWork, payload: str, encryptor: Encryptor) -> emv.MerchantCode:
    try:
        return emv.parse(payload.strip(), key=qr_key(uow, encryptor))
    except emv.EmvError as exc:
        raise InvalidInput(str(exc), code=exc.code) from exc


# --- views --------------------------------------------------------------------------------


def order_view(
    uow: UnitOfWork,
    order: Order,
    encryptor: Encryptor | None = None,
    provider: str | None = None,
) -> OrderView:
    """The merchant's view of an order (with its dynamic code if ``encryptor`` is given,
    naming ``provider``, this deployment's switch participant id, if given)."""
    merchant = merchant_by_pk(uow, order.merchant_id)
    store = uow.session.get(Store, order.store_id) if order.store_id else None
    terminal = uow.session.get(Terminal, order.terminal_id) if order.terminal_id else None
    return OrderView(
        id=order.public_id,
        merchant_id=merchant.public_id,
        store_id=store.public_id if store else None,
        terminal_id=terminal.public_id if terminal else None,
        out_trade_no=order.out_trade_no,
        amount=order.amount,
        currency=order.currency,
        description=order.description,
        channel=order.channel,
        status=order.status,
        fee=order.fee,
        refunded_amount=order.refunded_amount,
        refunded_fee=order.refunded_fee,
        expires_at=order.expires_at,
        paid_at=order.paid_at,
        closed_at=order.closed_at,
        created_at=order.created_at,
        decline_code=order.decline_code,
        qr_payload=_dynamic_code(uow, order, encryptor, provider) if encryptor else None,
    )


def order_data(view: OrderView) -> dict[str, Any]:
    """An order as webhook events carry it."""
    return {
        "object": "order",
        "id": view.id,
        "merchant_id": view.merchant_id,
        "out_trade_no": view.out_trade_no,
        "amount": view.amount,
        "currency": view.currency,
        "status": view.status,
        "channel": view.channel,
        "fee": view.fee,
        "refunded_amount": view.refunded_amount,
        "paid_at": view.paid_at,
        "closed_at": view.closed_at,
    }


def _payment_view(merchant: Merchant, order: Order) -> PaymentView:
    return PaymentView(
        order_id=order.public_id,
        merchant_id=merchant.public_id,
        merchant_name=merchant.name_zh,
        amount=order.amount,
        restricted_amount=order.restricted_amount,
        currency=order.currency,
        status=order.status,
        channel=order.channel or "",
        paid_at=order.paid_at,
    )


# --- orders -------------------------------------------------------------------------------


def order_row(
    uow: UnitOfWork,
    *,
    merchant_pk: int,
    order_id: str | None = None,
    out_trade_no: str | None = None,
    for_update: bool = False,
) -> Order:
    """The merchant's order by our id or its own order number (``order_not_found`` else)."""
    query = select(Order).where(Order.merchant_id == merchant_pk)
    if order_id is not None:
        query = query.where(Order.public_id == order_id)
    elif out_trade_no is not None:
        query = query.where(Order.out_trade_no == out_trade_no)
    else:
        raise InvalidInput("Give the order id or out_trade_no.", code="order_reference_required")
    if for_update:
        query = query.with_for_update().execution_options(populate_existing=True)
    row = uow.session.scalar(query)
    if row is None:
        raise OrderNotFound("No such order.")
    return row


def create_order(
    uow: UnitOfWork,
    *,
    merchant_pk: int,
    out_trade_no: str,
    amount: int,
    encryptor: Encryptor,
    settings: Settings,
    currency: str = CURRENCY,
    description: str = "",
    store_id: str | None = None,
    terminal_id: str | None = None,
    expires_in: int | None = None,
    notify_url: str | None = None,
) -> tuple[OrderView, bool]:
    """Create an order to be paid through its dynamic code; returns (order, created).

    The same ``out_trade_no`` with the same amount and description returns the existing
    order (a merchant's retry); with other values it is refused (``out_trade_no_exists``).
    """
    validate_amount(amount, currency)
    validate_out_no(out_trade_no)
    merchant = merchant_by_pk(uow, merchant_pk)
    require_active(merchant)
    existing = uow.session.scalar(
        select(Order).where(Order.merchant_id == merchant_pk, Order.out_trade_no == out_trade_no)
    )
    if existing is not None:
        same = _same_order(existing, amount, description)
        return order_view(uow, same, encryptor, settings.interop_participant_id or None), False
    ttl = expires_in if expires_in is not None else settings.order_ttl_seconds
    if not 60 <= ttl <= MAX_TTL_SECONDS:
        raise InvalidInput("An order expires in 1 minute to 7 days.", code="invalid_expiry")
    store, terminal = place(uow, merchant_pk, store_id, terminal_id)
    moment = now_us()
    order = Order(
        **new_order(
            merchant_pk=merchant_pk,
            out_trade_no=out_trade_no,
            amount=amount,
            description=description,
            moment=moment,
            expires_at=moment + ttl * SECOND_US,
            notify_url=valid_notify_url(notify_url, settings),
        ),
        store_id=store,
        terminal_id=terminal,
    )
    uow.session.add(order)
    try:
        uow.session.flush()
    except IntegrityError:  # a concurrent create with the same number won
        raise Conflict(
            "An order with this out_trade_no is being created; query it.",
            code="out_trade_no_exists",
        ) from None
    return order_view(uow, order, encryptor, settings.interop_participant_id or None), True


def new_order(
    *,
    merchant_pk: int,
    out_trade_no: str,
    amount: int,
    description: str,
    moment: int,
    expires_at: int,
    status: OrderStatus = OrderStatus.CREATED,
    channel: str | None = None,
    notify_url: str | None = None,
    payer_user_id: str | None = None,
    public_id: str | None = None,
) -> dict[str, Any]:
    """The one factory of an order's row, whoever makes it (a merchant's API order, a static
    code's payment, a payment-code charge): a new id, the cleaned description
    (:func:`~citywallet.merchant.rules.clean_description`), the times. The caller adds the
    store and terminal (ids or subqueries)."""
    return {
        "public_id": public_id or new_id("ord"),
        "merchant_id": merchant_pk,
        "out_trade_no": out_trade_no,
        "amount": amount,
        "currency": CURRENCY,
        "description": clean_description(description),
        "channel": channel,
        "status": status,
        "expires_at": expires_at,
        "notify_url": notify_url,
        "payer_user_id": payer_user_id,
        "created_at": moment,
        "updated_at": moment,
    }


def place_subqueries(
    merchant_pk: int, store_id: str | None, terminal_id: str | None
) -> tuple[Any, Any]:
    """Where an order is made, as scalar subqueries (an order's INSERT embeds them; :func:`place`
    reads them): the store given, or the merchant's first; the terminal given, in that store
    (``None`` without one). The one statement of this rule."""
    stores = select(Store.id).where(Store.merchant_id == merchant_pk)
    if store_id:
        stores = stores.where(Store.public_id == store_id)
    store = stores.order_by(Store.id).limit(1).scalar_subquery()
    if not terminal_id:
        return store, None
    terminal = (
        select(Terminal.id)
        .where(Terminal.public_id == terminal_id, Terminal.store_id == store)
        .scalar_subquery()
    )
    return store, terminal


def place(
    uow: UnitOfWork, merchant_pk: int, store_id: str | None, terminal_id: str | None
) -> tuple[int | None, int | None]:
    """The store and terminal an order is made at (:func:`place_subqueries`), in one
    statement; a store or terminal given that is not the merchant's is refused
    (``store_not_found``, ``terminal_not_found``)."""
    store_q, terminal_q = place_subqueries(merchant_pk, store_id, terminal_id)
    store, terminal = uow.session.execute(
        select(store_q, null() if terminal_q is None else terminal_q)
    ).one()
    if store_id and store is None:
        store_row(uow, merchant_pk=merchant_pk, store_id=store_id)  # says store_not_found
    if terminal_id and store is not None and terminal is None:
        terminal_row(uow, store_pk=store, terminal_id=terminal_id)  # says terminal_not_found
    return store, terminal


def _same_order(order: Order, amount: int, description: str) -> Order:
    if order.amount != amount or order.description != clean_description(description):
        raise Conflict(
            "This out_trade_no belongs to another order (different amount or description).",
            code="out_trade_no_exists",
        )
    return order


def get_order(
    uow: UnitOfWork,
    *,
    merchant_pk: int,
    order_id: str | None = None,
    out_trade_no: str | None = None,
    encryptor: Encryptor | None = None,
    provider: str | None = None,
) -> OrderView:
    """Query an order by either id (its dynamic code naming ``provider``, if given)."""
    row = order_row(uow, merchant_pk=merchant_pk, order_id=order_id, out_trade_no=out_trade_no)
    return order_view(uow, row, encryptor, provider)


def list_orders(
    uow: UnitOfWork, *, merchant_pk: int, limit: int = 20, before: str | None = None
) -> list[OrderView]:
    """The merchant's orders, newest first; ``before`` is the last id of the previous page."""
    query = select(Order).where(Order.merchant_id == merchant_pk)
    if before is not None:
        anchor = order_row(uow, merchant_pk=merchant_pk, order_id=before)
        query = query.where(Order.id < anchor.id)
    rows = uow.session.scalars(query.order_by(Order.id.desc()).limit(max(1, min(limit, 100))))
    return [order_view(uow, r) for r in rows]


def close_order(
    uow: UnitOfWork,
    *,
    merchant_pk: int,
    order_id: str | None = None,
    out_trade_no: str | None = None,
) -> OrderView:
    """Close an unpaid order so it can no longer be paid (closing twice is harmless)."""
    order = order_row(
        uow, merchant_pk=merchant_pk, order_id=order_id, out_trade_no=out_trade_no, for_update=True
    )
    if order.status == OrderStatus.PAID:
        raise Conflict("A paid order cannot be closed; refund it instead.", code="order_paid")
    if order.status != OrderStatus.CLOSED:
        _close(uow, order, now_us())
    return order_view(uow, order)


def _close(uow: UnitOfWork, order: Order, moment: int) -> None:
    order.status, order.closed_at, order.updated_at = OrderStatus.CLOSED, moment, moment
    uow.session.flush()
    merchant = merchant_by_pk(uow, order.merchant_id)
    view = order_view(uow, order)
    webhooks.emit(
        uow,
        merchant=merchant,
        type="order.closed",
        object_id=order.public_id,
        data=order_data(view),
        url=order.notify_url,
    )


def close_expired_orders(uow: UnitOfWork, *, now: int | None = None, limit: int = 500) -> int:
    """Close orders whose time ran out unpaid (a periodic task); returns how many."""
    moment = now if now is not None else now_us()
    rows = uow.session.scalars(
        select(Order)
        .where(
            Order.status.in_((OrderStatus.CREATED, OrderStatus.AWAITING_CONFIRMATION)),
            Order.expires_at <= moment,
            # held by a switch transfer (merchant/interop.py): only the switch's word ends it
            Order.channel.is_distinct_from(INTEROP_CHANNEL),
        )
        .order_by(Order.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    for order in rows:
        _close(uow, order, moment)
    return len(rows)


# --- paying -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    """How a payment's amount is split: restricted money first, then the payer's own,
    less the merchant's fee; the linked ledger legs that move it."""

    draws: list[restricted.Draw]
    own: int
    covered: int
    fee: int
    legs: list[TransferSpec]
    paid_legs: list[str]


def plan_payment(
    uow: UnitOfWork,
    *,
    payer: Party,
    merchant: MerchantFacts,
    order_id: str,
    amount: int,
    moment: int,
) -> _Plan:
    """Plan a payment of ``amount`` (restricted balances are read and locked only for a
    payer who holds any)."""
    if payer.user.id == merchant.owner_user_id:
        raise InvalidInput("You cannot pay your own merchant.", code="cannot_pay_self")
    draws = (
        restricted.plan_spend(
            uow, user_id=payer.user.id, shop=merchant.shop, amount=amount, moment=moment
        )
        if payer.has_restricted
        else []
    )
    covered = sum(d.amount for d in draws)
    own = amount - covered
    fee = fee_for(amount, merchant.fee_rate_bp)

    def leg(suffix: str, debit: int, credit: int, part: int, code: TransferCode) -> TransferSpec:
        return TransferSpec(
            id=f"{order_id}.{suffix}",
            debit_account_id=debit,
            credit_account_id=credit,
            amount=part,
            ledger=CURRENCY,
            code=code,
            reference=order_id,
        )

    receivable = merchant.receivable_account_id
    legs = [
        leg(f"rp{i}", d.account_id, receivable, d.amount, TransferCode.PAYMENT)
        for i, d in enumerate(draws)
    ]
    if own:
        legs.append(leg("pay", payer.account_id, receivable, own, TransferCode.PAYMENT))
    paid_legs = [x.id for x in legs]
    if fee:
        legs.append(leg("fee", receivable, merchant.fee_account_id, fee, TransferCode.FEE))
    return _Plan(draws, own, covered, fee, linked(legs), paid_legs)


def settle_payment(
    uow: UnitOfWork,
    *,
    plan: _Plan,
    payer: Party,
    merchant: MerchantFacts,
    order: PaidOrder,
    settings: Settings,
    moment: int,
    caps: dict[str, int] | None = None,
) -> None:
    """The rest of a payment whose order row this transaction has just moved to ``paid``:
    count the limits (one upsert; ``caps``: further daily caps counted with the whole
    amount), remember restricted spending, the payer's history line, the merchant's
    webhook event (only when it has a URL), and last the ledger post (the merchant's
    accounts are locked from there to the commit)."""
    if plan.own or caps:  # tier limits count the payer's own money, not a campaign's
        reserve_outflow(
            uow,
            user_id=payer.user.id,
            tier=payer.user.tier,
            amount=plan.own,
            settings=settings,
            moment=moment,
            caps=caps,
            capped_amount=order.amount,
        )
    if plan.draws:
        restricted.record_spend(
            uow,
            draws=plan.draws,
            transfer_ids=plan.paid_legs[: len(plan.draws)],
            payment_ref=order.id,
            shop=merchant.shop,
            own_amount=plan.own,
            moment=moment,
        )
    history.record(
        uow,
        user_id=payer.user.id,
        object_id=order.id,
        kind="merchant_payment",
        amount=order.amount,
        currency=CURRENCY,
        status="succeeded",
        transfer_ids=plan.paid_legs,
        counterparty_label=merchant.name_zh,
        note=order.description[:100],
        reference=merchant.public_id,
    )
    if order.notify_url or merchant.notify_url:
        webhooks.emit(
            uow,
            merchant=merchant,
            type="payment.succeeded",
            object_id=order.id,
            data=order_data(order.view(merchant, plan.fee)),
            url=order.notify_url,
        )
    results = ledger.post(uow, transfers=plan.legs, fresh=True)
    if Result.EXCEEDS_CREDITS in results:
        covered = plan.covered
        part = f" (the {Money(covered)} red-packet balance covers the rest)" if covered else ""
        raise InsufficientBalance(
            f"The wallet's available balance does not cover {Money(plan.own)}{part}."
        )
    if not all(r.on_books for r in results):
        raise RuntimeError(f"ledger refused payment of {order.id}: {results}")


@dataclass(frozen=True)
class PaidOrder:
    """An order as the statement that marked it paid returned it."""

    id: str
    amount: int
    description: str
    out_trade_no: str
    notify_url: str | None
    channel: str
    paid_at: int
    created_at: int
    expires_at: int
    store_id: str | None = None
    terminal_id: str | None = None

    def view(self, merchant: MerchantFacts, fee: int) -> OrderView:
        """The merchant's view of it (for its webhook event)."""
        return OrderView(
            id=self.id,
            merchant_id=merchant.public_id,
            store_id=self.store_id,
            terminal_id=self.terminal_id,
            out_trade_no=self.out_trade_no,
            amount=self.amount,
            currency=CURRENCY,
            description=self.description,
            channel=self.channel,
            status=OrderStatus.PAID,
            fee=fee,
            refunded_amount=0,
            refunded_fee=0,
            expires_at=self.expires_at,
            paid_at=self.paid_at,
            closed_at=None,
            created_at=self.created_at,
            decline_code=None,
            qr_payload=None,
        )


def paid_values(plan: _Plan, payer: Party, channel: str, moment: int) -> dict[str, Any]:
    return {
        "status": OrderStatus.PAID,
        "channel": channel,
        "payer_user_id": payer.user.id,
        "fee": plan.fee,
        "restricted_amount": plan.covered,
        "transfer_ids": json.dumps([leg.id for leg in plan.legs]),
        "decline_code": None,
        "paid_at": moment,
        "updated_at": moment,
    }


def _active(merchant_pk: int) -> Any:
    return exists().where(Merchant.id == merchant_pk, Merchant.status == "active")


def pay_order(
    uow: UnitOfWork,
    *,
    order: Order,
    merchant: Merchant,
    payer: UserView,
    channel: str,
    settings: Settings,
    extra_usage: dict[str, int] | None = None,
    pin: str | None = None,
    encryptor: Encryptor | None = None,
) -> None:
    """Pay an order this transaction holds locked (a payment-code charge): the payer's
    wallet is locked here (and their ``pin`` checked, if given), then as :func:`pay_scan`."""
    require_active(merchant)
    party, _ = lock_parties(uow, user_id=payer.id, pin=pin, encryptor=encryptor)
    facts = merchant_facts(uow, merchant_id=merchant.public_id)
    moment = now_us()
    plan = plan_payment(
        uow, payer=party, merchant=facts, order_id=order.public_id, amount=order.amount,
        moment=moment,
    )  # fmt: skip
    for name, value in paid_values(plan, party, channel, moment).items():
        setattr(order, name, value)
    uow.session.flush()
    paid = PaidOrder(
        order.public_id, order.amount, order.description, order.out_trade_no, order.notify_url,
        channel, moment, order.created_at, order.expires_at,
    )  # fmt: skip
    settle_payment(
        uow, plan=plan, payer=party, merchant=facts, order=paid, settings=settings,
        moment=moment, caps=extra_usage,
    )  # fmt: skip


def linked(legs: list[TransferSpec]) -> list[TransferSpec]:
    """The legs as one linked chain: every leg but the last carries ``LINKED``."""
    return [
        replace(leg, flags=leg.flags | TransferFlags.LINKED) if i < len(legs) - 1 else leg
        for i, leg in enumerate(legs)
    ]


def day_key(prefix: str, moment: int) -> str:
    """A usage-row key for the Beijing-time day of ``moment`` (``sq:2026-11-23``)."""
    local = datetime.fromtimestamp(moment / SECOND_US, tz=UTC).astimezone(CHINA)
    return f"{prefix}:{local:%Y-%m-%d}"


# --- residents scanning a merchant's code -------------------------------------------------


def preview_scan(
    uow: UnitOfWork, *, user_id: str, payload: str, encryptor: Encryptor
) -> ScanPreview:
    """Decode a scanned code and show whom the resident would pay, and how much."""
    active_user(uow, user_id)
    code = _decode(uow, payload, encryptor)
    merchant = merchant_by_public_id(uow, code.merchant_id)
    require_active(merchant)
    store = store_row(uow, merchant_pk=merchant.id, store_id=code.store_id)
    order = None
    if code.order_ref is not None:
        order = payable_order(uow, merchant.id, code, now_us())
    usable = restricted.usable_amount(
        uow,
        user_id=user_id,
        shop=shop_of(merchant),
        amount=order.amount if order else MAX_PREVIEW_AMOUNT,
        moment=now_us(),
    )
    return ScanPreview(
        kind="dynamic" if order else "static",
        merchant_id=merchant.public_id,
        merchant_name=merchant.name_zh,
        merchant_name_en=merchant.name_en,
        store_name=store.name,
        amount=order.amount if order else None,
        currency=CURRENCY,
        order_id=order.public_id if order else None,
        description=order.description if order else "",
        restricted_usable=usable,
    )


def foreign_code(payload: str, *, participant_id: str) -> emv.MerchantCode | None:
    """The scanned code if it is a CityWallet-scheme code of *another* provider (to pay
    through the switch), else ``None`` (ours, or not readable: :func:`pay_scan` says why).
    Its fields are not authenticated here; the merchant's provider checks them."""
    try:
        code = emv.parse_public(payload.strip())
    except emv.EmvError:
        return None
    return code if emv.is_foreign(code, participant_id) else None


def foreign_preview(code: emv.MerchantCode) -> ScanPreview:
    """What a resident sees of another provider's code before paying it (its own words,
    checked by the merchant's provider when the payment is quoted)."""
    return ScanPreview(
        kind="dynamic" if code.dynamic else "static",
        merchant_id=code.merchant_id,
        merchant_name=code.name_zh or code.merchant_name,
        merchant_name_en=code.merchant_name,
        store_name="",
        amount=code.amount,
        currency=CURRENCY,
        order_id=code.order_ref,
        description="",
        restricted_usable=0,  # campaign money is spent at this provider's merchants only
        provider=code.provider,
    )


def payable_order(uow: UnitOfWork, merchant_pk: int, code: emv.MerchantCode, moment: int) -> Order:
    """The code's order, refusing one that cannot be paid (``qr_tampered``,
    ``order_paid``, ``order_closed``, ``order_expired``)."""
    assert code.order_ref is not None
    order = order_row(uow, merchant_pk=merchant_pk, order_id=code.order_ref)
    if order.amount != code.amount:
        raise InvalidInput("This code does not match its order.", code="qr_tampered")
    if order.status == OrderStatus.PAID:
        raise OrderNotPayable("This order is paid already.", code="order_paid")
    if order.status != OrderStatus.CREATED:
        raise OrderNotPayable("This order is closed.", code="order_closed")
    if order.expires_at <= moment:
        raise OrderNotPayable("This order has expired.", code="order_expired")
    return order


def pay_scan(
    uow: UnitOfWork,
    *,
    user_id: str,
    payload: str,
    encryptor: Encryptor,
    settings: Settings,
    amount: int | None = None,
    note: str = "",
    pin: str | None = None,
) -> PaymentView:
    """Pay a scanned merchant code: a dynamic code pays its order, a static code pays
    ``amount`` into a new order of that store. With ``pin``, the payment PIN is checked in
    this transaction (run it with ``identity.run_confirmed``); without, it was before.

    One transaction, and on the common path (a payer without restricted money, a merchant
    without a webhook URL) these statements: the payer with PIN and wallet lock; the order
    moved to ``paid`` (dynamic: an UPDATE that also checks amount, expiry and the
    merchant's status; static: an INSERT that checks the merchant and store); the usage
    upsert; the ledger's account lock and write; the history line. A refusal reads more
    to say why, after the fact."""
    payer, _ = lock_parties(uow, user_id=user_id, pin=pin, encryptor=encryptor)
    code = _decode(uow, payload, encryptor)
    merchant = merchant_facts(uow, merchant_id=code.merchant_id)
    moment = now_us()
    if code.order_ref is not None:
        if amount is not None and amount != code.amount:
            raise InvalidInput("This code's order fixes the amount.", code="amount_mismatch")
        assert code.amount is not None
        plan = plan_payment(
            uow, payer=payer, merchant=merchant, order_id=code.order_ref, amount=code.amount,
            moment=moment,
        )  # fmt: skip
        paid = _claim_dynamic(uow, merchant, code, plan, payer, moment)
    else:
        if amount is None:
            raise InvalidInput("Enter the amount to pay at this counter.", code="amount_required")
        validate_amount(amount, CURRENCY)
        order_id = new_id("ord")
        plan = plan_payment(
            uow, payer=payer, merchant=merchant, order_id=order_id, amount=amount,
            moment=moment,
        )  # fmt: skip
        paid = _insert_static(uow, merchant, code, plan, payer, order_id, amount, note, moment)
    caps = None if code.order_ref else {day_key("sq", moment): settings.static_qr_daily_cap}
    settle_payment(
        uow, plan=plan, payer=payer, merchant=merchant, order=paid, settings=settings,
        moment=moment, caps=caps,
    )  # fmt: skip
    return PaymentView(
        order_id=paid.id,
        merchant_id=merchant.public_id,
        merchant_name=merchant.name_zh,
        amount=paid.amount,
        restricted_amount=plan.covered,
        currency=CURRENCY,
        status=OrderStatus.PAID,
        channel=paid.channel,
        paid_at=moment,
    )


# One fixed statement, sent at the driver's level (every scan payment runs it): the order
# moves from created to paid only if it is this merchant's, unpaid, of the code's amount,
# unexpired, and the merchant may take payments. The SET columns are _PAID_COLUMNS, in order.
_PAID_COLUMNS = (
    "status", "channel", "payer_user_id", "fee", "restricted_amount", "transfer_ids",
    "decline_code", "paid_at", "updated_at",
)  # fmt: skip
_CLAIM_DYNAMIC = DriverSql(
    "UPDATE merchant_orders SET status = ?, channel = ?, payer_user_id = ?, fee = ?, "
    "restricted_amount = ?, transfer_ids = ?, decline_code = ?, paid_at = ?, updated_at = ? "
    "WHERE public_id = ? AND merchant_id = ? AND status = ? AND amount = ? AND expires_at > ? "
    "AND EXISTS (SELECT 1 FROM merchant_merchants WHERE id = ? AND status = 'active') "
    "RETURNING description, out_trade_no, notify_url, created_at, expires_at"
)


def _claim_dynamic(
    uow: UnitOfWork,
    merchant: MerchantFacts,
    code: emv.MerchantCode,
    plan: _Plan,
    payer: Party,
    moment: int,
) -> PaidOrder:
    """Move the code's order from ``created`` to ``paid`` in one UPDATE that checks its
    amount, expiry and merchant; when it matches nothing, say why."""
    values = paid_values(plan, payer, "dynamic_qr", moment)
    where = (code.order_ref, merchant.id, OrderStatus.CREATED, code.amount, moment, merchant.id)
    row = _CLAIM_DYNAMIC.run(uow, (*(values[c] for c in _PAID_COLUMNS), *where)).first()
    if row is None:
        require_active(merchant_by_pk(uow, merchant.id))
        payable_order(uow, merchant.id, code, moment)
        raise OrderNotPayable("This order cannot be paid now.", code="order_closed")
    assert code.order_ref is not None
    assert code.amount is not None
    return PaidOrder(
        code.order_ref, code.amount, row.description, row.out_trade_no, row.notify_url,
        "dynamic_qr", moment, row.created_at, row.expires_at,
    )  # fmt: skip


def _insert_static(
    uow: UnitOfWork,
    merchant: MerchantFacts,
    code: emv.MerchantCode,
    plan: _Plan,
    payer: Party,
    order_id: str,
    amount: int,
    note: str,
    moment: int,
) -> PaidOrder:
    """A static code's order, inserted already ``paid`` by one INSERT … SELECT that checks
    the merchant is active and the store is its own; when it inserts nothing, say why."""
    store, _ = place_subqueries(merchant.id, code.store_id, None)
    values = new_order(
        public_id=order_id,
        merchant_pk=merchant.id,
        out_trade_no=f"SQ{moment}{secrets.randbelow(10**6):06d}",
        amount=amount,
        description=note,
        moment=moment,
        expires_at=moment,
    ) | paid_values(plan, payer, "static_qr", moment)
    if insert_order(uow, values, store=store) is None:
        require_active(merchant_by_pk(uow, merchant.id))
        store_row(uow, merchant_pk=merchant.id, store_id=code.store_id)
        raise AssertionError("the static order was not inserted")  # pragma: no cover
    return PaidOrder(
        order_id, amount, values["description"], values["out_trade_no"], None, "static_qr",
        moment, moment, moment, code.store_id,
    )  # fmt: skip


def insert_order(
    uow: UnitOfWork,
    values: dict[str, Any],
    *,
    store: Any,
    terminal: Any = None,
    on_conflict_nothing: bool = False,
) -> int | None:
    """Insert an order row (from :func:`new_order`) in one INSERT … SELECT that inserts
    nothing unless its merchant is active and its store (and terminal, if given: scalar
    subqueries) exist; with ``on_conflict_nothing`` a taken ``out_trade_no`` inserts
    nothing too. Returns its key, or ``None`` when nothing was inserted."""
    columns = Order.__table__.c
    cells = [literal(v, columns[k].type) for k, v in values.items()]
    source = select(*cells, store, terminal if terminal is not None else literal(None))
    source = source.where(_active(values["merchant_id"]), store.is_not(None))
    if terminal is not None:
        source = source.where(terminal.is_not(None))
    dialect_insert = pg_insert if uow.dialect == "postgresql" else sqlite_insert
    statement = dialect_insert(Order).from_select([*values, "store_id", "terminal_id"], source)
    if on_conflict_nothing:
        statement = statement.on_conflict_do_nothing(index_elements=["merchant_id", "out_trade_no"])
    row = uow.session.connection().execute(statement.returning(Order.id)).first()
    return None if row is None else int(row[0])


def resident_payment(uow: UnitOfWork, *, user_id: str, order_id: str) -> PaymentView:
    """A payment the resident made (or is asked to confirm), by order id."""
    order = uow.session.scalar(
        select(Order).where(Order.public_id == order_id, Order.payer_user_id == user_id)
    )
    if order is None:
        raise OrderNotFound("No such payment.")
    return _payment_view(merchant_by_pk(uow, order.merchant_id), order)
