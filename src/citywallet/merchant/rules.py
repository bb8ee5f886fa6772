"""Pure merchant rules: fees and their proportional return, onboarding fields, order numbers,
and whether a payment-code charge is paid at once or waits for the payer's PIN.

No DB, no web. The fee is the merchant discount rate (MDR) in basis points, rounded half
up to the fen, as acquirers do. A refund returns the fee in proportion to what has been
refunded *in total*, so any sequence of partial refunds that adds up to the whole order
returns exactly the whole fee, and never more.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum

from stdnum.cn import uscc
from stdnum.exceptions import ValidationError

from citywallet.platform.errors import InvalidInput

BP = 10_000  # basis points in one
OUT_NO = re.compile(r"[A-Za-z0-9_\-|*@]{6,64}")  # merchant order and refund numbers
LATIN = re.compile(r"[A-Za-z0-9 .,&'()\-/]+")  # what EMV ID 59/60 may carry here
MCC = re.compile(r"[0-9]{4}")
# ISO 18245 ranges in use for card acceptors (0742–9999); 0000–0741 are not assigned to them.
MCC_FIRST = 742


def fee_for(amount: int, rate_bp: int) -> int:
    """The merchant fee on ``amount`` fen at ``rate_bp`` basis points, rounded half up."""
    if amount < 0 or rate_bp < 0:
        raise ValueError("amount and rate must not be negative")
    return (amount * rate_bp + BP // 2) // BP


def fee_returned(*, amount: int, fee: int, refunded: int) -> int:
    """How much of an order's ``fee`` goes back once ``refunded`` of its ``amount`` is
    refunded in total (half up; all of it at a full refund)."""
    if not 0 <= refunded <= amount or amount <= 0 or fee < 0:
        raise ValueError("refunded must lie between 0 and the order amount")
    return (fee * refunded * 2 + amount) // (2 * amount)


def fee_back(*, amount: int, fee: int, refunded_before: int, refund: int) -> int:
    """The fee a refund of ``refund`` returns, after ``refunded_before`` was refunded."""
    after = fee_returned(amount=amount, fee=fee, refunded=refunded_before + refund)
    return after - fee_returned(amount=amount, fee=fee, refunded=refunded_before)


def clean_text(value: str, *, field: str, max_length: int, latin: bool = False) -> str:
    """Trimmed, NFC-normalised, single-spaced text of at most ``max_length`` characters."""
    clean = " ".join(unicodedata.normalize("NFC", value).split())
    if not clean:
        raise InvalidInput(f"{field} must not be empty.", code="invalid_merchant_field")
    if len(clean) > max_length:
        raise InvalidInput(
            f"{field} has at most {max_length} characters.", code="invalid_merchant_field"
        )
    if latin and not LATIN.fullmatch(clean):
        raise InvalidInput(
            f"{field} is written in Latin letters, digits and simple punctuation "
            "(it is printed in the EMV code that any wallet can read).",
            code="invalid_merchant_field",
        )
    return clean


DESCRIPTION_MAX = 128


class OrderStatus(StrEnum):
    """Where an order stands (stored as its value)."""

    CREATED = "created"  # its dynamic code can be paid until it expires
    AWAITING_CONFIRMATION = "awaiting_confirmation"  # a payment-code charge above the limits
    PAID = "paid"  # refunds keep it paid (``refunded_amount`` says how much went back)
    CLOSED = "closed"  # closed by the merchant, declined by the payer, or expired


def clean_description(value: str) -> str:
    """An order's description as every way of making an order stores it: NFC-normalised
    and single-spaced, possibly empty, at most 128 characters (``invalid_description``)."""
    clean = " ".join(unicodedata.normalize("NFC", value).split())
    if len(clean) > DESCRIPTION_MAX:
        raise InvalidInput(
            f"A description has at most {DESCRIPTION_MAX} characters.", code="invalid_description"
        )
    return clean


def validate_uscc(code: str) -> str:
    """The unified social credit code, compacted, if its check digit is right."""
    try:
        return str(uscc.validate(code))
    except ValidationError as exc:
        raise InvalidInput(
            "That is not a valid unified social credit code (统一社会信用代码).",
            code="invalid_uscc",
        ) from exc


def validate_mcc(code: str) -> str:
    """A four-digit ISO 18245 merchant category code."""
    if not MCC.fullmatch(code) or int(code) < MCC_FIRST:
        raise InvalidInput(
            "A merchant category code is four digits from 0742 to 9999 (ISO 18245).",
            code="invalid_mcc",
        )
    return code


def validate_fee_rate(rate_bp: int) -> int:
    """A fee rate between 0 and 10 % (1,000 basis points)."""
    if not 0 <= rate_bp <= 1000:
        raise InvalidInput("A fee rate is 0 to 1,000 basis points.", code="invalid_fee_rate")
    return rate_bp


def validate_out_no(value: str, *, field: str = "out_trade_no") -> str:
    """A merchant's own order or refund number: 6–64 letters, digits and ``_-|*@``."""
    if not OUT_NO.fullmatch(value):
        raise InvalidInput(
            f"{field} is 6 to 64 characters: letters, digits and _-|*@.",
            code=f"invalid_{field}",
        )
    return value


# --- payment codes: password-free or the payer's PIN -----------------------------------------


@dataclass(frozen=True)
class FreeLimits:
    """A resident's password-free limits for payment codes, in fen: a charge within them is
    paid at once, a larger one waits for the payer to confirm with the PIN."""

    enabled: bool
    per_payment: int
    per_day: int

    @classmethod
    def stored_or(
        cls,
        enabled: bool | None,
        per_payment: int | None,
        per_day: int | None,
        *,
        default: FreeLimits,
    ) -> FreeLimits:
        """The limits as stored, or ``default`` for a resident who never set any (no row)."""
        if enabled is None or per_payment is None or per_day is None:
            return default
        return cls(bool(enabled), int(per_payment), int(per_day))


def check_free_limits(limits: FreeLimits, *, most_per_day: int) -> FreeLimits:
    """Limits a resident may choose: 0 ≤ per payment ≤ per day ≤ ``most_per_day`` (the
    operator's default) — else ``invalid_paycode_limits``."""
    if not 0 <= limits.per_payment <= limits.per_day <= most_per_day:
        raise InvalidInput(
            f"Password-free limits: 0 ≤ per payment ≤ per day ≤ {most_per_day} fen.",
            code="invalid_paycode_limits",
        )
    return limits


def pays_without_pin(amount: int, limits: FreeLimits, *, day_total_refused: bool = False) -> bool:
    """Whether a payment-code charge of ``amount`` is paid at once, password-free: the
    limits are on and ``amount`` is within both the per-payment and the per-day limit,
    unless an earlier try of this charge found the day's password-free total full
    (``day_total_refused``). Otherwise the payer confirms it with the PIN. The day's total
    itself — used today plus ``amount`` at most ``limits.per_day`` — is checked atomically
    where the usage is counted (the usage upsert capped at ``per_day``)."""
    if amount <= 0:
        raise ValueError("a charge is a positive amount")
    return (
        limits.enabled
        and not day_total_refused
        and amount <= limits.per_payment
        and amount <= limits.per_day
    )
