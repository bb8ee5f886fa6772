"""The wallet's use cases, in one place: the balance view here, the rest from the modules
that implement them (``cards``, ``funding``, ``transfers``, ``history``, ``restricted``,
``closure``).

Functions taking ``uow`` never commit; those taking ``db`` run their own short transactions
because they call the bank in between (``bind_card``, ``top_up``, ``withdraw``,
``reconcile_fundings``). Every money movement checks the payer's PIN inside the
transaction that moves the money, with its limit checks (``pin=``, run under
``identity.run_confirmed``: a wrong PIN rolls it back and is counted on its own).
"""

from __future__ import annotations

from dataclasses import dataclass

from citywallet.identity.service import get_user
from citywallet.ledger import service as ledger
from citywallet.platform.clock import now_us
from citywallet.platform.config import Settings, get_settings
from citywallet.platform.db import UnitOfWork
from citywallet.wallet.accounts import (
    CURRENCY,
    FREE_WITHDRAWAL,
    bank_settlement_account,
    ensure_wallet,
    fee_revenue_account,
    find_wallet,
    lock_wallets,
    read_usage,
)
from citywallet.wallet.cards import (
    CardView,
    bind_card,
    get_card,
    list_cards,
    unbind_card,
)
from citywallet.wallet.closure import (
    ClosureView,
    WalletHasOpenRedPackets,
    WalletHasPending,
    WalletNotEmpty,
    close_wallet,
    closed_among,
    wallet_closed,
)
from citywallet.wallet.funding import (
    BankRequest,
    FundingView,
    ReconcileReport,
    WithdrawalQuote,
    ask_bank,
    funding_for_key,
    get_funding,
    quote_withdrawal,
    reconcile_fundings,
    settle_funding,
    start_topup,
    start_withdrawal,
    top_up,
    withdraw,
)
from citywallet.wallet.history import (
    ActivityView,
    HistoryPage,
    Receipt,
    ReceiptTransfer,
    get_transaction,
    list_history,
    receipt,
)
from citywallet.wallet.limits import current_usage, limits_for, reserve_outflow
from citywallet.wallet.receiving import (
    RecentRecipient,
    RecipientView,
    my_receive_code,
    recent_recipients,
    recipient_preview,
)
from citywallet.wallet.restricted import RestrictedView, balances_of
from citywallet.wallet.rules import LimitsLeft, TierLimits, limits_left
from citywallet.wallet.transfers import (
    ShareRequest,
    ShareView,
    SplitView,
    TransferView,
    cancel_split,
    create_split,
    get_split,
    list_splits,
    pay_share,
    remind_split,
    send_transfer,
)

__all__ = [
    "CURRENCY",
    "ActivityView",
    "BankRequest",
    "CardView",
    "ClosureView",
    "FundingView",
    "HistoryPage",
    "Receipt",
    "ReceiptTransfer",
    "RecentRecipient",
    "RecipientView",
    "ReconcileReport",
    "RestrictedView",
    "ShareRequest",
    "ShareView",
    "SplitView",
    "TransferView",
    "WalletHasOpenRedPackets",
    "WalletHasPending",
    "WalletNotEmpty",
    "WalletView",
    "WithdrawalQuote",
    "ask_bank",
    "balances_of",
    "bank_settlement_account",
    "bind_card",
    "cancel_split",
    "close_wallet",
    "closed_among",
    "create_split",
    "ensure_wallet",
    "fee_revenue_account",
    "funding_for_key",
    "get_card",
    "get_funding",
    "get_split",
    "get_transaction",
    "list_cards",
    "list_history",
    "list_splits",
    "lock_wallets",
    "my_receive_code",
    "pay_share",
    "quote_withdrawal",
    "receipt",
    "recent_recipients",
    "recipient_preview",
    "reconcile_fundings",
    "remind_split",
    "reserve_outflow",
    "send_transfer",
    "settle_funding",
    "start_topup",
    "start_withdrawal",
    "top_up",
    "unbind_card",
    "wallet_closed",
    "wallet_view",
    "withdraw",
]


@dataclass(frozen=True)
class WalletView:
    """A resident's wallet: money, holds, and what the tier limits leave."""

    user_id: str
    currency: str
    balance: int  # posted
    pending_incoming: int  # top-ups the bank has not confirmed yet
    pending_outgoing: int  # withdrawals (and fees) held while the bank answers
    available: int  # balance less outgoing holds: what can be spent now
    tier: int
    limit_preset: str
    limits: TierLimits
    left: LimitsLeft
    balance_room: int | None  # how much more the wallet may hold (None: no limit)
    free_withdrawal_left: int
    restricted_available: int  # campaign money held apart: active, not expired (see below)


def wallet_view(
    uow: UnitOfWork, *, user_id: str, settings: Settings | None = None, now: int | None = None
) -> WalletView:
    """The user's wallet now (an unopened wallet reads as empty; nothing is written).

    ``restricted_available`` adds up the restricted balances (campaign red packets) that are
    active and not expired yet, including those whose window has not opened: money the
    resident holds, spendable only at eligible merchants (``balances_of`` tells where and
    when). It is never part of ``balance`` or ``available``."""
    cfg = settings if settings is not None else get_settings()
    moment = now if now is not None else now_us()
    user = get_user(uow, user_id=user_id)
    account_id = find_wallet(uow, user_id=user_id)
    account = ledger.get_account(uow, account_id=account_id) if account_id is not None else None
    balance = account.balance if account else 0
    incoming = account.credits_pending if account else 0
    outgoing = account.debits_pending if account else 0
    limits = limits_for(user.tier, cfg)
    usage = current_usage(uow, user_id=user_id, moment=moment)
    free_used = read_usage(uow, user_id=user_id, periods=[FREE_WITHDRAWAL])[FREE_WITHDRAWAL]
    room = None if limits.balance is None else max(0, limits.balance - balance - incoming)
    return WalletView(
        user_id=user_id,
        currency=CURRENCY,
        balance=balance,
        pending_incoming=incoming,
        pending_outgoing=outgoing,
        available=balance - outgoing,
        tier=user.tier,
        limit_preset=cfg.wallet_limit_preset,
        limits=limits,
        left=limits_left(limits, usage),
        balance_room=room,
        free_withdrawal_left=max(0, cfg.withdrawal_free_quota - free_used),
        restricted_available=sum(
            r.available
            for r in balances_of(uow, user_id=user_id)
            if r.status == "active" and moment < r.valid_until
        ),
    )
