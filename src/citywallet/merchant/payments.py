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

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from citywallet.identity.service import UserView
from citywallet.ledger import service as ledger
from citywallet.ledger.types import Result, TransferCode, TransferFlags, TransferSpec
from citywallet.merchant import emv, webhooks
from citywallet.merchant.errors import OrderNotFound, OrderNotPayable
from citywallet.merchant.models import Merchant, Order, Store, Terminal
from citywallet.merchant.onboarding import (
    merchant_by_pk,
    merchant_by_public_id,
    require_active,
    store_row,
    terminal_row,
    valid_notify_url,
)
from citywallet.merchant.rules import fee_for, validate_out_no
from citywallet.money import Money
from citywallet.platform.clock import now_us
from citywallet.platform.config import Settings
from citywallet.platform.crypto import Encryptor, get_or_create_secret
from citywallet.platform.db import UnitOfWork
from citywallet.platform.errors import Conflict, InvalidInput
from citywallet.wallet import accounts, history, restricted
from citywallet.wallet.accounts import CURRENCY
from citywallet.wallet.errors import InsufficientBalance, LimitExceeded
from citywallet.wallet.funding import validate_amount
from citywallet.wallet.limits import reserve_outflow
from citywallet.wallet.people import active_user, new_id
from citywallet.wallet.rules import CHINA, Shop

SECOND_US = 1_000_000
MAX_TTL_SECONDS = 7 * 24 * 3600
QR_KEY_NAME = "merchant.qr_mac"
MAX_PREVIEW_AMOUNT = 10**12  # a static code's amount is not known yet: show all usable


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


def qr_key(uow: UnitOfWork, encryptor: Encryptor) -> bytes:
    """The platform's key that authenticates the merchant codes it prints."""
    secret, _ = get_or_create_secret(
        uow, encryptor, name=QR_KEY_NAME, create=lambda: (secrets.token_bytes(32), None)
    )
    return secret


def _code_for(
    merchant: Merchant,
    store: Store,
    *,
    amount: int | None = None,
    order_ref: str | None = None,
    terminal: str | None = None,
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
    )


def static_code(uow: UnitOfWork, *, merchant_pk: int, store_id: str, encryptor: Encryptor) -> str:
    """The reusable EMV payload printed at a store's counter (the resident types the amount)."""
    merchant = merchant_by_pk(uow, merchant_pk)
    store = store_row(uow, merchant_pk=merchant_pk, store_id=store_id)
    return emv.build(_code_for(merchant, store), key=qr_key(uow, encryptor))


def _dynamic_code(uow: UnitOfWork, order: Order, encryptor: Encryptor) -> str | None:
    if order.status != "created" or order.store_id is None:
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
    )
    return emv.build(code, key=qr_key(uow, encryptor))


def _decode(uow: UnitOfWork, payload: str, encryptor: Encryptor) -> emv.MerchantCode:
    try:
        return emv.parse(payload.strip(), key=qr_key(uow, encryptor))
    except emv.EmvError as exc:
        raise InvalidInput(str(exc), code=exc.code) from exc


# --- views --------------------------------------------------------------------------------


def order_view(uow: UnitOfWork, order: Order, encryptor: Encryptor | None = None) -> OrderView:
    """The merchant's view of an order (with its dynamic code if ``encryptor`` is given)."""
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
        qr_payload=_dynamic_code(uow, order, encryptor) if encryptor else None,
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
        return _same_order(uow, existing, amount, description, encryptor), False
    ttl = expires_in if expires_in is not None else settings.order_ttl_seconds
    if not 60 <= ttl <= MAX_TTL_SECONDS:
        raise InvalidInput("An order expires in 1 minute to 7 days.", code="invalid_expiry")
    if len(description) > 128:
        raise InvalidInput("A description has at most 128 characters.", code="invalid_description")
    store = (
        store_row(uow, merchant_pk=merchant_pk, store_id=store_id)
        if store_id
        else uow.session.scalar(
            select(Store).where(Store.merchant_id == merchant_pk).order_by(Store.id).limit(1)
        )
    )
    terminal = (
        terminal_row(uow, store_pk=store.id, terminal_id=terminal_id)
        if terminal_id and store
        else None
    )
    moment = now_us()
    order = Order(
        public_id=new_id("ord"),
        merchant_id=merchant_pk,
        store_id=store.id if store else None,
        terminal_id=terminal.id if terminal else None,
        out_trade_no=out_trade_no,
        amount=amount,
        currency=CURRENCY,
        description=description.strip(),
        channel=None,
        status="created",
        expires_at=moment + ttl * SECOND_US,
        notify_url=valid_notify_url(notify_url, settings),
        created_at=moment,
        updated_at=moment,
    )
    uow.session.add(order)
    try:
        uow.session.flush()
    except IntegrityError:  # a concurrent create with the same number won
        raise Conflict(
            "An order with this out_trade_no is being created; query it.",
            code="out_trade_no_exists",
        ) from None
    return order_view(uow, order, encryptor), True


def _same_order(
    uow: UnitOfWork, order: Order, amount: int, description: str, encryptor: Encryptor
) -> OrderView:
    if order.amount != amount or order.description != description.strip():
        raise Conflict(
            "This out_trade_no belongs to another order (different amount or description).",
            code="out_trade_no_exists",
        )
    return order_view(uow, order, encryptor)


def get_order(
    uow: UnitOfWork,
    *,
    merchant_pk: int,
    order_id: str | None = None,
    out_trade_no: str | None = None,
    encryptor: Encryptor | None = None,
) -> OrderView:
    """Query an order by either id."""
    row = order_row(uow, merchant_pk=merchant_pk, order_id=order_id, out_trade_no=out_trade_no)
    return order_view(uow, row, encryptor)


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
    if order.status == "paid":
        raise Conflict("A paid order cannot be closed; refund it instead.", code="order_paid")
    if order.status != "closed":
        _close(uow, order, now_us())
    return order_view(uow, order)


def _close(uow: UnitOfWork, order: Order, moment: int) -> None:
    order.status, order.closed_at, order.updated_at = "closed", moment, moment
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
            Order.status.in_(("created", "awaiting_confirmation")),
            Order.expires_at <= moment,
        )
        .order_by(Order.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    for order in rows:
        _close(uow, order, moment)
    return len(rows)


# --- paying -------------------------------------------------------------------------------


def pay_order(
    uow: UnitOfWork,
    *,
    order: Order,
    merchant: Merchant,
    payer: UserView,
    channel: str,
    settings: Settings,
    extra_usage: dict[str, int] | None = None,
) -> None:
    """Move the order's amount from the payer to the merchant, less the fee (order locked).

    ``extra_usage`` counts the amount in further usage rows (static-code cap, password-free
    allowance) under the same locks; each entry maps a period key to its cap.
    """
    require_active(merchant)
    if payer.id == merchant.owner_user_id:
        raise InvalidInput("You cannot pay your own merchant.", code="cannot_pay_self")
    moment = now_us()
    wallets = accounts.lock_wallets(uow, user_ids=[payer.id])
    shop = shop_of(merchant)
    draws = restricted.plan_spend(
        uow, user_id=payer.id, shop=shop, amount=order.amount, moment=moment
    )
    covered = sum(d.amount for d in draws)
    own = order.amount - covered
    if own:  # tier limits count the payer's own money, not a campaign's
        reserve_outflow(
            uow, user_id=payer.id, tier=payer.tier, amount=own, settings=settings, moment=moment
        )
    if extra_usage:
        _count_extra(uow, payer.id, order.amount, extra_usage)
    fee = fee_for(order.amount, merchant.fee_rate_bp)
    legs = [
        TransferSpec(
            id=f"{order.public_id}.rp{index}",
            debit_account_id=draw.account_id,
            credit_account_id=merchant.receivable_account_id,
            amount=draw.amount,
            ledger=CURRENCY,
            code=TransferCode.PAYMENT,
            reference=order.public_id,
        )
        for index, draw in enumerate(draws)
    ]
    if own:
        legs.append(
            TransferSpec(
                id=f"{order.public_id}.pay",
                debit_account_id=wallets[payer.id],
                credit_account_id=merchant.receivable_account_id,
                amount=own,
                ledger=CURRENCY,
                code=TransferCode.PAYMENT,
                reference=order.public_id,
            )
        )
    paid_legs = [leg.id for leg in legs]
    if fee:
        legs.append(
            TransferSpec(
                id=f"{order.public_id}.fee",
                debit_account_id=merchant.receivable_account_id,
                credit_account_id=merchant.fee_account_id,
                amount=fee,
                ledger=CURRENCY,
                code=TransferCode.FEE,
                reference=order.public_id,
            )
        )
    legs = linked(legs)
    restricted.record_spend(
        uow,
        draws=draws,
        transfer_ids=paid_legs[: len(draws)],
        payment_ref=order.public_id,
        shop=shop,
        own_amount=own,
        moment=moment,
    )
    order.restricted_amount = covered
    order.status, order.channel, order.payer_user_id = "paid", channel, payer.id
    order.fee, order.paid_at, order.updated_at = fee, moment, moment
    order.decline_code = None
    order.transfer_ids = json.dumps([leg.id for leg in legs])
    history.record(
        uow,
        user_id=payer.id,
        object_id=order.public_id,
        kind="merchant_payment",
        amount=order.amount,
        currency=CURRENCY,
        status="succeeded",
        transfer_ids=paid_legs,
        counterparty_label=merchant.name_zh,
        note=order.description[:100],
        reference=merchant.public_id,
    )
    uow.session.flush()
    webhooks.emit(
        uow,
        merchant=merchant,
        type="payment.succeeded",
        object_id=order.public_id,
        data=order_data(order_view(uow, order)),
        url=order.notify_url,
    )
    # Last: the merchant's accounts are locked from here to the commit, so every other
    # write of this payment is already done (a refusal rolls them all back).
    results = ledger.post(uow, transfers=legs)
    if Result.EXCEEDS_CREDITS in results:
        part = f" (the {Money(covered)} red-packet balance covers the rest)" if covered else ""
        raise InsufficientBalance(
            f"The wallet's available balance does not cover {Money(own)}{part}."
        )
    if not all(r.on_books for r in results):
        raise RuntimeError(f"ledger refused payment of {order.public_id}: {results}")


def linked(legs: list[TransferSpec]) -> list[TransferSpec]:
    """The legs as one linked chain: every leg but the last carries ``LINKED``."""
    return [
        replace(leg, flags=leg.flags | TransferFlags.LINKED) if i < len(legs) - 1 else leg
        for i, leg in enumerate(legs)
    ]


def _count_extra(uow: UnitOfWork, user_id: str, amount: int, caps: dict[str, int]) -> None:
    rows = accounts.lock_usage(uow, user_id=user_id, periods=sorted(caps))
    for period, cap in caps.items():
        if rows.get(period, 0) + amount > cap:
            left = max(0, cap - rows.get(period, 0))
            raise LimitExceeded(
                f"Static merchant codes may take at most {Money(cap)} a day from you "
                f"({Money(left)} left today); scan the merchant's order code instead.",
                code="static_code_limit_exceeded",
                left=left,
            )
    accounts.add_usage(uow, user_id=user_id, changes=dict.fromkeys(caps, amount))


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
        order = _payable_order(uow, merchant, code, for_update=False)
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


def _payable_order(
    uow: UnitOfWork, merchant: Merchant, code: emv.MerchantCode, *, for_update: bool
) -> Order:
    assert code.order_ref is not None
    order = order_row(uow, merchant_pk=merchant.id, order_id=code.order_ref, for_update=for_update)
    if order.amount != code.amount:
        raise InvalidInput("This code does not match its order.", code="qr_tampered")
    if order.status == "paid":
        raise OrderNotPayable("This order is paid already.", code="order_paid")
    if order.status != "created":
        raise OrderNotPayable("This order is closed.", code="order_closed")
    if order.expires_at <= now_us():
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
) -> PaymentView:
    """Pay a scanned merchant code (PIN confirmed before): a dynamic code pays its order, a
    static code pays ``amount`` into a new order of that store."""
    payer = active_user(uow, user_id)
    code = _decode(uow, payload, encryptor)
    merchant = merchant_by_public_id(uow, code.merchant_id)
    require_active(merchant)
    if code.order_ref is not None:
        if amount is not None and amount != code.amount:
            raise InvalidInput("This code's order fixes the amount.", code="amount_mismatch")
        order = _payable_order(uow, merchant, code, for_update=True)
        pay_order(
            uow,
            order=order,
            merchant=merchant,
            payer=payer,
            channel="dynamic_qr",
            settings=settings,
        )
        return _payment_view(merchant, order)
    if amount is None:
        raise InvalidInput("Enter the amount to pay at this counter.", code="amount_required")
    validate_amount(amount, CURRENCY)
    store = store_row(uow, merchant_pk=merchant.id, store_id=code.store_id)
    moment = now_us()
    order = Order(
        public_id=new_id("ord"),
        merchant_id=merchant.id,
        store_id=store.id,
        out_trade_no=f"SQ{moment}{secrets.randbelow(10**6):06d}",
        amount=amount,
        currency=CURRENCY,
        description=" ".join(note.split())[:128],
        status="created",
        expires_at=moment,
        created_at=moment,
        updated_at=moment,
    )
    uow.session.add(order)
    uow.session.flush()
    pay_order(
        uow,
        order=order,
        merchant=merchant,
        payer=payer,
        channel="static_qr",
        settings=settings,
        extra_usage={day_key("sq", moment): settings.static_qr_daily_cap},
    )
    return _payment_view(merchant, order)


def resident_payment(uow: UnitOfWork, *, user_id: str, order_id: str) -> PaymentView:
    """A payment the resident made (or is asked to confirm), by order id."""
    order = uow.session.scalar(
        select(Order).where(Order.public_id == order_id, Order.payer_user_id == user_id)
    )
    if order is None:
        raise OrderNotFound("No such payment.")
    return _payment_view(merchant_by_pk(uow, order.merchant_id), order)
