"""The payee's side: terms for a quote, a pending credit and the fulfilment for a prepare.

``POST /quotes`` finds the resident by mobile number, checks they can receive, draws a
fulfilment (kept encrypted) and answers ``PUT /quotes/{id}`` with its condition.
``POST /transfers`` finds the quote by the prepare's condition (``quotes.check_prepare``),
holds a pending credit INTEROP_SETTLEMENT → wallet that only the switch's final word posts
or voids, and answers ``PUT /transfers/{id}`` with the fulfilment. A duplicate message
changes nothing: quotes and transfers are unique by their wire ids. It gets its answer
again, as FSPIOP answers a resent request with the current state: the same terms, the
fulfilment while the transfer is not final (its answer may have been lost on the way back
inline), a refusal again (a refused prepare is not stored, so it is checked again).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from citywallet.identity.service import find_user_by_phone
from citywallet.interop import conditions
from citywallet.interop.messages import (
    Amount,
    ErrorCode,
    QuoteRequest,
    QuoteResponse,
    TransferFulfil,
    TransferPrepare,
    error,
)
from citywallet.interop.provider.business import MERCHANT, BusinessPayee
from citywallet.interop.provider.common import (
    interop_account,
    msisdn,
    provider_name,
    require_on_books,
    send,
    to_us,
)
from citywallet.interop.provider.models import InteropTransfer, PayeeQuote
from citywallet.interop.provider.moving import MOVE_NOTE, is_move_quote, note_move_quote
from citywallet.interop.quotes import check_prepare
from citywallet.ledger import service as ledger
from citywallet.ledger.types import TransferCode, TransferFlags, TransferSpec
from citywallet.platform.config import Settings
from citywallet.platform.crypto import Encryptor
from citywallet.platform.db import UnitOfWork
from citywallet.platform.errors import DomainError
from citywallet.platform.logging import get_logger
from citywallet.wallet import accounts, history
from citywallet.wallet.accounts import CURRENCY
from citywallet.wallet.limits import check_inflow
from citywallet.wallet.people import lock_parties, new_id

log = get_logger(__name__)


def payee_fees(amount: int) -> tuple[int, int]:
    """The fees of receiving ``amount`` from another provider: (payer's, payee's). None yet;
    a tariff goes here and flows into the quote and the postings."""
    del amount
    return 0, 0


def _refuse_quote(
    uow: UnitOfWork,
    settings: Settings,
    request: QuoteRequest,
    code: ErrorCode,
    description: str | None = None,
) -> None:
    send(
        uow, settings, method="PUT", path=f"/quotes/{request.quote_id}/error",
        destination=request.payer.fsp_id, body=error(code, description),
    )  # fmt: skip


def on_quote_request(
    uow: UnitOfWork,
    *,
    request: QuoteRequest,
    settings: Settings,
    encryptor: Encryptor,
    now: datetime,
    business: BusinessPayee | None = None,
) -> None:
    """Answer a ``POST /quotes`` for one of our residents (or refuse it with 3204/5103), or
    for one of our merchants through ``business`` (5103 with the merchant's refusal code)."""
    found = uow.session.scalar(select(PayeeQuote).where(PayeeQuote.quote_id == request.quote_id))
    if found is not None:  # a duplicate: the same terms again, nothing new stored
        send(
            uow, settings, method="PUT", path=f"/quotes/{request.quote_id}",
            destination=found.payer_fsp, body=QuoteResponse.model_validate_json(found.response),
        )  # fmt: skip
        return
    payee = request.payee
    if payee.fsp_id == settings.interop_participant_id and payee.party_id_type == "BUSINESS":
        _quote_business(uow, request=request, settings=settings, encryptor=encryptor, now=now,
                        business=business)  # fmt: skip
        return
    if payee.fsp_id != settings.interop_participant_id or payee.party_id_type != "MSISDN":
        _refuse_quote(uow, settings, request, ErrorCode.PARTY_NOT_FOUND)
        return
    try:
        identifier = msisdn(payee.party_identifier)
        user = find_user_by_phone(uow, phone=identifier, encryptor=encryptor)
    except DomainError:
        user = None
    if user is None:
        _refuse_quote(uow, settings, request, ErrorCode.PARTY_NOT_FOUND)
        return
    if not _can_receive(uow, user.id) or not user.real_name_verified:
        _refuse_quote(uow, settings, request, ErrorCode.PAYEE_FSP_REJECTED_QUOTE)
        return
    if request.expiration <= now:
        _refuse_quote(uow, settings, request, ErrorCode.QUOTE_EXPIRED)
        return
    payer_fee, payee_fee = payee_fees(request.amount.amount)
    if request.amount_type == "SEND":
        transfer = request.amount.amount
    else:
        transfer = request.amount.amount + payee_fee
    if transfer - payee_fee <= 0:
        _refuse_quote(uow, settings, request, ErrorCode.PAYEE_FSP_REJECTED_QUOTE)
        return
    _answer_quote(
        uow, request=request, settings=settings, encryptor=encryptor, now=now, user_id=user.id,
        identifier=identifier, transfer=transfer, payer_fee=payer_fee, payee_fee=payee_fee,
    )  # fmt: skip
    note_move_quote(
        uow, user_id=user.id, payer_fsp=request.payer.fsp_id,
        payer=request.payer.party_identifier, payee=identifier, quote_id=request.quote_id,
    )  # fmt: skip


def _answer_quote(
    uow: UnitOfWork,
    *,
    request: QuoteRequest,
    settings: Settings,
    encryptor: Encryptor,
    now: datetime,
    user_id: str,
    identifier: str,
    transfer: int,
    payer_fee: int,
    payee_fee: int,
) -> None:
    """Draw the fulfilment, keep the terms, send ``PUT /quotes/{id}``."""
    expiration = min(request.expiration, now + timedelta(seconds=settings.interop_transfer_seconds))
    fulfilment = conditions.new_fulfilment()
    response = QuoteResponse(
        transfer_amount=Amount(amount=transfer),
        payee_receive_amount=Amount(amount=transfer - payee_fee),
        payer_fee=Amount(amount=payer_fee),
        payee_fee=Amount(amount=payee_fee),
        expiration=expiration,
        ilp_condition=conditions.condition_of(fulfilment),
    )
    uow.session.add(
        PayeeQuote(
            quote_id=request.quote_id,
            payer_fsp=request.payer.fsp_id,
            user_id=user_id,
            identifier=identifier,
            transfer_amount=transfer,
            payee_fee=payee_fee,
            payer_fee=payer_fee,
            condition=response.ilp_condition,
            fulfilment_enc=encryptor.encrypt(fulfilment.encode(), aad=request.quote_id.encode()),
            expires_at=to_us(expiration),
            response=response.wire().decode(),
            created_at=to_us(now),
        )
    )
    uow.session.flush()
    send(
        uow, settings, method="PUT", path=f"/quotes/{request.quote_id}",
        destination=request.payer.fsp_id, body=response,
    )  # fmt: skip


def _quote_business(
    uow: UnitOfWork,
    *,
    request: QuoteRequest,
    settings: Settings,
    encryptor: Encryptor,
    now: datetime,
    business: BusinessPayee | None,
) -> None:
    """A quote for one of our merchants: the merchant feature authenticates the scanned code
    and gives the terms (its fee is the payee's fee); a refusal is 5103 with its code."""
    if business is None:
        _refuse_quote(uow, settings, request, ErrorCode.PARTY_NOT_FOUND)
        return
    if request.expiration <= now:
        _refuse_quote(uow, settings, request, ErrorCode.QUOTE_EXPIRED)
        return
    expiration = min(request.expiration, now + timedelta(seconds=settings.interop_transfer_seconds))
    try:
        # the merchant feature refuses before it writes: nothing of a refusal stays behind
        terms = business.quote(uow, request=request, expires_at=to_us(expiration))
    except DomainError as refused:
        log.info("merchant quote refused", quote_id=request.quote_id, code=refused.code)
        _refuse_quote(
            uow, settings, request, ErrorCode.PAYEE_FSP_REJECTED_QUOTE, refused.code[:128]
        )
        return
    _answer_quote(
        uow, request=request, settings=settings, encryptor=encryptor, now=now,
        user_id=MERCHANT, identifier=request.payee.party_identifier, transfer=terms.amount,
        payer_fee=0, payee_fee=terms.fee,
    )  # fmt: skip


def _can_receive(uow: UnitOfWork, user_id: str) -> bool:
    """Whether the resident's account is active and their wallet open (opened if needed)."""
    try:
        _, payee = lock_parties(uow, user_id=user_id, to=user_id)
    except DomainError:  # frozen or closed account
        return False
    return payee is not None and not payee.wallet_closed


def _terms(quote: PayeeQuote | None) -> QuoteResponse | None:
    return None if quote is None else QuoteResponse.model_validate_json(quote.response)


def _refuse_prepare(
    uow: UnitOfWork, settings: Settings, prepare: TransferPrepare, code: ErrorCode
) -> None:
    send(
        uow, settings, method="PUT", path=f"/transfers/{prepare.transfer_id}/error",
        destination=prepare.payer_fsp, body=error(code),
    )  # fmt: skip


def on_prepare(
    uow: UnitOfWork,
    *,
    prepare: TransferPrepare,
    settings: Settings,
    encryptor: Encryptor,
    now: datetime,
    business: BusinessPayee | None = None,
) -> None:
    """Credit a pending transfer for a prepare that keeps its quote's terms and release the
    fulfilment; refuse anything else (3205 no quote, 3302 quote expired, 3100 other terms).
    A merchant's quote is credited by ``business`` (5105 if its order cannot be paid now)."""
    seen = uow.session.scalar(
        select(InteropTransfer).where(InteropTransfer.transfer_id == prepare.transfer_id)
    )
    if seen is not None:  # a duplicate: the fulfilment again while the switch has no word
        if seen.role == "payee" and seen.state == "PREPARED":
            held = uow.session.scalar(
                select(PayeeQuote).where(PayeeQuote.quote_id == seen.quote_id)
            )
            if held is not None:
                _fulfil(uow, settings=settings, encryptor=encryptor, prepare=prepare,
                        quote=held, now=now)  # fmt: skip
        return
    quote = uow.session.scalar(
        select(PayeeQuote).where(PayeeQuote.condition == prepare.ilp_condition).with_for_update()
    )
    code = check_prepare(_terms(quote), prepare, now)
    if code is None and quote is not None:
        if (
            prepare.payer_fsp != quote.payer_fsp
            or prepare.payee_fsp != settings.interop_participant_id
        ):
            code = ErrorCode.GENERIC_VALIDATION_ERROR
        elif uow.session.scalar(
            select(InteropTransfer.id).where(InteropTransfer.quote_id == quote.quote_id)
        ):
            code = ErrorCode.GENERIC_VALIDATION_ERROR  # one transfer per quote
    if code is not None or quote is None:
        _refuse_prepare(uow, settings, prepare, code or ErrorCode.QUOTE_ID_NOT_FOUND)
        return
    if quote.user_id == MERCHANT:
        _prepare_business(uow, prepare=prepare, quote=quote, settings=settings,
                          encryptor=encryptor, now=now, business=business)  # fmt: skip
        return
    receive = quote.transfer_amount - quote.payee_fee
    moving_in = is_move_quote(uow, quote_id=quote.quote_id)  # their own money: no limit
    try:
        _, payee = lock_parties(uow, user_id=quote.user_id, to=quote.user_id)
        assert payee is not None
        if payee.wallet_closed:
            raise DomainError("wallet closed")
        account = ledger.get_account(uow, account_id=payee.account_id)
        assert account is not None
        if not moving_in:
            check_inflow(
                tier=payee.user.tier, account=account, amount=receive, settings=settings,
                recipient=True,
            )  # fmt: skip
    except DomainError as refused:
        log.info("interop credit refused", transfer_id=prepare.transfer_id, code=refused.code)
        _refuse_prepare(uow, settings, prepare, ErrorCode.PAYEE_FSP_REJECTED_TRANSACTION)
        return
    public_id = new_id("itf")
    settlement = interop_account(uow)
    holds = [
        TransferSpec(
            id=public_id,
            debit_account_id=settlement,
            credit_account_id=payee.account_id,
            amount=receive,
            ledger=CURRENCY,
            code=TransferCode.INTEROP,
            flags=TransferFlags.PENDING | (TransferFlags.LINKED if quote.payee_fee else 0),
            reference=prepare.transfer_id,
        )
    ]
    if quote.payee_fee:
        holds.append(
            TransferSpec(
                id=f"{public_id}.fee",
                debit_account_id=settlement,
                credit_account_id=accounts.fee_revenue_account(uow),
                amount=quote.payee_fee,
                ledger=CURRENCY,
                code=TransferCode.FEE,
                flags=TransferFlags.PENDING,
                reference=prepare.transfer_id,
            )
        )
    require_on_books(ledger.post(uow, transfers=holds), f"crediting {prepare.transfer_id}")
    moment = to_us(now)
    uow.session.add(
        InteropTransfer(
            public_id=public_id,
            transfer_id=prepare.transfer_id,
            quote_id=quote.quote_id,
            role="payee",
            user_id=quote.user_id,
            counterparty_fsp=prepare.payer_fsp,
            counterparty_fsp_name=prepare.payer_fsp_name,
            counterparty_identifier="",
            counterparty_name="",
            amount=quote.transfer_amount,
            payer_fee=quote.payer_fee,
            payee_fee=quote.payee_fee,
            condition=quote.condition,
            state="PREPARED",
            usage="{}",
            expires_at=to_us(prepare.expiration),
            created_at=moment,
            updated_at=moment,
        )
    )
    history.record(
        uow,
        user_id=quote.user_id,
        object_id=public_id,
        kind="transfer_in",
        amount=receive,
        fee=quote.payee_fee,
        currency=CURRENCY,
        status="processing",
        transfer_ids=[h.id for h in holds],
        counterparty_label=provider_name(prepare.payer_fsp, prepare.payer_fsp_name),
        note=MOVE_NOTE if moving_in else "",
        reference=prepare.transfer_id,
    )
    uow.session.flush()
    _fulfil(uow, settings=settings, encryptor=encryptor, prepare=prepare, quote=quote, now=now)


def _fulfil(
    uow: UnitOfWork,
    *,
    settings: Settings,
    encryptor: Encryptor,
    prepare: TransferPrepare,
    quote: PayeeQuote,
    now: datetime,
) -> None:
    """Release the quote's fulfilment to the switch: ``PUT /transfers/{id}`` COMMITTED."""
    fulfilment = encryptor.decrypt(quote.fulfilment_enc, aad=quote.quote_id.encode()).decode()
    send(
        uow, settings, method="PUT", path=f"/transfers/{prepare.transfer_id}",
        destination=prepare.payer_fsp,
        body=TransferFulfil(
            fulfilment=fulfilment, completed_timestamp=now, transfer_state="COMMITTED"
        ),
    )  # fmt: skip


def _prepare_business(
    uow: UnitOfWork,
    *,
    prepare: TransferPrepare,
    quote: PayeeQuote,
    settings: Settings,
    encryptor: Encryptor,
    now: datetime,
    business: BusinessPayee | None,
) -> None:
    """A prepare for a merchant's quote: the merchant feature holds the order and credits
    the merchant (pending); the transfer row, with no resident, is the sweep's and the
    switch's word's to resolve."""
    try:
        if business is None:
            raise DomainError("merchant payments are not wired", code="merchant_unavailable")
        # the merchant feature refuses before it writes: nothing of a refusal stays behind
        business.prepare(
            uow, quote_id=quote.quote_id, prepare=prepare, settlement=interop_account(uow)
        )
    except DomainError as refused:
        log.info("merchant credit refused", transfer_id=prepare.transfer_id, code=refused.code)
        _refuse_prepare(uow, settings, prepare, ErrorCode.PAYEE_FSP_REJECTED_TRANSACTION)
        return
    moment = to_us(now)
    uow.session.add(
        InteropTransfer(
            public_id=new_id("itf"),
            transfer_id=prepare.transfer_id,
            quote_id=quote.quote_id,
            role="payee",
            user_id=MERCHANT,
            counterparty_fsp=prepare.payer_fsp,
            counterparty_fsp_name=prepare.payer_fsp_name,
            counterparty_identifier="",
            counterparty_name=quote.identifier,  # the merchant paid, for the operator's lists
            amount=quote.transfer_amount,
            payer_fee=quote.payer_fee,
            payee_fee=quote.payee_fee,
            condition=quote.condition,
            state="PREPARED",
            usage="{}",
            expires_at=to_us(prepare.expiration),
            created_at=moment,
            updated_at=moment,
        )
    )
    uow.session.flush()
    _fulfil(uow, settings=settings, encryptor=encryptor, prepare=prepare, quote=quote, now=now)
