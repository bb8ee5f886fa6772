"""Top-up from and withdrawal to a bound card: ledger holds while the bank answers.

Each funding runs in three steps, so no transaction is open while the bank is called:

1. :func:`start_topup` / :func:`start_withdrawal` — one transaction: checks, limits, a
   pending ledger transfer (top-up: bank settlement → wallet; withdrawal: wallet → bank
   settlement plus wallet → fee revenue, linked), the funding row ``processing``.
2. :func:`ask_bank` — the bank call, outside any transaction, with our reference.
3. :func:`settle_funding` — one transaction: success posts the holds, failure voids them
   (and gives back the limit usage and free quota), no answer in time leaves them pending
   with status ``unknown``.

Holds never expire by themselves: only the bank knows whether money moved, so an
``unknown`` (or a ``processing`` funding left behind by a crash) is settled by
:func:`reconcile_fundings`, which asks the bank by reference. Whichever way and whenever
the bank answers, the posting matches it: no money is lost or created.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import and_, or_, select

from citywallet.identity.service import run_confirmed, verify_pin
from citywallet.ledger import service as ledger
from citywallet.ledger.types import Result, TransferCode, TransferFlags, TransferSpec
from citywallet.platform.clock import now_us
from citywallet.platform.config import Settings, get_settings
from citywallet.platform.crypto import Encryptor
from citywallet.platform.db import Database, UnitOfWork
from citywallet.platform.errors import Conflict, InvalidInput
from citywallet.platform.logging import get_logger
from citywallet.wallet import accounts, history
from citywallet.wallet.accounts import CURRENCY, FREE_WITHDRAWAL
from citywallet.wallet.bank import Bank, BankAnswer, BankStatus
from citywallet.wallet.cards import card_number, card_row
from citywallet.wallet.errors import InsufficientBalance, TransactionNotFound
from citywallet.wallet.limits import check_inflow, fee_rule, reserve_outflow
from citywallet.wallet.models import BankCard, Funding
from citywallet.wallet.people import active_user, new_id, verified
from citywallet.wallet.rules import WithdrawalFee, periods_at, withdrawal_fee

MAX_AMOUNT = 10**12  # fen: far above any tier limit, far below the ledger's bound
SECOND_US = 1_000_000
log = get_logger(__name__)


@dataclass(frozen=True)
class FundingView:
    """A top-up or withdrawal as its owner sees it."""

    id: str
    kind: str  # "topup" | "withdrawal"
    status: str  # "processing" | "unknown" | "succeeded" | "failed"
    amount: int
    fee: int
    currency: str
    card_id: str
    card_label: str
    failure_code: str | None
    created_at: int
    updated_at: int
    resolved_at: int | None


@dataclass(frozen=True)
class BankRequest:
    """What step 2 sends to the bank (clear values: never logged, never stored)."""

    funding_id: str
    kind: str
    amount: int
    currency: str
    card_number: str = field(repr=False)
    holder_name: str = field(repr=False)


@dataclass(frozen=True)
class WithdrawalQuote:
    """What a withdrawal of ``amount`` would cost now, and the free quota before and after."""

    amount: int
    fee: int
    free_part: int
    free_quota_before: int
    free_quota_after: int  # before - free_part: what the next withdrawal starts from
    total: int  # leaves the wallet: amount + fee


def validate_amount(amount: int, currency: str) -> None:
    """A positive amount of minor units of CNY, the only currency of wallets so far."""
    if currency != CURRENCY:
        raise InvalidInput(f"Wallets hold {CURRENCY} only.", code="unsupported_currency")
    if not 1 <= amount <= MAX_AMOUNT:
        raise InvalidInput("The amount must be a positive number of fen.", code="invalid_amount")


def _label(card: BankCard) -> str:
    return f"{card.bank_code} ····{card.last4}"


def _view(row: Funding, card_label: str) -> FundingView:
    return FundingView(
        id=row.public_id,
        kind=row.kind,
        status=row.status,
        amount=row.amount,
        fee=row.fee,
        currency=row.currency,
        card_id=row.card_id,
        card_label=card_label,
        failure_code=row.failure_code,
        created_at=row.created_at,
        updated_at=row.updated_at,
        resolved_at=row.resolved_at,
    )


def _view_of(uow: UnitOfWork, row: Funding) -> FundingView:
    card = uow.session.scalar(select(BankCard).where(BankCard.public_id == row.card_id))
    return _view(row, _label(card) if card is not None else "")


def _pending_ids(row: Funding) -> list[str]:
    """The holds of a funding: one transfer, plus the linked fee for a withdrawal with a fee."""
    return [row.public_id] + ([f"{row.public_id}.fee"] if row.fee else [])


def _require_on_books(results: list[Result], what: str) -> None:
    if not all(r.on_books for r in results):
        raise RuntimeError(f"ledger refused {what}: {[r.value for r in results]}")


# --- step 1 -------------------------------------------------------------------------------


def start_topup(
    uow: UnitOfWork,
    *,
    user_id: str,
    card_id: str,
    amount: int,
    encryptor: Encryptor,
    currency: str = CURRENCY,
    settings: Settings | None = None,
    idempotency_key: str | None = None,
    pin: str | None = None,
) -> BankRequest:
    """Hold a top-up: bank settlement → wallet, pending until the bank answers. With
    ``pin``, the payment PIN is checked in this transaction (``identity.run_confirmed``)."""
    cfg = settings if settings is not None else get_settings()
    validate_amount(amount, currency)
    if pin is not None:
        verify_pin(uow, user_id=user_id, pin=pin, encryptor=encryptor)
    user = active_user(uow, user_id)
    identity = verified(uow, user_id, encryptor)
    card = card_row(uow, user_id=user_id, card_id=card_id, for_update=True)
    wallet = accounts.lock_wallets(uow, user_ids=[user_id])[user_id]
    settlement = accounts.bank_settlement_account(uow)
    account = ledger.get_account(uow, account_id=wallet)
    assert account is not None
    check_inflow(tier=user.tier, account=account, amount=amount, settings=cfg)
    funding_id = new_id("top")
    [result] = ledger.post(
        uow,
        transfers=[
            TransferSpec(
                id=funding_id,
                debit_account_id=settlement,
                credit_account_id=wallet,
                amount=amount,
                ledger=CURRENCY,
                code=TransferCode.TOPUP,
                flags=TransferFlags.PENDING,
                reference=funding_id,
            )
        ],
    )
    _require_on_books([result], "a top-up hold")
    moment = now_us()
    _add_funding(
        uow,
        funding_id=funding_id,
        user_id=user_id,
        kind="topup",
        card=card,
        amount=amount,
        fee=WithdrawalFee(0, 0, 0),
        day_period=periods_at(moment).day,
        idempotency_key=idempotency_key,
        moment=moment,
    )
    return BankRequest(
        funding_id, "topup", amount, CURRENCY, card_number(encryptor, card), identity.name
    )


def quote_withdrawal(
    uow: UnitOfWork, *, user_id: str, amount: int, settings: Settings | None = None
) -> WithdrawalQuote:
    """The fee a withdrawal of ``amount`` would pay now (nothing is reserved)."""
    cfg = settings if settings is not None else get_settings()
    validate_amount(amount, CURRENCY)
    used = accounts.read_usage(uow, user_id=user_id, periods=[FREE_WITHDRAWAL])[FREE_WITHDRAWAL]
    rule = fee_rule(cfg)
    before = max(0, rule.free_quota - used)
    fee = withdrawal_fee(amount, free_quota_left=before, rule=rule)
    return WithdrawalQuote(
        amount=amount,
        fee=fee.fee,
        free_part=fee.free_part,
        free_quota_before=before,
        free_quota_after=before - fee.free_part,
        total=amount + fee.fee,
    )


def start_withdrawal(
    uow: UnitOfWork,
    *,
    user_id: str,
    card_id: str,
    amount: int,
    encryptor: Encryptor,
    currency: str = CURRENCY,
    settings: Settings | None = None,
    idempotency_key: str | None = None,
    pin: str | None = None,
) -> BankRequest:
    """Hold a withdrawal to the user's own card: amount → bank settlement and the fee →
    fee revenue, as linked pending transfers; counted toward the single and daily limits
    but not the yearly total (own card of the same name). With ``pin``, the payment PIN is
    checked in this transaction (``identity.run_confirmed``)."""
    cfg = settings if settings is not None else get_settings()
    validate_amount(amount, currency)
    if pin is not None:
        verify_pin(uow, user_id=user_id, pin=pin, encryptor=encryptor)
    user = active_user(uow, user_id)
    identity = verified(uow, user_id, encryptor)
    card = card_row(uow, user_id=user_id, card_id=card_id, for_update=True)
    if card.holder_id_hash != identity.id_hash:
        raise Conflict(
            "Withdrawals go only to a card in your own name.", code="card_holder_mismatch"
        )
    wallet = accounts.lock_wallets(uow, user_ids=[user_id])[user_id]
    settlement = accounts.bank_settlement_account(uow)
    revenue = accounts.fee_revenue_account(uow)
    moment = now_us()
    periods = reserve_outflow(
        uow,
        user_id=user_id,
        tier=user.tier,
        amount=amount,
        settings=cfg,
        moment=moment,
        own_card=True,
    )
    rule = fee_rule(cfg)
    used = accounts.lock_usage(uow, user_id=user_id, periods=[FREE_WITHDRAWAL])[FREE_WITHDRAWAL]
    fee = withdrawal_fee(amount, free_quota_left=rule.free_quota - used, rule=rule)
    account = ledger.get_account(uow, account_id=wallet)
    assert account is not None
    if account.available < amount + fee.fee:
        raise InsufficientBalance(
            "The wallet's available balance does not cover the amount and the fee.",
            available=account.available,
            needed=amount + fee.fee,
        )
    funding_id = new_id("wdr")
    holds = [
        TransferSpec(
            id=funding_id,
            debit_account_id=wallet,
            credit_account_id=settlement,
            amount=amount,
            ledger=CURRENCY,
            code=TransferCode.WITHDRAWAL,
            flags=TransferFlags.PENDING | (TransferFlags.LINKED if fee.fee else 0),
            reference=funding_id,
        )
    ]
    if fee.fee:
        holds.append(
            TransferSpec(
                id=f"{funding_id}.fee",
                debit_account_id=wallet,
                credit_account_id=revenue,
                amount=fee.fee,
                ledger=CURRENCY,
                code=TransferCode.FEE,
                flags=TransferFlags.PENDING,
                reference=funding_id,
            )
        )
    results = ledger.post(uow, transfers=holds)
    if any(r is Result.EXCEEDS_CREDITS for r in results):
        raise InsufficientBalance("The wallet's available balance does not cover the amount.")
    _require_on_books(results, "a withdrawal hold")
    accounts.add_usage(uow, user_id=user_id, changes={FREE_WITHDRAWAL: fee.free_part})
    _add_funding(
        uow,
        funding_id=funding_id,
        user_id=user_id,
        kind="withdrawal",
        card=card,
        amount=amount,
        fee=fee,
        day_period=periods.day,
        idempotency_key=idempotency_key,
        moment=moment,
    )
    return BankRequest(
        funding_id, "withdrawal", amount, CURRENCY, card_number(encryptor, card), identity.name
    )


def _add_funding(
    uow: UnitOfWork,
    *,
    funding_id: str,
    user_id: str,
    kind: str,
    card: BankCard,
    amount: int,
    fee: WithdrawalFee,
    day_period: str,
    idempotency_key: str | None,
    moment: int,
) -> None:
    row = Funding(
        public_id=funding_id,
        user_id=user_id,
        kind=kind,
        card_id=card.public_id,
        amount=amount,
        fee=fee.fee,
        free_part=fee.free_part,
        currency=CURRENCY,
        status="processing",
        day_period=day_period,
        idempotency_key=idempotency_key,
        transfer_ids="[]",
        created_at=moment,
        updated_at=moment,
    )
    row.transfer_ids = json.dumps(_pending_ids(row))
    uow.session.add(row)
    history.record(
        uow,
        user_id=user_id,
        object_id=funding_id,
        kind=kind,
        amount=amount,
        fee=fee.fee,
        currency=CURRENCY,
        status="processing",
        transfer_ids=_pending_ids(row),
        counterparty_label=_label(card),
        reference=card.public_id,
    )
    uow.session.flush()


# --- step 2 -------------------------------------------------------------------------------


def ask_bank(bank: Bank, request: BankRequest) -> BankAnswer:
    """Call the bank for a started funding (outside any transaction). A failure to reach
    the bank is an ``unknown`` answer: the request may have arrived."""
    try:
        if request.kind == "topup":
            return bank.debit_card(
                reference=request.funding_id,
                card_number=request.card_number,
                amount=request.amount,
                currency=request.currency,
            )
        return bank.credit_card(
            reference=request.funding_id,
            card_number=request.card_number,
            holder_name=request.holder_name,
            amount=request.amount,
            currency=request.currency,
        )
    except Exception as exc:  # whatever went wrong, the outcome is the bank's to tell
        log.warning("bank call failed", funding_id=request.funding_id, error=type(exc).__name__)
        return BankAnswer(BankStatus.UNKNOWN, "error")


# --- step 3 -------------------------------------------------------------------------------


def _funding_row(uow: UnitOfWork, funding_id: str, *, for_update: bool = False) -> Funding:
    query = select(Funding).where(Funding.public_id == funding_id)
    if for_update:
        query = query.with_for_update().execution_options(populate_existing=True)
    row = uow.session.scalar(query)
    if row is None:
        raise TransactionNotFound("No such top-up or withdrawal.")
    return row


def settle_funding(uow: UnitOfWork, *, funding_id: str, answer: BankAnswer) -> FundingView:
    """Apply the bank's answer: post the holds, void them, or keep them (``unknown``).
    Settling an already settled funding changes nothing."""
    row = _funding_row(uow, funding_id, for_update=True)
    if row.status in ("succeeded", "failed"):
        return _view_of(uow, row)
    moment = now_us()
    if answer.status in (BankStatus.UNKNOWN, BankStatus.NOT_FOUND):
        if row.status != "unknown":
            row.status, row.updated_at = "unknown", moment
            history.set_status(
                uow, object_id=row.public_id, status="unknown", transfer_ids=_ids(row)
            )
        uow.session.flush()
        return _view_of(uow, row)
    accounts.lock_wallets(uow, user_ids=[row.user_id])
    succeeded = answer.status is BankStatus.SUCCEEDED
    pending = _pending_ids(row)
    suffix = "post" if succeeded else "void"
    flag = TransferFlags.POST_PENDING if succeeded else TransferFlags.VOID_PENDING
    specs = [
        TransferSpec(
            id=f"{pending_id}.{suffix}",
            pending_id=pending_id,
            amount=None,
            flags=flag | (TransferFlags.LINKED if i < len(pending) - 1 else 0),
            reference=row.public_id,
        )
        for i, pending_id in enumerate(pending)
    ]
    _require_on_books(ledger.post(uow, transfers=specs), f"settling {row.public_id}")
    if not succeeded and row.kind == "withdrawal":
        accounts.lock_usage(uow, user_id=row.user_id, periods=[row.day_period, FREE_WITHDRAWAL])
        accounts.add_usage(
            uow,
            user_id=row.user_id,
            changes={row.day_period: -row.amount, FREE_WITHDRAWAL: -row.free_part},
        )
    row.status = "succeeded" if succeeded else "failed"
    row.failure_code = None if succeeded else (answer.code or "bank_declined")
    row.bank_ref = answer.bank_ref
    row.updated_at = row.resolved_at = moment
    row.transfer_ids = json.dumps(pending + [s.id for s in specs])
    history.set_status(uow, object_id=row.public_id, status=row.status, transfer_ids=_ids(row))
    uow.session.flush()
    return _view_of(uow, row)


def _ids(row: Funding) -> list[str]:
    ids: list[str] = json.loads(row.transfer_ids)
    return ids


# --- the whole flow, and reading ----------------------------------------------------------


def top_up(
    db: Database,
    *,
    bank: Bank,
    user_id: str,
    card_id: str,
    amount: int,
    pin: str,
    encryptor: Encryptor,
    currency: str = CURRENCY,
    settings: Settings | None = None,
) -> FundingView:
    """Top up from a bound card: PIN, hold, bank, settle (three short transactions)."""
    return _fund(
        start_topup,
        db,
        bank=bank,
        user_id=user_id,
        card_id=card_id,
        amount=amount,
        pin=pin,
        encryptor=encryptor,
        currency=currency,
        settings=settings,
    )


def withdraw(
    db: Database,
    *,
    bank: Bank,
    user_id: str,
    card_id: str,
    amount: int,
    pin: str,
    encryptor: Encryptor,
    currency: str = CURRENCY,
    settings: Settings | None = None,
) -> FundingView:
    """Withdraw to a bound card of the same name: PIN, holds, bank, settle."""
    return _fund(
        start_withdrawal,
        db,
        bank=bank,
        user_id=user_id,
        card_id=card_id,
        amount=amount,
        pin=pin,
        encryptor=encryptor,
        currency=currency,
        settings=settings,
    )


def _fund(
    start: Callable[..., BankRequest],
    db: Database,
    *,
    bank: Bank,
    user_id: str,
    card_id: str,
    amount: int,
    pin: str,
    encryptor: Encryptor,
    currency: str,
    settings: Settings | None,
) -> FundingView:
    """The PIN and the hold(s) in one transaction, the bank call outside any, settle."""
    cfg = settings if settings is not None else get_settings()
    request = run_confirmed(
        db,
        lambda uow: start(
            uow,
            user_id=user_id,
            card_id=card_id,
            amount=amount,
            currency=currency,
            encryptor=encryptor,
            settings=cfg,
            pin=pin,
        ),
        settings=cfg,
    )
    answer = ask_bank(bank, request)
    return db.transact(
        lambda uow: settle_funding(uow, funding_id=request.funding_id, answer=answer)
    )


def get_funding(uow: UnitOfWork, *, user_id: str, funding_id: str) -> FundingView:
    """One of the user's top-ups or withdrawals (``transaction_not_found`` otherwise)."""
    row = uow.session.scalar(
        select(Funding).where(Funding.public_id == funding_id, Funding.user_id == user_id)
    )
    if row is None:
        raise TransactionNotFound("No such top-up or withdrawal.")
    return _view_of(uow, row)


def funding_for_key(uow: UnitOfWork, *, user_id: str, idempotency_key: str) -> FundingView | None:
    """The funding a request with this ``Idempotency-Key`` started, if any."""
    row = uow.session.scalar(
        select(Funding)
        .where(Funding.user_id == user_id, Funding.idempotency_key == idempotency_key)
        .order_by(Funding.id.desc())
        .limit(1)
    )
    return None if row is None else _view_of(uow, row)


# --- reconciliation -----------------------------------------------------------------------


@dataclass
class ReconcileReport:
    """What one reconciliation pass did."""

    checked: int = 0
    succeeded: int = 0
    failed: int = 0
    unresolved: int = 0

    @property
    def resolved(self) -> int:
        """Fundings settled in this pass."""
        return self.succeeded + self.failed


def reconcile_fundings(
    db: Database,
    *,
    bank: Bank,
    settings: Settings | None = None,
    now: int | None = None,
    limit: int = 100,
) -> ReconcileReport:
    """Ask the bank about every ``unknown`` funding and every one still ``processing``
    after ``funding_reconcile_after_seconds``, and settle those it has an answer for.

    A bank with no record of the reference means the request never arrived: once the grace
    period (twice the bank timeout, at least the reconcile delay) has passed, the holds are
    voided. Safe to run concurrently and repeatedly (job or ``citywallet`` CLI).
    """
    cfg = settings if settings is not None else get_settings()
    moment = now if now is not None else now_us()
    stale = moment - cfg.funding_reconcile_after_seconds * SECOND_US
    grace = max(cfg.funding_reconcile_after_seconds, 2 * cfg.bank_timeout_seconds)
    never_arrived = moment - int(grace * SECOND_US)
    with db.uow(readonly=True) as uow:
        rows = uow.session.execute(
            select(Funding.public_id, Funding.created_at)
            .where(
                or_(
                    Funding.status == "unknown",
                    and_(Funding.status == "processing", Funding.created_at <= stale),
                )
            )
            .order_by(Funding.id)
            .limit(limit)
        ).all()
    report = ReconcileReport()
    for funding_id, created_at in rows:
        report.checked += 1
        try:
            answer = bank.query(reference=funding_id)
        except Exception as exc:  # the bank is down: try again next pass
            log.warning("bank query failed", funding_id=funding_id, error=type(exc).__name__)
            report.unresolved += 1
            continue
        if answer.status is BankStatus.NOT_FOUND and created_at <= never_arrived:
            answer = BankAnswer(BankStatus.FAILED, "bank_has_no_record")
        settled = _settle_in_own_transaction(db, funding_id, answer)
        if settled.status == "succeeded":
            report.succeeded += 1
        elif settled.status == "failed":
            report.failed += 1
        else:
            report.unresolved += 1
    if report.checked:
        log.info("fundings reconciled", **vars(report))
    return report


def _settle_in_own_transaction(db: Database, funding_id: str, answer: BankAnswer) -> FundingView:
    return db.transact(lambda uow: settle_funding(uow, funding_id=funding_id, answer=answer))
