"""Our merchants paid by other providers' residents through the interoperability switch.

The merchant's side of a cross-provider QR payment (docs/interop.md, "Merchant QR across
providers"); the provider's FSPIOP handlers call these, one per message, inside the
transaction that handles it (this package knows nothing of the switch's messages):

- :func:`quote_payment` (``POST /quotes`` with a BUSINESS payee): authenticate the scanned
  payload with *our* key (MAC, our participant id, merchant active, a dynamic code's order
  open and of the asked amount) and give the terms: the merchant's fee by its rate.
- :func:`prepare_payment` (``POST /transfers``): hold the order (a dynamic code's order
  leaves ``created``; a static code's order is made) and credit the merchant's receivable
  with a *pending* transfer from the switch settlement account.
- :func:`commit_payment` (``COMMITTED``): post it with the fee leg, mark the order paid,
  send the merchant's webhook. :func:`abort_payment` (``/error``, 3303): void it; a dynamic
  code's order is open again.

Every step is idempotent by quote or transfer id: a duplicated message changes nothing twice.
Ledger ids derive from the switch's transfer id (``mix_{transferId}``, ``….post``, ``….fee``,
``….void``), so one transfer never credits twice; the order's hold (it leaves ``created``
in the statement that claims it) keeps two transfers from paying one order.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass

from sqlalchemy import BigInteger, literal, select, update

from citywallet.ledger import service as ledger
from citywallet.ledger.types import TransferCode, TransferFlags, TransferSpec
from citywallet.merchant import emv, webhooks
from citywallet.merchant.errors import OrderNotPayable
from citywallet.merchant.models import InteropPayment, Merchant, Order
from citywallet.merchant.onboarding import (
    merchant_by_pk,
    merchant_by_public_id,
    require_active,
    store_row,
)
from citywallet.merchant.payments import (
    INTEROP_CHANNEL,
    insert_order,
    linked,
    new_order,
    order_data,
    order_view,
    payable_order,
    qr_key,
)
from citywallet.merchant.rules import OrderStatus, fee_for
from citywallet.platform.clock import now_us
from citywallet.platform.crypto import Encryptor
from citywallet.platform.db import UnitOfWork
from citywallet.platform.errors import Conflict, InvalidInput, NotFound
from citywallet.wallet.accounts import CURRENCY
from citywallet.wallet.funding import validate_amount
from citywallet.wallet.people import new_id

CHANNEL = INTEROP_CHANNEL


@dataclass(frozen=True)
class MerchantQuote:
    """The merchant's terms for a scanned code: ``amount`` crosses the switch, the merchant
    pays ``fee`` of it (its rate) and its receivable keeps ``amount - fee``."""

    merchant_id: str
    merchant_name: str
    order_id: str
    amount: int
    fee: int
    dynamic: bool

    @property
    def receive_amount(self) -> int:
        """What the merchant keeps."""
        return self.amount - self.fee


@dataclass(frozen=True)
class InteropPaymentView:
    """A switch payment to one of our merchants, as its steps leave it."""

    quote_id: str
    transfer_id: str | None
    merchant_id: str
    order_id: str
    amount: int
    fee: int
    state: str  # quoted / prepared / committed / aborted
    payer_fsp: str
    payer_identifier: str


def _view(uow: UnitOfWork, row: InteropPayment) -> InteropPaymentView:
    merchant = merchant_by_pk(uow, row.merchant_id)
    return InteropPaymentView(
        row.quote_id, row.transfer_id, merchant.public_id, row.order_public_id, row.amount,
        row.fee, row.state, row.payer_fsp, row.payer_identifier,
    )  # fmt: skip


def _quote(uow: UnitOfWork, row: InteropPayment) -> MerchantQuote:
    merchant = merchant_by_pk(uow, row.merchant_id)
    return MerchantQuote(
        merchant.public_id, merchant.name_zh, row.order_public_id, row.amount, row.fee,
        row.dynamic,
    )  # fmt: skip


def _digest(payload: str) -> str:
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _authentic(
    uow: UnitOfWork, payload: str, participant_id: str, encryptor: Encryptor
) -> emv.MerchantCode:
    """The code in ``payload`` if it is one of ours, under our key and naming us."""
    try:
        code = emv.parse(payload, key=qr_key(uow, encryptor))
    except emv.EmvError as exc:
        raise InvalidInput(str(exc), code=exc.code) from exc
    if not participant_id or code.provider != participant_id:
        raise InvalidInput("This code does not name this provider.", code="qr_other_provider")
    return code


def quote_payment(
    uow: UnitOfWork,
    *,
    quote_id: str,
    merchant_id: str,
    payload: str,
    amount: int,
    payer_fsp: str,
    payer_id_type: str,
    payer_identifier: str,
    expires_at: int,
    participant_id: str,
    encryptor: Encryptor,
) -> MerchantQuote:
    """The terms for paying the code ``payload`` scanned by another provider's resident, if
    it is ours, of ``merchant_id`` (the payee the quote names) and payable now (refusals:
    the EMV codes, ``qr_other_provider``, ``merchant_mismatch``,
    ``merchant_not_active``, ``store_not_found``, ``amount_mismatch``, ``order_paid``,
    ``order_closed``, ``order_expired``). The same quote id again gives the same terms;
    with another payload or amount it is refused (``quote_id_reused``)."""
    digest = _digest(payload)
    existing = uow.session.scalar(select(InteropPayment).where(InteropPayment.quote_id == quote_id))
    if existing is not None:
        if (existing.payload_digest, existing.amount, existing.payer_fsp) != (
            digest, amount, payer_fsp,
        ):  # fmt: skip
            raise Conflict("This quote id was used for another payment.", code="quote_id_reused")
        return _quote(uow, existing)
    code = _authentic(uow, payload, participant_id, encryptor)
    if code.merchant_id != merchant_id:
        raise InvalidInput("The code is not the named merchant's.", code="merchant_mismatch")
    validate_amount(amount, CURRENCY)
    merchant = merchant_by_public_id(uow, code.merchant_id)
    require_active(merchant)
    store = store_row(uow, merchant_pk=merchant.id, store_id=code.store_id)
    moment = now_us()
    if code.order_ref is not None:
        if amount != code.amount:
            raise InvalidInput("This code's order fixes the amount.", code="amount_mismatch")
        order_id = payable_order(uow, merchant.id, code, moment).public_id
    else:
        order_id = new_id("ord")
    row = InteropPayment(
        quote_id=quote_id,
        merchant_id=merchant.id,
        store_id=store.id,
        order_public_id=order_id,
        dynamic=code.order_ref is not None,
        amount=amount,
        fee=fee_for(amount, merchant.fee_rate_bp),
        payer_fsp=payer_fsp,
        payer_id_type=payer_id_type,
        payer_identifier=payer_identifier,
        payload_digest=digest,
        state="quoted",
        quote_expires_at=expires_at,
        created_at=moment,
        updated_at=moment,
    )
    uow.session.add(row)
    uow.session.flush()
    return _quote(uow, row)


def _row(
    uow: UnitOfWork, *, quote_id: str | None = None, transfer_id: str | None = None
) -> InteropPayment | None:
    where = (
        InteropPayment.quote_id == quote_id
        if quote_id is not None
        else InteropPayment.transfer_id == transfer_id
    )
    return uow.session.scalar(
        select(InteropPayment)
        .where(where)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def _incoming_id(row: InteropPayment) -> str:
    # by transfer: a dynamic order whose first transfer was aborted is paid by another one
    return f"mix_{row.transfer_id}"


def is_merchant_quote(uow: UnitOfWork, *, quote_id: str) -> bool:
    """Whether ``quote_id`` is a merchant payment's (the provider routes its prepare here)."""
    found = uow.session.scalar(select(InteropPayment.id).where(InteropPayment.quote_id == quote_id))
    return found is not None


def prepare_payment(
    uow: UnitOfWork,
    *,
    quote_id: str,
    transfer_id: str,
    amount: int,
    settlement_account_id: int,
    expires_at: int,
) -> InteropPaymentView:
    """Hold the quoted payment's order and credit the merchant's receivable with a pending
    transfer from ``settlement_account_id`` (what the switch owes us). The same transfer id
    again changes nothing; refusals (nothing changes): ``quote_not_found``,
    ``quote_used`` (another transfer), ``amount_mismatch``, and the order's own
    (``order_paid``, ``order_closed``, ``order_expired``, ``merchant_not_active``)."""
    row = _row(uow, quote_id=quote_id)
    if row is None:
        raise NotFound("No merchant quote with this id.", code="quote_not_found")
    if row.transfer_id is not None:
        if row.transfer_id != transfer_id:
            raise Conflict("This quote was paid by another transfer.", code="quote_used")
        return _view(uow, row)
    if row.state != "quoted":
        raise Conflict("This quote can no longer be paid.", code="quote_used")
    if amount != row.amount:
        raise InvalidInput("The transfer's amount is not the quote's.", code="amount_mismatch")
    moment = now_us()
    merchant = merchant_by_pk(uow, row.merchant_id)
    require_active(merchant)  # every refusal comes before the first write
    if row.dynamic:
        _hold_dynamic(uow, row, merchant, moment)
    else:
        _insert_static(uow, row, merchant, moment, expires_at)
    row.transfer_id = transfer_id
    pending = TransferSpec(
        id=_incoming_id(row),
        debit_account_id=settlement_account_id,
        credit_account_id=merchant.receivable_account_id,
        amount=row.amount,
        ledger=CURRENCY,
        code=TransferCode.PAYMENT,
        flags=TransferFlags.PENDING,
        timeout=0,  # only the switch's final word resolves it
        reference=row.order_public_id,
    )
    results = ledger.post(uow, transfers=[pending])
    if not all(r.on_books for r in results):
        raise RuntimeError(f"ledger refused the pending credit of {row.order_public_id}: {results}")
    row.transfer_id, row.state, row.updated_at = transfer_id, "prepared", moment
    uow.session.flush()
    return _view(uow, row)


def _hold_dynamic(uow: UnitOfWork, row: InteropPayment, merchant: Merchant, moment: int) -> None:
    """Move the code's order from ``created`` to ``awaiting_confirmation`` (channel
    interop_qr): nobody else can pay it while the switch decides."""
    held = uow.session.execute(
        update(Order)
        .where(
            Order.public_id == row.order_public_id,
            Order.merchant_id == merchant.id,
            Order.status == OrderStatus.CREATED,
            Order.amount == row.amount,
            Order.expires_at > moment,
        )
        .values(
            status=OrderStatus.AWAITING_CONFIRMATION,
            channel=CHANNEL,
            fee=row.fee,
            updated_at=moment,
        )
        .execution_options(synchronize_session=False)
    )
    if held.rowcount != 1:  # type: ignore[attr-defined]
        order = uow.session.scalar(select(Order).where(Order.public_id == row.order_public_id))
        if order is not None and order.status == OrderStatus.PAID:
            raise OrderNotPayable("This order is paid already.", code="order_paid")
        if order is not None and order.status == OrderStatus.CREATED:
            raise OrderNotPayable("This order has expired.", code="order_expired")
        raise OrderNotPayable("This order is closed.", code="order_closed")


def _insert_static(
    uow: UnitOfWork, row: InteropPayment, merchant: Merchant, moment: int, expires_at: int
) -> None:
    """A static code's order, made ``awaiting_confirmation`` until the switch decides."""
    values = new_order(
        public_id=row.order_public_id,
        merchant_pk=merchant.id,
        out_trade_no=f"SX{moment}{secrets.randbelow(10**6):06d}",
        amount=row.amount,
        description="",
        moment=moment,
        expires_at=expires_at,
        status=OrderStatus.AWAITING_CONFIRMATION,
        channel=CHANNEL,
    ) | {"fee": row.fee}
    if insert_order(uow, values, store=literal(row.store_id, BigInteger())) is None:
        require_active(merchant)
        raise OrderNotPayable("This store cannot take payments.", code="order_closed")


def commit_payment(uow: UnitOfWork, *, transfer_id: str) -> InteropPaymentView | None:
    """The switch committed ``transfer_id``: post the pending credit with the merchant's fee
    leg, mark the order paid and send the merchant's webhook. ``None`` if the transfer is
    not a merchant payment's; committed already: nothing changes."""
    row = _row(uow, transfer_id=transfer_id)
    if row is None:
        return None
    if row.state == "committed":
        return _view(uow, row)
    if row.state != "prepared":  # voided on the switch's word: it cannot commit after
        raise Conflict("This payment was aborted.", code="payment_aborted")
    moment = now_us()
    merchant = merchant_by_pk(uow, row.merchant_id)
    legs = [
        TransferSpec(
            id=f"{_incoming_id(row)}.post",
            amount=None,
            flags=TransferFlags.POST_PENDING,
            pending_id=_incoming_id(row),
            reference=row.order_public_id,
        )
    ]
    if row.fee:
        legs.append(
            TransferSpec(
                id=f"{_incoming_id(row)}.fee",
                debit_account_id=merchant.receivable_account_id,
                credit_account_id=merchant.fee_account_id,
                amount=row.fee,
                ledger=CURRENCY,
                code=TransferCode.FEE,
                reference=row.order_public_id,
            )
        )
    results = ledger.post(uow, transfers=linked(legs))
    if not all(r.on_books for r in results):
        raise RuntimeError(f"ledger refused the commit of {row.order_public_id}: {results}")
    order = _order(uow, row)
    order.status, order.channel, order.fee = OrderStatus.PAID, CHANNEL, row.fee
    order.transfer_ids = json.dumps([_incoming_id(row), *(leg.id for leg in legs)])
    order.decline_code, order.paid_at, order.updated_at = None, moment, moment
    row.state, row.updated_at = "committed", moment
    uow.session.flush()
    if order.notify_url or merchant.notify_url:
        webhooks.emit(
            uow,
            merchant=merchant,
            type="payment.succeeded",
            object_id=order.public_id,
            data=order_data(order_view(uow, order)),
            url=order.notify_url,
        )
    return _view(uow, row)


def abort_payment(uow: UnitOfWork, *, transfer_id: str) -> InteropPaymentView | None:
    """The switch aborted or expired ``transfer_id``: void the pending credit; a dynamic
    code's order is open again, a static code's closes. ``None`` if the transfer is not a
    merchant payment's; aborted already: nothing changes."""
    row = _row(uow, transfer_id=transfer_id)
    if row is None:
        return None
    if row.state == "aborted":
        return _view(uow, row)
    if row.state != "prepared":
        raise Conflict("This payment was committed.", code="payment_committed")
    moment = now_us()
    void = TransferSpec(
        id=f"{_incoming_id(row)}.void",
        amount=None,
        flags=TransferFlags.VOID_PENDING,
        pending_id=_incoming_id(row),
        reference=row.order_public_id,
    )
    results = ledger.post(uow, transfers=[void])
    if not all(r.on_books for r in results):
        raise RuntimeError(f"ledger refused the void of {row.order_public_id}: {results}")
    order = _order(uow, row)
    if row.dynamic:  # open again; the expiry sweep closes it if its time ran out
        order.status, order.channel, order.fee = OrderStatus.CREATED, None, 0
    else:
        order.status, order.closed_at = OrderStatus.CLOSED, moment
        order.decline_code = "transfer_aborted"
    order.updated_at = moment
    row.state, row.updated_at = "aborted", moment
    uow.session.flush()
    return _view(uow, row)


def _order(uow: UnitOfWork, row: InteropPayment) -> Order:
    order = uow.session.scalar(
        select(Order)
        .where(Order.public_id == row.order_public_id, Order.merchant_id == row.merchant_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    assert order is not None, "a prepared interop payment has its order"
    return order


def interop_payment(
    uow: UnitOfWork, *, quote_id: str | None = None, transfer_id: str | None = None
) -> InteropPaymentView | None:
    """A switch payment to one of our merchants by quote or transfer id (``None``: none)."""
    where = (
        InteropPayment.quote_id == quote_id
        if quote_id is not None
        else InteropPayment.transfer_id == transfer_id
    )
    row = uow.session.scalar(select(InteropPayment).where(where))
    return None if row is None else _view(uow, row)
