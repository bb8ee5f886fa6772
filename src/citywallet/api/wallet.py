"""Wallet routes: balance and limits, restricted balances, bank cards, top-up, withdrawal,
P2P, AA split, history, and closing the wallet.

Thin adapters: parse, authorise (every object is looked up together with its owner, so
another resident's id answers 404), confirm the payment PIN, call the service, render.
Money-moving ``POST``s go through :class:`~citywallet.api.idempotency.Idempotent`.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from citywallet.api.confirming import confirm_transfer, second_factor_code
from citywallet.api.deps import CSRF_COOKIE, SESSION_COOKIE, CurrentUser, Day, RuntimeDep
from citywallet.api.idempotency import IdempotencyKeyHeader, Idempotent, Rendered
from citywallet.interop.provider import service as interop
from citywallet.platform.clock import now_us
from citywallet.platform.db import UnitOfWork
from citywallet.platform.errors import Conflict, InvalidInput
from citywallet.runtime import Runtime
from citywallet.wallet import service as wallet
from citywallet.wallet.errors import TransactionNotFound
from citywallet.wallet.rules import CHINA
from citywallet.wallet.schemas import (
    CardCreate,
    CardList,
    CardPublic,
    FundingPublic,
    LimitsLeftPublic,
    LimitsPublic,
    ReceiptPublic,
    RemindersPublic,
    RestrictedBalanceList,
    RestrictedBalancePublic,
    SharePay,
    SplitCancel,
    SplitCreate,
    SplitList,
    SplitPublic,
    TopupCreate,
    TransactionPage,
    TransferCreate,
    TransferPublic,
    WalletClose,
    WalletClosedPublic,
    WalletPublic,
    WithdrawalCreate,
    WithdrawalQuotePublic,
)

router = APIRouter(prefix="/v1/wallet", tags=["wallet"])

MONEY_RESPONSES: dict[int | str, dict[str, str]] = {
    400: {"description": "Missing or malformed Idempotency-Key (idempotency_key_required)."},
    403: {"description": "Wrong PIN (pin_incorrect) or frozen account (account_frozen)."},
    409: {"description": "insufficient_balance, *_limit_exceeded, idempotency_key_in_progress."},
    422: {"description": "Invalid input, or idempotency_key_reused."},
    423: {"description": "PIN locked (pin_locked), with Retry-After."},
}

FUNDING_RESPONSES: dict[int | str, dict[str, str]] = {
    202: {"description": "The bank has not answered yet (status unknown)."},
    **MONEY_RESPONSES,
    503: {"description": "No bank adapter is configured (adapter_unavailable); nothing stored."},
}


# --- the wallet ---------------------------------------------------------------------------


@router.get("")
def get_wallet(auth: CurrentUser, runtime: RuntimeDep) -> WalletPublic:
    """Balance, holds, and what the tier's limits leave today and this year."""
    with runtime.db.uow(readonly=True) as uow:
        view = wallet.wallet_view(uow, user_id=auth.user_id, settings=runtime.settings)
    return WalletPublic(
        currency=view.currency,
        balance=view.balance,
        pending_incoming=view.pending_incoming,
        pending_outgoing=view.pending_outgoing,
        available=view.available,
        tier=view.tier,
        limit_preset=view.limit_preset,
        limits=LimitsPublic(**vars(view.limits)),
        left=LimitsLeftPublic(**vars(view.left), balance_room=view.balance_room),
        free_withdrawal_left=view.free_withdrawal_left,
        restricted_available=view.restricted_available,
    )


@router.get("/restricted")
def list_restricted(
    auth: CurrentUser,
    runtime: RuntimeDep,
    cursor: Annotated[str | None, Query(max_length=40, description="A source_id.")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> RestrictedBalanceList:
    """Your restricted balances (campaign red packets), newest first: what is left, where
    and until when it may be spent; reclaimed ones show what went back to the funder."""
    with runtime.db.uow(readonly=True) as uow:
        views = wallet.balances_of(uow, user_id=auth.user_id)
    start = 0
    if cursor is not None:
        ids = [v.source_id for v in views]
        if cursor not in ids:
            raise InvalidInput("That cursor is not one we gave out.", code="invalid_cursor")
        start = ids.index(cursor) + 1
    page, moment = views[start : start + limit], now_us()
    more = start + limit < len(views)
    return RestrictedBalanceList(
        items=[RestrictedBalancePublic.of(v, now=moment) for v in page],
        next_cursor=page[-1].source_id if more and page else None,
    )


# --- cards --------------------------------------------------------------------------------


@router.get("/cards")
def list_cards(auth: CurrentUser, runtime: RuntimeDep) -> CardList:
    """Your bound cards (first six and last four digits only)."""
    with runtime.db.uow(readonly=True) as uow:
        cards = wallet.list_cards(uow, user_id=auth.user_id)
    return CardList(items=[CardPublic.of(c, sandbox=runtime.bank.sandbox) for c in cards])


@router.post("/cards", status_code=status.HTTP_201_CREATED)
def bind_card(body: CardCreate, auth: CurrentUser, runtime: RuntimeDep) -> CardPublic:
    """Bind a debit card: the bank checks it belongs to your verified name and ID number,
    with the phone number reserved at the bank (four elements). Needs a verified real name
    (409 ``real_name_required``); ``card_check_failed`` when the bank says no."""
    card = wallet.bind_card(
        runtime.db,
        bank=runtime.bank,
        user_id=auth.user_id,
        card_number=body.card_number,
        phone=body.phone,
        encryptor=runtime.encryptor,
        settings=runtime.settings,
    )
    return CardPublic.of(card, sandbox=runtime.bank.sandbox)


@router.get("/cards/{card_id}")
def get_card(card_id: str, auth: CurrentUser, runtime: RuntimeDep) -> CardPublic:
    """One of your cards (another resident's answers 404 ``card_not_found``)."""
    with runtime.db.uow(readonly=True) as uow:
        card = wallet.get_card(uow, user_id=auth.user_id, card_id=card_id)
    return CardPublic.of(card, sandbox=runtime.bank.sandbox)


@router.delete("/cards/{card_id}")
def unbind_card(card_id: str, auth: CurrentUser, runtime: RuntimeDep) -> CardPublic:
    """Unbind a card; its number is erased. Refused (409 ``card_in_use``) while a top-up or
    withdrawal through it is waiting for the bank."""
    card = runtime.db.transact(
        lambda uow: wallet.unbind_card(uow, user_id=auth.user_id, card_id=card_id)
    )
    return CardPublic.of(card, sandbox=runtime.bank.sandbox)


# --- top-up and withdrawal ----------------------------------------------------------------


def _funding_rendered(view: wallet.FundingView) -> Rendered:
    final = view.status in ("succeeded", "failed")
    return (status.HTTP_201_CREATED if final else status.HTTP_202_ACCEPTED), FundingPublic.of(view)


def _fund(
    runtime: Runtime,
    request: Request,
    auth: CurrentUser,
    key: str | None,
    body: TopupCreate,
    kind: str,
) -> Response:
    bank = runtime.bank  # before anything is written: no bank → 503 adapter_unavailable
    call = Idempotent.of(runtime, request, scope=auth.user_id, key=key, body=body)

    def recover(uow: UnitOfWork) -> Rendered | None:
        found = wallet.funding_for_key(uow, user_id=auth.user_id, idempotency_key=call.key)
        if found is None or found.status == "processing":
            return None
        return _funding_rendered(found)

    start = wallet.start_topup if kind == "topup" else wallet.start_withdrawal
    try:
        started = call.start(
            lambda uow: start(
                uow,
                user_id=auth.user_id,
                card_id=body.card_id,
                amount=body.amount,
                currency=body.currency,
                encryptor=runtime.encryptor,
                settings=runtime.settings,
                idempotency_key=call.key,
                pin=body.pin,
            )
        )
    except Conflict as exc:  # a duplicate of a request still waiting for the bank
        if exc.code != "idempotency_key_in_progress":
            raise
        if (replayed := call.replay(recover=recover)) is None:
            raise
        return replayed
    if isinstance(started, Response):
        return started
    answer = wallet.ask_bank(bank, started)
    return call.complete(
        lambda uow: wallet.settle_funding(uow, funding_id=started.funding_id, answer=answer),
        _funding_rendered,
    )


@router.post(
    "/topups",
    status_code=status.HTTP_201_CREATED,
    response_model=FundingPublic,
    responses=FUNDING_RESPONSES,
)
def create_topup(
    body: TopupCreate,
    request: Request,
    auth: CurrentUser,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    """Top up from a bound card. 201 with ``succeeded`` or ``failed``; 202 with ``unknown``
    when the bank did not answer in time (the money shows as pending until it does)."""
    return _fund(runtime, request, auth, idempotency_key, body, "topup")


@router.get("/topups/{topup_id}")
def get_topup(topup_id: str, auth: CurrentUser, runtime: RuntimeDep) -> FundingPublic:
    """A top-up (poll it while ``unknown``)."""
    return _get_funding(runtime, auth.user_id, topup_id, "topup")


@router.get("/withdrawals/quote")
def quote_withdrawal(
    auth: CurrentUser, runtime: RuntimeDep, amount: Annotated[int, Query(gt=0, le=10**12)]
) -> WithdrawalQuotePublic:
    """The fee a withdrawal of ``amount`` would pay now: free up to the lifetime quota
    (1,000 yuan by default), then 0.1 % with a minimum of 0.10 yuan."""
    with runtime.db.uow(readonly=True) as uow:
        quote = wallet.quote_withdrawal(
            uow, user_id=auth.user_id, amount=amount, settings=runtime.settings
        )
    return WithdrawalQuotePublic.of(quote)


@router.post(
    "/withdrawals",
    status_code=status.HTTP_201_CREATED,
    response_model=FundingPublic,
    responses=FUNDING_RESPONSES,
)
def create_withdrawal(
    body: WithdrawalCreate,
    request: Request,
    auth: CurrentUser,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    """Withdraw to a bound card of your own name; the amount and the fee are held, then
    posted when the bank pays out, or released if it fails."""
    return _fund(runtime, request, auth, idempotency_key, body, "withdrawal")


@router.get("/withdrawals/{withdrawal_id}")
def get_withdrawal(withdrawal_id: str, auth: CurrentUser, runtime: RuntimeDep) -> FundingPublic:
    """A withdrawal (poll it while ``unknown``)."""
    return _get_funding(runtime, auth.user_id, withdrawal_id, "withdrawal")


def _get_funding(runtime: Runtime, user_id: str, funding_id: str, kind: str) -> FundingPublic:
    with runtime.db.uow(readonly=True) as uow:
        view = wallet.get_funding(uow, user_id=user_id, funding_id=funding_id)
    if view.kind != kind:
        raise TransactionNotFound(f"No such {kind}.")
    return FundingPublic.of(view)


# --- P2P ----------------------------------------------------------------------------------


@router.post(
    "/transfers",
    status_code=status.HTTP_201_CREATED,
    response_model=TransferPublic,
    responses=MONEY_RESPONSES,
)
def create_transfer(
    body: TransferCreate,
    request: Request,
    auth: CurrentUser,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    """Send money to another resident by user id or mobile number, with a note."""
    call = Idempotent.of(runtime, request, scope=auth.user_id, key=idempotency_key, body=body)
    sms_code_id = second_factor_code(runtime, user_id=auth.user_id, sms_code=body.sms_code)

    def send(uow: UnitOfWork) -> wallet.TransferView:
        pin = confirm_transfer(
            uow, runtime, user_id=auth.user_id, session_id=auth.session_id, to=body.to,
            amount=body.amount, currency=body.currency, pin=body.pin, passkey=body.passkey,
            sms_code_id=sms_code_id,
        )  # fmt: skip
        return wallet.send_transfer(
            uow,
            user_id=auth.user_id,
            to=body.to,
            amount=body.amount,
            currency=body.currency,
            note=body.note,
            encryptor=runtime.encryptor,
            settings=runtime.settings,
            pin=pin,
        )

    return call.run(send, lambda view: (status.HTTP_201_CREATED, TransferPublic.of(view)))


# --- AA split -----------------------------------------------------------------------------


@router.post("/splits", status_code=status.HTTP_201_CREATED)
def create_split(body: SplitCreate, auth: CurrentUser, runtime: RuntimeDep) -> SplitPublic:
    """Ask people (user ids or mobile numbers) for exact shares that sum to the total, or
    give no amounts to split evenly. List yourself to count your own share as paid."""
    view = runtime.db.transact(
        lambda uow: wallet.create_split(
            uow,
            user_id=auth.user_id,
            total=body.total,
            currency=body.currency,
            note=body.note,
            shares=[wallet.ShareRequest(s.to, s.amount) for s in body.shares],
            encryptor=runtime.encryptor,
            settings=runtime.settings,
        )
    )
    return SplitPublic.of(view)


@router.get("/splits")
def list_splits(
    auth: CurrentUser, runtime: RuntimeDep, limit: Annotated[int, Query(ge=1, le=100)] = 20
) -> SplitList:
    """Splits you created or have a share in, newest first."""
    with runtime.db.uow(readonly=True) as uow:
        views = wallet.list_splits(uow, user_id=auth.user_id, limit=limit)
    return SplitList(items=[SplitPublic.of(v) for v in views])


@router.get("/splits/{split_id}")
def get_split(split_id: str, auth: CurrentUser, runtime: RuntimeDep) -> SplitPublic:
    """A split you created or have a share in (else 404 ``split_not_found``)."""
    with runtime.db.uow(readonly=True) as uow:
        return SplitPublic.of(wallet.get_split(uow, user_id=auth.user_id, split_id=split_id))


@router.post(
    "/splits/{split_id}/pay",
    status_code=status.HTTP_200_OK,
    response_model=SplitPublic,
    responses=MONEY_RESPONSES,
)
def pay_share(
    split_id: str,
    body: SharePay,
    request: Request,
    auth: CurrentUser,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    """Pay your share to the split's creator."""
    call = Idempotent.of(runtime, request, scope=auth.user_id, key=idempotency_key, body=body)
    return call.run(
        lambda uow: wallet.pay_share(
            uow,
            user_id=auth.user_id,
            split_id=split_id,
            settings=runtime.settings,
            pin=body.pin,
            encryptor=runtime.encryptor,
        ),
        lambda view: (status.HTTP_200_OK, SplitPublic.of(view)),
    )


@router.post("/splits/{split_id}/remind", status_code=status.HTTP_202_ACCEPTED)
def remind_split(split_id: str, auth: CurrentUser, runtime: RuntimeDep) -> RemindersPublic:
    """Remind everyone who has not paid (by SMS, at most once an hour each; else 429
    ``reminder_too_soon``). Only the creator may."""
    reminded = runtime.db.transact(
        lambda uow: wallet.remind_split(
            uow, user_id=auth.user_id, split_id=split_id, settings=runtime.settings
        )
    )
    return RemindersPublic(reminded=reminded)


@router.post("/splits/{split_id}/cancel")
def cancel_split(
    split_id: str, auth: CurrentUser, runtime: RuntimeDep, body: SplitCancel | None = None
) -> SplitPublic:
    """Cancel unpaid shares (``share_ids``) or the whole split; paid shares stay paid."""
    share_ids = body.share_ids if body is not None else []
    view = runtime.db.transact(
        lambda uow: wallet.cancel_split(
            uow, user_id=auth.user_id, split_id=split_id, share_ids=share_ids
        )
    )
    return SplitPublic.of(view)


# --- history ------------------------------------------------------------------------------


def _day_start(day: date) -> int:
    return int(datetime.combine(day, time.min, tzinfo=CHINA).timestamp() * 1_000_000)


@router.get("/transactions")
def list_transactions(
    auth: CurrentUser,
    runtime: RuntimeDep,
    kind: Annotated[list[str] | None, Query(description="Repeat to match several.")] = None,
    date_from: Annotated[Day | None, Query(description="First day (Beijing time).")] = None,
    date_to: Annotated[Day | None, Query(description="Last day, inclusive.")] = None,
    counterparty: Annotated[str | None, Query(max_length=40)] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> TransactionPage:
    """Your history, newest first, filtered by kind, day range and counterparty user id."""
    with runtime.db.uow(readonly=True) as uow:
        page = wallet.list_history(
            uow,
            user_id=auth.user_id,
            kinds=kind or [],
            since=_day_start(date_from) if date_from else None,
            # The last day there is (9999-12-31) has no next day to stop at: no bound.
            until=_day_start(date_to + timedelta(days=1))
            if date_to and date_to < date.max
            else None,
            counterparty=counterparty,
            cursor=cursor,
            limit=limit,
        )
    return TransactionPage.of(page)


@router.get("/transactions/{transaction_id}")
def get_receipt(transaction_id: str, auth: CurrentUser, runtime: RuntimeDep) -> ReceiptPublic:
    """A receipt: the transaction, its ledger transfers and their inclusion proofs, which
    anyone can check with the ledger's public key (``not_sealed_yet`` for the newest)."""
    signer = runtime.ledger_signer()
    with runtime.db.uow(readonly=True) as uow:
        found = wallet.receipt(uow, user_id=auth.user_id, object_id=transaction_id, signer=signer)
    return ReceiptPublic.of(found)


# --- closing ------------------------------------------------------------------------------

CLOSE_RESPONSES: dict[int | str, dict[str, str]] = {
    **MONEY_RESPONSES,
    403: {
        "description": "Wrong PIN (pin_incorrect), frozen account (account_frozen), or the "
        "account is closed already (account_closed: also what a retry after success gets)."
    },
    409: {
        "description": "wallet_not_empty (with balance: withdraw it first), "
        "wallet_has_pending (a top-up or withdrawal waits for the bank), pin_not_set, "
        "idempotency_key_in_progress."
    },
}


def _close_and_unlist(
    uow: UnitOfWork, runtime: Runtime, *, user_id: str, pin: str
) -> wallet.ClosureView:
    """Close the wallet and, in the same transaction, remove its alias at the switch."""
    closed = wallet.close_wallet(
        uow, user_id=user_id, actor="user", pin=pin, encryptor=runtime.encryptor
    )
    interop.remove_alias(
        uow, user_id=user_id, settings=runtime.settings, encryptor=runtime.encryptor
    )
    return closed


@router.post(
    "/close",
    status_code=status.HTTP_200_OK,
    response_model=WalletClosedPublic,
    responses=CLOSE_RESPONSES,
)
def close_wallet(
    body: WalletClose,
    request: Request,
    auth: CurrentUser,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    """Close your wallet and your account for good. The balance must be zero with nothing
    waiting for the bank; unused campaign red packets go back to their funders. Every
    session ends (cookies are cleared), logins answer 403 ``account_closed``."""
    call = Idempotent.of(runtime, request, scope=auth.user_id, key=idempotency_key, body=body)
    response = call.run(
        lambda uow: _close_and_unlist(uow, runtime, user_id=auth.user_id, pin=body.pin),
        lambda view: (status.HTTP_200_OK, WalletClosedPublic.of(view)),
    )
    if auth.via_cookie:
        response.delete_cookie(SESSION_COOKIE, path="/")
        response.delete_cookie(CSRF_COOKIE, path="/")
    return response
