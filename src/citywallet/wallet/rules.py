"""Pure wallet rules: card numbers (Luhn, BINs, masking), the withdrawal fee, AA shares,
tier limits and their periods, and where restricted money may be spent and in which order.

No database, no clock (callers pass the moment), no randomness: everything here is
unit-tested on its own. Amounts are integer minor units (fen).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta, timezone

from citywallet.money import allocate
from citywallet.platform.errors import InvalidInput

CHINA = timezone(timedelta(hours=8))  # limit periods are Beijing-time days and years

# --- card numbers -------------------------------------------------------------------------


def luhn_valid(number: str) -> bool:
    """Whether a digit string passes the Luhn (mod 10) check, as every bank card does."""
    if not number.isdigit() or not number.isascii():
        return False
    total = 0
    for index, char in enumerate(reversed(number)):
        digit = int(char)
        if index % 2 == 1:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def luhn_check_digit(partial: str) -> str:
    """The digit that makes ``partial + digit`` pass the Luhn check."""
    for digit in "0123456789":
        if luhn_valid(partial + digit):
            return digit
    raise AssertionError("unreachable: one of ten digits always completes a Luhn number")


@dataclass(frozen=True)
class BankInfo:
    """An issuing bank as cards show it."""

    code: str
    name: str
    name_zh: str


ICBC = BankInfo("ICBC", "Industrial and Commercial Bank of China", "中国工商银行")
CCB = BankInfo("CCB", "China Construction Bank", "中国建设银行")
ABC = BankInfo("ABC", "Agricultural Bank of China", "中国农业银行")
BOC = BankInfo("BOC", "Bank of China", "中国银行")
BOCOM = BankInfo("BOCOM", "Bank of Communications", "交通银行")
CMB = BankInfo("CMB", "China Merchants Bank", "招商银行")
PSBC = BankInfo("PSBC", "Postal Savings Bank of China", "中国邮政储蓄银行")
CIB = BankInfo("CIB", "Industrial Bank", "兴业银行")

# Debit-card BINs (first six digits) of the big mainland banks: UnionPay debit cards only,
# since top-up from and withdrawal to credit cards are not offered.
BINS: Mapping[str, BankInfo] = {
    "622202": ICBC,  # 牡丹灵通卡
    "621226": ICBC,
    "622700": CCB,  # 龙卡储蓄卡
    "621700": CCB,
    "622848": ABC,  # 金穗借记卡
    "601382": BOC,  # 长城电子借记卡
    "622262": BOCOM,  # 太平洋借记卡
    "621483": CMB,
    "622588": CMB,  # 一卡通
    "622188": PSBC,  # 绿卡
    "622909": CIB,
}


def normalize_card_number(raw: str) -> str:
    """The digits of a debit card number (spaces and hyphens allowed), Luhn-checked."""
    number = re.sub(r"[\s\-]", "", raw)
    if not (number.isascii() and number.isdigit() and 16 <= len(number) <= 19):
        raise InvalidInput("A card number has 16 to 19 digits.", code="invalid_card_number")
    if not luhn_valid(number):
        raise InvalidInput("That card number is mistyped.", code="invalid_card_number")
    return number


def bank_for(number: str) -> BankInfo | None:
    """The issuing bank of a card number by its BIN, or ``None`` if it is not one we know."""
    return BINS.get(number[:6])


def mask_card(number: str) -> str:
    """First six and last four digits: ``622202*********1234``."""
    return number[:6] + "*" * (len(number) - 10) + number[-4:]


# --- the withdrawal fee -------------------------------------------------------------------


@dataclass(frozen=True)
class FeeRule:
    """A lifetime free quota per user, then ``rate_bp`` basis points with a minimum."""

    free_quota: int = 100_000  # 1,000 yuan
    rate_bp: int = 10  # 0.1 %
    minimum: int = 10  # 0.10 yuan


@dataclass(frozen=True)
class WithdrawalFee:
    """How a withdrawal is charged: the part the free quota covers, the rest, and the fee."""

    free_part: int
    chargeable: int
    fee: int


def withdrawal_fee(amount: int, *, free_quota_left: int, rule: FeeRule) -> WithdrawalFee:
    """The fee of withdrawing ``amount``: the free quota covers what it can; the rest pays
    ``rate_bp`` (rounded half up to the fen) but at least ``minimum``. Fee on top of amount."""
    if amount <= 0:
        raise InvalidInput("The amount must be positive.", code="invalid_amount")
    free_part = min(amount, max(0, free_quota_left))
    chargeable = amount - free_part
    if chargeable == 0:
        return WithdrawalFee(free_part, 0, 0)
    proportional = (chargeable * rule.rate_bp + 5_000) // 10_000
    return WithdrawalFee(free_part, chargeable, max(rule.minimum, proportional))


# --- AA split -----------------------------------------------------------------------------


def validate_shares(total: int, shares: Sequence[int], *, max_shares: int = 100) -> None:
    """Shares of a split bill: 1 to ``max_shares`` of them, each at least 1 fen, summing to
    ``total`` exactly."""
    if total <= 0:
        raise InvalidInput("The total must be positive.", code="invalid_amount")
    if not 1 <= len(shares) <= max_shares:
        raise InvalidInput(f"A split has 1 to {max_shares} shares.", code="invalid_share_count")
    if any(share <= 0 for share in shares):
        raise InvalidInput("Every share is at least 0.01.", code="invalid_share_amount")
    if sum(shares) != total:
        raise InvalidInput(
            f"The shares add up to {sum(shares)}, not to the total {total}.",
            code="shares_do_not_sum_to_total",
        )


def even_split(total: int, people: int) -> list[int]:
    """``total`` split as evenly as possible among ``people`` (the first get the extra fen)."""
    if people <= 0:
        raise InvalidInput("A split needs at least one person.", code="invalid_share_count")
    if total < people:
        raise InvalidInput("Every share is at least 0.01.", code="invalid_share_amount")
    return allocate(total, [1] * people)


# --- tier limits --------------------------------------------------------------------------


@dataclass(frozen=True)
class TierLimits:
    """What a tier may do, in fen; ``None`` is no limit.

    ``single``, ``daily``: per outgoing payment or transfer (withdrawals included);
    ``yearly``, ``lifetime``: totals of outgoing payments and transfers, not counting
    withdrawals to one's own card of the same name; ``balance``: the most a wallet may hold.
    """

    single: int | None = None
    daily: int | None = None
    yearly: int | None = None
    lifetime: int | None = None
    balance: int | None = None


YUAN = 100
NOTHING = TierLimits(single=0, daily=0, yearly=0, lifetime=0, balance=0)

# PBOC 2015 payment-account classes (DOMAIN.md §1). Tier 0 — no external check — may not
# hold or move money.
PBOC_PRESET: Mapping[int, TierLimits] = {
    0: NOTHING,
    1: TierLimits(lifetime=1_000 * YUAN),
    2: TierLimits(yearly=100_000 * YUAN),
    3: TierLimits(yearly=200_000 * YUAN),
}


# Runs only at import (building ECNY_PRESET), out of mutmut's reach; a test pins the figures.
def _ecny(
    balance: int, single: int, daily: int, yearly: int
) -> TierLimits:  # pragma: no mutate block
    return TierLimits(
        single=single * YUAN, daily=daily * YUAN, yearly=yearly * YUAN, balance=balance * YUAN
    )


# e-CNY wallet types (DOMAIN.md §1): tier 3 ↔ Type I (strongest identity) … tier 0 ↔
# Type IV (phone number only). The figures are DOMAIN.md's, including Type III's being
# lower than Type IV's; an operator overrides them with ``wallet_tier_limits``.
ECNY_PRESET: Mapping[int, TierLimits] = {
    0: _ecny(10_000, 2_000, 5_000, 50_000),
    1: _ecny(2_000, 2_000, 2_000, 50_000),
    2: _ecny(10_000, 5_000, 10_000, 300_000),
    3: _ecny(500_000, 50_000, 100_000, 500_000),
}

PRESETS: Mapping[str, Mapping[int, TierLimits]] = {"pboc": PBOC_PRESET, "ecny": ECNY_PRESET}
_LIMIT_FIELDS = {f.name for f in fields(TierLimits)}


def tier_limits(
    tier: int,
    *,
    preset: str = "pboc",
    overrides: Mapping[str, Mapping[str, int | None]] | None = None,
) -> TierLimits:
    """The limits of ``tier`` under ``preset``, with per-tier ``overrides`` (fen) on top."""
    if preset not in PRESETS:
        raise ValueError(f"unknown limit preset {preset!r}; choose one of {sorted(PRESETS)}")
    table = PRESETS[preset]
    limits = table.get(tier, table[max(table)] if tier > max(table) else NOTHING)
    changes = dict((overrides or {}).get(str(tier), {}))
    unknown = set(changes) - _LIMIT_FIELDS
    if unknown:
        raise ValueError(f"unknown limit fields {sorted(unknown)}")
    return replace(limits, **changes) if changes else limits


@dataclass(frozen=True)
class Usage:
    """What a user has already spent in the periods the limits count."""

    daily: int = 0
    yearly: int = 0
    lifetime: int = 0


@dataclass(frozen=True)
class LimitsLeft:
    """How much more may leave the wallet now; ``None`` is unlimited."""

    single: int | None
    today: int | None
    this_year: int | None
    lifetime: int | None


def _left(limit: int | None, used: int) -> int | None:
    return None if limit is None else max(0, limit - used)


def limits_left(limits: TierLimits, usage: Usage) -> LimitsLeft:
    """What is left of each limit after ``usage``."""
    return LimitsLeft(
        single=limits.single,
        today=_left(limits.daily, usage.daily),
        this_year=_left(limits.yearly, usage.yearly),
        lifetime=_left(limits.lifetime, usage.lifetime),
    )


def outflow_refusal(
    limits: TierLimits, usage: Usage, amount: int, *, own_card: bool = False
) -> str | None:
    """The limit an outgoing ``amount`` would break (a problem code), or ``None``.

    ``own_card``: a withdrawal to the user's own card of the same name, which does not count
    toward the yearly and lifetime totals.
    """
    if limits.single is not None and amount > limits.single:
        return "single_limit_exceeded"
    if limits.daily is not None and usage.daily + amount > limits.daily:
        return "daily_limit_exceeded"
    if own_card:
        return None
    if limits.yearly is not None and usage.yearly + amount > limits.yearly:
        return "yearly_limit_exceeded"
    if limits.lifetime is not None and usage.lifetime + amount > limits.lifetime:
        return "lifetime_limit_exceeded"
    return None


def balance_refusal(limits: TierLimits, balance_after: int) -> str | None:
    """``balance_limit_exceeded`` if a wallet would hold more than its tier allows."""
    if limits.balance is not None and balance_after > limits.balance:
        return "balance_limit_exceeded"
    return None


@dataclass(frozen=True)
class Periods:
    """The keys of the usage rows a moment falls in (Beijing time)."""

    day: str
    year: str
    lifetime: str = "life"


def periods_at(moment_us: int) -> Periods:
    """The day and year (Beijing time) of a microsecond timestamp, as usage-row keys."""
    local = datetime.fromtimestamp(moment_us / 1_000_000, tz=UTC).astimezone(CHINA)
    return Periods(day=f"d:{local:%Y-%m-%d}", year=f"y:{local:%Y}")


# --- restricted money ---------------------------------------------------------------------


@dataclass(frozen=True)
class Shop:
    """What decides whether restricted money may be spent at a merchant."""

    merchant_id: str
    district: str
    mcc: str


@dataclass(frozen=True)
class Scope:
    """Where and when a restricted balance may be spent; an empty set does not restrict."""

    merchant_ids: frozenset[str]
    districts: frozenset[str]
    mccs: frozenset[str]
    min_spend: int
    valid_from: int  # microseconds, inclusive
    valid_until: int  # microseconds, exclusive


def usable_at(scope: Scope, shop: Shop, *, amount: int, moment: int) -> bool:
    """Whether a payment of ``amount`` at ``shop`` at ``moment`` may use money of ``scope``:
    inside the validity window, at least the minimum spend, and the merchant matches every
    list that is given (a merchant list, districts, categories)."""
    return (
        scope.valid_from <= moment < scope.valid_until
        and amount >= scope.min_spend
        and (not scope.merchant_ids or shop.merchant_id in scope.merchant_ids)
        and (not scope.districts or shop.district in scope.districts)
        and (not scope.mccs or shop.mcc in scope.mccs)
    )


@dataclass(frozen=True)
class Pot:
    """A restricted balance that may pay: ``key`` names it, ``expires`` orders the spending."""

    key: int
    available: int
    expires: int


def spend_first(pots: Sequence[Pot], amount: int) -> list[tuple[int, int]]:
    """How much of ``amount`` each pot pays, soonest to expire first (then by key): as much
    restricted money as possible, so the payer's own money covers only the rest."""
    taken: list[tuple[int, int]] = []
    left = amount
    for pot in sorted(pots, key=lambda p: (p.expires, p.key)):
        if left <= 0:
            break
        part = min(left, max(0, pot.available))
        if part:
            taken.append((pot.key, part))
            left -= part
    return taken


def refund_parts(
    *, amount: int, own_paid: int, own_returned: int, restricted_paid: int, restricted_returned: int
) -> tuple[int, int]:
    """Split a refund of ``amount`` into (own money, restricted money): the payer's own money
    comes back first, the restricted part only once the own part is all returned."""
    own_left = own_paid - own_returned
    restricted_left = restricted_paid - restricted_returned
    if amount <= 0 or amount > own_left + restricted_left:
        raise ValueError("the refund exceeds what is left of the payment")
    own = min(amount, own_left)
    return own, amount - own


def return_order(uses: Sequence[tuple[int, int]], amount: int) -> list[tuple[int, int]]:
    """Which uses (``(key, still returnable)``, in the order they were spent) give back
    ``amount``: the last spent first, so a refund undoes the payment in reverse."""
    parts: list[tuple[int, int]] = []
    left = amount
    for key, returnable in reversed(uses):
        if left <= 0:
            break
        part = min(left, max(0, returnable))
        if part:
            parts.append((key, part))
            left -= part
    if left:
        raise ValueError("the uses cannot give back that much")
    return parts


def returns_to_balance(*, active: bool, valid_until: int, moment: int) -> bool:
    """Whether restricted money a refund gives back at ``moment`` goes to the balance it was
    spent from: only while that balance is active and its source still valid. Otherwise
    (expired, or reclaimed when the wallet closed) it goes to the source's funder, whose
    money it is again."""
    return active and moment < valid_until
