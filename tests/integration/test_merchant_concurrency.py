"""Merchant money under concurrency (SQLite and PostgreSQL, real threads): 200 payments into
one hot merchant account, and partial refunds racing for the same paid amount."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from citywallet.ledger import service as ledger
from citywallet.merchant import payments, refunds
from citywallet.merchant.errors import MerchantBalanceInsufficient
from citywallet.merchant.models import Merchant
from citywallet.merchant.rules import fee_for
from citywallet.platform.db import Database
from citywallet.platform.errors import Conflict
from citywallet.wallet import service as wallet
from tests.ledger_checks import assert_ledger_clean, test_encryptor
from tests.merchant_support import merchant_row, paid_order, register
from tests.wallet_support import (
    PIN,
    balance,
    make_resident,
    platform_balance,
    sandbox_bank,
    wallet_settings,
)

PAYERS = 10
PAYMENTS = 200


def _merchant(db: Database, settings, enc, bank, n: int) -> tuple[int, Merchant]:  # type: ignore[no-untyped-def]
    owner = make_resident(db, settings, enc, bank, n)
    row = merchant_row(db, register(db, settings, enc, owner, approve=True).id)
    return row.id, row


def test_two_hundred_simultaneous_payments_to_one_merchant(db: Database, tmp_path: Path) -> None:
    settings, enc, bank = wallet_settings(tmp_path, db), test_encryptor(), sandbox_bank()
    merchant_pk, merchant = _merchant(db, settings, enc, bank, 100)
    payers = [make_resident(db, settings, enc, bank, n) for n in range(1, PAYERS + 1)]
    for payer in payers:
        wallet.top_up(
            db,
            bank=bank,
            user_id=payer.user_id,
            card_id=str(payer.card_id),
            amount=300_00,
            pin=PIN,
            encryptor=enc,
            settings=settings,
        )
    amounts = [1_00 + n * 7 for n in range(PAYMENTS)]
    orders = [
        db.transact(
            lambda uow, n=n, amount=amount: payments.create_order(
                uow,
                merchant_pk=merchant_pk,
                out_trade_no=f"HOT-{n:05d}",
                amount=amount,
                encryptor=enc,
                settings=settings,
            )
        )[0]
        for n, amount in enumerate(amounts)
    ]
    barrier = threading.Barrier(20)

    def pay(n: int) -> str:
        if n < 20:
            barrier.wait()
        payer = payers[n % PAYERS]
        payload = orders[n].qr_payload
        assert payload is not None
        view = db.transact(
            lambda uow: payments.pay_scan(
                uow, user_id=payer.user_id, payload=payload, encryptor=enc, settings=settings
            )
        )
        return view.status

    with ThreadPoolExecutor(20) as pool:
        statuses = list(pool.map(pay, range(PAYMENTS)))
    assert statuses == ["paid"] * PAYMENTS
    fees = sum(fee_for(a, 38) for a in amounts)
    with db.uow(readonly=True) as uow:
        receivable = ledger.get_account(uow, account_id=merchant.receivable_account_id)
    assert receivable is not None
    assert receivable.balance == sum(amounts) - fees
    assert platform_balance(db, f"{merchant.public_id}:fees") == fees
    spent = [sum(a for i, a in enumerate(amounts) if i % PAYERS == p) for p in range(PAYERS)]
    assert [balance(db, p.user_id)[0] for p in payers] == [300_00 - s for s in spent]
    assert_ledger_clean(db)


def test_racing_partial_refunds_never_exceed_the_paid_amount(db: Database, tmp_path: Path) -> None:
    settings, enc, bank = wallet_settings(tmp_path, db), test_encryptor(), sandbox_bank()
    merchant_pk, merchant = _merchant(db, settings, enc, bank, 100)
    payer, order = paid_order(
        db, settings, enc, bank, merchant_pk=merchant_pk, top_up=500_00, amount=100_00,
        out_trade_no="RACE-0001",
    )  # fmt: skip
    barrier = threading.Barrier(16)

    def refund(n: int) -> int:
        barrier.wait()
        try:
            view, _ = db.transact(
                lambda uow: refunds.refund_order(
                    uow,
                    merchant_pk=merchant_pk,
                    order_id=order.id,
                    out_refund_no=f"RACE-RF-{n:03d}",
                    amount=15_00,
                )
            )
        except Conflict as exc:
            if exc.code != "refund_exceeds_paid":
                raise
            return 0
        return view.amount

    with ThreadPoolExecutor(16) as pool:
        refunded = list(pool.map(refund, range(16)))
    assert sum(refunded) == 90_00
    assert refunded.count(15_00) == 6
    final = db.transact(
        lambda uow: payments.get_order(uow, merchant_pk=merchant_pk, order_id=order.id)
    )
    fee = fee_for(100_00, 38)
    assert final.refunded_amount == 90_00
    assert balance(db, payer.user_id)[0] == 500_00 - 100_00 + 90_00
    with db.uow(readonly=True) as uow:
        receivable = ledger.get_account(uow, account_id=merchant.receivable_account_id)
    assert receivable is not None
    assert receivable.balance == 100_00 - fee - 90_00 + final.refunded_fee
    assert_ledger_clean(db)


def test_refund_after_settlement_is_declined_when_the_balance_is_gone(
    db: Database, tmp_path: Path
) -> None:
    settings, enc, bank = wallet_settings(tmp_path, db), test_encryptor(), sandbox_bank()
    merchant_pk, merchant = _merchant(db, settings, enc, bank, 100)
    payer, order = paid_order(
        db, settings, enc, bank, merchant_pk=merchant_pk, top_up=100_00, amount=50_00,
        out_trade_no="SETTLED-01",
    )  # fmt: skip
    # the day's money is swept for settlement: the receivable is empty
    from citywallet.ledger.types import TransferCode, TransferSpec

    net = 50_00 - fee_for(50_00, 38)
    db.transact(
        lambda uow: ledger.post(
            uow,
            transfers=[
                TransferSpec(
                    "stl_test.sweep",
                    merchant.receivable_account_id,
                    merchant.settlement_account_id,
                    net,
                    "CNY",
                    TransferCode.SETTLEMENT,
                )
            ],
        )
    )
    with pytest.raises(MerchantBalanceInsufficient):
        db.transact(
            lambda uow: refunds.refund_order(
                uow,
                merchant_pk=merchant_pk,
                order_id=order.id,
                out_refund_no="LATE-RF-01",
                amount=50_00,
            )
        )
    assert balance(db, payer.user_id)[0] == 50_00
    final = db.transact(
        lambda uow: payments.get_order(uow, merchant_pk=merchant_pk, order_id=order.id)
    )
    assert final.refunded_amount == 0
    assert_ledger_clean(db)
