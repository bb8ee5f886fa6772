"""The campaign's bulk paths on SQLite and PostgreSQL: the striped registration counter under
concurrent registrations, the draw positions stored at the draw (they agree with the
published draw file), and issuance and reclaim in several batches (balances, the campaign
account, the ledger)."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from sqlalchemy import func, select

from citywallet.campaign import lottery, resident
from citywallet.campaign import service as campaigns
from citywallet.campaign.errors import CampaignStateError
from citywallet.campaign.models import DrawPosition, Registration, Winner
from citywallet.campaign.rules import Applicant, Eligibility
from citywallet.ledger import service as ledger
from citywallet.platform.clock import now_us
from citywallet.platform.db import Database
from citywallet.wallet.bank import sandbox_card_number
from citywallet.wallet.models import RestrictedBalance
from tests.identity_support import in_threads
from tests.ledger_checks import assert_ledger_clean, test_encryptor
from tests.wallet_support import sandbox_bank

HOUR = 3_600_000_000
PRIZES = [(5_000, 3), (1_000, 17)]  # 20 winners, largest prizes first


def _campaign(db: Database, t0: int) -> str:
    spec = campaigns.CampaignSpec(
        name="Bulk",
        funder_name="District",
        funder_bank_account=sandbox_card_number("0000", serial=9),
        budget=sum(amount * count for amount, count in PRIZES),
        prizes=PRIZES,
        registration_opens_at=t0 - HOUR,
        registration_closes_at=t0 + HOUR,
        draw_at=t0 + 2 * HOUR,
        valid_from=t0 + 3 * HOUR,
        valid_until=t0 + 4 * HOUR,
        eligibility=Eligibility(min_tier=1),
    )
    enc = test_encryptor()
    cid = db.transact(
        lambda uow: campaigns.create_campaign(uow, spec=spec, actor="op", encryptor=enc)
    ).id
    db.transact(lambda uow: campaigns.open_registration(uow, campaign_id=cid, actor="op"))
    return cid


def _people(first: int, count: int) -> list[Applicant]:
    return [
        Applicant(
            f"usr_bulk{n:05d}", hashlib.sha256(f"id:{n}".encode()).hexdigest(), 1, "active", {}
        )
        for n in range(first, first + count)
    ]


def _live_count(db: Database, cid: str) -> int:
    with db.uow(readonly=True) as uow:
        row = campaigns.campaign_row(uow, cid)
        return int(
            uow.session.scalar(
                select(func.count())
                .select_from(Registration)
                .where(Registration.campaign_id == row.id)
            )
            or 0
        )


def _drawn(db: Database, registrations: int) -> tuple[str, int]:
    """A funded campaign with ``registrations`` registrations, closed and drawn."""
    t0 = now_us()
    cid = _campaign(db, t0)
    db.transact(
        lambda uow: campaigns.register_many(
            uow, campaign_id=cid, applicants=_people(0, registrations), now=t0
        )
    )
    enc = test_encryptor()
    assert campaigns.fund_campaign(db, campaign_id=cid, bank=sandbox_bank(), encryptor=enc) == (
        "funded"
    )
    db.transact(
        lambda uow: campaigns.close_registration(uow, campaign_id=cid, actor="op", now=t0 + HOUR)
    )
    db.transact(
        lambda uow: campaigns.draw(
            uow, campaign_id=cid, actor="op", encryptor=enc, now=t0 + 2 * HOUR
        )
    )
    return cid, t0


def test_the_registration_counter_stays_right_under_concurrent_registrations(
    db: Database,
) -> None:
    t0 = now_us()
    cid = _campaign(db, t0)
    # 8 threads, 40 people each, every thread overlapping half of its neighbour's people:
    # the duplicates wait on each other's unique-index entries and must not be counted.
    batches = [_people(20 * i, 40) for i in range(8)]

    def register(i: int) -> int:
        return db.transact(
            lambda uow: (
                campaigns.register_many(
                    uow, campaign_id=cid, applicants=batches[i], now=t0
                ).accepted
            )
        )

    results = in_threads(register, 8)
    assert all(isinstance(r, int) for r in results), results
    assert sum(results) == 180  # people 0..179
    assert _live_count(db, cid) == 180
    with db.uow(readonly=True) as uow:
        assert campaigns.get_campaign(uow, campaign_id=cid).registrations == 180
        assert [v.registrations for v in campaigns.list_campaigns(uow)] == [180]
    # one more, one by one, then a repeat that adds nothing
    for batch in (_people(180, 1), _people(180, 1), _people(0, 5)):
        db.transact(
            lambda uow, b=batch: campaigns.register_many(uow, campaign_id=cid, applicants=b, now=t0)
        )
    with db.uow(readonly=True) as uow:
        assert campaigns.get_campaign(uow, campaign_id=cid).registrations == 181
    assert _live_count(db, cid) == 181


def test_the_stored_draw_positions_agree_with_the_published_draw(db: Database) -> None:
    cid, _ = _drawn(db, 60)
    with db.uow(readonly=True) as uow:
        document = campaigns.draw_document(uow, campaign_id=cid)
        row = campaigns.campaign_row(uow, cid)
        stored = dict(
            uow.session.execute(
                select(Registration.public_id, DrawPosition.position)
                .join(DrawPosition, DrawPosition.registration_id == Registration.id)
                .where(Registration.campaign_id == row.id)
            ).all()
        )
        ranks = dict(
            uow.session.execute(
                select(Registration.public_id, Winner.rank)
                .join(Winner, Winner.registration_id == Registration.id)
                .where(Winner.campaign_id == row.id)
            ).all()
        )
    assert lottery.verify_draw(document) == []
    seed = bytes.fromhex(document["seed"])
    recomputed = sorted(document["registrations"], key=lambda rid: (lottery.ticket(seed, rid), rid))
    assert stored == {rid: place for place, rid in enumerate(recomputed, start=1)}
    assert ranks == {w["registration_id"]: w["rank"] for w in document["winners"]}
    assert all(stored[rid] == rank for rid, rank in ranks.items())


def test_the_draw_stores_the_pure_ranking_and_is_not_repeated(db: Database) -> None:
    """The winners table and the positions are exactly ``lottery.ranking`` of the seed and
    the registrations; every resident's page shows their stored position, ticket and prize;
    a second draw is refused and changes nothing."""
    cid, t0 = _drawn(db, 45)
    with db.uow(readonly=True) as uow:
        row = campaigns.campaign_row(uow, cid)
        assert row.seed_hex is not None
        seed = bytes.fromhex(row.seed_hex)
        registrations = list(
            uow.session.execute(
                select(Registration.public_id, Registration.user_id, DrawPosition.position)
                .join(DrawPosition, DrawPosition.registration_id == Registration.id)
                .where(Registration.campaign_id == row.id)
            )
        )
        stored_winners = [
            (w.rank, public_id, w.prize, w.issued_at)
            for w, public_id in uow.session.execute(
                select(Winner, Registration.public_id)
                .join(Registration, Registration.id == Winner.registration_id)
                .where(Winner.campaign_id == row.id)
                .order_by(Winner.rank)
            )
        ]
        pages = {
            user_id: resident.draw_check(uow, campaign_id=cid, user_id=user_id)
            for _, user_id, _ in registrations
        }
    ids = [public_id for public_id, _, _ in registrations]
    prizes = [amount for amount, count in PRIZES for _ in range(count)]
    winners, positions = lottery.ranking(seed, ids, prizes)
    assert [position for _, _, position in registrations] == positions
    assert stored_winners == [(w.rank, w.registration_id, w.prize, None) for w in winners]
    by_id = {w.registration_id: w for w in winners}
    for (public_id, user_id, _), place in zip(registrations, positions, strict=True):
        page = pages[user_id]
        assert page is not None
        assert (page.registration_id, page.position, page.total) == (public_id, place, 45)
        assert page.ticket == lottery.ticket(seed, public_id).hex()
        won = by_id.get(public_id)
        assert page.status == ("won" if won else "lost")
        assert (page.rank, page.prize) == ((won.rank, won.prize) if won else (None, None))
    with pytest.raises(CampaignStateError):
        db.transact(
            lambda uow: campaigns.draw(
                uow, campaign_id=cid, actor="op", encryptor=test_encryptor(), now=t0 + 2 * HOUR
            )
        )
    with db.uow(readonly=True) as uow:
        count = uow.session.scalar(select(func.count()).select_from(Winner)) or 0
        assert count == len(winners)
        assert (uow.session.scalar(select(func.count()).select_from(DrawPosition)) or 0) == 45


def test_the_resident_page_reads_the_stored_position(db: Database) -> None:
    cid, _ = _drawn(db, 30)
    with db.uow(readonly=True) as uow:
        row = campaigns.campaign_row(uow, cid)
        entries = list(
            uow.session.execute(
                select(Registration.id, Registration.user_id).where(
                    Registration.campaign_id == row.id
                )
            )
        )
    # The page shows what is stored: move one stored position and the page follows it.
    pk, user_id = entries[0]

    def shift(uow: Any) -> None:
        stored = uow.session.get(DrawPosition, pk)
        stored.position += 1000

    with db.uow(readonly=True) as uow:
        before = resident.draw_check(uow, campaign_id=cid, user_id=user_id)
    db.transact(shift)
    with db.uow(readonly=True) as uow:
        after = resident.draw_check(uow, campaign_id=cid, user_id=user_id)
    assert before is not None
    assert after is not None
    assert after.position == before.position + 1000
    assert (after.total, after.winners) == (30, 20)
    # A campaign drawn before positions were stored: the page computes the same position.
    db.transact(lambda uow: uow.session.delete(uow.session.get(DrawPosition, pk)))
    with db.uow(readonly=True) as uow:
        again = resident.draw_check(uow, campaign_id=cid, user_id=user_id)
    assert again == before


def test_issuance_and_reclaim_in_batches(db: Database) -> None:
    cid, t0 = _drawn(db, 50)
    budget = sum(amount * count for amount, count in PRIZES)
    issued = []
    while n := db.transact(lambda uow: campaigns.issue_batch(uow, campaign_id=cid, limit=7)):
        issued.append(n)
    assert issued == [7, 7, 6]
    with db.uow(readonly=True) as uow:
        view = campaigns.get_campaign(uow, campaign_id=cid)
        assert (view.status, view.winners, view.issued) == ("issued", 20, 20)
        assert campaigns.campaign_balance(uow, campaign_id=cid) == 0
        winners = dict(
            uow.session.execute(
                select(Registration.user_id, Winner.prize)
                .join(Winner, Winner.registration_id == Registration.id)
                .where(Winner.campaign_id == view_pk(uow, cid), Winner.issued_at.is_not(None))
            ).all()
        )
        balances = list(uow.session.scalars(select(RestrictedBalance)))
        assert {b.user_id: b.granted for b in balances} == winners
        accounts = ledger.get_accounts_bulk(uow, ids=[b.ledger_account_id for b in balances])
        assert {b.user_id: accounts[b.ledger_account_id].balance for b in balances} == winners
        assert sorted(winners.values(), reverse=True)[:3] == [5_000] * 3
    assert_ledger_clean(db)

    reclaimed = []
    while n := db.transact(
        lambda uow: campaigns.reclaim_batch(uow, campaign_id=cid, now=t0 + 4 * HOUR, limit=8)
    ):
        reclaimed.append(n)
    assert reclaimed == [8, 8, 4]
    with db.uow(readonly=True) as uow:
        assert campaigns.get_campaign(uow, campaign_id=cid).status == "ended"
        assert campaigns.campaign_balance(uow, campaign_id=cid) == budget
        balances = list(uow.session.scalars(select(RestrictedBalance)))
        assert {b.status for b in balances} == {"reclaimed"}
        assert {b.reclaim_reason for b in balances} == {"expired"}
        assert sum(b.reclaimed for b in balances) == budget
        accounts = ledger.get_accounts_bulk(uow, ids=[b.ledger_account_id for b in balances])
        assert {a.balance for a in accounts.values()} == {0}
    # repeating the reclaim finds nothing more to do
    assert (
        db.transact(
            lambda uow: campaigns.reclaim_batch(uow, campaign_id=cid, now=t0 + 4 * HOUR, limit=8)
        )
        == 0
    )
    assert_ledger_clean(db)


def view_pk(uow: Any, cid: str) -> int:
    return campaigns.campaign_row(uow, cid).id
