"""The wallet's refusals, with the stable codes clients switch on (see docs/wallet.md)."""

from __future__ import annotations

from citywallet.platform.errors import Conflict, DomainError, InvalidInput, NotFound


class CardNotFound(NotFound):
    """No such bound card (or not yours)."""

    code = "card_not_found"


class TransactionNotFound(NotFound):
    """No such wallet transaction (or not yours)."""

    code = "transaction_not_found"


class SplitNotFound(NotFound):
    """No such split bill (or neither yours nor one you are part of)."""

    code = "split_not_found"


class RecipientNotFound(NotFound):
    """Nobody with that phone number or user id has a wallet."""

    code = "recipient_not_found"


class InsufficientBalance(Conflict):
    """The wallet's available balance does not cover the amount (and fee)."""

    code = "insufficient_balance"
    title = "Insufficient balance"


class LimitExceeded(Conflict):
    """A tier limit refuses the amount; ``code`` names which (``daily_limit_exceeded``, …)."""

    title = "Limit exceeded"


class RealNameRequired(Conflict):
    """Binding cards and moving money need a verified real name."""

    code = "real_name_required"
    title = "Real-name verification required"


class CardCheckFailed(InvalidInput):
    """The bank says the four elements do not belong together."""

    code = "card_check_failed"
    title = "Card check failed"


class BankUnavailable(DomainError):
    """The bank did not answer; nothing was recorded."""

    code = "bank_unavailable"
    status = 503
    title = "Bank unavailable"

    def __init__(self, detail: str, *, retry_after: int = 30) -> None:
        super().__init__(detail, retry_after=retry_after)
        self.retry_after = retry_after
