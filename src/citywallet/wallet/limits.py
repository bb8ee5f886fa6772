"""Tier limits enforced inside the transaction that moves the money.

:func:`reserve_outflow` locks the payer's usage rows (day, year, lifetime), checks the
tier's limits against them and adds the amount, all before the ledger posting of the same
transaction: two concurrent payments cannot both take the last of a limit. Other features
that spend a resident's balance (merchant payments, red packets) call it the same way.
"""

from __future__ import annotations

from citywallet.ledger.service import AccountView
from citywallet.money import Money
from citywallet.platform.config import Settings
from citywallet.platform.db import UnitOfWork
from citywallet.wallet import accounts
from citywallet.wallet.errors import LimitExceeded
from citywallet.wallet.rules import (
    FeeRule,
    LimitsLeft,
    Periods,
    TierLimits,
    Usage,
    balance_refusal,
    limits_left,
    outflow_refusal,
    periods_at,
    tier_limits,
)

_WHAT = {
    "single_limit_exceeded": "the most one payment may be",
    "daily_limit_exceeded": "what is left of today's limit",
    "yearly_limit_exceeded": "what is left of this year's limit",
    "lifetime_limit_exceeded": "what is left of the limit since the wallet opened",
    "balance_limit_exceeded": "the most this wallet may hold",
}


def limits_for(tier: int, settings: Settings) -> TierLimits:
    """The configured limits of a tier."""
    return tier_limits(
        tier, preset=settings.wallet_limit_preset, overrides=settings.wallet_tier_limits
    )


def fee_rule(settings: Settings) -> FeeRule:
    """The configured withdrawal fee rule."""
    return FeeRule(
        free_quota=settings.withdrawal_free_quota,
        rate_bp=settings.withdrawal_fee_rate_bp,
        minimum=settings.withdrawal_fee_minimum,
    )


def _usage(rows: dict[str, int], periods: Periods) -> Usage:
    return Usage(
        daily=rows.get(periods.day, 0),
        yearly=rows.get(periods.year, 0),
        lifetime=rows.get(periods.lifetime, 0),
    )


def reserve_outflow(
    uow: UnitOfWork,
    *,
    user_id: str,
    tier: int,
    amount: int,
    settings: Settings,
    moment: int,
    own_card: bool = False,
) -> Periods:
    """Check ``amount`` against the user's limits and count it, under the usage-row locks.

    Lock the wallets involved first (:func:`accounts.lock_wallets`). ``own_card``: a
    withdrawal to the user's own card, outside the yearly and lifetime totals. Raises
    :class:`LimitExceeded` with the limit's code; returns the periods it was counted in.
    """
    periods = periods_at(moment)
    rows = accounts.lock_usage(
        uow, user_id=user_id, periods=[periods.day, periods.year, periods.lifetime]
    )
    limits = limits_for(tier, settings)
    usage = _usage(rows, periods)
    refusal = outflow_refusal(limits, usage, amount, own_card=own_card)
    if refusal is not None:
        left = limits_left(limits, usage)
        raise LimitExceeded(
            f"{Money(amount)} is more than {_WHAT[refusal]} for your account tier.",
            code=refusal,
            tier=tier,
            left=_left_of(refusal, left),
        )
    changes = {periods.day: amount}
    if not own_card:
        changes |= {periods.year: amount, periods.lifetime: amount}
    accounts.add_usage(uow, user_id=user_id, changes=changes)
    return periods


def _left_of(refusal: str, left: LimitsLeft) -> int | None:
    return {
        "single_limit_exceeded": left.single,
        "daily_limit_exceeded": left.today,
        "yearly_limit_exceeded": left.this_year,
        "lifetime_limit_exceeded": left.lifetime,
    }.get(refusal)


def check_inflow(
    *,
    tier: int,
    account: AccountView,
    amount: int,
    settings: Settings,
    recipient: bool = False,
) -> None:
    """Refuse money that would take a wallet over its tier's balance limit (counting money
    already on its way in). The wallet must be locked."""
    limits = limits_for(tier, settings)
    after = account.balance + account.credits_pending + amount
    if balance_refusal(limits, after) is None:
        return
    if recipient:  # say no more than that the payee cannot take it
        raise LimitExceeded(
            "The recipient's wallet cannot receive this amount.", code="recipient_limit_exceeded"
        )
    room = None if limits.balance is None else max(0, limits.balance - after + amount)
    raise LimitExceeded(
        f"{Money(amount)} would take the wallet over {_WHAT['balance_limit_exceeded']} "
        "for your account tier.",
        code="balance_limit_exceeded",
        tier=tier,
        left=room,
    )


def current_usage(uow: UnitOfWork, *, user_id: str, moment: int) -> Usage:
    """The user's usage now (for display; not locked)."""
    periods = periods_at(moment)
    rows = accounts.read_usage(
        uow, user_id=user_id, periods=[periods.day, periods.year, periods.lifetime]
    )
    return _usage(rows, periods)
