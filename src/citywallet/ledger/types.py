"""Value types of the ledger (pure: no DB, no web). Semantics follow TigerBeetle's."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum, IntFlag, StrEnum

MAX_AMOUNT = 2**62  # a bound well inside BIGINT so counters can never overflow silently


class AccountFlags(IntFlag):
    """Rules an account enforces on every posting."""

    NONE = 0
    DEBITS_MUST_NOT_EXCEED_CREDITS = 1  # customer balances: no overdraft
    CREDITS_MUST_NOT_EXCEED_DEBITS = 2  # e.g. a funding source that must stay drawn down


class TransferFlags(IntFlag):
    """How a transfer behaves."""

    NONE = 0
    LINKED = 1  # succeeds or fails together with the next transfer in the batch
    PENDING = 2  # reserve now, post or void later
    POST_PENDING = 4  # complete (fully or partially) a pending transfer
    VOID_PENDING = 8  # release a pending transfer
    EXPIRED = 16  # set by the ledger itself on the void that expires a pending transfer

    @classmethod
    def client_settable(cls) -> int:
        """The flags a caller may set (EXPIRED is the ledger's own)."""
        return int(cls.LINKED | cls.PENDING | cls.POST_PENDING | cls.VOID_PENDING)


class AccountCode(IntEnum):
    """Kinds of account. Customer money and platform money are always distinguishable."""

    # platform (1xx)
    BANK_SETTLEMENT = 100  # mirror of money held at the settlement bank
    FEE_REVENUE = 101
    REDPACKET_ESCROW = 102
    CAMPAIGN_FUNDS = 103
    INTEROP_SETTLEMENT = 104
    MERCHANT_SETTLEMENT_PAYABLE = 105
    OPERATING = 106
    # customers (2xx)
    CUSTOMER_WALLET = 200
    CUSTOMER_RESTRICTED = 201  # campaign red-packet balance: non-transferable, expiring
    # merchants (3xx)
    MERCHANT_RECEIVABLE = 300


class TransferCode(IntEnum):
    """Why money moved."""

    TOPUP = 1
    WITHDRAWAL = 2
    FEE = 3
    P2P = 4
    PAYMENT = 5
    REFUND = 6
    REDPACKET_FUND = 7
    REDPACKET_CLAIM = 8
    REDPACKET_RETURN = 9
    CAMPAIGN_FUND = 10
    CAMPAIGN_GRANT = 11
    CAMPAIGN_RECLAIM = 12
    SETTLEMENT = 13
    INTEROP = 14
    ADJUSTMENT = 15
    SEED = 99  # demo and benchmark data


class Result(StrEnum):
    """One outcome per transfer in a batch; only OK and EXISTS mean the transfer is on the books."""

    OK = "ok"
    EXISTS = "exists"
    EXISTS_WITH_DIFFERENT_FIELDS = "exists_with_different_fields"
    LINKED_EVENT_FAILED = "linked_event_failed"
    LINKED_EVENT_CHAIN_OPEN = "linked_event_chain_open"
    ID_MUST_NOT_BE_EMPTY = "id_must_not_be_empty"
    ID_TOO_LONG = "id_too_long"
    FLAGS_ARE_MUTUALLY_EXCLUSIVE = "flags_are_mutually_exclusive"
    FLAGS_RESERVED = "flags_reserved"
    AMOUNT_MUST_BE_POSITIVE = "amount_must_be_positive"
    AMOUNT_TOO_LARGE = "amount_too_large"
    ACCOUNTS_MUST_BE_DIFFERENT = "accounts_must_be_different"
    DEBIT_ACCOUNT_NOT_FOUND = "debit_account_not_found"
    CREDIT_ACCOUNT_NOT_FOUND = "credit_account_not_found"
    ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER = "accounts_must_have_the_same_ledger"
    TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS = (
        "transfer_must_have_the_same_ledger_as_accounts"
    )
    CODE_MUST_NOT_BE_ZERO = "code_must_not_be_zero"
    PENDING_ID_MUST_BE_EMPTY = "pending_id_must_be_empty"
    PENDING_ID_REQUIRED = "pending_id_required"
    TIMEOUT_RESERVED_FOR_PENDING_TRANSFER = "timeout_reserved_for_pending_transfer"
    TIMEOUT_MUST_NOT_BE_NEGATIVE = "timeout_must_not_be_negative"
    PENDING_TRANSFER_NOT_FOUND = "pending_transfer_not_found"
    PENDING_TRANSFER_NOT_PENDING = "pending_transfer_not_pending"
    PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT = "pending_transfer_has_different_debit_account"
    PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT = "pending_transfer_has_different_credit_account"
    PENDING_TRANSFER_HAS_DIFFERENT_LEDGER = "pending_transfer_has_different_ledger"
    PENDING_TRANSFER_HAS_DIFFERENT_CODE = "pending_transfer_has_different_code"
    EXCEEDS_PENDING_TRANSFER_AMOUNT = "exceeds_pending_transfer_amount"
    PENDING_TRANSFER_ALREADY_POSTED = "pending_transfer_already_posted"
    PENDING_TRANSFER_ALREADY_VOIDED = "pending_transfer_already_voided"
    PENDING_TRANSFER_EXPIRED = "pending_transfer_expired"
    PENDING_TRANSFER_NOT_EXPIRED = "pending_transfer_not_expired"
    EXCEEDS_CREDITS = "exceeds_credits"
    EXCEEDS_DEBITS = "exceeds_debits"
    OVERFLOWS = "overflows"

    @property
    def on_books(self) -> bool:
        """Whether the transfer with this result is recorded in the ledger."""
        return self in (Result.OK, Result.EXISTS)


MAX_ID_LENGTH = 64


@dataclass(frozen=True, slots=True)
class TransferSpec:
    """A transfer a caller asks the ledger to post.

    For POST_PENDING and VOID_PENDING, ``debit_account_id``/``credit_account_id`` may be 0,
    ``ledger`` empty and ``code`` 0 to inherit them from the pending transfer, and
    ``amount=None`` posts the full pending amount.
    """

    id: str
    debit_account_id: int = 0
    credit_account_id: int = 0
    amount: int | None = 0
    ledger: str = ""
    code: int = 0
    flags: int = 0
    pending_id: str | None = None
    timeout: int = 0  # seconds; a pending transfer with 0 never expires
    reference: str | None = None


@dataclass(frozen=True, slots=True)
class Transfer:
    """A transfer as recorded: immutable, every field resolved, with its ledger timestamp."""

    id: str
    debit_account_id: int
    credit_account_id: int
    amount: int
    ledger: str
    code: int
    flags: int
    pending_id: str | None
    timeout: int
    reference: str | None
    timestamp: int  # microseconds since the Unix epoch, assigned by the ledger

    @property
    def expires_at(self) -> int | None:
        """When a pending transfer with a timeout expires (microseconds), else None."""
        if self.flags & TransferFlags.PENDING and self.timeout > 0:
            return self.timestamp + self.timeout * 1_000_000
        return None

    def canonical(self) -> dict[str, object]:
        """The fields that are hashed and sealed, as JSON-ready values."""
        return {
            "amount": self.amount,
            "code": self.code,
            "credit_account_id": self.credit_account_id,
            "debit_account_id": self.debit_account_id,
            "flags": self.flags,
            "id": self.id,
            "ledger": self.ledger,
            "pending_id": self.pending_id,
            "reference": self.reference,
            "timeout": self.timeout,
            "timestamp": self.timestamp,
        }


@dataclass(slots=True)
class AccountState:
    """The balance-relevant state of one account while a batch is applied."""

    id: int
    ledger: str
    flags: int
    debits_pending: int = 0
    debits_posted: int = 0
    credits_pending: int = 0
    credits_posted: int = 0

    def copy(self) -> AccountState:
        """A detached copy (for undoing a failed linked chain)."""
        return AccountState(
            self.id,
            self.ledger,
            self.flags,
            self.debits_pending,
            self.debits_posted,
            self.credits_pending,
            self.credits_posted,
        )

    @property
    def balance(self) -> int:
        """Posted credits minus posted debits (a customer's spendable balance, before holds)."""
        return self.credits_posted - self.debits_posted

    @property
    def available(self) -> int:
        """Spendable now: posted credits minus posted and pending debits."""
        return self.credits_posted - self.debits_posted - self.debits_pending


class PendingStatus(StrEnum):
    """Where a pending transfer stands."""

    PENDING = "pending"
    POSTED = "posted"
    VOIDED = "voided"
    EXPIRED = "expired"  # voided by the ledger itself when its timeout passed


@dataclass(slots=True)
class PendingState:
    """A pending transfer and whether it has been resolved."""

    transfer: Transfer
    status: PendingStatus = PendingStatus.PENDING


@dataclass(slots=True)
class BatchOutcome:
    """What applying a batch produced: a result per spec and the rows to write."""

    results: list[Result]
    created: list[Transfer] = field(default_factory=list)
    touched_accounts: set[int] = field(default_factory=set)
    resolved_pending_ids: set[str] = field(default_factory=set)


ProgressFn = Callable[[str, int, int], None]


@dataclass
class VerifyReport:
    """What verification found; ``ok`` when nothing."""

    problems: list[str] = field(default_factory=list)
    accounts: int = 0
    transfers: int = 0
    blocks: int = 0
    sealed_transfers: int = 0

    @property
    def ok(self) -> bool:
        """True when the ledger is consistent and untampered."""
        return not self.problems
