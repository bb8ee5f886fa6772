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
from typing import Any

from sqlalchemy import or_, select, update

from citywallet.identity.errors import AccountClosed, AccountFrozen
from citywallet.identity.service import verify_pin
from citywallet.inbox import service as inbox
from citywallet.inbox.kinds import CHARGE_WAITING, PAYMENT_REFUSED
from citywallet.merchant import paycode
from citywallet.merchant.auth import PendingNonce, spend_alone, spend_nonce
from citywallet.merchant.errors import OrderNotFound, OrderNotPayable
from citywallet.merchant.facts import MerchantFacts, merchant_facts
from citywallet.merchant.models import Order, PaycodeDevice, PaycodePrefs
from citywallet.merchant.onboarding import merchant_by_pk, require_active, valid_notify_url
from citywallet.merchant.payments import (
    OrderView,
    PaidOrder,
    PaymentView,
    _close,
    _payment_view,
    day_key,
    insert_order,
    new_order,
    order_view,
    paid_values,
    pay_order,
    place,
    place_subqueries,
    plan_payment,
    settle_payment,
)
from citywallet.merchant.rules import (
    FreeLimits,
    OrderStatus,
    check_free_limits,
    clean_description,
    pays_without_pin,
    validate_out_no,
)
from citywallet.platform.cache import TtlCache
from citywallet.platform.clock import now_us
from citywallet.platform.config import Settings
from citywallet.platform.crypto import Encryptor
from citywallet.platform.db import Database, UnitOfWork
from citywallet.platform.errors import Conflict, DomainError, InvalidInput, NotFound, Unauthorized
from citywallet.wallet.accounts import CURRENCY, read_usage
from citywallet.wallet.errors import InsufficientBalance, LimitExceeded
from citywallet.wallet.funding import validate_amount
from citywallet.wallet.limits import CAP_EXCEEDED
from citywallet.wallet.people import active_user, lock_parties, new_id

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


def _default_limits(settings: Settings) -> FreeLimits:
    """The password-free limits of a resident who never set any."""
    return FreeLimits(True, settings.paycode_free_per_payment, settings.paycode_free_per_day)


def get_prefs(uow: UnitOfWork, *, user_id: str, settings: Settings) -> Prefs:
    """The resident's password-free limits and what today has used."""
    row = uow.session.get(PaycodePrefs, user_id)
    limits = _default_limits(settings)
    if row is not None:
        limits = FreeLimits.stored_or(row.enabled, row.per_payment, row.per_day, default=limits)
    key = day_key("pf", now_us())
    used = read_usage(uow, user_id=user_id, periods=[key])[key]
    return Prefs(limits.enabled, limits.per_payment, limits.per_day, used)


def set_prefs(
    uow: UnitOfWork,
    *,
    user_id: str,
    enabled: bool,
    per_payment: int,
    per_day: int,
    settings: Settings,
    pin: str,
    encryptor: Encryptor | None = None,
) -> Prefs:
    """Change the password-free limits, at most the defaults' caps; the payment PIN is
    checked in this transaction (run it with ``identity.run_confirmed``)."""
    verify_pin(uow, user_id=user_id, pin=pin, encryptor=encryptor)
    active_user(uow, user_id)
    check_free_limits(
        FreeLimits(enabled, per_payment, per_day), most_per_day=settings.paycode_free_per_day
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


@dataclass(frozen=True)
class _Device:
    """What never changes about a payment-code device (cached per process by slot): whose
    it is and its secret. Whether it is active, locked or the code used is checked by the
    statement that marks the code used."""

    pk: int
    user_id: str
    secret: str


_DEVICES: TtlCache[_Device] = TtlCache("merchant.paycode_devices", ttl=300.0)


class _NoDevice(Exception):
    """Not cached: a device registered a moment later must work at once."""


class _OverFreeCap(Exception):
    """A password-free charge over the day's password-free total: charge it again as one
    waiting for confirmation (a second transaction, on this rare path only)."""


class _Taken(Exception):
    """The ``out_trade_no`` is taken (a POS retrying), or nothing was inserted: say why
    after the rollback."""


def _device(uow: UnitOfWork, slot: str, encryptor: Encryptor) -> _Device | None:
    def load() -> _Device:
        row = uow.session.execute(
            select(
                PaycodeDevice.id,
                PaycodeDevice.public_id,
                PaycodeDevice.user_id,
                PaycodeDevice.secret_enc,
            ).where(PaycodeDevice.slot == slot)
        ).first()
        if row is None:
            raise _NoDevice
        secret = encryptor.decrypt(row.secret_enc, aad=row.public_id.encode()).decode()
        return _Device(row.id, row.user_id, secret)

    try:
        return _DEVICES.get(uow, slot, load)
    except _NoDevice:
        return None


def _use_code(uow: UnitOfWork, device: _Device, counter: int, moment: int) -> Any:
    """Mark the code's time step used, in one UPDATE that checks the device is active, not
    locked and the step newer than any paid before; returns the payer's password-free
    limits (``None`` when the code cannot be used: :func:`_why_not` says why)."""

    def pref(column: Any) -> Any:
        return select(column).where(PaycodePrefs.user_id == PaycodeDevice.user_id).scalar_subquery()

    return (
        uow.session.connection()
        .execute(
            update(PaycodeDevice)
            .where(
                PaycodeDevice.id == device.pk,
                PaycodeDevice.status == "active",
                PaycodeDevice.last_counter < counter,
                or_(PaycodeDevice.locked_until.is_(None), PaycodeDevice.locked_until <= moment),
            )
            .values(last_counter=counter, failures=0)
            .returning(
                pref(PaycodePrefs.enabled),
                pref(PaycodePrefs.per_payment),
                pref(PaycodePrefs.per_day),
            )
        )
        .first()
    )


def _why_not(uow: UnitOfWork, device: _Device, moment: int) -> _CodeRejected:
    row = uow.session.get(PaycodeDevice, device.pk)
    if row is None or row.status != "active":
        return _CodeRejected(None, "paycode_invalid")
    if row.locked_until is not None and row.locked_until > moment:
        return _CodeRejected(None, "paycode_locked")
    return _CodeRejected(device.pk, "paycode_used")


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
    nonce: PendingNonce | None = None,
) -> OrderView:
    """Charge a scanned payment code: the order comes back ``paid`` or
    ``awaiting_confirmation``; a refusal raises ``payment_declined`` with a reason.

    One transaction; on the common path (a password-free amount, no restricted money, no
    webhook URL) its statements are: the request's ``nonce`` spent (when the route defers
    it: :func:`~citywallet.merchant.auth.authenticate`), the code's step marked used (which
    also reads the payer's password-free limits), the payer read and their wallet locked,
    the order inserted already paid (checking the merchant, store and ``out_trade_no``),
    the usage upsert, the ledger's lock and write, the history line. Every refusal rolls it
    all back, then spends the nonce on its own, and a wrong code counts against the device.
    """

    def attempt(uow: UnitOfWork, *, day_total_refused: bool) -> OrderView:
        if nonce is not None:  # first: a revoked key is refused before the body is read
            spend_nonce(uow, nonce)
        validate_amount(amount, CURRENCY)
        validate_out_no(out_trade_no)
        clean = clean_description(description)
        url = valid_notify_url(notify_url, settings)
        slot, otp = _parse(code)
        device = _device(uow, slot, encryptor)
        if device is None:
            raise _CodeRejected(None, "paycode_invalid")
        moment = now_us()
        counter = paycode.verify(device.secret, otp, moment / SECOND_US)
        if counter is None:
            raise _CodeRejected(device.pk, "paycode_invalid")
        stored = _use_code(uow, device, counter, moment)
        if stored is None:
            _DEVICES.forget(uow, slot)
            raise _why_not(uow, device, moment)
        limits = FreeLimits.stored_or(*stored, default=_default_limits(settings))
        payer, _ = lock_parties(uow, user_id=device.user_id)
        merchant = merchant_facts(uow, merchant_pk=merchant_pk)
        charged[:] = [(device.user_id, merchant)]
        values = new_order(
            merchant_pk=merchant_pk,
            out_trade_no=out_trade_no,
            amount=amount,
            description=clean,
            moment=moment,
            expires_at=moment + settings.paycode_confirm_seconds * SECOND_US,
            status=OrderStatus.AWAITING_CONFIRMATION,
            channel="paycode",
            notify_url=url,
            payer_user_id=payer.user.id,
        )
        plan = None
        if pays_without_pin(amount, limits, day_total_refused=day_total_refused):
            plan = plan_payment(
                uow,
                payer=payer,
                merchant=merchant,
                order_id=values["public_id"],
                amount=amount,
                moment=moment,
            )
            values |= paid_values(plan, payer, "paycode", moment)
        store, terminal = place_subqueries(merchant_pk, store_id, terminal_id)
        inserted = insert_order(
            uow, values, store=store, terminal=terminal, on_conflict_nothing=True
        )
        if inserted is None:
            raise _Taken
        if plan is None:  # the resident's message centre, and their open pages at once
            inbox.record(
                uow,
                user_id=device.user_id,
                kind=CHARGE_WAITING,
                ref=values["public_id"],
                params={"amount": amount, "currency": CURRENCY, "merchant": merchant.name_zh},
            )
            return _awaiting_view(values, merchant, store_id, terminal_id)
        paid = PaidOrder(
            id=values["public_id"],
            amount=amount,
            description=clean,
            out_trade_no=out_trade_no,
            notify_url=url,
            channel="paycode",
            paid_at=moment,
            created_at=moment,
            expires_at=values["expires_at"],
            store_id=store_id,
            terminal_id=terminal_id,
        )
        try:
            settle_payment(
                uow,
                plan=plan,
                payer=payer,
                merchant=merchant,
                order=paid,
                settings=settings,
                moment=moment,
                caps={day_key("pf", moment): limits.per_day},
            )
        except LimitExceeded as exc:
            if exc.code == CAP_EXCEEDED:  # the password-free day's total: ask the payer
                raise _OverFreeCap from None
            raise
        return paid.view(merchant, plan.fee)

    charged: list[tuple[str, MerchantFacts]] = []  # whose code, which merchant: for a refusal

    def spend_alone_if_deferred() -> None:
        if nonce is not None:
            spend_alone(db, nonce)

    try:
        try:
            return db.transact(lambda uow: attempt(uow, day_total_refused=False))
        except _OverFreeCap:
            return db.transact(lambda uow: attempt(uow, day_total_refused=True))
    except (_Taken, _CodeRejected) as refused:
        spend_alone_if_deferred()
        existing = _existing(db, merchant_pk, out_trade_no, amount)
        if existing is not None:  # the POS retrying after a lost answer
            return existing
        if isinstance(refused, _Taken):  # the merchant, store or terminal: say which
            with db.uow(readonly=True) as uow:
                require_active(merchant_by_pk(uow, merchant_pk))
                place(uow, merchant_pk, store_id, terminal_id)
            raise Conflict(
                "An order with this out_trade_no is being charged; query it.",
                code="out_trade_no_exists",
            ) from None
        device_pk = refused.device_pk
        if device_pk is not None:
            db.transact(lambda uow: _count_failure(uow, device_pk, settings))
        raise PaymentDeclined(
            "The payment code is not valid; ask the customer to refresh it.",
            reason=refused.reason,
        ) from None
    except (InsufficientBalance, LimitExceeded, AccountFrozen, AccountClosed) as exc:
        spend_alone_if_deferred()
        if charged and not isinstance(exc, (AccountFrozen, AccountClosed)):
            _tell_refused(db, *charged[0], amount=amount, reason=exc.code)
        raise PaymentDeclined(exc.detail, reason=exc.code) from None
    except Unauthorized:  # the nonce or key itself was refused: nothing to spend
        raise
    except DomainError:
        spend_alone_if_deferred()
        raise


def _tell_refused(
    db: Database, user_id: str, merchant: MerchantFacts, *, amount: int, reason: str
) -> None:
    """Tell the resident (message centre) that a scan of their code was refused by a limit
    or their balance: its own small transaction, as the charge's rolled back."""
    db.transact(
        lambda uow: inbox.record(
            uow,
            user_id=user_id,
            kind=PAYMENT_REFUSED,
            ref=merchant.public_id,
            params={
                "amount": amount,
                "currency": CURRENCY,
                "merchant": merchant.name_zh,
                "reason": reason,
            },
        )
    )


def _parse(code: str) -> tuple[str, str]:
    """A scanned code's device slot and one-time number (``paycode_foreign`` for another
    wallet's code, ``paycode_malformed`` and the like for a misread one)."""
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
        return paycode.parse(digits)
    except paycode.PaycodeError as exc:
        raise InvalidInput(str(exc), code=exc.code) from exc


def _existing(db: Database, merchant_pk: int, out_trade_no: str, amount: int) -> OrderView | None:
    """The order a POS already made with this ``out_trade_no``, if any (``None``)."""
    with db.uow(readonly=True) as uow:
        row = uow.session.scalar(
            select(Order).where(
                Order.merchant_id == merchant_pk, Order.out_trade_no == out_trade_no
            )
        )
        if row is None:
            return None
        if row.amount != amount or row.channel != "paycode":
            raise Conflict(
                "This out_trade_no belongs to another order.", code="out_trade_no_exists"
            )
        return order_view(uow, row)


def _awaiting_view(
    values: dict[str, Any], merchant: MerchantFacts, store_id: str | None, terminal_id: str | None
) -> OrderView:
    return OrderView(
        id=values["public_id"],
        merchant_id=merchant.public_id,
        store_id=store_id,
        terminal_id=terminal_id,
        out_trade_no=values["out_trade_no"],
        amount=values["amount"],
        currency=CURRENCY,
        description=values["description"],
        channel="paycode",
        status=values["status"],
        fee=0,
        refunded_amount=0,
        refunded_fee=0,
        expires_at=values["expires_at"],
        paid_at=None,
        closed_at=None,
        created_at=values["created_at"],
        decline_code=None,
        qr_payload=None,
    )


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
    if order.status != OrderStatus.AWAITING_CONFIRMATION:
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
            Order.status == OrderStatus.AWAITING_CONFIRMATION,
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
    inbox.changed(uow, user_id=user_id)  # the resident's open pages drop the waiting bar
    return _payment_view(merchant, order)


def decline_charge(uow: UnitOfWork, *, user_id: str, order_id: str) -> PaymentView:
    """Refuse a charge that waited for confirmation; the merchant's order closes."""
    order = _awaiting(uow, user_id, order_id)
    order.decline_code = "payer_declined"
    _close(uow, order, now_us())
    inbox.changed(uow, user_id=user_id)
    return _payment_view(merchant_by_pk(uow, order.merchant_id), order)
