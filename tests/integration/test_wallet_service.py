"""Wallet use cases on SQLite and PostgreSQL: cards, top-up, withdrawal, P2P, AA split,
limits (also under concurrent threads), history and receipts. Every test that moves money
ends with ``assert_ledger_clean``."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from citywallet.identity import service as identity
from citywallet.identity.errors import AccountFrozen, PinIncorrect
from citywallet.ledger.blocks import load_signer, seal_all
from citywallet.platform.clock import now_us
from citywallet.platform.config import Settings
from citywallet.platform.crypto import Encryptor
from citywallet.platform.db import Database, UnitOfWork
from citywallet.platform.errors import DomainError
from citywallet.wallet import service as wallet
from citywallet.wallet.accounts import BANK_SETTLEMENT, FEE_REVENUE
from citywallet.wallet.bank import BankAnswer, BankStatus, SandboxBank, sandbox_card_number
from citywallet.wallet.models import BankCard, Funding
from tests.ledger_checks import assert_ledger_clean, test_encryptor
from tests.wallet_support import (
    PIN,
    FakeClock,
    Resident,
    balance,
    bind_extra_card,
    count,
    make_resident,
    platform_balance,
    sandbox_bank,
    wallet_settings,
)

YUAN = 100


@pytest.fixture
def enc() -> Encryptor:
    return test_encryptor()


@pytest.fixture
def settings(tmp_path: Path, db: Database) -> Settings:
    return wallet_settings(tmp_path, db)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def bank(clock: FakeClock) -> SandboxBank:
    return sandbox_bank(clock)


class World:
    """The database, settings, keys and bank of one test, with shortcuts."""

    def __init__(self, db: Database, settings: Settings, enc: Encryptor, bank: SandboxBank):
        self.db, self.settings, self.enc, self.bank = db, settings, enc, bank
        self._n = 0

    def resident(self, **kwargs: Any) -> Resident:
        self._n += 1
        return make_resident(self.db, self.settings, self.enc, self.bank, self._n, **kwargs)

    def top_up(self, who: Resident, amount: int, card_id: str | None = None) -> wallet.FundingView:
        return wallet.top_up(
            self.db,
            bank=self.bank,
            user_id=who.user_id,
            card_id=card_id or str(who.card_id),
            amount=amount,
            pin=PIN,
            encryptor=self.enc,
            settings=self.settings,
        )

    def withdraw(
        self, who: Resident, amount: int, card_id: str | None = None
    ) -> wallet.FundingView:
        return wallet.withdraw(
            self.db,
            bank=self.bank,
            user_id=who.user_id,
            card_id=card_id or str(who.card_id),
            amount=amount,
            pin=PIN,
            encryptor=self.enc,
            settings=self.settings,
        )

    def send(self, who: Resident, to: str, amount: int, note: str = "") -> wallet.TransferView:
        identity.confirm_payment_pin(
            self.db, user_id=who.user_id, pin=PIN, settings=self.settings, encryptor=self.enc
        )
        return self.db.transact(
            lambda uow: wallet.send_transfer(
                uow,
                user_id=who.user_id,
                to=to,
                amount=amount,
                note=note,
                encryptor=self.enc,
                settings=self.settings,
            )
        )

    def run(self, fn: Callable[[UnitOfWork], Any]) -> Any:
        return self.db.transact(fn)

    def read(self, fn: Callable[[UnitOfWork], Any]) -> Any:
        with self.db.uow(readonly=True) as uow:
            return fn(uow)


@pytest.fixture
def w(db: Database, settings: Settings, enc: Encryptor, bank: SandboxBank) -> World:
    return World(db, settings, enc, bank)


def _code(exc: pytest.ExceptionInfo[DomainError]) -> str:
    return exc.value.code


# --- wallets and cards --------------------------------------------------------------------


def test_wallet_is_opened_lazily_once_even_concurrently(w: World) -> None:
    alice = w.resident(card_ending=None)
    view = w.read(lambda uow: wallet.wallet_view(uow, user_id=alice.user_id, settings=w.settings))
    assert (view.balance, view.available, view.tier) == (0, 0, 1)
    assert count(w.db, "SELECT COUNT(*) FROM wallet_wallets") == 0  # reading opens nothing

    def open_it(_: int) -> int:
        return int(w.run(lambda uow: wallet.ensure_wallet(uow, user_id=alice.user_id)))

    with ThreadPoolExecutor(8) as pool:
        ids = set(pool.map(open_it, range(16)))
    assert len(ids) == 1
    assert count(w.db, "SELECT COUNT(*) FROM ledger_accounts WHERE code = 200") == 1


def test_bind_card_masks_and_counts_toward_tier(w: World) -> None:
    alice = w.resident(card_ending=None)
    assert w.read(lambda uow: identity.get_user(uow, user_id=alice.user_id)).tier == 1
    number = sandbox_card_number("1234", bin_="621483")
    card = wallet.bind_card(
        w.db,
        bank=w.bank,
        user_id=alice.user_id,
        card_number=" ".join(number[i : i + 4] for i in range(0, len(number), 4)),
        phone=alice.phone,
        encryptor=w.enc,
        settings=w.settings,
    )
    assert card.id.startswith("card_")
    assert (card.bank_code, card.last4) == ("CMB", "1234")
    assert card.number_masked == number[:6] + "*" * (len(number) - 10) + "1234"
    assert card.holder_name_masked.endswith(alice.name[-1])
    assert w.read(lambda uow: identity.get_user(uow, user_id=alice.user_id)).tier == 2
    listed = w.read(lambda uow: wallet.list_cards(uow, user_id=alice.user_id))
    assert [c.id for c in listed] == [card.id]
    stored = w.read(lambda uow: uow.session.scalar(select(BankCard.card_enc)))
    assert number not in stored
    assert w.enc.decrypt(stored, aad=card.id.encode()).decode() == number


@pytest.mark.parametrize(
    ("number", "code"),
    [
        ("6222020000000000001", "invalid_card_number"),  # Luhn fails
        ("62220200", "invalid_card_number"),
        (sandbox_card_number("0000", bin_="411111"), "card_not_supported"),
        (sandbox_card_number("0003"), "card_check_failed"),
        (sandbox_card_number("0007"), "bank_unavailable"),
    ],
)
def test_bind_card_refusals(w: World, number: str, code: str) -> None:
    alice = w.resident(card_ending=None)
    with pytest.raises(DomainError) as exc:
        wallet.bind_card(
            w.db,
            bank=w.bank,
            user_id=alice.user_id,
            card_number=number,
            phone=alice.phone,
            encryptor=w.enc,
            settings=w.settings,
        )
    assert _code(exc) == code
    assert count(w.db, "SELECT COUNT(*) FROM wallet_bank_cards") == 0


def test_bind_card_needs_real_name_and_refuses_duplicates(w: World) -> None:
    anon = w.resident(verify=False, card_ending=None)
    number = sandbox_card_number("4321")
    with pytest.raises(DomainError) as exc:
        wallet.bind_card(
            w.db, bank=w.bank, user_id=anon.user_id, card_number=number, phone=anon.phone,
            encryptor=w.enc, settings=w.settings,
        )  # fmt: skip
    assert _code(exc) == "real_name_required"
    alice = w.resident()
    with pytest.raises(DomainError) as exc:
        wallet.bind_card(
            w.db, bank=w.bank, user_id=alice.user_id, card_number=str(alice.card_number),
            phone=alice.phone, encryptor=w.enc, settings=w.settings,
        )  # fmt: skip
    assert _code(exc) == "card_already_bound"
    # Someone else's card: the bank knows its holder under another name and ID number.
    bob = w.resident(card_ending=None)
    with pytest.raises(DomainError) as exc:
        wallet.bind_card(
            w.db, bank=w.bank, user_id=bob.user_id, card_number=str(alice.card_number),
            phone=bob.phone, encryptor=w.enc, settings=w.settings,
        )  # fmt: skip
    assert _code(exc) == "card_check_failed"


def test_unbind_forgets_the_number_and_waits_for_money_in_flight(w: World) -> None:
    alice = w.resident()
    slow_card = bind_extra_card(w.db, w.settings, w.enc, w.bank, alice, "0009")
    assert w.top_up(alice, 1_000, card_id=slow_card).status == "unknown"
    with pytest.raises(DomainError) as exc:
        w.run(lambda uow: wallet.unbind_card(uow, user_id=alice.user_id, card_id=slow_card))
    assert _code(exc) == "card_in_use"
    assert wallet.reconcile_fundings(w.db, bank=w.bank, settings=w.settings).succeeded == 1
    view = w.run(lambda uow: wallet.unbind_card(uow, user_id=alice.user_id, card_id=slow_card))
    assert view.status == "unbound"
    assert count(w.db, "SELECT COUNT(*) FROM wallet_bank_cards WHERE card_enc IS NULL") == 1
    assert [c.id for c in w.read(lambda uow: wallet.list_cards(uow, user_id=alice.user_id))] == [
        alice.card_id
    ]
    bob = w.resident(card_ending=None)
    with pytest.raises(DomainError) as exc:  # another resident's card is not found
        w.run(lambda uow: wallet.unbind_card(uow, user_id=bob.user_id, card_id=str(alice.card_id)))
    assert _code(exc) == "card_not_found"
    assert_ledger_clean(w.db)


# --- top-up -------------------------------------------------------------------------------


def test_top_up_succeeds(w: World) -> None:
    alice = w.resident()
    funding = w.top_up(alice, 500 * YUAN)
    assert funding.id.startswith("top_")
    assert (funding.status, funding.amount, funding.fee) == ("succeeded", 50_000, 0)
    assert balance(w.db, alice.user_id) == (50_000, 0, 0)
    assert platform_balance(w.db, BANK_SETTLEMENT) == -50_000
    assert_ledger_clean(w.db)


@pytest.mark.parametrize(
    ("ending", "reason"), [("0002", "card_declined"), ("0005", "insufficient_funds")]
)
def test_top_up_declined_voids_the_hold(w: World, ending: str, reason: str) -> None:
    alice = w.resident(card_ending=ending)
    funding = w.top_up(alice, 100 * YUAN)
    assert (funding.status, funding.failure_code) == ("failed", reason)
    assert balance(w.db, alice.user_id) == (0, 0, 0)
    assert platform_balance(w.db, BANK_SETTLEMENT) == 0
    assert_ledger_clean(w.db)


def test_top_up_with_a_wrong_pin_moves_nothing(w: World) -> None:
    alice = w.resident()
    with pytest.raises(PinIncorrect):
        wallet.top_up(
            w.db, bank=w.bank, user_id=alice.user_id, card_id=str(alice.card_id), amount=100,
            pin="999111", encryptor=w.enc, settings=w.settings,
        )  # fmt: skip
    assert count(w.db, "SELECT COUNT(*) FROM wallet_fundings") == 0
    assert count(w.db, "SELECT COUNT(*) FROM ledger_transfers") == 0
    assert_ledger_clean(w.db)


@pytest.mark.parametrize(("amount", "outcome"), [(200_00, "succeeded"), (200_01, "failed")])
def test_top_up_timeout_is_reconciled_by_the_late_answer(
    db: Database, settings: Settings, enc: Encryptor, amount: int, outcome: str
) -> None:
    clock = FakeClock()
    bank = sandbox_bank(clock, late_answer_seconds=30)
    w = World(db, settings, enc, bank)
    alice = w.resident(card_ending="0009")
    funding = w.top_up(alice, amount)
    assert funding.status == "unknown"
    assert balance(db, alice.user_id) == (0, amount, 0)  # pending, not spendable
    view = w.read(lambda uow: wallet.wallet_view(uow, user_id=alice.user_id, settings=settings))
    assert (view.pending_incoming, view.available) == (amount, 0)
    # Before the bank knows: still unknown, still pending.
    report = wallet.reconcile_fundings(db, bank=bank, settings=settings)
    assert (report.checked, report.resolved, report.unresolved) == (1, 0, 1)
    assert balance(db, alice.user_id) == (0, amount, 0)
    clock.now += 31
    report = wallet.reconcile_fundings(db, bank=bank, settings=settings)
    assert report.resolved == 1
    got = w.read(lambda uow: wallet.get_funding(uow, user_id=alice.user_id, funding_id=funding.id))
    assert got.status == outcome
    expected = amount if outcome == "succeeded" else 0
    assert balance(db, alice.user_id) == (expected, 0, 0)
    assert platform_balance(db, BANK_SETTLEMENT) == -expected
    # A second pass, and a contradicting answer arriving late, change nothing.
    assert wallet.reconcile_fundings(db, bank=bank, settings=settings).checked == 0
    flipped = BankStatus.FAILED if outcome == "succeeded" else BankStatus.SUCCEEDED
    again = w.run(
        lambda uow: wallet.settle_funding(uow, funding_id=funding.id, answer=BankAnswer(flipped))
    )
    assert again.status == outcome
    assert balance(db, alice.user_id) == (expected, 0, 0)
    assert_ledger_clean(db)


def test_crash_before_the_bank_call_is_voided_after_the_grace_period(w: World) -> None:
    alice = w.resident()
    request = w.run(
        lambda uow: wallet.start_topup(
            uow, user_id=alice.user_id, card_id=str(alice.card_id), amount=300,
            encryptor=w.enc, settings=w.settings,
        )
    )  # fmt: skip
    assert "card_number" not in repr(request) or request.card_number not in repr(request)
    # Too fresh to ask about: it may still be on its way to the bank.
    assert wallet.reconcile_fundings(w.db, bank=w.bank, settings=w.settings).checked == 0
    later = now_us() + 3600 * 1_000_000
    report = wallet.reconcile_fundings(w.db, bank=w.bank, settings=w.settings, now=later)
    assert (report.checked, report.failed) == (1, 1)
    got = w.read(
        lambda uow: wallet.get_funding(uow, user_id=alice.user_id, funding_id=request.funding_id)
    )
    assert (got.status, got.failure_code) == ("failed", "bank_has_no_record")
    assert balance(w.db, alice.user_id) == (0, 0, 0)
    assert_ledger_clean(w.db)


def test_crash_after_the_bank_moved_money_is_posted(w: World) -> None:
    alice = w.resident()
    request = w.run(
        lambda uow: wallet.start_topup(
            uow, user_id=alice.user_id, card_id=str(alice.card_id), amount=700,
            encryptor=w.enc, settings=w.settings,
        )
    )  # fmt: skip
    assert wallet.ask_bank(w.bank, request).status is BankStatus.SUCCEEDED
    # ... and the process died before settling.
    later = now_us() + 3600 * 1_000_000
    report = wallet.reconcile_fundings(w.db, bank=w.bank, settings=w.settings, now=later)
    assert report.succeeded == 1
    assert balance(w.db, alice.user_id) == (700, 0, 0)
    assert_ledger_clean(w.db)


# --- withdrawal ---------------------------------------------------------------------------


def test_withdrawal_fee_after_the_free_quota(w: World) -> None:
    alice = w.resident()
    w.top_up(alice, 3_000 * YUAN)
    first = w.withdraw(alice, 600 * YUAN)  # inside the 1,000 yuan free quota
    assert first.id.startswith("wdr_")
    assert (first.status, first.fee) == ("succeeded", 0)
    quote = w.read(
        lambda uow: wallet.quote_withdrawal(
            uow, user_id=alice.user_id, amount=600 * YUAN, settings=w.settings
        )
    )
    assert (quote.free_part, quote.fee) == (400 * YUAN, 20)
    assert (quote.free_quota_before, quote.free_quota_after) == (400 * YUAN, 0)
    second = w.withdraw(alice, 600 * YUAN)  # 400 free, 200 charged: 0.1 % = 0.20 yuan
    assert (second.status, second.fee) == ("succeeded", 20)
    third = w.withdraw(alice, 50 * YUAN)  # 0.1 % = 0.05, the minimum 0.10 applies
    assert third.fee == 10
    fourth = w.withdraw(alice, 123_45)  # 0.1 % of 123.45 = 0.12345 → 0.12
    assert fourth.fee == 12
    spent = 600 * YUAN + 600 * YUAN + 20 + 50 * YUAN + 10 + 123_45 + 12
    assert balance(w.db, alice.user_id) == (3_000 * YUAN - spent, 0, 0)
    assert platform_balance(w.db, FEE_REVENUE) == 42
    view = w.read(lambda uow: wallet.wallet_view(uow, user_id=alice.user_id, settings=w.settings))
    assert view.free_withdrawal_left == 0
    assert_ledger_clean(w.db)


def test_failed_withdrawal_voids_both_legs_and_gives_the_quota_back(w: World) -> None:
    alice = w.resident()
    w.top_up(alice, 2_000 * YUAN)
    w.withdraw(alice, 900 * YUAN)
    declining = bind_extra_card(w.db, w.settings, w.enc, w.bank, alice, "0002")
    failed = w.withdraw(alice, 500 * YUAN, card_id=declining)  # 100 free + 400 charged
    assert (failed.status, failed.fee, failed.failure_code) == ("failed", 40, "card_declined")
    assert balance(w.db, alice.user_id) == (1_100 * YUAN, 0, 0)
    assert platform_balance(w.db, FEE_REVENUE) == 0
    view = w.read(lambda uow: wallet.wallet_view(uow, user_id=alice.user_id, settings=w.settings))
    assert view.free_withdrawal_left == 100 * YUAN
    ok = w.withdraw(alice, 500 * YUAN)
    assert (ok.status, ok.fee) == ("succeeded", 40)
    assert platform_balance(w.db, FEE_REVENUE) == 40
    assert_ledger_clean(w.db)


@pytest.mark.parametrize(("amount", "outcome"), [(100_00, "succeeded"), (100_01, "failed")])
def test_withdrawal_timeout_keeps_both_legs_pending_until_reconciled(
    w: World, amount: int, outcome: str
) -> None:
    alice = w.resident()
    w.top_up(alice, 2_000 * YUAN)
    w.withdraw(alice, 1_000 * YUAN)  # uses up the free quota: the next one pays a fee
    slow = bind_extra_card(w.db, w.settings, w.enc, w.bank, alice, "0009")
    funding = w.withdraw(alice, amount, card_id=slow)
    assert funding.status == "unknown"
    assert funding.fee == 10
    assert balance(w.db, alice.user_id) == (1_000 * YUAN, 0, amount + 10)
    assert wallet.reconcile_fundings(w.db, bank=w.bank, settings=w.settings).resolved == 1
    if outcome == "succeeded":
        assert balance(w.db, alice.user_id) == (1_000 * YUAN - amount - 10, 0, 0)
        assert platform_balance(w.db, FEE_REVENUE) == 10
    else:
        assert balance(w.db, alice.user_id) == (1_000 * YUAN, 0, 0)
        assert platform_balance(w.db, FEE_REVENUE) == 0
    assert_ledger_clean(w.db)


def test_withdrawal_refusals_change_nothing(w: World) -> None:
    alice = w.resident()
    w.top_up(alice, 100 * YUAN)
    with pytest.raises(DomainError) as exc:
        w.withdraw(alice, 100 * YUAN + 1)
    assert _code(exc) == "insufficient_balance"
    with pytest.raises(DomainError) as exc:
        w.withdraw(alice, 0)
    assert _code(exc) == "invalid_amount"
    bob = w.resident()
    with pytest.raises(DomainError) as exc:  # Bob's card is not Alice's
        w.withdraw(alice, 10 * YUAN, card_id=str(bob.card_id))
    assert _code(exc) == "card_not_found"
    # A card bound under another identity (cannot happen through binding): refused.
    w.run(
        lambda uow: uow.session.execute(
            text("UPDATE wallet_bank_cards SET holder_id_hash = 'x' WHERE public_id = :c"),
            {"c": alice.card_id},
        )
    )
    with pytest.raises(DomainError) as exc:
        w.withdraw(alice, 10 * YUAN)
    assert _code(exc) == "card_holder_mismatch"
    assert count(w.db, "SELECT COUNT(*) FROM wallet_fundings WHERE kind = 'withdrawal'") == 0
    assert balance(w.db, alice.user_id) == (100 * YUAN, 0, 0)
    assert_ledger_clean(w.db)


# --- P2P ----------------------------------------------------------------------------------


def test_p2p_by_phone_and_by_id_with_note(w: World) -> None:
    alice, bob = w.resident(), w.resident(card_ending=None)
    w.top_up(alice, 100 * YUAN)
    sent = w.send(alice, "138 0013 " + bob.phone[-4:], 12_34, note="  lunch  money ")
    assert sent.id.startswith("p2p_")
    assert (sent.to_user_id, sent.note) == (bob.user_id, "lunch money")
    w.send(alice, bob.user_id, 66)
    assert balance(w.db, alice.user_id) == (100 * YUAN - 12_34 - 66, 0, 0)
    assert balance(w.db, bob.user_id) == (12_34 + 66, 0, 0)
    page = w.read(lambda uow: wallet.list_history(uow, user_id=bob.user_id))
    assert [(i.kind, i.amount, i.direction) for i in page.items] == [
        ("transfer_in", 66, "in"),
        ("transfer_in", 12_34, "in"),
    ]
    assert page.items[1].note == "lunch money"
    assert alice.name[-1] in page.items[1].counterparty_label
    assert_ledger_clean(w.db)


def test_p2p_refusals_change_nothing(w: World) -> None:
    alice, bob = w.resident(), w.resident(card_ending=None)
    w.top_up(alice, 10 * YUAN)
    cases = [
        (bob.user_id, 10 * YUAN + 1, "insufficient_balance"),
        (alice.user_id, 100, "cannot_pay_self"),
        ("13900000000", 100, "recipient_not_found"),
        ("usr_nobody", 100, "recipient_not_found"),
        ("12345", 100, "invalid_phone"),
        (bob.user_id, -5, "invalid_amount"),
    ]
    for to, amount, code in cases:
        with pytest.raises(DomainError) as exc:
            w.send(alice, to, amount)
        assert _code(exc) == code, (to, amount)
    with pytest.raises(DomainError) as exc:
        w.send(alice, bob.user_id, 100, note="x" * 101)
    assert _code(exc) == "note_too_long"
    assert balance(w.db, alice.user_id) == (10 * YUAN, 0, 0)
    assert count(w.db, "SELECT COUNT(*) FROM wallet_activity WHERE kind LIKE 'transfer%'") == 0
    assert_ledger_clean(w.db)


def test_frozen_accounts_cannot_move_money(w: World) -> None:
    alice, bob = w.resident(), w.resident(card_ending=None)
    w.top_up(alice, 10 * YUAN)
    w.run(lambda uow: identity.freeze_user(uow, user_id=bob.user_id, reason="fraud", actor="op"))
    with pytest.raises(DomainError) as exc:
        w.send(alice, bob.user_id, 100)
    assert _code(exc) == "recipient_unavailable"
    w.run(lambda uow: identity.freeze_user(uow, user_id=alice.user_id, reason="fraud", actor="op"))
    with pytest.raises(AccountFrozen):
        w.top_up(alice, 100)
    with pytest.raises(AccountFrozen):  # even without the PIN step
        w.run(
            lambda uow: wallet.start_withdrawal(
                uow, user_id=alice.user_id, card_id=str(alice.card_id), amount=100,
                encryptor=w.enc, settings=w.settings,
            )
        )  # fmt: skip
    assert balance(w.db, alice.user_id) == (10 * YUAN, 0, 0)
    assert_ledger_clean(w.db)


# --- limits -------------------------------------------------------------------------------


def test_class_one_lifetime_limit_and_own_card_exemption(w: World) -> None:
    alice = w.resident()  # tier 2 (ID + card): 100,000 yuan a year
    carol = w.resident(card_ending=None)  # tier 1 (ID only): 1,000 yuan since opening
    w.top_up(alice, 5_000 * YUAN)
    w.send(alice, carol.user_id, 2_000 * YUAN)
    w.send(carol, alice.user_id, 600 * YUAN)
    w.send(carol, alice.user_id, 400 * YUAN)
    with pytest.raises(DomainError) as exc:
        w.send(carol, alice.user_id, 1)
    assert _code(exc) == "lifetime_limit_exceeded"
    assert exc.value.extra["left"] == 0
    view = w.read(lambda uow: wallet.wallet_view(uow, user_id=carol.user_id, settings=w.settings))
    assert (view.tier, view.left.lifetime, view.left.this_year) == (1, 0, None)
    # Alice's withdrawals to her own card do not count toward her yearly total.
    w.withdraw(alice, 1_000 * YUAN)
    view = w.read(lambda uow: wallet.wallet_view(uow, user_id=alice.user_id, settings=w.settings))
    assert view.left.this_year == 100_000 * YUAN - 2_000 * YUAN
    anon = w.resident(verify=False, card_ending=None)  # tier 0 may not hold money
    with pytest.raises(DomainError) as exc:
        w.send(alice, anon.user_id, 100)
    assert _code(exc) == "recipient_limit_exceeded"
    assert_ledger_clean(w.db)


def test_ecny_preset_single_daily_and_balance_limits(
    db: Database, tmp_path: Path, enc: Encryptor, bank: SandboxBank
) -> None:
    settings = wallet_settings(tmp_path, db, wallet_limit_preset="ecny")
    w = World(db, settings, enc, bank)
    alice, bob = w.resident(), w.resident()  # tier 2 ↔ Type II: 10,000 / 5,000 / 10,000
    with pytest.raises(DomainError) as exc:
        w.top_up(alice, 10_000 * YUAN + 1)
    assert _code(exc) == "balance_limit_exceeded"
    w.top_up(alice, 10_000 * YUAN)
    with pytest.raises(DomainError) as exc:
        w.send(alice, bob.user_id, 5_000 * YUAN + 1)
    assert _code(exc) == "single_limit_exceeded"
    w.send(alice, bob.user_id, 5_000 * YUAN)
    w.withdraw(alice, 4_000 * YUAN)  # own card: counts toward the day, not the year
    with pytest.raises(DomainError) as exc:
        w.send(alice, bob.user_id, 1_000 * YUAN + 1)
    assert _code(exc) == "daily_limit_exceeded"
    view = w.read(lambda uow: wallet.wallet_view(uow, user_id=alice.user_id, settings=settings))
    assert (view.left.today, view.left.this_year) == (1_000 * YUAN, 295_000 * YUAN)
    w.top_up(bob, 5_000 * YUAN)
    with pytest.raises(DomainError) as exc:  # Bob holds 10,000: the most Type II may
        w.send(alice, bob.user_id, 1)
    assert _code(exc) == "recipient_limit_exceeded"
    assert_ledger_clean(db)


def test_concurrent_payments_cannot_exceed_the_daily_limit(
    db: Database, tmp_path: Path, enc: Encryptor, bank: SandboxBank
) -> None:
    settings = wallet_settings(tmp_path, db, wallet_tier_limits={"2": {"daily": 1_000 * YUAN}})
    w = World(db, settings, enc, bank)
    alice, bob, carol = w.resident(), w.resident(), w.resident()
    w.top_up(alice, 5_000 * YUAN)
    barrier = threading.Barrier(20)

    def pay(i: int) -> str:
        to = bob if i % 2 else carol
        barrier.wait()
        try:
            db.transact(
                lambda uow: wallet.send_transfer(
                    uow, user_id=alice.user_id, to=to.user_id, amount=100 * YUAN,
                    encryptor=enc, settings=settings,
                )
            )  # fmt: skip
            return "ok"
        except DomainError as exc:
            return exc.code

    with ThreadPoolExecutor(20) as pool:
        outcomes = list(pool.map(pay, range(20)))
    assert outcomes.count("ok") == 10
    assert set(outcomes) == {"ok", "daily_limit_exceeded"}
    assert balance(db, alice.user_id) == (4_000 * YUAN, 0, 0)
    view = w.read(lambda uow: wallet.wallet_view(uow, user_id=alice.user_id, settings=settings))
    assert view.left.today == 0
    assert_ledger_clean(db)


def test_concurrent_payments_cannot_overfill_a_balance_limit(
    db: Database, tmp_path: Path, enc: Encryptor, bank: SandboxBank
) -> None:
    settings = wallet_settings(tmp_path, db, wallet_limit_preset="ecny")
    w = World(db, settings, enc, bank)
    payee = w.resident(card_ending=None)  # tier 1 ↔ Type III: holds at most 2,000 yuan
    payers = [w.resident() for _ in range(5)]
    for payer in payers:
        w.top_up(payer, 600 * YUAN)
    barrier = threading.Barrier(len(payers))

    def pay(payer: Resident) -> str:
        barrier.wait()
        try:
            db.transact(
                lambda uow: wallet.send_transfer(
                    uow, user_id=payer.user_id, to=payee.user_id, amount=600 * YUAN,
                    encryptor=enc, settings=settings,
                )
            )  # fmt: skip
            return "ok"
        except DomainError as exc:
            return exc.code

    with ThreadPoolExecutor(len(payers)) as pool:
        outcomes = list(pool.map(pay, payers))
    assert outcomes.count("ok") == 3
    assert set(outcomes) == {"ok", "recipient_limit_exceeded"}
    assert balance(db, payee.user_id) == (1_800 * YUAN, 0, 0)
    assert_ledger_clean(db)


def test_concurrent_transfers_both_ways_do_not_deadlock_or_overdraw(w: World) -> None:
    alice, bob = w.resident(), w.resident()
    w.top_up(alice, 100 * YUAN)
    w.top_up(bob, 100 * YUAN)

    def pay(i: int) -> str:
        payer, payee = (alice, bob) if i % 2 else (bob, alice)
        try:
            w.db.transact(
                lambda uow: wallet.send_transfer(
                    uow, user_id=payer.user_id, to=payee.user_id, amount=30 * YUAN,
                    encryptor=w.enc, settings=w.settings,
                )
            )  # fmt: skip
            return "ok"
        except DomainError as exc:
            return exc.code

    with ThreadPoolExecutor(16) as pool:
        outcomes = list(pool.map(pay, range(40)))
    assert set(outcomes) <= {"ok", "insufficient_balance"}
    a, b = balance(w.db, alice.user_id)[0], balance(w.db, bob.user_id)[0]
    assert a + b == 200 * YUAN
    assert a >= 0
    assert b >= 0
    assert_ledger_clean(w.db)


# --- AA split -----------------------------------------------------------------------------


def test_split_exact_shares_paid_completed(w: World) -> None:
    alice, bob, carol = w.resident(), w.resident(), w.resident()
    w.top_up(bob, 100 * YUAN)
    w.top_up(carol, 100 * YUAN)
    split = w.run(
        lambda uow: wallet.create_split(
            uow,
            user_id=alice.user_id,
            total=100_00,
            shares=[
                wallet.ShareRequest(alice.user_id, 33_34),
                wallet.ShareRequest(bob.phone, 33_33),
                wallet.ShareRequest(carol.user_id, 33_33),
            ],
            note="hotpot",
            encryptor=w.enc,
            settings=w.settings,
        )
    )
    assert split.id.startswith("spl_")
    assert (split.status, split.paid_amount, split.paid_count) == ("open", 33_34, 1)
    for who in (bob, carol):
        identity.confirm_payment_pin(w.db, user_id=who.user_id, pin=PIN, encryptor=w.enc)
        w.run(lambda uow, u=who: wallet.pay_share(uow, user_id=u.user_id, split_id=split.id))
    done = w.read(lambda uow: wallet.get_split(uow, user_id=carol.user_id, split_id=split.id))
    assert (done.status, done.paid_amount) == ("completed", 100_00)
    assert balance(w.db, alice.user_id) == (66_66, 0, 0)
    with pytest.raises(DomainError) as exc:
        w.run(lambda uow: wallet.pay_share(uow, user_id=bob.user_id, split_id=split.id))
    assert _code(exc) == "share_already_paid"
    stranger = w.resident(card_ending=None)
    with pytest.raises(DomainError) as exc:
        w.read(lambda uow: wallet.get_split(uow, user_id=stranger.user_id, split_id=split.id))
    assert _code(exc) == "split_not_found"
    kinds = w.read(lambda uow: wallet.list_history(uow, user_id=alice.user_id)).items
    assert [i.kind for i in kinds] == ["split_collection", "split_collection"]
    assert_ledger_clean(w.db)


def test_split_validation_even_split_reminders_and_cancel(w: World) -> None:
    alice, bob, carol = w.resident(), w.resident(), w.resident()
    w.top_up(bob, 100 * YUAN)

    def create(shares: list[wallet.ShareRequest], total: int = 100) -> wallet.SplitView:
        return w.run(
            lambda uow: wallet.create_split(
                uow, user_id=alice.user_id, total=total, shares=shares, encryptor=w.enc,
                settings=w.settings,
            )
        )  # fmt: skip

    for shares, code in [
        ([wallet.ShareRequest(bob.user_id, 50), wallet.ShareRequest(carol.user_id, 49)],
         "shares_do_not_sum_to_total"),
        ([wallet.ShareRequest(bob.user_id, 100), wallet.ShareRequest(carol.user_id, 0)],
         "invalid_share_amount"),
        ([wallet.ShareRequest(bob.user_id, 50), wallet.ShareRequest(bob.phone, 50)],
         "duplicate_participant"),
        ([wallet.ShareRequest(bob.user_id, 50), wallet.ShareRequest(carol.user_id)],
         "invalid_share_amount"),
        ([], "invalid_share_count"),
    ]:  # fmt: skip
        with pytest.raises(DomainError) as exc:
            create(shares)
        assert _code(exc) == code
    split = create([wallet.ShareRequest(bob.user_id), wallet.ShareRequest(carol.user_id)], 1_01)
    assert [s.amount for s in split.shares] == [51, 50]
    assert (
        w.run(lambda uow: wallet.remind_split(uow, user_id=alice.user_id, split_id=split.id)) == 2
    )
    with pytest.raises(DomainError) as exc:
        w.run(lambda uow: wallet.remind_split(uow, user_id=alice.user_id, split_id=split.id))
    assert _code(exc) == "reminder_too_soon"
    with pytest.raises(DomainError) as exc:  # only the creator reminds
        w.run(lambda uow: wallet.remind_split(uow, user_id=bob.user_id, split_id=split.id))
    assert _code(exc) == "split_not_found"
    payloads = w.read(
        lambda uow: [
            json.loads(p)
            for p in uow.session.scalars(
                text("SELECT payload FROM platform_outbox WHERE topic = 'wallet.split_reminder'")
            )
        ]
    )
    assert sorted(p["user_id"] for p in payloads) == sorted([bob.user_id, carol.user_id])
    w.run(lambda uow: wallet.pay_share(uow, user_id=bob.user_id, split_id=split.id))
    cancelled = w.run(
        lambda uow: wallet.cancel_split(uow, user_id=alice.user_id, split_id=split.id)
    )
    assert cancelled.status == "cancelled"
    assert [s.status for s in cancelled.shares] == ["paid", "cancelled"]
    with pytest.raises(DomainError) as exc:
        w.run(lambda uow: wallet.pay_share(uow, user_id=carol.user_id, split_id=split.id))
    assert _code(exc) == "split_cancelled"
    assert balance(w.db, alice.user_id) == (51, 0, 0)
    # Cancelling single shares: only unpaid ones; the split completes when none is unpaid.
    second = create([wallet.ShareRequest(bob.user_id, 60), wallet.ShareRequest(carol.user_id, 40)])
    w.run(lambda uow: wallet.pay_share(uow, user_id=bob.user_id, split_id=second.id))
    bob_share, carol_share = second.shares
    with pytest.raises(DomainError) as exc:
        w.run(
            lambda uow: wallet.cancel_split(
                uow, user_id=alice.user_id, split_id=second.id, share_ids=[bob_share.id]
            )
        )
    assert _code(exc) == "share_not_unpaid"
    after = w.run(
        lambda uow: wallet.cancel_split(
            uow, user_id=alice.user_id, split_id=second.id, share_ids=[carol_share.id]
        )
    )
    assert (after.status, [s.status for s in after.shares]) == ("completed", ["paid", "cancelled"])
    assert_ledger_clean(w.db)


def test_concurrent_payment_of_one_share_pays_once(w: World) -> None:
    alice, bob = w.resident(), w.resident()
    w.top_up(bob, 100 * YUAN)
    split = w.run(
        lambda uow: wallet.create_split(
            uow, user_id=alice.user_id, total=10 * YUAN,
            shares=[wallet.ShareRequest(bob.user_id)], encryptor=w.enc, settings=w.settings,
        )
    )  # fmt: skip

    def pay(_: int) -> str:
        try:
            w.run(lambda uow: wallet.pay_share(uow, user_id=bob.user_id, split_id=split.id))
            return "ok"
        except DomainError as exc:
            return exc.code

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(pay, range(8)))
    assert outcomes.count("ok") == 1
    assert balance(w.db, bob.user_id) == (90 * YUAN, 0, 0)
    assert_ledger_clean(w.db)


# --- history and receipts -----------------------------------------------------------------


def test_history_filters_pages_and_receipts_with_proofs(w: World) -> None:
    alice, bob, carol = w.resident(), w.resident(card_ending=None), w.resident(card_ending=None)
    topup = w.top_up(alice, 100 * YUAN)
    for i in range(5):
        w.send(alice, bob.user_id, 100 + i)
    w.send(alice, carol.user_id, 7)
    withdrawal = w.withdraw(alice, 10 * YUAN)
    everything = w.read(lambda uow: wallet.list_history(uow, user_id=alice.user_id, limit=100))
    assert [i.kind for i in everything.items][:2] == ["withdrawal", "transfer_out"]
    assert everything.next_cursor is None
    assert len(everything.items) == 8
    seen: list[str] = []
    cursor = None
    while True:
        page = w.read(
            lambda uow, c=cursor: wallet.list_history(
                uow, user_id=alice.user_id, kinds=["transfer_out"], limit=2, cursor=c
            )
        )
        seen += [i.id for i in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert len(seen) == len(set(seen)) == 6
    to_bob = w.read(
        lambda uow: wallet.list_history(uow, user_id=alice.user_id, counterparty=bob.user_id)
    )
    assert len(to_bob.items) == 5
    future = w.read(
        lambda uow: wallet.list_history(uow, user_id=alice.user_id, since=now_us() + 10**9)
    )
    assert future.items == []
    with pytest.raises(DomainError) as exc:
        w.read(lambda uow: wallet.list_history(uow, user_id=alice.user_id, cursor="nonsense"))
    assert _code(exc) == "invalid_cursor"

    signer = w.run(lambda uow: load_signer(uow, w.enc))
    before = w.read(
        lambda uow: wallet.receipt(uow, user_id=alice.user_id, object_id=topup.id, signer=signer)
    )
    assert before.proof_status == "not_sealed_yet"
    assert [t.role for t in before.transfers] == ["hold", "post"]
    w.run(lambda uow: seal_all(uow, signer))
    after = w.read(
        lambda uow: wallet.receipt(
            uow, user_id=alice.user_id, object_id=withdrawal.id, signer=signer
        )
    )
    assert after.proof_status == "sealed"
    assert [t.role for t in after.transfers] == ["hold", "post"]  # free: no fee leg
    from citywallet.ledger.verifier import verify_inclusion_proof

    for transfer in after.transfers:
        assert transfer.proof is not None
        verify_inclusion_proof(transfer.proof, signer.public_key, transfer.sealed_fields)
    with pytest.raises(DomainError) as exc:  # Bob cannot read Alice's receipt
        w.read(
            lambda uow: wallet.receipt(uow, user_id=bob.user_id, object_id=topup.id, signer=signer)
        )
    assert _code(exc) == "transaction_not_found"
    assert_ledger_clean(w.db)


def test_funding_rows_record_the_idempotency_key(w: World) -> None:
    alice = w.resident()
    request = w.run(
        lambda uow: wallet.start_topup(
            uow, user_id=alice.user_id, card_id=str(alice.card_id), amount=100,
            encryptor=w.enc, settings=w.settings, idempotency_key="k-1",
        )
    )  # fmt: skip
    found = w.read(
        lambda uow: wallet.funding_for_key(uow, user_id=alice.user_id, idempotency_key="k-1")
    )
    assert found is not None
    assert found.id == request.funding_id
    assert w.read(lambda uow: uow.session.scalar(select(Funding.status))) == "processing"
    w.run(
        lambda uow: wallet.settle_funding(
            uow, funding_id=request.funding_id, answer=wallet.ask_bank(w.bank, request)
        )
    )
    assert_ledger_clean(w.db)
