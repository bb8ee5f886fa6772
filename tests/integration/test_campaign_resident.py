"""The resident's draw check (campaign.resident): the ticket is HMAC-SHA256(seed, id), the
position counts the lower tickets, the winners hold the first positions; and the places
where a campaign's money can be spent."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

from citywallet.campaign import resident
from citywallet.campaign import service as campaigns
from citywallet.campaign.rules import Eligibility
from citywallet.platform.clock import now_us
from citywallet.platform.db import Database
from citywallet.wallet.bank import sandbox_card_number
from tests.ledger_checks import assert_ledger_clean, test_encryptor
from tests.wallet_support import make_resident, sandbox_bank, wallet_settings

HOUR = 3_600_000_000


def test_draw_check_positions_and_places(db: Database, tmp_path: Path) -> None:
    enc, t0 = test_encryptor(), now_us()
    settings, bank = wallet_settings(tmp_path, db), sandbox_bank()
    people = [make_resident(db, settings, enc, bank, n, card_ending=None) for n in range(5)]
    spec = campaigns.CampaignSpec(
        name="消费红包",
        funder_name="区政府",
        funder_bank_account=sandbox_card_number("0000", serial=9),
        budget=2 * 1_000,
        prizes=[(1_000, 2)],
        registration_opens_at=t0 - HOUR,
        registration_closes_at=t0 + HOUR,
        draw_at=t0 + 2 * HOUR,
        valid_from=t0 + 2 * HOUR,
        valid_until=t0 + 3 * HOUR,
        eligibility=Eligibility(),
        merchant_ids=("mch_none",),
    )
    cid = db.transact(
        lambda uow: campaigns.create_campaign(uow, spec=spec, actor="op", encryptor=enc)
    ).id
    db.transact(lambda uow: campaigns.open_registration(uow, campaign_id=cid, actor="op"))
    for person in people[:4]:
        db.transact(
            lambda uow, p=person: campaigns.register(uow, campaign_id=cid, user_id=p.user_id)
        )
    with db.uow(readonly=True) as uow:
        assert resident.draw_check(uow, campaign_id=cid, user_id=people[0].user_id) is None
        assert resident.places(uow, merchant_ids=["mch_none"]) == []  # unknown ids: left out
    assert campaigns.fund_campaign(db, campaign_id=cid, bank=bank, encryptor=enc) == "funded"
    db.transact(
        lambda uow: campaigns.close_registration(uow, campaign_id=cid, actor="op", now=t0 + HOUR)
    )
    drawn = db.transact(
        lambda uow: campaigns.draw(
            uow, campaign_id=cid, actor="op", encryptor=enc, now=t0 + 2 * HOUR
        )
    )
    assert drawn.seed is not None
    seed = bytes.fromhex(drawn.seed)
    with db.uow(readonly=True) as uow:
        checks = [resident.draw_check(uow, campaign_id=cid, user_id=p.user_id) for p in people[:4]]
    positions = []
    for check in checks:
        assert check is not None
        expected = hmac.new(seed, check.registration_id.encode(), hashlib.sha256).hexdigest()
        assert check.ticket == expected
        assert check.total == 4
        assert check.winners == 2
        assert check.seed_commitment == hashlib.sha256(seed).hexdigest()
        assert check.list_hash == drawn.list_hash
        assert (check.status == "won") == (check.position <= 2)
        if check.status == "won":
            assert check.rank == check.position
        positions.append(check.position)
    assert sorted(positions) == [1, 2, 3, 4]
    ordered = sorted(checks, key=lambda c: c.position if c else 0)
    assert [c.ticket for c in ordered if c] == sorted(c.ticket for c in checks if c)
    assert_ledger_clean(db)
