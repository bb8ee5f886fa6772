"""The merchant service face (citywallet.merchant.service) on both databases: the balance
routers show, the operators' lists by status, and a refund through the face posting what
the pure refund rules say."""

from __future__ import annotations

from pathlib import Path

import pytest

from citywallet.merchant import service as merchants
from citywallet.merchant.errors import MerchantNotFound
from citywallet.merchant.refund_rules import Paid, split_refund
from citywallet.merchant.rules import fee_for
from citywallet.platform.db import Database
from tests.ledger_checks import assert_ledger_clean, test_encryptor
from tests.merchant_support import merchant_row, paid_order, register
from tests.wallet_support import balance, make_resident, sandbox_bank, wallet_settings

RATE_BP = 38  # the default fee rate


def _balance(db: Database, merchant_pk: int) -> merchants.MerchantBalance:
    with db.uow(readonly=True) as uow:
        return merchants.merchant_balance(uow, merchant_pk=merchant_pk)


def test_balance_follows_payments_and_refunds(db: Database, tmp_path: Path) -> None:
    settings, enc, bank = wallet_settings(tmp_path, db), test_encryptor(), sandbox_bank()
    view = register(db, settings, enc, make_resident(db, settings, enc, bank, 100), approve=True)
    merchant_pk = merchant_row(db, view.id).id
    assert _balance(db, merchant_pk) == merchants.MerchantBalance("CNY", 0, 0)
    payer, order = paid_order(
        db, settings, enc, bank, merchant_pk=merchant_pk, top_up=200_00, amount=123_45,
        out_trade_no="SVC-0001",
    )  # fmt: skip
    fee = fee_for(123_45, RATE_BP)
    assert _balance(db, merchant_pk) == merchants.MerchantBalance("CNY", 123_45 - fee, 0)

    # two partial refunds through the face post what the pure rules say, to the fen
    paid = Paid(amount=123_45, fee=fee)
    for number, amount in enumerate((100_00, 23_45)):
        expected = split_refund(paid, amount)
        refund, created = db.transact(
            lambda uow, number=number, amount=amount: merchants.refund_order(
                uow,
                merchant_pk=merchant_pk,
                order_id=order.id,
                out_refund_no=f"SVC-RF-{number:03d}",
                amount=amount,
            )
        )
        assert created
        assert (refund.amount, refund.fee_back) == (expected.amount, expected.fee_back)
        paid = paid.after(expected)
    assert paid.refundable == 0
    # a full refund returns the whole fee: the merchant is back at zero, the payer whole
    assert _balance(db, merchant_pk) == merchants.MerchantBalance("CNY", 0, 0)
    assert balance(db, payer.user_id)[0] == 200_00
    with db.uow(readonly=True) as uow:
        made = merchants.list_refunds(uow, merchant_pk=merchant_pk, order_id=order.id)
    assert sum(r.fee_back for r in made) == fee
    assert_ledger_clean(db)


def test_balance_of_an_unknown_merchant(db: Database) -> None:
    with db.uow(readonly=True) as uow, pytest.raises(MerchantNotFound):
        merchants.merchant_balance(uow, merchant_pk=999_999)


def test_merchants_by_status_lists_every_merchant_when_asked(db: Database, tmp_path: Path) -> None:
    settings, enc, bank = wallet_settings(tmp_path, db), test_encryptor(), sandbox_bank()
    first = register(db, settings, enc, make_resident(db, settings, enc, bank, 100), 0)
    second = register(
        db, settings, enc, make_resident(db, settings, enc, bank, 101), 1, approve=True
    )
    with db.uow(readonly=True) as uow:
        every = merchants.merchants_by_status(uow, status=None, limit=None)
        one = merchants.merchants_by_status(uow, status=None, limit=1)
        waiting = merchants.merchants_by_status(uow)
        active = merchants.merchants_by_status(uow, status="active")
        unknown = merchants.merchants_by_status(uow, status="nonsense")
    assert [(m.id, m.status) for m in every] == [
        (first.id, "pending_review"),
        (second.id, "active"),
    ]
    assert [m.id for m in one] == [first.id]
    assert [m.id for m in waiting] == [first.id]
    assert [m.id for m in active] == [second.id]
    assert unknown == []
    assert_ledger_clean(db)
