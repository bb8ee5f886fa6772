"""Merchant settlement (T+n payouts to the bank) and daily statements, on SQLite and
PostgreSQL. Merchants, payments and refunds are built directly in the ledger with the ids
and references the payments service uses (``ord_….pay``/``.fee``, ``rfd_….fee``/``.refund``),
at chosen times in a fictional March 2031; the runs get the same clock. Every test that
moves money ends with ``assert_ledger_clean``."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from citywallet.ledger import service as ledger
from citywallet.ledger.types import (
    AccountCode,
    AccountFlags,
    TransferCode,
    TransferFlags,
    TransferSpec,
)
from citywallet.merchant import settlement as settlements
from citywallet.merchant import statements
from citywallet.merchant.errors import SettlementNotFound
from citywallet.merchant.models import Merchant, Order, Refund, Settlement
from citywallet.merchant.rules import fee_back, fee_for
from citywallet.merchant.settlement import (
    RETRY_FIRST_SECONDS,
    SettlementReport,
    SettlementView,
    run_settlements,
)
from citywallet.platform.config import Settings
from citywallet.platform.crypto import Encryptor
from citywallet.platform.db import Database, UnitOfWork
from citywallet.wallet import accounts
from citywallet.wallet.bank import BankAnswer, SandboxBank, sandbox_card_number
from citywallet.wallet.people import new_id
from tests.ledger_checks import assert_ledger_clean, test_encryptor
from tests.wallet_support import FakeClock, sandbox_bank, wallet_settings

SHANGHAI = ZoneInfo("Asia/Shanghai")
SECOND = 1_000_000
FEE_BP = 38
DAY0 = date(2031, 3, 11)
YESTERDAY = date(2031, 3, 13)
TODAY = date(2031, 3, 14)
TOMORROW = date(2031, 3, 15)
_UNPOSTED = TransferFlags.PENDING | TransferFlags.VOID_PENDING


def at(day: date, hour: int, minute: int = 0, second: int = 0) -> int:
    """Microseconds since the epoch of a Beijing-time moment."""
    return statements.to_us(
        datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=SHANGHAI)
    )


class RecordingBank:
    """The sandbox bank, with every payout call recorded (and the first ``unreachable``
    calls failing before they reach it)."""

    def __init__(self, inner: SandboxBank, *, unreachable: int = 0) -> None:
        self.inner, self.unreachable = inner, unreachable
        self.credits: list[tuple[str, int, str]] = []  # (reference, amount, card ending)
        self.queries: list[str] = []
        self._lock = threading.Lock()

    @property
    def sandbox(self) -> bool:
        return True

    def check_card(self, **kwargs: str):  # type: ignore[no-untyped-def]
        return self.inner.check_card(**kwargs)

    def debit_card(self, **kwargs):  # type: ignore[no-untyped-def]
        return self.inner.debit_card(**kwargs)

    def credit_card(
        self, *, reference: str, card_number: str, holder_name: str, amount: int, currency: str
    ) -> BankAnswer:
        with self._lock:
            self.credits.append((reference, amount, card_number[-4:]))
            if self.unreachable:
                self.unreachable -= 1
                raise ConnectionError("bank unreachable")
        return self.inner.credit_card(
            reference=reference,
            card_number=card_number,
            holder_name=holder_name,
            amount=amount,
            currency=currency,
        )

    def query(self, *, reference: str) -> BankAnswer:
        with self._lock:
            self.queries.append(reference)
        return self.inner.query(reference=reference)

    def references(self) -> list[str]:
        return [reference for reference, _, _ in self.credits]


@dataclass(frozen=True)
class Shop:
    pk: int
    public_id: str
    receivable: int
    payable: int


@dataclass(frozen=True)
class Paid:
    order_id: str
    order_pk: int
    out_trade_no: str
    amount: int
    fee: int

    @property
    def net(self) -> int:
        return self.amount - self.fee


@dataclass(frozen=True)
class Refunded:
    refund_id: str
    out_refund_no: str
    amount: int
    fee_back: int

    @property
    def net(self) -> int:
        return self.fee_back - self.amount


class World:
    """One test's database, keys, settings and bank, with builders for merchant money."""

    def __init__(self, db: Database, settings: Settings, bank: RecordingBank) -> None:
        self.db, self.settings, self.bank = db, settings, bank
        self.enc: Encryptor = test_encryptor()
        self._n = 0
        self.payer = self.wallet(10_000_000_00, at(DAY0 - timedelta(days=30), 8))

    def next_n(self) -> int:
        self._n += 1
        return self._n

    def shop(
        self,
        *,
        card_ending: str = "0000",
        settle_days: int = 1,
        created: int | None = None,
        status: str = "active",
    ) -> Shop:
        n = self.next_n()
        moment = created if created is not None else at(YESTERDAY, 8)
        card = sandbox_card_number(card_ending, serial=n)

        def create(uow: UnitOfWork) -> Shop:
            public_id = new_id("mch")
            receivable, payable, fees = (
                ledger.create_account(
                    uow,
                    ledger="CNY",
                    code=code,
                    flags=AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS,
                    owner_ref=f"{public_id}:{kind}",
                )
                for code, kind in (
                    (AccountCode.MERCHANT_RECEIVABLE, "receivable"),
                    (AccountCode.MERCHANT_SETTLEMENT_PAYABLE, "settlement"),
                    (AccountCode.FEE_REVENUE, "fees"),
                )
            )
            aad = public_id.encode()
            row = Merchant(
                public_id=public_id,
                owner_user_id=f"usr_owner{n}",
                name_zh="东门小吃",
                name_en="Dongmen Snacks",
                city_zh="深圳",
                city_en="Shenzhen",
                uscc=f"9144030000000{n:04d}X",
                mcc="5814",
                district="罗湖区",
                address="东门路1号",
                contact_name="张三",
                contact_phone_enc=self.enc.encrypt(b"+8613800138000", aad=aad),
                card_enc=self.enc.encrypt(card.encode(), aad=aad),
                card_last4=card[-4:],
                card_bank_name="Sandbox Bank",
                card_holder="张三",
                fee_rate_bp=FEE_BP,
                settle_days=settle_days,
                status=status,
                status_reason="",
                receivable_account_id=receivable,
                settlement_account_id=payable,
                fee_account_id=fees,
                webhook_secret_enc=self.enc.encrypt(b"whsec", aad=aad),
                notify_url=None,
                created_at=moment,
                updated_at=moment,
            )
            uow.session.add(row)
            uow.session.flush()
            return Shop(row.id, public_id, receivable, payable)

        return self.db.transact(create)

    def wallet(self, amount: int, moment: int) -> tuple[str, int]:
        user_id = f"usr_payer{self.next_n()}"

        def fund(uow: UnitOfWork) -> int:
            account = accounts.ensure_wallet(uow, user_id=user_id)
            results = ledger.post(
                uow,
                transfers=[
                    TransferSpec(
                        id=f"seed_{user_id}",
                        debit_account_id=accounts.bank_settlement_account(uow),
                        credit_account_id=account,
                        amount=amount,
                        ledger="CNY",
                        code=TransferCode.SEED,
                        reference=user_id,
                    )
                ],
                now=moment,
            )
            assert all(r.on_books for r in results), results
            return account

        return user_id, self.db.transact(fund)

    def pay(self, shop: Shop, amount: int, moment: int) -> Paid:
        user_id, wallet = self.payer
        order_id = new_id("ord")
        out_trade_no = f"T{self.next_n():04d}{order_id[-6:]}"
        fee = fee_for(amount, FEE_BP)

        def post(uow: UnitOfWork) -> int:
            legs = [
                TransferSpec(
                    id=f"{order_id}.pay",
                    debit_account_id=wallet,
                    credit_account_id=shop.receivable,
                    amount=amount,
                    ledger="CNY",
                    code=TransferCode.PAYMENT,
                    flags=TransferFlags.LINKED if fee else 0,
                    reference=order_id,
                )
            ]
            if fee:
                legs.append(
                    TransferSpec(
                        id=f"{order_id}.fee",
                        debit_account_id=shop.receivable,
                        credit_account_id=accounts.fee_revenue_account(uow),
                        amount=fee,
                        ledger="CNY",
                        code=TransferCode.FEE,
                        reference=order_id,
                    )
                )
            results = ledger.post(uow, transfers=legs, now=moment)
            assert all(r.on_books for r in results), results
            order = Order(
                public_id=order_id,
                merchant_id=shop.pk,
                store_id=None,
                terminal_id=None,
                out_trade_no=out_trade_no,
                amount=amount,
                currency="CNY",
                description="",
                channel="dynamic_qr",
                status="paid",
                expires_at=moment + 1800 * SECOND,
                notify_url=None,
                payer_user_id=user_id,
                fee=fee,
                refunded_amount=0,
                refunded_fee=0,
                transfer_ids=json.dumps([leg.id for leg in legs]),
                paid_at=moment,
                created_at=moment,
                updated_at=moment,
            )
            uow.session.add(order)
            uow.session.flush()
            return order.id

        order_pk = self.db.transact(post)
        return Paid(order_id, order_pk, out_trade_no, amount, fee)

    def refund(self, shop: Shop, paid: Paid, amount: int, moment: int) -> Refunded:
        _, wallet = self.payer
        refund_id = new_id("rfd")
        out_refund_no = f"R{self.next_n():04d}{refund_id[-6:]}"

        def post(uow: UnitOfWork) -> int:
            order = uow.session.get(Order, paid.order_pk)
            assert order is not None
            back = fee_back(
                amount=order.amount,
                fee=order.fee,
                refunded_before=order.refunded_amount,
                refund=amount,
            )
            legs = []
            if back:
                legs.append(
                    TransferSpec(
                        id=f"{refund_id}.fee",
                        debit_account_id=accounts.fee_revenue_account(uow),
                        credit_account_id=shop.receivable,
                        amount=back,
                        ledger="CNY",
                        code=TransferCode.FEE,
                        flags=TransferFlags.LINKED,
                        reference=refund_id,
                    )
                )
            legs.append(
                TransferSpec(
                    id=f"{refund_id}.refund",
                    debit_account_id=shop.receivable,
                    credit_account_id=wallet,
                    amount=amount,
                    ledger="CNY",
                    code=TransferCode.REFUND,
                    reference=refund_id,
                )
            )
            results = ledger.post(uow, transfers=legs, now=moment)
            assert all(r.on_books for r in results), results
            uow.session.add(
                Refund(
                    public_id=refund_id,
                    merchant_id=shop.pk,
                    order_id=order.id,
                    out_refund_no=out_refund_no,
                    amount=amount,
                    fee_back=back,
                    reason="",
                    status="succeeded",
                    transfer_ids=json.dumps([leg.id for leg in legs]),
                    created_at=moment,
                )
            )
            order.refunded_amount += amount
            order.refunded_fee += back
            uow.session.flush()
            return back

        back = self.db.transact(post)
        return Refunded(refund_id, out_refund_no, amount, back)

    def run(self, today: date, now: int) -> SettlementReport:
        report = run_settlements(
            self.db,
            bank=self.bank,
            settings=self.settings,
            today=today,
            now=now,
            encryptor=self.enc,
        )
        assert report.errors == 0
        return report

    def settlements(self, shop: Shop) -> list[SettlementView]:
        with self.db.uow(readonly=True) as uow:
            return settlements.list_settlements(uow, merchant_id=shop.pk, limit=100)

    def only_settlement(self, shop: Shop) -> SettlementView:
        [found] = self.settlements(shop)
        return found

    def account(self, account_id: int) -> ledger.AccountView:
        with self.db.uow(readonly=True) as uow:
            view = ledger.get_account(uow, account_id=account_id)
        assert view is not None
        return view

    def bank_settlement(self) -> int:
        with self.db.uow(readonly=True) as uow:
            account_id = ledger.find_account(uow, owner_ref=accounts.BANK_SETTLEMENT)
        assert account_id is not None
        return self.account(account_id).balance

    def statement(self, shop: Shop, day: date) -> statements.Statement:
        with self.db.uow(readonly=True) as uow:
            return statements.statement(uow, merchant_id=shop.pk, day=day, settings=self.settings)

    def balance_before(self, account_id: int, moment: int) -> int:
        """The account's balance before ``moment``, recomputed through the ledger's own
        paging (not the statement's SQL)."""
        total, cursor = 0, None
        with self.db.uow(readonly=True) as uow:
            while True:
                page = ledger.account_transfers(
                    uow, account_id=account_id, before_seq=cursor, limit=100
                )
                if not page:
                    return total
                for _, t in page:
                    if t.timestamp < moment and not t.flags & _UNPOSTED:
                        total += t.amount if t.credit_account_id == account_id else -t.amount
                cursor = page[-1][0]

    def set_card(self, shop: Shop, ending: str, moment: int) -> None:
        card = sandbox_card_number(ending, serial=900 + self.next_n())

        def change(uow: UnitOfWork) -> None:
            row = uow.session.get(Merchant, shop.pk)
            assert row is not None
            row.card_enc = self.enc.encrypt(card.encode(), aad=row.public_id.encode())
            row.card_last4, row.updated_at = card[-4:], moment

        self.db.transact(change)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def world(db: Database, tmp_path: Path, clock: FakeClock) -> World:
    return World(db, wallet_settings(tmp_path, db), RecordingBank(sandbox_bank(clock)))


# --- T+1 -----------------------------------------------------------------------------------


def test_t_plus_1_pays_yesterdays_net_and_leaves_todays_money(world: World) -> None:
    shop = world.shop()
    a = world.pay(shop, 100_00, at(YESTERDAY, 10))
    b = world.pay(shop, 58_80, at(YESTERDAY, 15))
    r = world.refund(shop, a, 30_00, at(YESTERDAY, 20))
    c = world.pay(shop, 12_34, at(TODAY, 9))
    yesterday_net = a.net + b.net + r.net
    bank_before = world.bank_settlement()

    report = world.run(TODAY, at(TODAY, 10))

    assert (report.created, report.empty, report.paid, report.failed, report.unknown) == (
        1,
        0,
        1,
        0,
        0,
    )
    assert report.amount_paid == yesterday_net
    paid = world.only_settlement(shop)
    assert (paid.business_date, paid.amount, paid.status, paid.attempts) == (
        YESTERDAY,
        yesterday_net,
        "paid",
        1,
    )
    assert paid.bank_reference == f"{paid.id}-1"
    assert paid.paid_at == at(TODAY, 10)
    assert paid.bank_ref
    assert world.bank.credits == [(f"{paid.id}-1", yesterday_net, "0000")]
    assert world.account(shop.receivable).balance == c.net
    payable = world.account(shop.payable)
    assert (payable.balance, payable.debits_pending, payable.credits_posted) == (
        0,
        0,
        yesterday_net,
    )
    assert world.bank_settlement() == bank_before + yesterday_net
    with world.db.uow(readonly=True) as uow:
        row = uow.session.scalar(select(Settlement).where(Settlement.public_id == paid.id))
        assert row is not None
        assert json.loads(row.transfer_ids) == [
            f"{paid.id}.sweep",
            f"{paid.id}.payout.1",
            f"{paid.id}.payout.1.post",
        ]
        sweep = ledger.get_transfer(uow, transfer_id=f"{paid.id}.sweep")
    assert sweep is not None
    assert (sweep.debit_account_id, sweep.credit_account_id, sweep.code, sweep.reference) == (
        shop.receivable,
        shop.payable,
        TransferCode.SETTLEMENT,
        paid.id,
    )

    # Re-running the same day, and later the same day, creates and pays nothing.
    assert world.run(TODAY, at(TODAY, 10)) == SettlementReport()
    assert world.run(TODAY, at(TODAY, 23, 59)) == SettlementReport()
    assert len(world.bank.credits) == 1

    # The next day settles today's money.
    report = world.run(TOMORROW, at(TOMORROW, 0, 5))
    assert (report.created, report.paid, report.amount_paid) == (1, 1, c.net)
    assert [s.business_date for s in world.settlements(shop)] == [TODAY, YESTERDAY]
    assert world.account(shop.receivable).balance == 0
    assert world.account(shop.payable).balance == 0
    assert_ledger_clean(world.db)


def test_refunds_after_the_day_come_out_of_its_money_first(world: World) -> None:
    shop = world.shop()
    a = world.pay(shop, 100_00, at(YESTERDAY, 10))
    r = world.refund(shop, a, 30_00, at(TODAY, 8))  # before the run: it spent yesterday's
    b = world.pay(shop, 20_00, at(TODAY, 9))  # today's money stays

    report = world.run(TODAY, at(TODAY, 10))

    assert report.amount_paid == a.net + r.net
    assert world.only_settlement(shop).amount == a.net + r.net
    assert world.account(shop.receivable).balance == b.net
    report = world.run(TOMORROW, at(TOMORROW, 1))
    assert report.amount_paid == b.net
    assert world.account(shop.receivable).balance == 0
    assert_ledger_clean(world.db)


def test_t_plus_2_waits_another_day(world: World) -> None:
    shop = world.shop(settle_days=2)
    a = world.pay(shop, 66_00, at(YESTERDAY, 10))
    assert world.run(TODAY, at(TODAY, 10)) == SettlementReport()
    report = world.run(TOMORROW, at(TOMORROW, 10))
    assert (report.created, report.paid, report.amount_paid) == (1, 1, a.net)
    assert world.only_settlement(shop).business_date == YESTERDAY
    assert_ledger_clean(world.db)


def test_days_without_net_money_are_empty_settlements(world: World) -> None:
    shop = world.shop(created=at(DAY0, 9))
    a = world.pay(shop, 50_00, at(DAY0 + timedelta(days=1), 11))
    world.refund(shop, a, 50_00, at(DAY0 + timedelta(days=1), 12))  # all of it, fee back too

    report = world.run(TODAY, at(TODAY, 10))

    assert (report.created, report.empty, report.paid) == (3, 3, 0)
    found = world.settlements(shop)
    assert [(s.business_date, s.amount, s.status) for s in found] == [
        (YESTERDAY, 0, "empty"),
        (DAY0 + timedelta(days=1), 0, "empty"),
        (DAY0, 0, "empty"),
    ]
    with world.db.uow(readonly=True) as uow:
        ids = uow.session.scalars(
            select(Settlement.transfer_ids).where(Settlement.merchant_id == shop.pk)
        ).all()
    assert ids == ["[]", "[]", "[]"]
    assert world.bank.credits == []
    assert world.run(TODAY, at(TODAY, 11)) == SettlementReport()
    assert_ledger_clean(world.db)


# --- failures, unknown answers, crashes ----------------------------------------------------


def test_a_declined_payout_backs_off_and_succeeds_once_the_card_is_changed(
    world: World,
) -> None:
    shop = world.shop(card_ending="0002")
    a = world.pay(shop, 80_00, at(YESTERDAY, 10))
    first_run = at(TODAY, 10)

    report = world.run(TODAY, first_run)

    assert (report.created, report.paid, report.failed) == (1, 0, 1)
    failed = world.only_settlement(shop)
    assert (failed.status, failed.failure_code, failed.attempts) == (
        "failed",
        "card_declined",
        1,
    )
    assert failed.next_attempt_at == first_run + RETRY_FIRST_SECONDS * SECOND
    payable = world.account(shop.payable)
    assert (payable.balance, payable.debits_pending) == (a.net, 0)  # voided: the money waits

    assert world.run(TODAY, first_run + 10 * 60 * SECOND) == SettlementReport()  # too early
    report = world.run(TODAY, failed.next_attempt_at)
    assert (report.failed, report.paid) == (1, 0)
    again = world.only_settlement(shop)
    assert again.attempts == 2
    assert again.next_attempt_at == failed.next_attempt_at + 2 * RETRY_FIRST_SECONDS * SECOND

    world.set_card(shop, "0000", failed.next_attempt_at + 60 * SECOND)
    report = world.run(TODAY, failed.next_attempt_at + 2 * 60 * SECOND)

    assert (report.paid, report.amount_paid) == (1, a.net)
    paid = world.only_settlement(shop)
    assert (paid.status, paid.attempts, paid.failure_code) == ("paid", 3, None)
    assert world.bank.credits == [
        (f"{paid.id}-1", a.net, "0002"),
        (f"{paid.id}-2", a.net, "0002"),
        (f"{paid.id}-3", a.net, "0000"),
    ]
    payable = world.account(shop.payable)
    assert (payable.balance, payable.debits_pending) == (0, 0)
    assert_ledger_clean(world.db)


def test_an_unknown_payout_is_resolved_by_query_and_never_paid_twice(
    db: Database, tmp_path: Path
) -> None:
    clock = FakeClock()
    bank = RecordingBank(sandbox_bank(clock, late_answer_seconds=30))
    world = World(db, wallet_settings(tmp_path, db), bank)
    even = world.shop(card_ending="0009")  # the bank decided: even amounts succeed
    odd = world.shop(card_ending="0009")  # ... odd ones fail
    a = world.pay(even, 100_00, at(YESTERDAY, 10))
    b = world.pay(odd, 100_01, at(YESTERDAY, 10))
    assert a.net % 2 == 0
    assert b.net % 2 == 1

    report = world.run(TODAY, at(TODAY, 10))
    assert (report.created, report.unknown, report.paid, report.failed) == (2, 2, 0, 0)
    assert {s.status for s in world.settlements(even) + world.settlements(odd)} == {"unknown"}
    assert world.account(even.payable).debits_pending == a.net  # the hold stays

    report = world.run(TODAY, at(TODAY, 10, 5))  # the bank does not know yet
    assert (report.unknown, report.paid, report.failed) == (2, 0, 0)

    clock.now += 31
    report = world.run(TODAY, at(TODAY, 10, 10))

    assert (report.paid, report.failed, report.amount_paid) == (1, 1, a.net)
    paid, failed = world.only_settlement(even), world.only_settlement(odd)
    assert (paid.status, paid.attempts) == ("paid", 1)
    assert (failed.status, failed.attempts, failed.failure_code) == ("failed", 1, "card_declined")
    assert sorted(world.bank.references()) == sorted([f"{paid.id}-1", f"{failed.id}-1"])
    assert world.account(even.payable).balance == 0
    assert world.account(odd.payable).balance == b.net
    assert world.account(odd.payable).debits_pending == 0
    assert world.run(TODAY, at(TODAY, 10, 15)) == SettlementReport()
    assert_ledger_clean(world.db)


def test_a_payout_the_bank_never_received_is_retried_after_the_grace_period(
    db: Database, tmp_path: Path, clock: FakeClock
) -> None:
    world = World(
        db, wallet_settings(tmp_path, db), RecordingBank(sandbox_bank(clock), unreachable=1)
    )
    shop = world.shop()
    a = world.pay(shop, 42_00, at(YESTERDAY, 10))

    report = world.run(TODAY, at(TODAY, 10))  # the call fails: it may have arrived
    assert (report.unknown, report.paid) == (1, 0)

    report = world.run(TODAY, at(TODAY, 10, 0, 30))  # unknown to the bank, within the grace
    assert (report.unknown, report.paid) == (1, 0)
    assert world.only_settlement(shop).status == "unknown"

    report = world.run(TODAY, at(TODAY, 10, 2))

    assert (report.failed, report.paid, report.amount_paid) == (1, 1, a.net)
    paid = world.only_settlement(shop)
    assert (paid.status, paid.attempts) == ("paid", 2)
    assert world.bank.references() == [f"{paid.id}-1", f"{paid.id}-2"]
    assert_ledger_clean(world.db)


def test_a_crash_between_the_hold_and_the_bank_call_is_recovered(world: World) -> None:
    shop = world.shop()
    a = world.pay(shop, 77_00, at(YESTERDAY, 10))
    start = at(TODAY, 10)
    view = world.db.transact(
        lambda uow: settlements.sweep_day(
            uow, merchant_id=shop.pk, day=YESTERDAY, zone=SHANGHAI, now=start, ledger_now=start
        )
    )
    assert view is not None
    assert view.amount == a.net
    held = world.db.transact(
        lambda uow: settlements.start_payout(
            uow,
            settlement_pk=_pk(world, view.id),
            encryptor=world.enc,
            now=start,
            ledger_now=start,
        )
    )
    assert held is not None  # ... and the process dies before calling the bank

    assert world.run(TODAY, start + 30 * SECOND) == SettlementReport()  # it may be in flight
    assert world.bank.credits == []
    report = world.run(TODAY, start + 2 * 60 * SECOND)

    assert (report.failed, report.paid) == (1, 1)
    paid = world.only_settlement(shop)
    assert (paid.status, paid.attempts, paid.amount) == ("paid", 2, a.net)
    assert world.bank.references() == [f"{paid.id}-2"]
    assert_ledger_clean(world.db)


def _pk(world: World, settlement_id: str) -> int:
    with world.db.uow(readonly=True) as uow:
        pk = uow.session.scalar(select(Settlement.id).where(Settlement.public_id == settlement_id))
    assert pk is not None
    return int(pk)


# --- which merchants -------------------------------------------------------------------------


def test_closed_merchants_are_settled_while_money_remains(world: World) -> None:
    closed = world.shop()
    world.pay(closed, 10_00, at(YESTERDAY, 10))
    world.db.transact(lambda uow: _set_status(uow, closed.pk, "closed"))
    empty_closed = world.shop(status="closed")
    pending = world.shop(status="pending_review")
    suspended = world.shop()
    s = world.pay(suspended, 20_00, at(YESTERDAY, 10))
    world.db.transact(lambda uow: _set_status(uow, suspended.pk, "suspended"))

    report = world.run(TODAY, at(TODAY, 10))

    assert (report.created, report.paid) == (2, 2)
    assert world.only_settlement(closed).status == "paid"
    assert world.only_settlement(suspended).amount == s.net
    assert world.settlements(empty_closed) == world.settlements(pending) == []
    assert world.run(TOMORROW, at(TOMORROW, 10)).created == 1  # suspended: an empty day
    assert world.settlements(closed)[0].business_date == YESTERDAY  # nothing left: no rows
    assert_ledger_clean(world.db)


def _set_status(uow: UnitOfWork, merchant_pk: int, status: str) -> None:
    row = uow.session.get(Merchant, merchant_pk)
    assert row is not None
    row.status = status


# --- reading ---------------------------------------------------------------------------------


def test_settlements_list_newest_first_with_a_cursor_and_stay_private(world: World) -> None:
    shop = world.shop(created=at(DAY0, 9))
    other = world.shop()
    world.pay(shop, 9_00, at(DAY0 + timedelta(days=1), 10))
    world.run(TODAY, at(TODAY, 10))

    with world.db.uow(readonly=True) as uow:
        first = settlements.list_settlements(uow, merchant_id=shop.pk, limit=2)
        rest = settlements.list_settlements(uow, merchant_id=shop.pk, limit=2, before=first[-1].id)
        one = settlements.get_settlement(uow, merchant_id=shop.pk, settlement_id=first[1].id)
        with pytest.raises(SettlementNotFound):
            settlements.get_settlement(uow, merchant_id=other.pk, settlement_id=one.id)
        with pytest.raises(SettlementNotFound):
            settlements.list_settlements(uow, merchant_id=other.pk, before=one.id)
    assert [s.business_date for s in first + rest] == [YESTERDAY, DAY0 + timedelta(days=1), DAY0]
    assert one.status == "paid"
    assert one.amount == fee_net(9_00)
    assert_ledger_clean(world.db)


def fee_net(amount: int) -> int:
    return amount - fee_for(amount, FEE_BP)


def test_statements_reconcile_exactly_with_the_ledger(world: World) -> None:
    shop = world.shop()
    a = world.pay(shop, 100_00, at(YESTERDAY, 10))
    b = world.pay(shop, 58_80, at(YESTERDAY, 15, 30, 7))
    r1 = world.refund(shop, a, 30_00, at(YESTERDAY, 20))
    c = world.pay(shop, 12_34, at(TODAY, 9))
    world.run(TODAY, at(TODAY, 10))
    swept = world.only_settlement(shop)
    r2 = world.refund(shop, c, 2_34, at(TODAY, 11))
    d = world.pay(shop, 7_00, at(TODAY, 12))

    day1 = world.statement(shop, YESTERDAY)
    day2 = world.statement(shop, TODAY)
    empty = world.statement(shop, TOMORROW)

    for found, day in ((day1, YESTERDAY), (day2, TODAY), (empty, TOMORROW)):
        start, end = statements.day_window(day, SHANGHAI)
        assert found.opening_balance == world.balance_before(shop.receivable, start)
        assert found.closing_balance == world.balance_before(shop.receivable, end)
        assert found.opening_balance + sum(line.net for line in found.lines) == (
            found.closing_balance
        )
        running = found.opening_balance
        for line in found.lines:
            running += line.net
            assert line.balance == running
            assert line.net == line.amount - line.fee
        for kind, total in found.totals.items():
            mine = [line for line in found.lines if line.type == kind]
            assert (total.count, total.amount, total.fee, total.net) == (
                len(mine),
                sum(line.amount for line in mine),
                sum(line.fee for line in mine),
                sum(line.net for line in mine),
            )
    assert day2.opening_balance == day1.closing_balance
    assert day2.closing_balance == world.account(shop.receivable).balance
    assert (empty.lines, empty.opening_balance) == ((), day2.closing_balance)

    assert [
        (line.type, line.reference, line.order_no, line.refund_no, line.amount, line.fee)
        for line in day1.lines
    ] == [
        ("payment", a.order_id, a.out_trade_no, "", a.amount, a.fee),
        ("payment", b.order_id, b.out_trade_no, "", b.amount, b.fee),
        ("refund", r1.refund_id, a.out_trade_no, r1.out_refund_no, -r1.amount, -r1.fee_back),
    ]
    assert day1.lines[1].time.isoformat() == "2031-03-13T15:30:07+08:00"
    assert (day1.opening_balance, day1.closing_balance) == (0, a.net + b.net + r1.net)
    assert [(line.type, line.amount, line.fee) for line in day2.lines] == [
        ("payment", c.amount, c.fee),
        ("settlement", -swept.amount, 0),
        ("refund", -r2.amount, -r2.fee_back),
        ("payment", d.amount, d.fee),
    ]
    settled = day2.lines[1]
    assert (settled.reference, settled.settled_day, settled.order_no) == (
        swept.id,
        YESTERDAY,
        "",
    )
    assert day2.totals["settlement"].net == -swept.amount
    assert day2.totals["payment"].count == 2

    text = statements.statement_csv(day1)
    rows = text.split("\r\n")
    assert rows[0] == "time,type,order_no,refund_no,amount,fee,net,balance"
    assert rows[1] == f"2031-03-13T10:00:00+08:00,payment,{a.out_trade_no},,100.00,0.38,99.62,99.62"
    assert rows[3].startswith(
        f"2031-03-13T20:00:00+08:00,refund,{a.out_trade_no},{r1.out_refund_no},-30.00,"
    )
    assert rows[-1] == ""
    assert len(rows) == len(day1.lines) + 2
    csv2 = statements.statement_csv(day2).split("\r\n")
    assert csv2[2] == (
        f"2031-03-14T10:00:00+08:00,settlement,,,{statements.yuan(-swept.amount)},0.00,"
        f"{statements.yuan(-swept.amount)},{statements.yuan(day2.lines[1].balance)}"
    )
    assert_ledger_clean(world.db)


# --- concurrency ---------------------------------------------------------------------------


def test_concurrent_runs_pay_each_settlement_once(world: World) -> None:
    shops = [world.shop() for _ in range(4)]
    paid = [world.pay(shop, 10_00 * (i + 1), at(YESTERDAY, 10 + i)) for i, shop in enumerate(shops)]
    runners = 3
    barrier = threading.Barrier(runners)

    def run(_: int) -> SettlementReport:
        barrier.wait()
        return world.run(TODAY, at(TODAY, 10))

    with ThreadPoolExecutor(runners) as pool:
        reports = list(pool.map(run, range(runners)))

    assert sum(r.created for r in reports) == len(shops)
    assert sum(r.paid for r in reports) == len(shops)
    assert sum(r.amount_paid for r in reports) == sum(p.net for p in paid)
    references = world.bank.references()
    assert len(references) == len(set(references)) == len(shops)
    for shop, p in zip(shops, paid, strict=True):
        found = world.only_settlement(shop)
        assert (found.status, found.attempts, found.amount) == ("paid", 1, p.net)
        assert world.account(shop.receivable).balance == 0
    assert_ledger_clean(world.db)
