"""The bank behind cards, top-ups and withdrawals: a narrow interface and a sandbox.

A real adapter wraps a bank's (or a clearing house's) quick-payment API: the four-element
card check at binding, a debit of the card for a top-up, a credit to the card for a
withdrawal, and a query by *our* reference — the only way to learn the outcome of a call
that did not answer in time. Every call carries our reference, and a bank executes a
reference at most once, so asking again is safe.

The sandbox behaves like a bank and says it is one (``sandbox = True``, references
``sbx_…``). It keeps its own books in a small SQLite file (``var/sandbox-bank.sqlite3``),
apart from ours, so a query from another process or after a restart still knows what it
did. Magic card endings (the last four digits; see docs/wallet.md):

* ``0002`` — debits and credits are declined (``card_declined``);
* ``0003`` — the four-element check fails (``elements_mismatch``);
* ``0005`` — debits fail with ``insufficient_funds`` (credits succeed);
* ``0007`` — the four-element check does not answer (``unavailable``);
* ``0008`` — slow: answers after three times the usual latency, still in time;
* ``0009`` — debits and credits never answer in time (``unknown``). The bank did decide:
  an even amount in fen succeeded, an odd one failed; a query knows the outcome
  ``sandbox_bank_late_answer_seconds`` after the call, and says ``unknown`` before.

A card's four elements are remembered at its first successful check; the same card with
another name or ID number then fails the check, as it would at a real bank.
"""

from __future__ import annotations

import hashlib
import random
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol, cast

from citywallet.platform import failpoints
from citywallet.platform.adapters import load_adapter
from citywallet.platform.config import Settings
from citywallet.platform.errors import AdapterUnavailable
from citywallet.platform.files import private_file
from citywallet.wallet.rules import luhn_check_digit


class BankStatus(StrEnum):
    """What a bank said about an operation."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    UNKNOWN = "unknown"  # no answer in time, or the bank is still processing it
    NOT_FOUND = "not_found"  # a query: the bank has no operation with this reference


@dataclass(frozen=True)
class BankAnswer:
    """A bank's answer; ``code`` says why it failed (``card_declined``, ``insufficient_funds``)
    or why it is unknown (``timeout``, ``processing``)."""

    status: BankStatus
    code: str | None = None
    bank_ref: str | None = None


@dataclass(frozen=True)
class CardCheck:
    """The answer of a four-element check (name, ID number, card number, reserved phone)."""

    matched: bool
    reason: str  # "ok", "elements_mismatch", "unavailable"
    bank_ref: str


class Bank(Protocol):
    """Card checks, debits (top-up) and credits (withdrawal, payout) at a bank."""

    @property
    def sandbox(self) -> bool:
        """Whether this is the sandbox (no real money moves)."""
        ...

    def check_card(self, *, card_number: str, name: str, id_number: str, phone: str) -> CardCheck:
        """Four-element check: is this card the named person's, with this phone reserved?"""
        ...

    def debit_card(
        self, *, reference: str, card_number: str, amount: int, currency: str
    ) -> BankAnswer:
        """Take ``amount`` from the card into our settlement account (a top-up)."""
        ...

    def credit_card(
        self, *, reference: str, card_number: str, holder_name: str, amount: int, currency: str
    ) -> BankAnswer:
        """Pay ``amount`` from our settlement account to the card (a withdrawal, a payout)."""
        ...

    def query(self, *, reference: str) -> BankAnswer:
        """The outcome of the operation with our ``reference``."""
        ...


class NotConfigured(AdapterUnavailable):
    """Production mode without a real bank adapter configured (503 ``adapter_unavailable``)."""


def make_bank(settings: Settings) -> Bank:
    """The configured bank adapter: ``CITYWALLET_BANK_ADAPTER``, else the sandbox bank
    (sandbox mode only); with failpoints armed, wrapped so each call passes them."""
    bank = _make_bank(settings)
    return FailpointBank(bank) if failpoints.armed() else bank


class FailpointBank:
    """A bank adapter whose money calls pass ``bank.call.before`` and ``bank.call.after``
    (platform/failpoints.py): a crash test can die while the bank acts on a call."""

    def __init__(self, bank: Bank) -> None:
        self._bank = bank
        self.sandbox = bank.sandbox

    def check_card(self, *, card_number: str, name: str, id_number: str, phone: str) -> CardCheck:
        return self._bank.check_card(
            card_number=card_number, name=name, id_number=id_number, phone=phone
        )

    def debit_card(
        self, *, reference: str, card_number: str, amount: int, currency: str
    ) -> BankAnswer:
        failpoints.hit("bank.call.before")
        answer = self._bank.debit_card(
            reference=reference, card_number=card_number, amount=amount, currency=currency
        )
        failpoints.hit("bank.call.after")
        return answer

    def credit_card(
        self, *, reference: str, card_number: str, holder_name: str, amount: int, currency: str
    ) -> BankAnswer:
        failpoints.hit("bank.call.before")
        answer = self._bank.credit_card(
            reference=reference, card_number=card_number, holder_name=holder_name,
            amount=amount, currency=currency,
        )  # fmt: skip
        failpoints.hit("bank.call.after")
        return answer

    def query(self, *, reference: str) -> BankAnswer:
        return self._bank.query(reference=reference)


def _make_bank(settings: Settings) -> Bank:
    if settings.bank_adapter:
        return cast(Bank, load_adapter(settings.bank_adapter, settings, what="bank adapter"))
    if settings.sandbox:
        return SandboxBank(
            path=settings.var_dir / "sandbox-bank.sqlite3",
            latency_ms=settings.sandbox_bank_latency_ms,
            timeout_seconds=settings.bank_timeout_seconds,
            late_answer_seconds=settings.sandbox_bank_late_answer_seconds,
        )
    raise NotConfigured(
        "No bank adapter is configured: set CITYWALLET_BANK_ADAPTER (production) or "
        "CITYWALLET_SANDBOX=true (development)."
    )


def sandbox_card_number(
    ending: str = "0000", *, bin_: str = "622202", length: int = 19, serial: int = 0
) -> str:
    """A Luhn-valid card number with BIN ``bin_`` ending in ``ending`` (for the sandbox);
    ``serial`` tells apart cards with the same BIN and ending."""
    middle = length - len(bin_) - 5
    if not (ending.isdigit() and len(ending) == 4 and bin_.isdigit() and middle >= 1):
        raise ValueError("four ending digits, a numeric BIN, at least 16 digits")
    body = bin_ + f"{serial:0{middle}d}"[-middle:]
    # The digit just before the ending is not doubled by Luhn: choose it to make the sum fit.
    for digit in "0123456789":
        number = body + digit + ending
        if luhn_check_digit(number[:-1]) == number[-1]:
            return number
    raise AssertionError("unreachable: one of ten digits always fits")


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS operations (
    reference TEXT PRIMARY KEY, kind TEXT NOT NULL, amount INTEGER NOT NULL,
    currency TEXT NOT NULL, status TEXT NOT NULL, code TEXT, bank_ref TEXT NOT NULL,
    known_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS card_holders (
    card TEXT PRIMARY KEY, holder TEXT NOT NULL, name TEXT NOT NULL
);
"""


class SandboxBank:
    """A bank simulator with real latency, declines, timeouts and late answers."""

    sandbox = True

    def __init__(
        self,
        *,
        path: Path | None = None,
        latency_ms: int = 0,
        timeout_seconds: float = 10.0,
        late_answer_seconds: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.latency_ms = latency_ms
        self.timeout_seconds = timeout_seconds
        self.late_answer_seconds = late_answer_seconds
        self.sleep = sleep
        self.clock = clock
        self.rng = rng or random.Random()  # noqa: S311 — simulated latency, not security
        self._lock = threading.Lock()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            private_file(path)  # card holders' names and numbers
        self._conn = sqlite3.connect(
            str(path) if path is not None else ":memory:",
            timeout=30,
            check_same_thread=False,
            isolation_level=None,
        )
        with self._lock:
            if path is not None:
                self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.executescript(_SCHEMA)
            self._conn.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('salt', ?)",
                (secrets.token_hex(16),),
            )
            self._salt = self._conn.execute("SELECT value FROM meta WHERE key = 'salt'").fetchone()[
                0
            ]

    # --- the Bank interface ---------------------------------------------------------------

    def check_card(self, *, card_number: str, name: str, id_number: str, phone: str) -> CardCheck:
        """Four-element check, with the magic endings ``0003`` (mismatch), ``0007`` (no
        answer); otherwise the first holder checked for a card stays its holder."""
        ref = self._ref()
        ending = card_number[-4:]
        if ending == "0007":
            self.sleep(self.timeout_seconds)
            return CardCheck(False, "unavailable", ref)
        self._wait(ending)
        if ending == "0003" or not phone:
            return CardCheck(False, "elements_mismatch", ref)
        card, holder = self._digest(card_number), self._digest(f"{name}|{id_number}")
        with self._lock:
            self._conn.execute(
                "INSERT OR IGNORE INTO card_holders (card, holder, name) VALUES (?, ?, ?)",
                (card, holder, self._digest(name)),
            )
            known = self._conn.execute(
                "SELECT holder FROM card_holders WHERE card = ?", (card,)
            ).fetchone()[0]
        if known != holder:
            return CardCheck(False, "elements_mismatch", ref)
        return CardCheck(True, "ok", ref)

    def debit_card(
        self, *, reference: str, card_number: str, amount: int, currency: str
    ) -> BankAnswer:
        """Debit the card (a top-up)."""
        return self._operate("debit", reference, card_number, amount, currency)

    def credit_card(
        self, *, reference: str, card_number: str, holder_name: str, amount: int, currency: str
    ) -> BankAnswer:
        """Credit the card (a withdrawal); a card whose holder the bank knows under another
        name is refused (``account_name_mismatch``), as a real bank checks the payee name."""
        with self._lock:
            row = self._conn.execute(
                "SELECT name FROM card_holders WHERE card = ?", (self._digest(card_number),)
            ).fetchone()
        mismatch = row is not None and row[0] != self._digest(holder_name)
        return self._operate("credit", reference, card_number, amount, currency, mismatch)

    def query(self, *, reference: str) -> BankAnswer:
        """What became of ``reference``: ``unknown`` (``processing``) until the late answer."""
        self._wait("")
        with self._lock:
            row = self._conn.execute(
                "SELECT status, code, bank_ref, known_at FROM operations WHERE reference = ?",
                (reference,),
            ).fetchone()
        if row is None:
            return BankAnswer(BankStatus.NOT_FOUND, "no_such_operation")
        status, code, bank_ref, known_at = row
        if self.clock() < known_at:
            return BankAnswer(BankStatus.UNKNOWN, "processing", bank_ref)
        return BankAnswer(BankStatus(status), code, bank_ref)

    # --- inside the bank ------------------------------------------------------------------

    def _operate(
        self,
        kind: str,
        reference: str,
        card_number: str,
        amount: int,
        currency: str,
        name_mismatch: bool = False,
    ) -> BankAnswer:
        ending = card_number[-4:]
        status, code = BankStatus.SUCCEEDED, None
        if name_mismatch:
            status, code = BankStatus.FAILED, "account_name_mismatch"
        elif ending == "0002":
            status, code = BankStatus.FAILED, "card_declined"
        elif ending == "0005" and kind == "debit":
            status, code = BankStatus.FAILED, "insufficient_funds"
        elif ending == "0009" and amount % 2 == 1:
            status, code = BankStatus.FAILED, "card_declined"
        late = ending == "0009"
        known_at = self.clock() + (self.late_answer_seconds if late else 0.0)
        with self._lock:  # a reference executes once; a repeated call gets the first outcome
            self._conn.execute(
                "INSERT OR IGNORE INTO operations (reference, kind, amount, currency, status, "
                "code, bank_ref, known_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (reference, kind, amount, currency, status.value, code, self._ref(), known_at),
            )
            stored = self._conn.execute(
                "SELECT status, code, bank_ref FROM operations WHERE reference = ?", (reference,)
            ).fetchone()
        if late:
            self.sleep(self.timeout_seconds)  # the caller gives up waiting
            return BankAnswer(BankStatus.UNKNOWN, "timeout")
        self._wait(ending)
        return BankAnswer(BankStatus(stored[0]), stored[1], stored[2])

    def _wait(self, ending: str) -> None:
        if not self.latency_ms:
            return
        factor = 3.0 if ending == "0008" else 1.0
        delay = self.latency_ms * factor * self.rng.uniform(0.5, 1.5) / 1000
        self.sleep(min(delay, self.timeout_seconds * 0.9))

    def _digest(self, value: str) -> str:
        return hashlib.sha256(f"{self._salt}|{value}".encode()).hexdigest()

    @staticmethod
    def _ref() -> str:
        return "sbx_" + secrets.token_hex(8)
