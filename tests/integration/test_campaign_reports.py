"""Campaign reports and winners' SMS on SQLite and PostgreSQL. Reports after real merchant
payments and refunds: the red packets are spent first, refunds give the resident's own
money back first, a refund after the validity window goes to the funder, and reclaim takes
back the rest. Issuing queues the SMS; delivery texts each winner exactly once."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import select, update

from citywallet.campaign import reports
from citywallet.campaign import service as campaigns
from citywallet.campaign.notify import won_handler
from citywallet.campaign.rules import Eligibility
from citywallet.identity import attributes
from citywallet.identity.gateways import SandboxSmsGateway
from citywallet.identity.models import SandboxSms
from citywallet.merchant import onboarding, payments, refunds
from citywallet.platform import outbox
from citywallet.platform.clock import now_us
from citywallet.platform.config import Settings
from citywallet.platform.crypto import Encryptor
from citywallet.platform.db import Database
from citywallet.wallet import service as wallet
from citywallet.wallet.bank import SandboxBank, sandbox_card_number
from citywallet.wallet.models import RestrictedSource
from tests.ledger_checks import assert_ledger_clean, test_encryptor
from tests.merchant_support import USCCS
from tests.wallet_support import PIN, make_resident, sandbox_bank, wallet_settings

HOUR = 3_600_000_000
SHANGHAI = timezone(timedelta(hours=8))


def _merchant(
    db: Database, settings: Settings, enc: Encryptor, bank: SandboxBank, n: int, **where: str
) -> int:
    owner = make_resident(db, settings, enc, bank, n)
    app = onboarding.MerchantApplication(
        name_zh="东门小吃",
        name_en="Dongmen Snacks",
        city_zh="深圳",
        city_en="Shenzhen",
        uscc=USCCS[n % len(USCCS)],
        mcc=where["mcc"],
        district=where["district"],
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
        return onboarding.merchant_by_public_id(uow, view.id).id


def _pay(
    db: Database, settings: Settings, enc: Encryptor, merchant_pk: int, user_id: str, amount: int
) -> str:
    order, _ = db.transact(
        lambda uow: payments.create_order(
            uow,
            merchant_pk=merchant_pk,
            out_trade_no=f"R{now_us()}",
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
    return order.id


def _refund(db: Database, merchant_pk: int, order_id: str, amount: int) -> None:
    db.transact(
        lambda uow: refunds.refund_order(
            uow,
            merchant_pk=merchant_pk,
            order_id=order_id,
            out_refund_no=f"RF{now_us()}",
            amount=amount,
        )
    )


def test_report_counts_spending_refunds_and_reclaim(db: Database, tmp_path: Path) -> None:
    settings, enc, bank = wallet_settings(tmp_path, db), test_encryptor(), sandbox_bank()
    t0 = now_us()
    luohu = _merchant(db, settings, enc, bank, 20, mcc="5814", district="罗湖区")
    futian = _merchant(db, settings, enc, bank, 21, mcc="5942", district="福田区")
    people = [make_resident(db, settings, enc, bank, n) for n in range(4)]
    for person in people[:3]:
        db.transact(
            lambda uow, p=person: attributes.set_attributes(
                uow, user_id=p.user_id, values={"district": "罗湖区"}, source="operator:test"
            )
        )
    spec = campaigns.CampaignSpec(
        name="罗湖区消费红包",
        funder_name="深圳市罗湖区人民政府",
        funder_bank_account=sandbox_card_number("0000", serial=9),
        budget=3 * 10_000,
        prizes=[(10_000, 3)],
        registration_opens_at=t0 - 4 * HOUR,
        registration_closes_at=t0 - 3 * HOUR,
        draw_at=t0 - 2 * HOUR,
        valid_from=t0 - HOUR,
        valid_until=t0 + HOUR,
        eligibility=Eligibility(min_tier=1),
        districts=("罗湖区", "福田区"),
    )
    cid = db.transact(
        lambda uow: campaigns.create_campaign(uow, spec=spec, actor="op", encryptor=enc)
    ).id
    db.transact(lambda uow: campaigns.open_registration(uow, campaign_id=cid, actor="op"))
    registered_at = t0 - 3 * HOUR - HOUR // 2
    for person in people:
        db.transact(
            lambda uow, p=person: campaigns.register(
                uow, campaign_id=cid, user_id=p.user_id, now=registered_at
            )
        )
    with db.uow(readonly=True) as uow:
        before = reports.report(uow, campaign_id=cid)
    assert (before.registrations, before.winners, before.issued_amount) == (4, 0, 0)
    assert before.redemption_rate == 0.0
    db.transact(lambda uow: campaigns.close_registration(uow, campaign_id=cid, actor="op"))
    assert campaigns.fund_campaign(db, campaign_id=cid, bank=bank, encryptor=enc) == "funded"
    db.transact(lambda uow: campaigns.draw(uow, campaign_id=cid, actor="op", encryptor=enc))
    while db.transact(lambda uow: campaigns.issue_batch(uow, campaign_id=cid)):
        pass
    with db.uow(readonly=True) as uow:
        mine = {
            p.user_id: campaigns.my_registration(uow, campaign_id=cid, user_id=p.user_id)
            for p in people
        }
    a, b, _c = [p for p in people if mine[p.user_id].status == "won"]
    for person in (a, b):
        wallet.top_up(
            db,
            bank=bank,
            user_id=person.user_id,
            card_id=str(person.card_id),
            amount=500_00,
            pin=PIN,
            encryptor=enc,
            settings=settings,
        )
    # A: 150 yuan at a Luohu restaurant = 100 from the red packet + 50 own; refund 60:
    # the 50 own first, then 10 back to the red packet
    order_a = _pay(db, settings, enc, luohu, a.user_id, 150_00)
    _refund(db, luohu, order_a, 60_00)
    # B: 40 yuan at a Futian bookshop, all red packet; after the window a 10-yuan refund
    # goes to the funder
    order_b = _pay(db, settings, enc, futian, b.user_id, 40_00)
    moment = now_us()
    db.transact(  # the window ends now (rather than waiting an hour)
        lambda uow: uow.session.execute(
            update(RestrictedSource)
            .where(RestrictedSource.public_id == cid)
            .values(valid_until=moment)
        )
    )
    _refund(db, futian, order_b, 10_00)
    while db.transact(lambda uow: campaigns.reclaim_batch(uow, campaign_id=cid, now=t0 + HOUR)):
        pass

    with db.uow(readonly=True) as uow:
        got = reports.report(uow, campaign_id=cid)
        assert campaigns.campaign_balance(uow, campaign_id=cid) == 1_000 + 17_000
    assert got.status == "ended"
    assert (got.registrations, got.winners) == (4, 3)
    assert (got.issued_count, got.issued_amount) == (3, 30_000)
    assert (got.claimed, got.payments) == (2, 2)
    assert (got.spent_gross, got.refunded, got.returned_to_funder) == (14_000, 1_000, 1_000)
    assert got.spent == 12_000
    assert got.reclaimed == 17_000
    assert got.outstanding == 0
    assert got.own_spending == 5_000
    assert got.redemption_rate == 0.4
    assert got.by_mcc == [
        reports.SpendingBreakdown("5814", 1, 9_000, 5_000),
        reports.SpendingBreakdown("5942", 1, 3_000, 0),
    ]
    assert got.by_district == [
        reports.SpendingBreakdown("福田区", 1, 3_000, 0),
        reports.SpendingBreakdown("罗湖区", 1, 9_000, 5_000),
    ]
    resident = {r.district: (r.registrations, r.winners) for r in got.by_resident_district}
    assert sum(n for n, _ in resident.values()) == 4
    assert sum(w for _, w in resident.values()) == 3
    assert resident["罗湖区"][0] == 3

    def day(us: int) -> str:
        return datetime.fromtimestamp(us / 1e6, tz=UTC).astimezone(SHANGHAI).date().isoformat()

    series = {d.day: d for d in got.daily}
    assert series[day(registered_at)].registrations == 4
    assert series[day(moment)].spent == 12_000
    assert sum(d.payments for d in got.daily) == 2
    assert list(series) == sorted(series)

    rows = list(csv.reader(io.StringIO(reports.report_csv(got))))
    assert rows[0] == ["section", "key", "metric", "value"]
    table = {(s, k, m): v for s, k, m, v in rows[1:]}
    assert table["summary", "", "spent"] == "12000"
    assert table["summary", "", "redemption_rate"] == "0.4000"
    assert table["summary", "", "own_spending"] == "5000"
    assert table["mcc", "5814", "spent"] == "9000"
    assert table["district", "福田区", "payments"] == "1"
    assert table["day", day(registered_at), "registrations"] == "4"
    assert table["campaign", cid, "status"] == "ended"
    assert_ledger_clean(db)


def test_issuing_queues_one_sms_per_winner_delivered_once(db: Database, tmp_path: Path) -> None:
    settings, enc, bank = wallet_settings(tmp_path, db), test_encryptor(), sandbox_bank()
    t0 = now_us()
    people = [make_resident(db, settings, enc, bank, n, card_ending=None) for n in range(4)]
    spec = campaigns.CampaignSpec(
        name="福田区消费红包",
        funder_name="深圳市福田区人民政府",
        funder_bank_account=sandbox_card_number("0000", serial=9),
        budget=2 * 20_000 + 6_600,
        prizes=[(20_000, 2), (6_600, 1)],
        registration_opens_at=t0 - 4 * HOUR,
        registration_closes_at=t0 - 3 * HOUR,
        draw_at=t0 - 2 * HOUR,
        valid_from=t0 - HOUR,
        valid_until=t0 + HOUR,
    )
    cid = db.transact(
        lambda uow: campaigns.create_campaign(uow, spec=spec, actor="op", encryptor=enc)
    ).id
    db.transact(lambda uow: campaigns.open_registration(uow, campaign_id=cid, actor="op"))
    for person in people:
        db.transact(
            lambda uow, p=person: campaigns.register(
                uow, campaign_id=cid, user_id=p.user_id, now=t0 - 3 * HOUR - 1
            )
        )
    db.transact(lambda uow: campaigns.close_registration(uow, campaign_id=cid, actor="op"))
    campaigns.fund_campaign(db, campaign_id=cid, bank=bank, encryptor=enc)
    db.transact(lambda uow: campaigns.draw(uow, campaign_id=cid, actor="op", encryptor=enc))
    while db.transact(lambda uow: campaigns.issue_batch(uow, campaign_id=cid, limit=2)):
        pass

    def sent() -> list[tuple[str, str]]:
        with db.uow(readonly=True) as uow:
            return [
                (str(key), text)
                for key, text in uow.session.execute(
                    select(SandboxSms.idempotency_key, SandboxSms.text).where(
                        SandboxSms.idempotency_key.like("campaign.won:%")
                    )
                )
            ]

    assert sent() == []  # queued in the outbox, not sent yet
    seen: list[outbox.Message] = []
    handler = won_handler(db, SandboxSmsGateway(db, enc), enc)

    def handle(message: outbox.Message) -> None:
        seen.append(message)
        handler(message)

    assert outbox.deliver_due(db, handlers={campaigns.WON_TOPIC: handle}) == 2  # two batches
    with db.uow(readonly=True) as uow:
        won = {
            r.id: r
            for p in people
            if (r := campaigns.my_registration(uow, campaign_id=cid, user_id=p.user_id)).status
            == "won"
        }
    messages = sent()
    assert sorted(key for key, _ in messages) == sorted(f"campaign.won:{r}" for r in won)
    assert sum("¥200.00" in text for _, text in messages) == 2
    assert all("福田区消费红包" in text for _, text in messages)
    for message in seen:  # an at-least-once redelivery texts nobody twice
        handler(message)
    assert outbox.deliver_due(db, handlers={campaigns.WON_TOPIC: handle}) == 0
    assert len(sent()) == 3
    assert_ledger_clean(db)
