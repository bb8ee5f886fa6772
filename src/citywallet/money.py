"""Money: integer minor units plus an ISO 4217 currency. Parse and format only at the edges."""

from __future__ import annotations

import re
from dataclasses import dataclass

MINOR_UNITS = {"CNY": 2, "HKD": 2, "USD": 2, "EUR": 2, "JPY": 0}
SYMBOLS = {"CNY": "¥", "HKD": "HK$", "USD": "$", "EUR": "€", "JPY": "¥"}
_DECIMAL = re.compile(r"^\s*(-)?(\d{1,15})(?:\.(\d+))?\s*$")


class MoneyError(ValueError):
    """Not an amount this currency can hold."""


@dataclass(frozen=True, order=True, slots=True)
class Money:
    """An exact amount: ``amount`` minor units (fen for CNY) of ``currency``."""

    amount: int
    currency: str = "CNY"

    def __post_init__(self) -> None:
        if self.currency not in MINOR_UNITS:
            raise MoneyError(f"unsupported currency {self.currency!r}")
        if not isinstance(self.amount, int) or isinstance(self.amount, bool):
            raise MoneyError("amounts are integers of minor units")

    @classmethod
    def parse(cls, text: str, currency: str = "CNY") -> Money:
        """Parse a decimal like ``"12.34"`` exactly (no floats); too many decimals is an error."""
        match = _DECIMAL.match(text.replace(",", ""))
        if match is None:
            raise MoneyError(f"not an amount: {text!r}")
        sign, whole, frac = match.groups()
        digits = MINOR_UNITS.get(currency)
        if digits is None:
            raise MoneyError(f"unsupported currency {currency!r}")
        frac = frac or ""
        if len(frac) > digits:
            raise MoneyError(f"{currency} has {digits} decimal places")
        minor = int(whole) * 10**digits + int(frac.ljust(digits, "0") or 0)
        return cls(-minor if sign else minor, currency)

    def format(self, *, symbol: bool = True) -> str:
        """For people: ``¥1,234.56``."""
        digits = MINOR_UNITS[self.currency]
        whole, frac = divmod(abs(self.amount), 10**digits)
        text = f"{whole:,}" + (f".{frac:0{digits}d}" if digits else "")
        prefix = SYMBOLS[self.currency] if symbol else ""
        return ("-" if self.amount < 0 else "") + prefix + text

    def __str__(self) -> str:
        return self.format()


def allocate(total: int, weights: list[int]) -> list[int]:
    """Split ``total`` in proportion to ``weights`` exactly (largest remainder); parts sum to it."""
    if not weights or any(w < 0 for w in weights) or sum(weights) == 0:
        raise MoneyError("weights must be non-negative with a positive sum")
    weight_sum = sum(weights)
    parts = [total * w // weight_sum for w in weights]
    remainders = sorted(range(len(weights)), key=lambda i: (-(total * weights[i] % weight_sum), i))
    for i in remainders[: total - sum(parts)]:
        parts[i] += 1
    return parts
