"""The spending overview on SQLite and PostgreSQL, after real merchant payments and a
refund: by category (from the merchant's MCC), by merchant, and the six-month trend."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import update

from citywallet.merchant import onboarding, payments, refunds
from citywallet.platform.clock import now_us
from citywallet.platform.config import Settings
from citywallet.platform.crypto import Encryptor
from citywallet.platform.db import Database
from citywallet.wallet import service as wallet
from citywallet.wallet import spending
from citywallet.wallet.bank import SandboxBank
from citywallet.wallet.models import Activity
from tests.ledger_checks import assert_ledger_clean, test_encryptor
from tests.merchant_support import USCCS
from tests.wallet_support import PIN, make_resident, sandbox_bank, wallet_settings


def open_merchant(
    db: Database,
    settings: Settings,
    enc: Encryptor,
    bank: SandboxBank,
    n: int,
    mcc: str,
    name: str,
    name_en: str,
) -> tuple[int, str]:
    """An approved merchant owned by resident ``n``: (internal key, public id)."""
    owner = make_resident(db, settings, enc, bank, n)
    app = onboarding.MerchantApplication(
        name_zh=name,
        name_en=name_en,
        city_zh="深圳",
        city_en="Shenzhen",
        uscc=USCCS[n % len(USCCS)],
        mcc=mcc,
        district="罗湖区",
        address="东门路1号",
        contact_name="张三",
        contact_phone=owner.phone,
        settlement_card_id=str(owner.card_id),
    )
    view = db.transact(
        lambda uow: onboarding.register_merchant(
            uow, user_id=owner.user_id, application=app, encryptor=enc, settings=settings
        )
    )
    db.transact(lambda uow: onboarding.review_merchant(uow, merchant_id=view.id, action="approve"))
    with db.uow(readonly=True) as uow:
        return onboarding.merchant_by_public_id(uow, view.id).id, view.id


def pay(
    db: Database, settings: Settings, enc: Encryptor, merchant_pk: int, user_id: str, amount: int
) -> str:
    """``user_id`` pays an order of ``amount`` at the merchant by scanning; the order id."""
    order, _ = db.transact(
        lambda uow: payments.create_order(
            uow,
            merchant_pk=merchant_pk,
            out_trade_no=f"S{now_us()}",
            amount=amount,
            encryptor=enc,
            settings=settings,
        )
    )
    payload = order.qr_payload
    assert payload is not None
    paid = db.transact(
        lambda uow: payments.pay_scan(
            uow, user_id=user_id, payload=payload, encryptor=enc, settings=settings
        )
    )
    assert paid.status == "paid"
    return str(order.id)


def refund(db: Database, merchant_pk: int, order_id: str, amount: int) -> None:
    db.transact(
        lambda uow: refunds.refund_order(
            uow,
            merchant_pk=merchant_pk,
            order_id=order_id,
            out_refund_no=f"RF{now_us()}",
            amount=amount,
        )
    )


def test_categories_of_merchant_codes() -> None:
    assert spending.category_of("5812") == "dining"
    assert spending.category_of("5411") == "groceries"
    assert spending.category_of("4111") == "transport"
    assert spending.category_of("0742") == "other"
    assert spending.category_of("abc") == "other"
    assert spending.month_bounds("2026-12")[1] == spending.month_bounds("2027-01")[0]


def test_overview_by_category_merchant_and_trend(db: Database, tmp_path: Path) -> None:
    settings, enc, bank = wallet_settings(tmp_path, db), test_encryptor(), sandbox_bank()
    diner_pk, diner = open_merchant(db, settings, enc, bank, 1, "5812", "好味道", "Good Taste")
    shop_pk, shop = open_merchant(db, settings, enc, bank, 2, "5411", "惠民超市", "Huimin Market")
    buyer = make_resident(db, settings, enc, bank, 3)
    assert buyer.card_id is not None
    wallet.top_up(
        db, bank=bank, user_id=buyer.user_id, card_id=buyer.card_id, amount=100_000, pin=PIN,
        encryptor=enc, settings=settings,
    )  # fmt: skip
    first = pay(db, settings, enc, diner_pk, buyer.user_id, 3_000)
    pay(db, settings, enc, diner_pk, buyer.user_id, 2_000)
    pay(db, settings, enc, shop_pk, buyer.user_id, 4_500)
    refund(db, diner_pk, first, 1_000)
    old = pay(db, settings, enc, shop_pk, buyer.user_id, 7_000)
    # that last payment happened two months ago
    this_month = spending.current_month()
    start, _ = spending.month_bounds(this_month)
    two_months_ago = start - 40 * 24 * 3600 * 1_000_000
    db.transact(
        lambda uow: uow.session.execute(
            update(Activity).where(Activity.object_id == old).values(created_at=two_months_ago)
        )
    )

    with db.uow(readonly=True) as uow:
        view = spending.spending_overview(uow, user_id=buyer.user_id)
    assert view.month == this_month
    assert view.total == 3_000 + 2_000 + 4_500 - 1_000
    assert view.payments == 3
    assert [(c.key, c.amount, c.count) for c in view.by_category] == [
        ("groceries", 4_500, 1),
        ("dining", 4_000, 2),
    ]
    assert [(m.key, m.label_zh, m.amount) for m in view.by_merchant] == [
        (shop, "惠民超市", 4_500),
        (diner, "好味道", 4_000),
    ]
    assert len(view.trend) == 6
    assert view.trend[-1].month == this_month
    assert view.trend[-1].amount == 8_500
    earlier = {t.amount for t in view.trend[:-1]}
    assert 7_000 in earlier
    assert sum(t.amount for t in view.trend) == 15_500

    with db.uow(readonly=True) as uow:
        other = spending.spending_overview(uow, user_id=buyer.user_id, month="2020-01")
    assert other.total == 0
    assert other.by_category == []
    assert len(other.trend) == 6
    assert_ledger_clean(db)
