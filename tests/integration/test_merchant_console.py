"""The merchant console's reads (citywallet.merchant.console): searching a merchant's
orders by id or order number, status and business days, with numbered pages; the printable
PDF of a code."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import update

from citywallet.merchant import onboarding, payments
from citywallet.merchant.console import OrderSearch, qr_pdf, search_orders
from citywallet.merchant.models import Order
from citywallet.platform.config import Settings
from citywallet.platform.db import Database, UnitOfWork
from tests.ledger_checks import test_encryptor
from tests.merchant_support import application
from tests.wallet_support import make_resident, sandbox_bank, wallet_settings

SHANGHAI = ZoneInfo("Asia/Shanghai")


def at(day: date, hour: int) -> int:
    """Microseconds at ``hour`` o'clock Beijing time on ``day``."""
    return int(datetime(day.year, day.month, day.day, hour, tzinfo=SHANGHAI).timestamp()) * 10**6


def merchant(db: Database, settings: Settings, n: int) -> int:
    enc = test_encryptor()
    owner = make_resident(db, settings, enc, sandbox_bank(), n)
    body = application(owner, n) | {"city_zh": "深圳", "city_en": "Shenzhen"}  # type: ignore[arg-type]
    view = db.transact(
        lambda uow: onboarding.register_merchant(
            uow,
            user_id=owner.user_id,
            application=onboarding.MerchantApplication(**body),
            encryptor=enc,
            settings=settings,
        )
    )
    db.transact(lambda uow: onboarding.review_merchant(uow, merchant_id=view.id, action="approve"))
    with db.uow(readonly=True) as uow:
        return onboarding.owned_merchant(uow, user_id=owner.user_id, merchant_id=view.id).id


def test_orders_are_found_by_id_number_status_and_business_day_page_by_page(
    db: Database, tmp_path: Path
) -> None:
    settings = wallet_settings(tmp_path, db)
    enc = test_encryptor()
    mine, theirs = merchant(db, settings, 1), merchant(db, settings, 2)
    days = [date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3)]

    def make(uow: UnitOfWork) -> list[str]:
        ids = []
        for n in range(9):
            view, _ = payments.create_order(
                uow, merchant_pk=mine, out_trade_no=f"SHOP-{n:03d}", amount=100 + n,
                encryptor=enc, settings=settings,
            )  # fmt: skip
            # 00:30 Beijing time is the evening before in UTC: still its Beijing day
            moment = at(days[n % 3], 0) + 30 * 60 * 10**6
            uow.session.execute(
                update(Order).where(Order.public_id == view.id).values(created_at=moment)
            )
            ids.append(view.id)
        payments.create_order(
            uow, merchant_pk=theirs, out_trade_no="SHOP-000", amount=100,
            encryptor=enc, settings=settings,
        )  # fmt: skip
        uow.session.execute(update(Order).where(Order.public_id == ids[4]).values(status="closed"))
        return ids

    ids = db.transact(make)

    def find(page: int = 1, per_page: int = 20, **terms: object) -> tuple[list[str], int, int]:
        with db.uow(readonly=True) as uow:
            found = search_orders(
                uow, merchant_pk=mine, search=OrderSearch(**terms),  # type: ignore[arg-type]
                settings=settings, page=page, per_page=per_page,
            )  # fmt: skip
        return [o.out_trade_no for o in found.items], found.total, found.pages

    everything, total, pages = find()
    assert total == 9
    assert pages == 1
    assert everything == [f"SHOP-{n:03d}" for n in reversed(range(9))]  # newest first
    assert find(text=ids[3])[0] == ["SHOP-003"]
    assert find(text="SHOP-00")[1] == 9
    assert find(text="SHOP-0%")[1] == 0  # LIKE wildcards are literal
    assert find(status="closed")[0] == ["SHOP-004"]
    assert find(status="nonsense")[1] == 9  # an unknown status filters nothing
    assert find(since=days[1], until=days[1])[0] == ["SHOP-007", "SHOP-004", "SHOP-001"]
    assert find(since=days[2])[1] == 3
    assert find(until=days[0])[1] == 3

    first, _, pages = find(per_page=4)
    assert pages == 3
    assert first == ["SHOP-008", "SHOP-007", "SHOP-006", "SHOP-005"]
    assert find(page=3, per_page=4)[0] == ["SHOP-000"]
    assert find(page=99, per_page=4)[0] == ["SHOP-000"]  # past the end: the last page


def test_a_code_prints_as_a_one_page_pdf() -> None:
    document = qr_pdf("000201010211")
    assert document.startswith(b"%PDF")
    assert b"/Type /Page" in document or b"/Type/Page" in document
