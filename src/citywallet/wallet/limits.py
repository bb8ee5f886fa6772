"""Tier limits enforced inside the transaction that moves the money.

:func:`reserve_outflow` counts the amount in the payer's usage rows (day, year, lifetime)
with one upsert that locks them, then checks the tier's limits against what it returned, all
before the ledger posting of the same transaction: two concurrent payments cannot both take
the last of a limit, and a refusal's rollback takes the count back. Other features
that spend a resident's balance (merchant payments, red packets) call it the same way.
"""

from __future__ import annotations

from collections.abc import Mapping

from citywallet.ledger.service import AccountView
from citywallet.ledger.types import AccountState
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

CAP_EXCEEDED = "static_code_limit_exceeded"  # the refusal of a further daily cap (``caps``)

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
    caps: Mapping[str, int] | None = None,
    capped_amount: int | None = None,
) -> Periods:
    """Count ``amount`` against the user's limits and check them: one upsert of the usage
        rows (day, year, lifetime), whose row locks make the reservation atomic, so two
        concurrent payments cannot both take the last of a limit. A refusal raises
        :class:`LimitExceeded` with the limit's code, and the transaction's rollback takes the
        count back. ``own_card``: a withdrawal to the user's own card, outside the yearly and
        lifetime totals. ``caps``: further usage rows counted and checked the same way (a period
        key and its cap: the static-code daily cap, the password-free allowance), refused with
        ``static_code_limit_exceeded``; they count ``capped_amount`` (default ``amount``: a
    payment's whole amount where ``amount`` is only the payer's own part). Returns the periods
    it was counted in.
    """
    periods = periods_at(moment)
    counted = [periods.day] if own_card else [periods.day, periods.year, periods.lifetime]
    extra = dict(caps or {})
    capped = amount if capped_amount is None else capped_amount
    after = accounts.count_usage(
        uow,
        user_id=user_id,
        changes=dict.fromkeys(counted, amount) | dict.fromkeys(extra, capped),
    )
    limits = limits_for(tier, settings)
    usage = _usage({period: after[period] - amount for period in counted}, periods)
    refusal = outflow_refusal(limits, usage, amount, own_card=own_card)
    if refusal is not None:
        left = limits_left(limits, usage)
        raise LimitExceeded(
            f"{Money(amount)} is more than {_WHAT[refusal]} for your account tier.",
            code=refusal,
            tier=tier,
            left=_left_of(refusal, left),
        )
    for period, cap in extra.items():
        if after[period] > cap:
            left_today = max(0, cap - (after[period] - capped))
            raise LimitExceeded(
                f"Static merchant codes may take at most {Money(cap)} a day from you "
                f"({Money(left_today)} left today); scan the merchant's order code instead.",
                code=CAP_EXCEEDED,
                left=left_today,
            )
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
    account: AccountView | AccountState,
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
