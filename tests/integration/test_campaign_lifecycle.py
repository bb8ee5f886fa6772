"""A campaign from creation to reclaim on SQLite and PostgreSQL: the plan and window checks,
funding through the sandbox bank, one registration per person with eligibility, the
commit–reveal draw that an outsider can recompute, issuance into restricted balances, and
reclaim to the campaign account."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from citywallet.campaign import drawcheck, lottery
from citywallet.campaign import service as campaigns
from citywallet.campaign.errors import (
    CampaignNotFound,
    CampaignStateError,
    NotEligible,
    RegistrationClosed,
)
from citywallet.campaign.rules import Applicant, Eligibility
from citywallet.identity import attributes
from citywallet.identity.errors import UserNotFound
from citywallet.platform.clock import now_us
from citywallet.platform.db import Database, UnitOfWork
from citywallet.platform.errors import InvalidInput
from citywallet.wallet import restricted
from citywallet.wallet import service as wallet
from citywallet.wallet.bank import sandbox_card_number
from tests.ledger_checks import assert_ledger_clean, test_encryptor
from tests.wallet_support import make_resident, sandbox_bank, wallet_settings

HOUR = 3_600_000_000


def _spec(t0: int, **overrides: object) -> campaigns.CampaignSpec:
    values: dict[str, object] = {
        "name": "罗湖区消费红包",
        "funder_name": "深圳市罗湖区人民政府",
        "funder_bank_account": sandbox_card_number("0000", serial=9),
        "budget": 3 * 20_000 + 2 * 6_600,
        "prizes": [(6_600, 2), (20_000, 3)],
        "registration_opens_at": t0 - HOUR,
        "registration_closes_at": t0 + HOUR,
        "draw_at": t0 + 2 * HOUR,
        "valid_from": t0 + 3 * HOUR,
        "valid_until": t0 + 4 * HOUR,
        "eligibility": Eligibility(min_tier=1, districts=("罗湖区",)),
        "districts": ("罗湖区",),
    }
    values.update(overrides)
    return campaigns.CampaignSpec(**values)  # type: ignore[arg-type]


def test_plan_and_windows_are_checked(db: Database) -> None:
    enc, t0 = test_encryptor(), now_us()
    with pytest.raises(InvalidInput) as mismatch:
        db.transact(
            lambda uow: campaigns.create_campaign(
                uow, spec=_spec(t0, budget=1), actor="operator:test", encryptor=enc
            )
        )
    assert mismatch.value.code == "budget_mismatch"
    with pytest.raises(InvalidInput) as order:
        db.transact(
            lambda uow: campaigns.create_campaign(
                uow, spec=_spec(t0, draw_at=t0), actor="operator:test", encryptor=enc
            )
        )
    assert order.value.code == "windows_out_of_order"
    with db.uow(readonly=True) as uow:
        assert campaigns.list_campaigns(uow, include_draft=True) == []


def test_campaign_end_to_end(db: Database, tmp_path: Path) -> None:
    enc, t0 = test_encryptor(), now_us()
    settings, bank = wallet_settings(tmp_path, db), sandbox_bank()
    people = [make_resident(db, settings, enc, bank, n, card_ending=None) for n in range(8)]
    outsider = make_resident(db, settings, enc, bank, 8, verify=False, card_ending=None)
    for person in people[:7]:
        db.transact(
            lambda uow, p=person: attributes.set_attributes(
                uow, user_id=p.user_id, values={"district": "罗湖区"}, source="operator:test"
            )
        )
    view = db.transact(
        lambda uow: campaigns.create_campaign(
            uow, spec=_spec(t0), actor="operator:test", encryptor=enc
        )
    )
    cid = view.id
    assert view.status == "draft"
    assert view.seed is None
    assert len(view.seed_commitment) == 64
    with pytest.raises(RegistrationClosed):  # not open yet
        db.transact(lambda uow: campaigns.register(uow, campaign_id=cid, user_id=people[0].user_id))
    db.transact(lambda uow: campaigns.open_registration(uow, campaign_id=cid, actor="op"))

    regs = {}
    for person in people[:7]:
        reg, new = db.transact(
            lambda uow, p=person: campaigns.register(uow, campaign_id=cid, user_id=p.user_id)
        )
        assert new
        regs[person.user_id] = reg.id
    again, new = db.transact(
        lambda uow: campaigns.register(uow, campaign_id=cid, user_id=people[0].user_id)
    )
    assert not new
    assert again.id == regs[people[0].user_id]
    for person, code in ((people[7], "district_not_eligible"), (outsider, "real_name_required")):
        with pytest.raises(NotEligible) as refused:
            db.transact(
                lambda uow, p=person: campaigns.register(uow, campaign_id=cid, user_id=p.user_id)
            )
        assert refused.value.code == code

    with pytest.raises(CampaignStateError) as early:
        db.transact(lambda uow: campaigns.close_registration(uow, campaign_id=cid, actor="op"))
    assert early.value.code == "registration_window_open"
    closed = db.transact(
        lambda uow: campaigns.close_registration(uow, campaign_id=cid, actor="op", now=t0 + HOUR)
    )
    assert closed.registrations == 7
    assert closed.list_hash == lottery.list_hash(regs.values())

    with pytest.raises(CampaignStateError) as unfunded:
        db.transact(
            lambda uow: campaigns.draw(
                uow, campaign_id=cid, actor="op", encryptor=enc, now=t0 + 2 * HOUR
            )
        )
    assert unfunded.value.code == "campaign_not_funded"
    assert campaigns.fund_campaign(db, campaign_id=cid, bank=bank, encryptor=enc) == "funded"
    assert campaigns.fund_campaign(db, campaign_id=cid, bank=bank, encryptor=enc) == "funded"
    drawn = db.transact(
        lambda uow: campaigns.draw(
            uow, campaign_id=cid, actor="op", encryptor=enc, now=t0 + 2 * HOUR
        )
    )
    assert drawn.status == "drawn"
    assert drawn.winners == 5
    assert drawn.seed is not None
    assert lottery.commitment(bytes.fromhex(drawn.seed)) == (view.seed_commitment)
    with db.uow(readonly=True) as uow:
        document = campaigns.draw_document(uow, campaign_id=cid)
    assert lottery.verify_draw(document) == []
    assert drawcheck.check_draw(json.loads(lottery.dump_draw_file(document))) == []
    expected = lottery.draw(
        bytes.fromhex(drawn.seed), list(regs.values()), [20_000] * 3 + [6_600] * 2
    )
    assert [w.registration_id for w in expected] == [
        w["registration_id"] for w in document["winners"]
    ]

    while db.transact(lambda uow: campaigns.issue_batch(uow, campaign_id=cid, limit=2)):
        pass
    with db.uow(readonly=True) as uow:
        assert campaigns.get_campaign(uow, campaign_id=cid).status == "issued"
        mine = {
            p.user_id: campaigns.my_registration(uow, campaign_id=cid, user_id=p.user_id)
            for p in people[:7]
        }
        held = {p.user_id: restricted.balances_of(uow, user_id=p.user_id) for p in people[:7]}
        assert campaigns.campaign_balance(uow, campaign_id=cid) == 0
    winners = [u for u, r in mine.items() if r.status == "won"]
    assert len(winners) == 5
    assert all(mine[u].issued for u in winners)
    assert sorted(held[u][0].available for u in winners) == [6_600, 6_600, 20_000, 20_000, 20_000]
    assert all(held[u] == [] for u in mine if u not in winners)
    assert {r.status for u, r in mine.items() if u not in winners} == {"lost"}

    with pytest.raises(CampaignStateError):
        db.transact(lambda uow: campaigns.reclaim_batch(uow, campaign_id=cid))
    later = t0 + 4 * HOUR
    assert db.transact(lambda uow: campaigns.reclaim_batch(uow, campaign_id=cid, now=later)) == 5
    assert db.transact(lambda uow: campaigns.reclaim_batch(uow, campaign_id=cid, now=later)) == 0
    with db.uow(readonly=True) as uow:
        assert campaigns.get_campaign(uow, campaign_id=cid).status == "ended"
        assert campaigns.campaign_balance(uow, campaign_id=cid) == view.budget
    assert_ledger_clean(db)


def test_bulk_registration_counts_duplicates_and_refusals(db: Database) -> None:
    enc, t0 = test_encryptor(), now_us()
    cid = db.transact(
        lambda uow: campaigns.create_campaign(
            uow, spec=_spec(t0), actor="operator:test", encryptor=enc
        )
    ).id
    db.transact(lambda uow: campaigns.open_registration(uow, campaign_id=cid, actor="op"))
    luohu = {"district": "罗湖区"}
    batch = [Applicant(f"usr_{i}", f"h{i}", 1, "active", luohu) for i in range(50)]
    batch += [
        Applicant("usr_x", None, 0, "active", luohu),
        Applicant("usr_y", "hy", 1, "active", {}),
    ]
    first = db.transact(lambda uow: campaigns.register_many(uow, campaign_id=cid, applicants=batch))
    assert (first.accepted, first.duplicates) == (50, 0)
    assert first.refused == {"real_name_required": 1, "district_not_eligible": 1}
    second = db.transact(
        lambda uow: campaigns.register_many(uow, campaign_id=cid, applicants=batch[:10])
    )
    assert (second.accepted, second.duplicates) == (0, 10)
    with db.uow(readonly=True) as uow:
        assert campaigns.get_campaign(uow, campaign_id=cid).registrations == 50


def test_a_winner_who_closed_the_wallet_before_issuance_forfeits_the_prize(
    db: Database, tmp_path: Path
) -> None:
    enc, t0 = test_encryptor(), now_us()
    settings, bank = wallet_settings(tmp_path, db), sandbox_bank()
    people = [make_resident(db, settings, enc, bank, n, card_ending=None) for n in range(3)]
    spec = _spec(t0, budget=3 * 6_600, prizes=[(6_600, 3)], eligibility=Eligibility(min_tier=1))
    cid = db.transact(
        lambda uow: campaigns.create_campaign(uow, spec=spec, actor="op", encryptor=enc)
    ).id
    db.transact(lambda uow: campaigns.open_registration(uow, campaign_id=cid, actor="op"))
    for person in people:
        db.transact(
            lambda uow, p=person: campaigns.register(uow, campaign_id=cid, user_id=p.user_id)
        )
    db.transact(
        lambda uow: campaigns.close_registration(uow, campaign_id=cid, actor="op", now=t0 + HOUR)
    )
    assert campaigns.fund_campaign(db, campaign_id=cid, bank=bank, encryptor=enc) == "funded"
    drawn = db.transact(
        lambda uow: campaigns.draw(
            uow, campaign_id=cid, actor="op", encryptor=enc, now=t0 + 2 * HOUR
        )
    )
    assert drawn.winners == 3
    gone = people[1]
    db.transact(lambda uow: wallet.close_wallet(uow, user_id=gone.user_id))

    assert db.transact(lambda uow: campaigns.issue_batch(uow, campaign_id=cid)) == 3
    assert db.transact(lambda uow: campaigns.issue_batch(uow, campaign_id=cid)) == 0
    with db.uow(readonly=True) as uow:
        view = campaigns.get_campaign(uow, campaign_id=cid)
        assert (view.status, view.issued) == ("issued", 2)
        held = {p.user_id: restricted.balances_of(uow, user_id=p.user_id) for p in people}
        assert campaigns.campaign_balance(uow, campaign_id=cid) == 6_600  # the forfeited prize
        document = campaigns.draw_document(uow, campaign_id=cid)
    assert held[gone.user_id] == []
    assert all(held[p.user_id][0].available == 6_600 for p in people if p is not gone)
    assert lottery.verify_draw(document) == []  # the published draw is unchanged
    later = t0 + 4 * HOUR
    assert db.transact(lambda uow: campaigns.reclaim_batch(uow, campaign_id=cid, now=later)) == 2
    with db.uow(readonly=True) as uow:
        assert campaigns.campaign_balance(uow, campaign_id=cid) == spec.budget
    assert_ledger_clean(db)


def test_the_reclaim_job_ends_a_campaign_only_when_every_balance_is_back(
    db: Database, tmp_path: Path
) -> None:
    enc, t0 = test_encryptor(), now_us()
    settings, bank = wallet_settings(tmp_path, db), sandbox_bank()
    people = [make_resident(db, settings, enc, bank, n, card_ending=None) for n in range(3)]
    spec = _spec(t0, budget=3 * 6_600, prizes=[(6_600, 3)], eligibility=Eligibility(min_tier=1))
    cid = db.transact(
        lambda uow: campaigns.create_campaign(uow, spec=spec, actor="op", encryptor=enc)
    ).id
    db.transact(lambda uow: campaigns.open_registration(uow, campaign_id=cid, actor="op"))
    for person in people:
        db.transact(
            lambda uow, p=person: campaigns.register(uow, campaign_id=cid, user_id=p.user_id)
        )
    db.transact(
        lambda uow: campaigns.close_registration(uow, campaign_id=cid, actor="op", now=t0 + HOUR)
    )
    assert campaigns.fund_campaign(db, campaign_id=cid, bank=bank, encryptor=enc) == "funded"
    db.transact(
        lambda uow: campaigns.draw(
            uow, campaign_id=cid, actor="op", encryptor=enc, now=t0 + 2 * HOUR
        )
    )
    assert db.transact(lambda uow: campaigns.issue_batch(uow, campaign_id=cid)) == 3
    assert db.transact(lambda uow: campaigns.issue_batch(uow, campaign_id=cid)) == 0
    later = t0 + 4 * HOUR

    def status() -> str:
        with db.uow(readonly=True) as uow:
            return campaigns.get_campaign(uow, campaign_id=cid).status

    assert db.transact(lambda uow: campaigns.reclaim_due(uow, now=later - 1, limit=2)) == 0
    assert db.transact(lambda uow: campaigns.reclaim_due(uow, now=later, limit=2)) == 2
    assert status() == "issued"  # one balance is still out
    assert db.transact(lambda uow: campaigns.reclaim_due(uow, now=later, limit=2)) == 1
    assert status() == "ended"
    assert db.transact(lambda uow: campaigns.reclaim_due(uow, now=later, limit=2)) == 0
    with db.uow(readonly=True) as uow:
        assert campaigns.campaign_balance(uow, campaign_id=cid) == spec.budget
        assert all(
            [b.status for b in restricted.balances_of(uow, user_id=p.user_id)] == ["reclaimed"]
            for p in people
        )
    assert_ledger_clean(db)


def _lock_waiter_or_done(db: Database, thread: threading.Thread) -> None:
    """Until ``thread`` waits on a row lock (PostgreSQL) or ends; SQLite serialises writers
    on its database lock, so there the thread is just given a moment to overtake."""
    if db.engine.dialect.name != "postgresql":
        thread.join(timeout=0.5)
        return
    for _ in range(400):
        with db.uow(readonly=True) as uow:
            waiting = uow.session.scalar(
                text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
            )
        if waiting or not thread.is_alive():
            return
        time.sleep(0.025)


def _opened(db: Database) -> tuple[str, int]:
    """An open campaign for residents of tier 1 and up, and the moment it was made."""
    enc, t0 = test_encryptor(), now_us()
    spec = _spec(t0, eligibility=Eligibility(min_tier=1))
    cid = db.transact(
        lambda uow: campaigns.create_campaign(uow, spec=spec, actor="op", encryptor=enc)
    ).id
    db.transact(lambda uow: campaigns.open_registration(uow, campaign_id=cid, actor="op"))
    return cid, t0


def _first_paused(
    db: Database, first: Callable[[UnitOfWork], Any], second: Callable[[UnitOfWork], Any]
) -> tuple[Any, Any]:
    """Run ``first`` in a transaction that pauses after its work, start ``second`` in its
    own meanwhile, wait until it waits on a lock (or ends), then let both finish. Returns
    what each returned, or the exception it raised."""
    inside, release = threading.Event(), threading.Event()
    outcome: list[Any] = [None, None]

    def run(slot: int, work: Callable[[UnitOfWork], Any], pause: bool) -> None:
        def paused(uow: UnitOfWork) -> Any:
            done = work(uow)
            if pause:
                inside.set()
                release.wait(30)
            return done

        try:
            outcome[slot] = db.transact(paused)
        except Exception as exc:
            outcome[slot] = exc

    paused_thread = threading.Thread(target=run, args=(0, first, True))
    paused_thread.start()
    assert inside.wait(30)
    other = threading.Thread(target=run, args=(1, second, False))
    other.start()
    _lock_waiter_or_done(db, other)
    release.set()
    paused_thread.join(30)
    other.join(30)
    return outcome[0], outcome[1]


@pytest.mark.parametrize("first", ["register", "close"])
def test_registration_and_closing_never_overlap(db: Database, tmp_path: Path, first: str) -> None:
    """A registration whose lock is held makes closing wait, so the list hash covers it; a
    closing in flight makes the registration wait and then refuse (registration_closed).
    The other side starts while the first is paused inside its transaction."""
    person = make_resident(
        db, wallet_settings(tmp_path, db), test_encryptor(), sandbox_bank(), 1, card_ending=None
    )
    cid, t0 = _opened(db)
    sides: dict[str, Callable[[UnitOfWork], Any]] = {
        "register": lambda uow: campaigns.register(
            uow, campaign_id=cid, user_id=person.user_id, now=t0
        ),
        "close": lambda uow: campaigns.close_registration(
            uow, campaign_id=cid, actor="op", now=t0 + HOUR
        ),
    }
    second = "close" if first == "register" else "register"
    results = _first_paused(db, sides[first], sides[second])
    outcome = dict(zip((first, second), results, strict=True))
    closed = outcome["close"]
    if first == "register":
        registration, new = outcome["register"]
        assert new
        assert closed.registrations == 1
        assert closed.list_hash == lottery.list_hash([registration.id])
    else:
        assert isinstance(outcome["register"], RegistrationClosed)
        assert closed.registrations == 0
    with db.uow(readonly=True) as uow:
        assert campaigns.count_registrations(uow, campaigns.campaign_row(uow, cid).id) == (
            closed.registrations
        )


def test_registering_an_unknown_user_or_campaign_is_refused(db: Database) -> None:
    """The one statement that reads the campaign and the resident tells the two apart."""
    cid, _ = _opened(db)
    with pytest.raises(UserNotFound):
        db.transact(lambda uow: campaigns.register(uow, campaign_id=cid, user_id="usr_nobody"))
    with pytest.raises(CampaignNotFound):
        db.transact(lambda uow: campaigns.register(uow, campaign_id="cmp_none", user_id="usr_x"))


def test_a_double_tap_registers_once_and_both_taps_get_it(db: Database, tmp_path: Path) -> None:
    """Two registrations of one person at once: the second passed its duplicate check before
    the first committed. It waits for the first's row, then answers with that registration
    (not new) instead of failing on the unique index; one registration is counted."""
    person = make_resident(
        db, wallet_settings(tmp_path, db), test_encryptor(), sandbox_bank(), 1, card_ending=None
    )
    cid, t0 = _opened(db)

    def tap(uow: UnitOfWork) -> Any:
        return campaigns.register(uow, campaign_id=cid, user_id=person.user_id, now=t0)

    (one, one_new), (two, two_new) = _first_paused(db, tap, tap)
    assert (one_new, two_new) == (True, False)
    assert one.id == two.id
    with db.uow(readonly=True) as uow:
        assert campaigns.count_registrations(uow, campaigns.campaign_row(uow, cid).id) == 1
        assert campaigns.registration_ids(uow, campaigns.campaign_row(uow, cid).id) == [one.id]
