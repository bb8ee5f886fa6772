"""The switch's final word on a transfer (both roles), the sweep that asks for it when it
is late, and the settlement notices of closed windows.

A pending transfer is resolved only by the switch: ``PUT /transfers/{id}`` COMMITTED (with a
fulfilment that matches the condition) posts it; ABORTED, or an error that ends the
transfer (3303 expired, and for the payer any refusal of its prepare), voids it. Anything
else (a communication error, a 3208 before expiry) leaves it pending: after its expiration
the sweep asks ``GET /transfers/{id}`` every second until the switch answers for good.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select

from citywallet.interop import conditions
from citywallet.interop.messages import (
    Category,
    ErrorCode,
    FspiopCode,
    OtherCode,
    SettlementNotice,
    TransferFulfil,
    category,
)
from citywallet.interop.provider.business import MERCHANT, BusinessPayee, BusinessPayer
from citywallet.interop.provider.common import (
    SECOND_US,
    interop_account,
    require_on_books,
    resolve,
    send,
    to_us,
)
from citywallet.interop.provider.models import InteropTransfer, PayerQuote, SettlementWindow
from citywallet.interop.provider.waiting import notify_after_commit, transfer_key
from citywallet.ledger import service as ledger
from citywallet.ledger.types import TransferCode, TransferSpec
from citywallet.platform.clock import now_us
from citywallet.platform.config import Settings
from citywallet.platform.db import UnitOfWork
from citywallet.platform.logging import get_logger
from citywallet.wallet import accounts
from citywallet.wallet.accounts import CURRENCY

log = get_logger(__name__)

SWEEP_GRACE_SECONDS = 2  # past a transfer's expiration before we ask the switch
SWEEP_EVERY_SECONDS = 1  # between two questions about the same transfer
SWEEP_BATCH = 100

# Errors that end the payer's transfer: the switch refused or aborted the prepare (or the
# payee refused it), so it never commits. 3208 counts only after expiry (see on_error).
_PAYER_FINAL = frozenset(
    {
        ErrorCode.GENERIC_VALIDATION_ERROR, ErrorCode.MALFORMED_SYNTAX,
        ErrorCode.MISSING_MANDATORY_ELEMENT, ErrorCode.INVALID_SIGNATURE,
        ErrorCode.DESTINATION_FSP_ERROR, ErrorCode.PAYER_FSP_ID_NOT_FOUND,
        ErrorCode.PAYEE_FSP_ID_NOT_FOUND, ErrorCode.PARTY_NOT_FOUND,
        ErrorCode.QUOTE_ID_NOT_FOUND, ErrorCode.QUOTE_EXPIRED, ErrorCode.TRANSFER_EXPIRED,
        ErrorCode.PAYER_FSP_INSUFFICIENT_LIQUIDITY, ErrorCode.PAYER_LIMIT_ERROR,
        ErrorCode.PAYEE_FSP_REJECTED_QUOTE, ErrorCode.PAYEE_REJECTED_TRANSACTION,
        ErrorCode.PAYEE_FSP_REJECTED_TRANSACTION, ErrorCode.PAYEE_UNSUPPORTED_CURRENCY,
    }
)  # fmt: skip
# A code we do not list ends the payer's transfer by its category: the switch, the payee's
# provider or the payee refused (3xxx client/validation, 4xxx payer, 5xxx payee); a
# communication or server error (1xxx, 2xxx) or an undefined category leaves it open.
_PAYER_FINAL_CATEGORIES = frozenset({Category.CLIENT, Category.PAYER, Category.PAYEE})


def ends_payer_transfer(code: FspiopCode) -> bool:
    """Whether an error about the payer's prepare means it will never commit."""
    if isinstance(code, OtherCode):
        return category(code) in _PAYER_FINAL_CATEGORIES
    return code in _PAYER_FINAL


def _open_row(uow: UnitOfWork, transfer_id: str) -> InteropTransfer | None:
    """The transfer, locked, if it is still waiting for the switch's word."""
    row = uow.session.scalar(
        select(InteropTransfer)
        .where(InteropTransfer.transfer_id == transfer_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return row if row is not None and row.state == "PREPARED" else None


def on_state(
    uow: UnitOfWork,
    *,
    transfer_id: str,
    fulfil: TransferFulfil,
    business: BusinessPayee | None = None,
    refunds: BusinessPayer | None = None,
) -> str | None:
    """``PUT /transfers/{id}`` from the switch: post on COMMITTED, void on ABORTED (a
    merchant's transfer through ``business``, a merchant's refund through ``refunds``);
    returns the new state, or ``None`` when nothing changed (unknown, already final,
    RESERVED)."""
    row = _open_row(uow, transfer_id)
    if row is None or fulfil.transfer_state == "RESERVED":
        return None
    if fulfil.transfer_state == "COMMITTED":
        assert fulfil.fulfilment is not None  # the model guarantees it
        if not conditions.matches(row.condition, fulfil.fulfilment):
            log.warning("commit with a foreign fulfilment ignored", transfer_id=transfer_id)
            return None
        _resolve(uow, row, "COMMITTED", None, business, refunds)
    else:
        _resolve(uow, row, "ABORTED", None, business, refunds)
    return row.state


def _resolve(
    uow: UnitOfWork,
    row: InteropTransfer,
    state: str,
    code: str | None,
    business: BusinessPayee | None,
    refunds: BusinessPayer | None = None,
) -> None:
    """Resolve a resident's transfer here, a merchant's (a payment to it, or a refund
    from it) through the merchant feature; whoever waits on it looks again after the commit."""
    notify_after_commit(uow, transfer_key(row.public_id))
    if row.user_id != MERCHANT:
        resolve(uow, row, state=state, code=code)
        return
    if row.role == "payer":  # a refund: the quote's public id (our key) is the refund's
        if refunds is None:  # pragma: no cover - the adapters always pass it
            raise RuntimeError(f"merchant refund {row.transfer_id} without its merchant payer")
        assert row.idempotency_key is not None
        if state == "COMMITTED":
            refunds.commit(uow, owner=row.idempotency_key)
        else:
            refunds.fail(uow, owner=row.idempotency_key)
    elif business is None:  # pragma: no cover - the adapters always pass it
        raise RuntimeError(f"merchant transfer {row.transfer_id} without its merchant payee")
    elif state == "COMMITTED":
        business.commit(uow, transfer_id=row.transfer_id)
    else:
        business.abort(uow, transfer_id=row.transfer_id)
    moment = now_us()
    row.state, row.error_code = state, code
    row.updated_at = row.resolved_at = moment
    uow.session.flush()


def on_error(
    uow: UnitOfWork,
    *,
    transfer_id: str,
    code: FspiopCode,
    now: datetime,
    business: BusinessPayee | None = None,
    refunds: BusinessPayer | None = None,
) -> str | None:
    """``PUT /transfers/{id}/error`` from the switch: void when the error ends the transfer
    (a merchant's through ``business``, a merchant's refund through ``refunds``); returns
    the new state, or ``None`` when nothing changed."""
    row = _open_row(uow, transfer_id)
    if row is None:
        return None
    if code is ErrorCode.TRANSFER_EXPIRED:
        _resolve(uow, row, "EXPIRED", code.value, business, refunds)
    elif code is ErrorCode.TRANSFER_ID_NOT_FOUND and to_us(now) > row.expires_at:
        # The switch has no such transfer and can no longer take its prepare.
        _resolve(uow, row, "ABORTED", code.value, business, refunds)
    elif row.role == "payer" and ends_payer_transfer(code):
        _resolve(uow, row, "ABORTED", code.value, business, refunds)
    else:
        log.info("interop error leaves the transfer open", transfer_id=transfer_id, code=code)
        return None
    return row.state


def sweep(
    uow: UnitOfWork, *, settings: Settings, now: datetime, refunds: BusinessPayer | None = None
) -> int:
    """Ask the switch about transfers still PREPARED a little after their expiration (at most
    once a second each); returns how many questions were queued. With ``refunds``, a
    merchant's refund whose quote was not answered within its expiration fails."""
    moment = to_us(now)
    if refunds is not None:
        _expire_business_quotes(uow, settings=settings, moment=moment, refunds=refunds)
    rows = list(
        uow.session.scalars(
            select(InteropTransfer)
            .where(
                InteropTransfer.state == "PREPARED",
                InteropTransfer.expires_at < moment - SWEEP_GRACE_SECONDS * SECOND_US,
                or_(
                    InteropTransfer.queried_at.is_(None),
                    InteropTransfer.queried_at <= moment - SWEEP_EVERY_SECONDS * SECOND_US,
                ),
            )
            .order_by(InteropTransfer.expires_at)
            .limit(SWEEP_BATCH)
            .with_for_update(skip_locked=True)
        )
    )
    for row in rows:
        send(
            uow, settings, method="GET", path=f"/transfers/{row.transfer_id}",
            destination=row.counterparty_fsp,
        )  # fmt: skip
        row.queried_at = moment
    uow.session.flush()
    return len(rows)


def _expire_business_quotes(
    uow: UnitOfWork, *, settings: Settings, moment: int, refunds: BusinessPayer
) -> None:
    """Merchants' quotes (refunds) still waiting after their expiration: the refund fails
    (a late answer finds the quote failed and changes nothing)."""
    late = moment - (settings.interop_transfer_seconds + SWEEP_GRACE_SECONDS) * SECOND_US
    rows = list(
        uow.session.scalars(
            select(PayerQuote)
            .where(
                PayerQuote.user_id == MERCHANT,
                PayerQuote.state == "waiting",
                PayerQuote.created_at < late,
            )
            .order_by(PayerQuote.id)
            .limit(SWEEP_BATCH)
            .with_for_update(skip_locked=True)
        )
    )
    for row in rows:
        row.state, row.error_code = "failed", ErrorCode.QUOTE_EXPIRED.value
        row.updated_at = moment
        uow.session.flush()
        refunds.fail(uow, owner=row.public_id)


def on_settlement(uow: UnitOfWork, *, notice: SettlementNotice, now: datetime) -> bool:
    """Post a closed window's net against the settlement bank, once per window: we pay a
    positive net (INTEROP_SETTLEMENT → bank), receive a negative one. Returns whether this
    notice was new."""
    if uow.session.get(SettlementWindow, notice.window_id) is not None:
        return False
    ledger_id = None
    if notice.net_amount:
        ledger_id = f"isw_{notice.window_id}"
        interop, bank = interop_account(uow), accounts.bank_settlement_account(uow)
        pays = notice.net_amount > 0
        require_on_books(
            ledger.post(
                uow,
                transfers=[
                    TransferSpec(
                        id=ledger_id,
                        debit_account_id=interop if pays else bank,
                        credit_account_id=bank if pays else interop,
                        amount=abs(notice.net_amount),
                        ledger=CURRENCY,
                        code=TransferCode.SETTLEMENT,
                        reference=notice.window_id,
                    )
                ],
            ),
            f"settling window {notice.window_id}",
        )
    uow.session.add(
        SettlementWindow(
            window_id=notice.window_id,
            net_amount=notice.net_amount,
            transfer_count=notice.transfer_count,
            ledger_transfer_id=ledger_id,
            closed_at=to_us(notice.closed_at),
            processed_at=to_us(now),
        )
    )
    uow.session.flush()
    return True
