"""Settlement: each business day's net receivable paid to the merchant's bank card, T+n.

:func:`run_settlements` is a periodic job, safe to re-run and to run in several processes
at once (also by hand: ``citywallet merchant settle``). One pass does three things:

1. **Resolve open payouts** — a payout whose bank call did not answer (``unknown``), or
   that is still ``processing`` after ``funding_reconcile_after_seconds`` (a crash between
   the hold and the answer), is asked of the bank by its reference. A bank with no record
   of it after the grace period (twice the bank timeout, at least the reconcile delay) never
   received it: the attempt is voided and retried at once.
2. **Sweep due days** — for each merchant (active or suspended; closed while its receivable
   holds money) and each business day ``D`` from the day after its last settlement (or its
   first day) up to ``today - settle_days`` (and never today itself: a day is settled once
   it is over), one transaction locks the merchant's two ledger accounts, writes the
   :class:`Settlement` row (unique per merchant and day) and posts the sweep
   ``stl_….sweep`` receivable → settlement account (code SETTLEMENT, reference ``stl_…``).
   Its amount is what the receivable owes for days up to ``D`` and still holds — see
   :func:`sweepable`. An amount of 0 makes an ``empty`` settlement with no transfers.
3. **Pay out** — the flow of :mod:`citywallet.wallet.funding`, so no transaction is open
   while the bank is called: (a) one transaction posts the pending transfer
   ``stl_….payout.<n>`` settlement account → bank settlement and marks the row
   ``processing`` with ``bank_reference = stl_…-<n>``; (b) ``bank.credit_card`` with that
   reference; (c) one transaction posts the hold (``paid``), voids it (``failed``: the
   money stays in the settlement account and attempt ``n + 1`` is due after a backoff of
   30 minutes doubling up to a day, or at once when the merchant's details — its card —
   change), or keeps it (``unknown``: step 1 asks later).

A payout is never paid twice: a new attempt starts only after the previous one was voided
on a definite ``failed`` from the bank, the row lock (``SKIP LOCKED`` on PostgreSQL) lets
one process start each attempt, and a bank executes a reference at most once.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta, tzinfo

from sqlalchemy import and_, func, or_, select, text

from citywallet.identity.keys import encryptor_or_default
from citywallet.ledger import service as ledger
from citywallet.ledger.types import Result, TransferCode, TransferFlags, TransferSpec
from citywallet.merchant.errors import SettlementNotFound
from citywallet.merchant.lookup import one_row, page_limit
from citywallet.merchant.models import Merchant, Settlement
from citywallet.merchant.onboarding import merchant_by_pk
from citywallet.merchant.statements import (
    account_movements,
    business_day,
    business_zone,
    day_window,
)
from citywallet.platform.clock import now_us
from citywallet.platform.config import Settings
from citywallet.platform.crypto import Encryptor
from citywallet.platform.db import Database, UnitOfWork
from citywallet.platform.logging import get_logger
from citywallet.wallet import accounts
from citywallet.wallet.accounts import CURRENCY
from citywallet.wallet.bank import Bank, BankAnswer, BankStatus
from citywallet.wallet.people import new_id

SECOND_US = 1_000_000
RETRY_FIRST_SECONDS = 30 * 60
RETRY_MAX_SECONDS = 24 * 3600
NO_RECORD = "bank_has_no_record"  # the bank never received the attempt: retry at once
SETTLED_MERCHANTS = ("active", "suspended", "closed")
BATCH = 500  # settlements per phase and pass; the rest wait for the next pass
log = get_logger(__name__)


@dataclass(frozen=True)
class SettlementView:
    """A settlement as its merchant sees it."""

    id: str
    business_date: date  # the business day whose money this pays
    amount: int
    currency: str
    status: str  # processing | unknown | paid | failed (retried at next_attempt_at) | empty
    attempts: int
    bank_reference: str | None  # our reference of the latest attempt (stl_…-<n>)
    bank_ref: str | None  # the bank's own reference
    failure_code: str | None
    next_attempt_at: int | None
    created_at: int
    updated_at: int
    paid_at: int | None


@dataclass(frozen=True)
class MerchantBalance:
    """What the platform owes a merchant: not yet settled, and on its way to the bank."""

    currency: str
    receivable: int
    in_settlement: int


@dataclass
class SettlementReport:
    """What one pass did: settlements created (``empty`` ones among them), payouts that
    succeeded, failed or are still unknown, the amount paid, and unexpected errors."""

    created: int = 0
    empty: int = 0
    paid: int = 0
    failed: int = 0
    unknown: int = 0
    amount_paid: int = 0
    errors: int = 0


@dataclass(frozen=True)
class PayoutRequest:
    """What step (b) sends to the bank (clear values: never logged, never stored)."""

    settlement_pk: int
    settlement_id: str
    reference: str
    amount: int
    card_number: str = field(repr=False)
    holder_name: str = field(repr=False)


# --- pure rules --------------------------------------------------------------------------


def sweepable(balance: int, later: Sequence[int]) -> int:
    """What a sweep for day D may take: the receivable's ``balance`` now less the net of the
    ``later`` movements (after D, oldest first, sweeps excluded), except what refunds since
    D took from D's money: the largest amount whose sweep at the end of D would have left
    the receivable non-negative ever since. Money of later days stays; never below 0."""
    running = lowest = 0
    for delta in later:
        running += delta
        lowest = min(lowest, running)
    return max(0, balance - running + lowest)


def retry_delay_seconds(attempt: int) -> int:
    """How long after the declined attempt ``attempt`` the next one is due."""
    return int(min(RETRY_MAX_SECONDS, RETRY_FIRST_SECONDS * 2 ** max(0, attempt - 1)))


def due_days(first: date, today: date, settle_days: int) -> list[date]:
    """The business days from ``first`` that T+``settle_days`` settles by ``today`` (a day
    only once it is over, so T+0 settles a day at its end)."""
    last = min(today - timedelta(days=settle_days), today - timedelta(days=1))
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def payout_transfer_id(settlement_id: str, attempt: int) -> str:
    """The pending ledger transfer of payout attempt ``attempt``."""
    return f"{settlement_id}.payout.{attempt}"


def bank_reference(settlement_id: str, attempt: int) -> str:
    """Our reference of payout attempt ``attempt`` at the bank (executed at most once)."""
    return f"{settlement_id}-{attempt}"


# --- the job -----------------------------------------------------------------------------


def run_settlements(
    db: Database,
    *,
    bank: Bank,
    settings: Settings,
    today: date | None = None,
    now: int | None = None,
    encryptor: Encryptor | None = None,
) -> SettlementReport:
    """Resolve open payouts, sweep every due business day, pay out; safe to re-run.

    ``today`` (a business day) and ``now`` (microseconds, also the ledger's clock for the
    transfers posted) stand in for the clock; ``encryptor`` defaults to the runtime's.
    """
    enc = encryptor_or_default(encryptor)
    zone = business_zone(settings)

    def clock() -> int:
        return now if now is not None else now_us()

    report = SettlementReport()
    _resolve_open(db, bank, settings, clock, now, report)
    day = today if today is not None else business_day(clock(), zone)
    _sweep_due(db, day, zone, clock, now, report)
    _pay_due(db, bank, enc, clock, now, report)
    if report != SettlementReport():
        log.info("settlements run", today=day.isoformat(), **vars(report))
    return report


def _resolve_open(
    db: Database,
    bank: Bank,
    settings: Settings,
    clock: Callable[[], int],
    ledger_now: int | None,
    report: SettlementReport,
) -> None:
    moment = clock()
    stale = moment - settings.funding_reconcile_after_seconds * SECOND_US
    grace = max(settings.funding_reconcile_after_seconds, 2 * settings.bank_timeout_seconds)
    never_arrived = moment - int(grace * SECOND_US)
    with db.uow(readonly=True) as uow:
        rows = uow.session.execute(
            select(Settlement.id, Settlement.bank_reference, Settlement.updated_at)
            .where(
                or_(
                    Settlement.status == "unknown",
                    and_(
                        Settlement.status == "processing",
                        Settlement.bank_reference.is_not(None),
                        Settlement.updated_at <= stale,
                    ),
                )
            )
            .order_by(Settlement.id)
            .limit(BATCH)
        ).all()
    for pk, reference, updated_at in rows:
        if reference is None:  # unreachable: an open attempt always has its reference
            continue
        try:
            answer = bank.query(reference=reference)
        except Exception as exc:  # the bank is down: ask again next pass
            log.warning("bank query failed", reference=reference, error=type(exc).__name__)
            report.unknown += 1
            continue
        if answer.status is BankStatus.NOT_FOUND and updated_at <= never_arrived:
            answer = BankAnswer(BankStatus.FAILED, NO_RECORD)
        _finish(db, pk, reference, answer, clock, ledger_now, report)


def _sweep_due(
    db: Database,
    today: date,
    zone: tzinfo,
    clock: Callable[[], int],
    ledger_now: int | None,
    report: SettlementReport,
) -> None:
    with db.uow(readonly=True) as uow:
        merchants = uow.session.execute(
            select(
                Merchant.id,
                Merchant.status,
                Merchant.settle_days,
                Merchant.created_at,
                Merchant.receivable_account_id,
            )
            .where(Merchant.status.in_(SETTLED_MERCHANTS))
            .order_by(Merchant.id)
        ).all()
        latest: dict[int, str] = {
            int(pk): str(day)
            for pk, day in uow.session.execute(
                select(Settlement.merchant_id, func.max(Settlement.business_date)).group_by(
                    Settlement.merchant_id
                )
            )
        }
        closed = [m.receivable_account_id for m in merchants if m.status == "closed"]
        balances = ledger.get_accounts(uow, ids=closed)
    for pk, status, settle_days, created_at, receivable in merchants:
        if status == "closed" and balances[receivable].balance <= 0:
            continue
        last = latest.get(pk)
        first = (
            date.fromisoformat(last) + timedelta(days=1) if last else business_day(created_at, zone)
        )
        for day in due_days(first, today, settle_days):
            try:
                created = _sweep_in_own_transaction(db, pk, day, zone, clock, ledger_now)
            except Exception:  # one merchant's trouble must not stop the others' payouts
                log.exception("settlement sweep failed", merchant_pk=pk, day=day.isoformat())
                report.errors += 1
                break
            if created is not None:
                report.created += 1
                if created.status == "empty":
                    report.empty += 1


def _pay_due(
    db: Database,
    bank: Bank,
    enc: Encryptor,
    clock: Callable[[], int],
    ledger_now: int | None,
    report: SettlementReport,
) -> None:
    moment = clock()
    with db.uow(readonly=True) as uow:
        due = uow.session.scalars(
            select(Settlement.id)
            .join(Merchant, Merchant.id == Settlement.merchant_id)
            .where(
                or_(
                    and_(Settlement.status == "processing", Settlement.bank_reference.is_(None)),
                    and_(
                        Settlement.status == "failed",
                        or_(
                            Settlement.next_attempt_at <= moment,
                            Merchant.updated_at > Settlement.updated_at,
                        ),
                    ),
                )
            )
            .order_by(Settlement.id)
            .limit(BATCH)
        ).all()
    for pk in due:
        try:
            request = _start_in_own_transaction(db, pk, enc, clock, ledger_now)
        except Exception:
            log.exception("settlement payout could not start", settlement_pk=pk)
            report.errors += 1
            continue
        if request is None:  # another process has it, or it is no longer due
            continue
        answer = ask_bank(bank, request)
        _finish(db, pk, request.reference, answer, clock, ledger_now, report)


def _sweep_in_own_transaction(
    db: Database,
    merchant_pk: int,
    day: date,
    zone: tzinfo,
    clock: Callable[[], int],
    ledger_now: int | None,
) -> SettlementView | None:
    return db.transact(
        lambda uow: sweep_day(
            uow, merchant_id=merchant_pk, day=day, zone=zone, now=clock(), ledger_now=ledger_now
        )
    )


def _start_in_own_transaction(
    db: Database,
    settlement_pk: int,
    enc: Encryptor,
    clock: Callable[[], int],
    ledger_now: int | None,
) -> PayoutRequest | None:
    return db.transact(
        lambda uow: start_payout(
            uow, settlement_pk=settlement_pk, encryptor=enc, now=clock(), ledger_now=ledger_now
        )
    )


def _finish(
    db: Database,
    pk: int,
    reference: str,
    answer: BankAnswer,
    clock: Callable[[], int],
    ledger_now: int | None,
    report: SettlementReport,
) -> None:
    view, applied = db.transact(
        lambda uow: apply_answer(
            uow,
            settlement_pk=pk,
            reference=reference,
            answer=answer,
            now=clock(),
            ledger_now=ledger_now,
        )
    )
    if not applied:
        return
    if view.status == "paid":
        report.paid += 1
        report.amount_paid += view.amount
        log.info("settlement paid", settlement_id=view.id, amount=view.amount)
    elif view.status == "failed":
        report.failed += 1
        log.warning(
            "settlement payout failed", settlement_id=view.id, failure_code=view.failure_code
        )
    else:
        report.unknown += 1


# --- the steps, each in the caller's transaction -------------------------------------------


def _lock_ledger_accounts(uow: UnitOfWork, ids: Sequence[int]) -> None:
    """Lock ledger accounts as the posting engine does (ascending id, ``FOR UPDATE``), so
    what is read next stays true until the posting; SQLite's writer lock does that already."""
    if uow.dialect != "postgresql":
        return
    uow.session.execute(
        text("SELECT id FROM ledger_accounts WHERE id = ANY(:ids) ORDER BY id FOR UPDATE"),
        {"ids": sorted(ids)},
    )


def sweep_day(
    uow: UnitOfWork,
    *,
    merchant_id: int,
    day: date,
    zone: tzinfo,
    now: int,
    ledger_now: int | None = None,
) -> SettlementView | None:
    """Create the merchant's settlement for ``day`` and sweep its amount to the settlement
    account; None when the day is settled already."""
    merchant = merchant_by_pk(uow, merchant_id)
    receivable, payable = merchant.receivable_account_id, merchant.settlement_account_id
    _lock_ledger_accounts(uow, [receivable, payable])
    exists = uow.session.scalar(
        select(Settlement.id).where(
            Settlement.merchant_id == merchant_id, Settlement.business_date == day.isoformat()
        )
    )
    if exists is not None:
        return None
    account = ledger.get_account(uow, account_id=receivable)
    assert account is not None
    _, end = day_window(day, zone)
    later = [
        m.delta
        for m in account_movements(uow, account_id=receivable, start=end)
        if not (m.code == TransferCode.SETTLEMENT and m.other_account_id == payable)
    ]
    amount = sweepable(account.balance, later)
    public_id = new_id("stl")
    sweep_id = f"{public_id}.sweep"
    if amount:
        [result] = ledger.post(
            uow,
            transfers=[
                TransferSpec(
                    id=sweep_id,
                    debit_account_id=receivable,
                    credit_account_id=payable,
                    amount=amount,
                    ledger=CURRENCY,
                    code=TransferCode.SETTLEMENT,
                    reference=public_id,
                )
            ],
            now=ledger_now,
        )
        _require_on_books(result, f"the sweep of {public_id}")
    row = Settlement(
        public_id=public_id,
        merchant_id=merchant_id,
        business_date=day.isoformat(),
        amount=amount,
        status="processing" if amount else "empty",
        attempts=0,
        transfer_ids=json.dumps([sweep_id] if amount else []),
        created_at=now,
        updated_at=now,
    )
    uow.session.add(row)
    uow.session.flush()
    return settlement_view(row)


def _payout_due(row: Settlement, merchant: Merchant, moment: int) -> bool:
    if row.status == "processing":
        return row.bank_reference is None
    if row.status != "failed":
        return False
    retry_at = row.next_attempt_at
    return (retry_at is not None and retry_at <= moment) or merchant.updated_at > row.updated_at


def start_payout(
    uow: UnitOfWork,
    *,
    settlement_pk: int,
    encryptor: Encryptor,
    now: int,
    ledger_now: int | None = None,
) -> PayoutRequest | None:
    """Start the next payout attempt of a due settlement: a pending transfer settlement
    account → bank settlement; None if it is not due or another process holds it."""
    row = uow.session.scalar(
        select(Settlement)
        .where(Settlement.id == settlement_pk)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    if row is None:
        return None
    merchant = uow.session.get(Merchant, row.merchant_id)
    assert merchant is not None
    if not _payout_due(row, merchant, now):
        return None
    card = encryptor.decrypt(merchant.card_enc, aad=merchant.public_id.encode()).decode()
    attempt = row.attempts + 1
    payout_id = payout_transfer_id(row.public_id, attempt)
    [result] = ledger.post(
        uow,
        transfers=[
            TransferSpec(
                id=payout_id,
                debit_account_id=merchant.settlement_account_id,
                credit_account_id=accounts.bank_settlement_account(uow),
                amount=row.amount,
                ledger=CURRENCY,
                code=TransferCode.SETTLEMENT,
                flags=TransferFlags.PENDING,
                reference=row.public_id,
            )
        ],
        now=ledger_now,
    )
    _require_on_books(result, f"the payout hold of {row.public_id}")
    reference = bank_reference(row.public_id, attempt)
    row.attempts, row.status, row.bank_reference = attempt, "processing", reference
    row.failure_code = row.next_attempt_at = None
    row.updated_at = now
    _add_transfer_id(row, payout_id)
    uow.session.flush()
    return PayoutRequest(row.id, row.public_id, reference, row.amount, card, merchant.card_holder)


def ask_bank(bank: Bank, request: PayoutRequest) -> BankAnswer:
    """Credit the merchant's card (outside any transaction). A failure to reach the bank
    is an ``unknown`` answer: the request may have arrived."""
    try:
        return bank.credit_card(
            reference=request.reference,
            card_number=request.card_number,
            holder_name=request.holder_name,
            amount=request.amount,
            currency=CURRENCY,
        )
    except Exception as exc:  # whatever went wrong, the outcome is the bank's to tell
        log.warning("bank call failed", reference=request.reference, error=type(exc).__name__)
        return BankAnswer(BankStatus.UNKNOWN, "error")


def apply_answer(
    uow: UnitOfWork,
    *,
    settlement_pk: int,
    reference: str,
    answer: BankAnswer,
    now: int,
    ledger_now: int | None = None,
) -> tuple[SettlementView, bool]:
    """Apply the bank's answer about attempt ``reference``: post the hold (paid), void it
    (failed, retried later) or keep it (unknown). Returns the settlement and whether this
    call changed or confirmed an open attempt (False: it was settled already)."""
    row = one_row(
        uow,
        select(Settlement).where(Settlement.id == settlement_pk),
        SettlementNotFound("No such settlement."),
        for_update=True,
    )
    if row.bank_reference != reference or row.status not in ("processing", "unknown"):
        return settlement_view(row), False
    if answer.status in (BankStatus.UNKNOWN, BankStatus.NOT_FOUND):
        if row.status != "unknown":
            row.status, row.updated_at = "unknown", now
        uow.session.flush()
        return settlement_view(row), True
    succeeded = answer.status is BankStatus.SUCCEEDED
    payout_id = payout_transfer_id(row.public_id, row.attempts)
    resolution = TransferSpec(
        id=f"{payout_id}.{'post' if succeeded else 'void'}",
        pending_id=payout_id,
        amount=None,
        flags=TransferFlags.POST_PENDING if succeeded else TransferFlags.VOID_PENDING,
        reference=row.public_id,
    )
    [result] = ledger.post(uow, transfers=[resolution], now=ledger_now)
    _require_on_books(result, f"settling the payout of {row.public_id}")
    row.bank_ref = answer.bank_ref
    row.updated_at = now
    _add_transfer_id(row, resolution.id)
    if succeeded:
        row.status, row.paid_at = "paid", now
        row.failure_code = row.next_attempt_at = None
    else:
        row.status = "failed"
        row.failure_code = answer.code or "bank_declined"
        wait = 0 if row.failure_code == NO_RECORD else retry_delay_seconds(row.attempts)
        row.next_attempt_at = now + wait * SECOND_US
    uow.session.flush()
    return settlement_view(row), True


def _add_transfer_id(row: Settlement, transfer_id: str) -> None:
    row.transfer_ids = json.dumps([*json.loads(row.transfer_ids), transfer_id])


def _require_on_books(result: Result, what: str) -> None:
    if not result.on_books:
        raise RuntimeError(f"ledger refused {what}: {result.value}")


# --- reading -----------------------------------------------------------------------------


def merchant_balance(uow: UnitOfWork, *, merchant_pk: int) -> MerchantBalance:
    """The merchant's receivable (not yet swept) and settlement (on its way to the bank)
    balances."""
    row = merchant_by_pk(uow, merchant_pk)
    receivable, settling = row.receivable_account_id, row.settlement_account_id
    found = ledger.get_accounts(uow, ids=[receivable, settling])
    return MerchantBalance(CURRENCY, found[receivable].balance, found[settling].balance)


def settlement_view(row: Settlement) -> SettlementView:
    """A settlement row as its merchant sees it."""
    return SettlementView(
        id=row.public_id,
        business_date=date.fromisoformat(row.business_date),
        amount=row.amount,
        currency=CURRENCY,
        status=row.status,
        attempts=row.attempts,
        bank_reference=row.bank_reference,
        bank_ref=row.bank_ref,
        failure_code=row.failure_code,
        next_attempt_at=row.next_attempt_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
        paid_at=row.paid_at,
    )


def _settlement_row(uow: UnitOfWork, merchant_id: int, settlement_id: str) -> Settlement:
    return one_row(
        uow,
        select(Settlement).where(
            Settlement.merchant_id == merchant_id, Settlement.public_id == settlement_id
        ),
        SettlementNotFound("No such settlement."),
    )


def get_settlement(uow: UnitOfWork, *, merchant_id: int, settlement_id: str) -> SettlementView:
    """One of the merchant's settlements (``settlement_not_found`` for anyone else's)."""
    return settlement_view(_settlement_row(uow, merchant_id, settlement_id))


def list_settlements(
    uow: UnitOfWork, *, merchant_id: int, limit: int = 20, before: str | None = None
) -> list[SettlementView]:
    """The merchant's settlements, latest business day first; ``before`` is the last id
    of the previous page."""
    query = select(Settlement).where(Settlement.merchant_id == merchant_id)
    if before is not None:
        anchor = _settlement_row(uow, merchant_id, before)
        query = query.where(Settlement.business_date < anchor.business_date)
    rows = uow.session.scalars(
        query.order_by(Settlement.business_date.desc()).limit(page_limit(limit))
    )
    return [settlement_view(r) for r in rows]
