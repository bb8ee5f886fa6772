"""Customer-presented payment codes: devices, password-free limits, POS charges, confirmation.

A resident's device holds a secret and shows a 19-digit code (``paycode``: our prefix,
the device's slot, a time-based one-time number, a Luhn digit) that it can compute
offline. The merchant's POS scans it and charges. Codes are single use: a device's
highest paid time step is remembered and a code must be newer. Wrong codes count against
the device's slot and lock it for a while, so a POS cannot guess its way in.

Small charges (within the resident's per-payment and per-day password-free limits) are
paid at once; larger ones wait, for ``paycode_confirm_seconds``, for the resident to confirm
with the PIN in the app; the POS polls the order or receives the webhook.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from citywallet.identity.errors import AccountFrozen
from citywallet.identity.service import get_user
from citywallet.merchant import paycode
from citywallet.merchant.errors import OrderNotFound, OrderNotPayable
from citywallet.merchant.models import Order, PaycodeDevice, PaycodePrefs, Store
from citywallet.merchant.onboarding import (
    merchant_by_pk,
    require_active,
    store_row,
    terminal_row,
    valid_notify_url,
)
from citywallet.merchant.payments import (
    OrderView,
    PaymentView,
    _close,
    _payment_view,
    day_key,
    order_view,
    pay_order,
)
from citywallet.merchant.rules import validate_out_no
from citywallet.platform.clock import now_us
from citywallet.platform.config import Settings
from citywallet.platform.crypto import Encryptor
from citywallet.platform.db import Database, UnitOfWork
from citywallet.platform.errors import Conflict, DomainError, InvalidInput, NotFound
from citywallet.wallet.accounts import CURRENCY, read_usage
from citywallet.wallet.errors import InsufficientBalance, LimitExceeded
from citywallet.wallet.funding import validate_amount
from citywallet.wallet.people import active_user, new_id

SECOND_US = 1_000_000
LOCK_SECONDS = 600
MAX_DEVICES = 5


class PaymentDeclined(DomainError):
    """The payment code cannot pay this charge; ``reason`` says why (a stable code)."""

    code = "payment_declined"
    status = 402
    title = "Payment declined"


class _CodeRejected(Exception):
    """A wrong or reused code: counted against the device after the charge rolls back."""

    def __init__(self, device_pk: int | None, reason: str) -> None:
        super().__init__(reason)
        self.device_pk = device_pk
        self.reason = reason


@dataclass(frozen=True)
class DeviceView:
    """A device registered to show payment codes."""

    id: str
    label: str
    status: str
    created_at: int


@dataclass(frozen=True)
class NewDevice:
    """A device just registered: the app keeps ``secret`` and ``slot`` to make codes offline."""

    device: DeviceView
    secret: str
    slot: str


@dataclass(frozen=True)
class CodeView:
    """A code to show now, and when it stops being valid."""

    code: str
    valid_until: int  # microseconds


@dataclass(frozen=True)
class Prefs:
    """The resident's password-free limits for payment codes."""

    enabled: bool
    per_payment: int
    per_day: int
    used_today: int


def _device_view(row: PaycodeDevice) -> DeviceView:
    return DeviceView(row.public_id, row.label, row.status, row.created_at)


def register_device(
    uow: UnitOfWork, *, user_id: str, label: str, encryptor: Encryptor
) -> NewDevice:
    """Register a device to show payment codes (its secret is returned this once)."""
    active_user(uow, user_id)
    active = uow.session.scalars(
        select(PaycodeDevice.id).where(
            PaycodeDevice.user_id == user_id, PaycodeDevice.status == "active"
        )
    ).all()
    if len(active) >= MAX_DEVICES:
        raise Conflict(
            f"At most {MAX_DEVICES} devices show payment codes; remove one first.",
            code="too_many_devices",
        )
    public_id, secret = new_id("dev"), paycode.new_secret()
    for _ in range(5):  # slots are random; a clash is rare and simply retried
        slot = paycode.new_slot()
        if uow.session.scalar(select(PaycodeDevice.id).where(PaycodeDevice.slot == slot)) is None:
            break
    row = PaycodeDevice(
        public_id=public_id,
        user_id=user_id,
        label=" ".join(label.split())[:60],
        slot=slot,
        secret_enc=encryptor.encrypt(secret.encode(), aad=public_id.encode()),
        last_counter=0,
        failures=0,
        status="active",
        created_at=now_us(),
    )
    uow.session.add(row)
    uow.session.flush()
    return NewDevice(_device_view(row), secret, slot)


def _device_row(uow: UnitOfWork, *, user_id: str, device_id: str) -> PaycodeDevice:
    row = uow.session.scalar(
        select(PaycodeDevice).where(
            PaycodeDevice.public_id == device_id, PaycodeDevice.user_id == user_id
        )
    )
    if row is None:
        raise NotFound("No such device.", code="device_not_found")
    return row


def list_devices(uow: UnitOfWork, *, user_id: str) -> list[DeviceView]:
    """The resident's payment-code devices, newest first."""
    rows = uow.session.scalars(
        select(PaycodeDevice)
        .where(PaycodeDevice.user_id == user_id)
        .order_by(PaycodeDevice.id.desc())
    )
    return [_device_view(r) for r in rows]


def revoke_device(uow: UnitOfWork, *, user_id: str, device_id: str) -> DeviceView:
    """Stop accepting a device's codes (a lost phone)."""
    row = _device_row(uow, user_id=user_id, device_id=device_id)
    row.status = "revoked"
    uow.session.flush()
    return _device_view(row)


def current_code(
    uow: UnitOfWork, *, user_id: str, device_id: str, encryptor: Encryptor, at: float | None = None
) -> CodeView:
    """The code a device shows now (what the app computes offline, for the web app)."""
    row = _device_row(uow, user_id=user_id, device_id=device_id)
    if row.status != "active":
        raise Conflict("This device was removed.", code="device_revoked")
    moment = at if at is not None else now_us() / SECOND_US
    step = max(int(moment // paycode.STEP_SECONDS), row.last_counter + 1)
    secret = encryptor.decrypt(row.secret_enc, aad=row.public_id.encode()).decode()
    code = paycode.generate(secret, row.slot, step * paycode.STEP_SECONDS)
    return CodeView(code, (step + 1) * paycode.STEP_SECONDS * SECOND_US)


# --- password-free limits -----------------------------------------------------------------


def _prefs_row(uow: UnitOfWork, user_id: str, settings: Settings) -> PaycodePrefs:
    row = uow.session.get(PaycodePrefs, user_id)
    if row is None:
        return PaycodePrefs(
            user_id=user_id,
            enabled=True,
            per_payment=settings.paycode_free_per_payment,
            per_day=settings.paycode_free_per_day,
            updated_at=0,
        )
    return row


def get_prefs(uow: UnitOfWork, *, user_id: str, settings: Settings) -> Prefs:
    """The resident's password-free limits and what today has used."""
    row = _prefs_row(uow, user_id, settings)
    key = day_key("pf", now_us())
    used = read_usage(uow, user_id=user_id, periods=[key])[key]
    return Prefs(row.enabled, row.per_payment, row.per_day, used)


def set_prefs(
    uow: UnitOfWork,
    *,
    user_id: str,
    enabled: bool,
    per_payment: int,
    per_day: int,
    settings: Settings,
) -> Prefs:
    """Change the password-free limits (PIN confirmed before); at most the defaults' caps."""
    active_user(uow, user_id)
    if not 0 <= per_payment <= per_day <= settings.paycode_free_per_day:
        raise InvalidInput(
            "Password-free limits: 0 ≤ per payment ≤ per day ≤ "
            f"{settings.paycode_free_per_day} fen.",
            code="invalid_paycode_limits",
        )
    row = uow.session.get(PaycodePrefs, user_id)
    if row is None:
        row = PaycodePrefs(user_id=user_id)
        uow.session.add(row)
    row.enabled, row.per_payment, row.per_day = enabled, per_payment, per_day
    row.updated_at = now_us()
    uow.session.flush()
    return get_prefs(uow, user_id=user_id, settings=settings)


# --- the merchant's POS charges a code ----------------------------------------------------


def charge(
    db: Database,
    *,
    merchant_pk: int,
    code: str,
    amount: int,
    out_trade_no: str,
    encryptor: Encryptor,
    settings: Settings,
    description: str = "",
    store_id: str | None = None,
    terminal_id: str | None = None,
    notify_url: str | None = None,
) -> OrderView:
    """Charge a scanned payment code: the order comes back ``paid`` or
    ``awaiting_confirmation``; a refusal raises ``payment_declined`` with a reason."""
    validate_amount(amount, CURRENCY)
    validate_out_no(out_trade_no)
    digits = "".join(code.split())
    foreign = paycode.foreign_wallet(digits)
    if foreign is not None:
        raise InvalidInput(
            f"This is a {foreign.replace('_', ' ')} payment code; charge it through that "
            "wallet's acquirer.",
            code="paycode_foreign",
            wallet=foreign,
        )
    try:
        slot, otp = paycode.parse(digits)
    except paycode.PaycodeError as exc:
        raise InvalidInput(str(exc), code=exc.code) from exc

    def attempt(uow: UnitOfWork) -> OrderView:
        merchant = merchant_by_pk(uow, merchant_pk)
        require_active(merchant)
        existing = uow.session.scalar(
            select(Order).where(
                Order.merchant_id == merchant_pk, Order.out_trade_no == out_trade_no
            )
        )
        if existing is not None:  # the POS retrying after a lost answer
            if existing.amount != amount or existing.channel != "paycode":
                raise Conflict(
                    "This out_trade_no belongs to another order.", code="out_trade_no_exists"
                )
            return order_view(uow, existing)
        device = _verify(uow, slot, otp, encryptor)
        payer = get_user(uow, user_id=device.user_id)
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
            description=" ".join(description.split())[:128],
            channel="paycode",
            status="created",
            expires_at=moment + settings.paycode_confirm_seconds * SECOND_US,
            notify_url=valid_notify_url(notify_url, settings),
            payer_user_id=payer.id,
            created_at=moment,
            updated_at=moment,
        )
        uow.session.add(order)
        uow.session.flush()
        prefs = _prefs_row(uow, payer.id, settings)
        if prefs.enabled and amount <= prefs.per_payment:
            key = day_key("pf", moment)
            if read_usage(uow, user_id=payer.id, periods=[key])[key] + amount <= prefs.per_day:
                if payer.status == "frozen":
                    raise AccountFrozen("This account is frozen: it cannot move money.")
                pay_order(
                    uow,
                    order=order,
                    merchant=merchant,
                    payer=payer,
                    channel="paycode",
                    settings=settings,
                    extra_usage={key: prefs.per_day},
                )
                return order_view(uow, order)
        order.status = "awaiting_confirmation"
        uow.session.flush()
        return order_view(uow, order)

    try:
        return db.transact(attempt)
    except _CodeRejected as rejected:
        device_pk = rejected.device_pk
        if device_pk is not None:
            db.transact(lambda uow: _count_failure(uow, device_pk, settings))
        raise PaymentDeclined(
            "The payment code is not valid; ask the customer to refresh it.",
            reason=rejected.reason,
        ) from None
    except (InsufficientBalance, LimitExceeded, AccountFrozen) as exc:
        raise PaymentDeclined(exc.detail, reason=exc.code) from None
    except IntegrityError:  # a concurrent charge with the same out_trade_no won
        raise Conflict(
            "An order with this out_trade_no is being charged; query it.",
            code="out_trade_no_exists",
        ) from None


def _verify(uow: UnitOfWork, slot: str, otp: str, encryptor: Encryptor) -> PaycodeDevice:
    device = uow.session.scalar(
        select(PaycodeDevice)
        .where(PaycodeDevice.slot == slot)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if device is None or device.status != "active":
        raise _CodeRejected(None, "paycode_invalid")
    moment = now_us()
    if device.locked_until is not None and device.locked_until > moment:
        raise _CodeRejected(None, "paycode_locked")
    secret = encryptor.decrypt(device.secret_enc, aad=device.public_id.encode()).decode()
    counter = paycode.verify(secret, otp, moment / SECOND_US)
    if counter is None:
        raise _CodeRejected(device.id, "paycode_invalid")
    if counter <= device.last_counter:
        raise _CodeRejected(device.id, "paycode_used")
    device.last_counter, device.failures = counter, 0
    uow.session.flush()
    return device


def _count_failure(uow: UnitOfWork, device_pk: int, settings: Settings) -> None:
    device = uow.session.get(PaycodeDevice, device_pk, with_for_update=True)
    if device is None:
        return
    device.failures += 1
    if device.failures >= settings.paycode_max_failures:
        device.failures, device.locked_until = 0, now_us() + LOCK_SECONDS * SECOND_US
    uow.session.flush()


# --- the resident confirms a large charge -------------------------------------------------


def _awaiting(uow: UnitOfWork, user_id: str, order_id: str) -> Order:
    order = uow.session.scalar(
        select(Order)
        .where(Order.public_id == order_id, Order.payer_user_id == user_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if order is None:
        raise OrderNotFound("No such payment.")
    if order.status != "awaiting_confirmation":
        raise OrderNotPayable(
            f"This payment is {order.status.replace('_', ' ')}; nothing to confirm.",
            code="nothing_to_confirm",
        )
    if order.expires_at <= now_us():
        raise OrderNotPayable("The time to confirm this payment ran out.", code="order_expired")
    return order


def pending_confirmations(uow: UnitOfWork, *, user_id: str) -> list[PaymentView]:
    """Charges waiting for the resident's confirmation, newest first."""
    rows = uow.session.scalars(
        select(Order)
        .where(
            Order.payer_user_id == user_id,
            Order.status == "awaiting_confirmation",
            Order.expires_at > now_us(),
        )
        .order_by(Order.id.desc())
    )
    return [_payment_view(merchant_by_pk(uow, r.merchant_id), r) for r in rows]


def confirm_charge(
    uow: UnitOfWork,
    *,
    user_id: str,
    order_id: str,
    settings: Settings,
    pin: str | None = None,
    encryptor: Encryptor | None = None,
) -> PaymentView:
    """Pay a charge that waited for confirmation. With ``pin``, the payment PIN is checked
    in this transaction (``identity.run_confirmed``); without, it was before."""
    order = _awaiting(uow, user_id, order_id)
    merchant = merchant_by_pk(uow, order.merchant_id)
    payer = active_user(uow, user_id)
    pay_order(
        uow,
        order=order,
        merchant=merchant,
        payer=payer,
        channel="paycode",
        settings=settings,
        pin=pin,
        encryptor=encryptor,
    )
    return _payment_view(merchant, order)


def decline_charge(uow: UnitOfWork, *, user_id: str, order_id: str) -> PaymentView:
    """Refuse a charge that waited for confirmation; the merchant's order closes."""
    order = _awaiting(uow, user_id, order_id)
    order.decline_code = "payer_declined"
    _close(uow, order, now_us())
    return _payment_view(merchant_by_pk(uow, order.merchant_id), order)
