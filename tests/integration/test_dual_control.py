"""Dual control on SQLite and PostgreSQL: one operator proposes, another approves and the
action runs once in the approver's transaction; self-approval, rejected and expired
proposals change nothing; funding, issuing and reclaiming keep the ledger clean."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select, update

from citywallet.campaign import service as campaigns
from citywallet.control import service as control
from citywallet.control.models import Proposal
from citywallet.identity import audit
from citywallet.identity import service as identity
from citywallet.identity.audit import Actor
from citywallet.platform.clock import now_us
from citywallet.platform.db import Database
from citywallet.platform.errors import DomainError
from citywallet.wallet.models import RestrictedBalance
from tests.integration.test_campaign_bulk import HOUR, PRIZES, _campaign, _people
from tests.ledger_checks import assert_ledger_clean, test_encryptor
from tests.wallet_support import make_resident, sandbox_bank, wallet_settings

ALICE = Actor("usr_opalice", "139****0001")
BOB = Actor("usr_opbob", "139****0002")
TTL = 3600
BUDGET = sum(amount * count for amount, count in PRIZES)


def _executors(now: int | None = None) -> control.Executors:
    return control.Executors(
        bank=sandbox_bank(), encryptor=test_encryptor(), batch_size=7, max_batches=2, now=now
    )


def _propose(db: Database, kind: str, target: str, reason: str = "") -> control.ProposalView:
    view, created = db.transact(
        lambda uow: control.propose(
            uow, kind=kind, target_id=target, actor=ALICE, reason=reason, ttl_seconds=TTL
        )
    )
    assert created
    return view


def _refused(code: str, fn: object) -> None:
    with pytest.raises(DomainError) as refused:
        fn()  # type: ignore[operator]
    assert refused.value.code == code


def _actions(db: Database, target: str) -> list[tuple[str, str]]:
    with db.uow(readonly=True) as uow:
        entries, _ = audit.list_entries(uow, target_id=target, limit=200)
    return [(e.action, e.actor_user_id) for e in reversed(entries)]


def _balance(db: Database, cid: str) -> int:
    with db.uow(readonly=True) as uow:
        return campaigns.campaign_balance(uow, campaign_id=cid)


def test_funding_issuing_and_reclaiming_need_a_second_operator(db: Database) -> None:
    t0 = now_us()
    cid = _campaign(db, t0)
    db.transact(
        lambda uow: campaigns.register_many(uow, campaign_id=cid, applicants=_people(0, 30), now=t0)
    )
    # fund: Alice proposes; she cannot approve it herself; Bob's approval funds it once
    fund = _propose(db, "campaign.fund", cid)
    again, created = db.transact(
        lambda uow: control.propose(
            uow, kind="campaign.fund", target_id=cid, actor=BOB, ttl_seconds=TTL
        )
    )
    assert (again.id, created) == (fund.id, False)  # one pending proposal per action
    _refused(
        "self_approval_refused",
        lambda: control.approve(db, proposal_id=fund.id, actor=ALICE, executors=_executors()),
    )
    assert _balance(db, cid) == 0
    done = control.approve(db, proposal_id=fund.id, actor=BOB, executors=_executors())
    assert (done.state, done.outcome, done.decided_by_user_id) == (
        "approved",
        "funded",
        BOB.user_id,
    )
    assert _balance(db, cid) == BUDGET
    # a second approval (a double click, a second operator) answers and runs nothing
    twice = control.approve(db, proposal_id=fund.id, actor=BOB, executors=_executors())
    assert twice.state == "approved"
    _refused(
        "proposal_not_pending",
        lambda: db.transact(lambda uow: control.reject(uow, proposal_id=fund.id, actor=BOB)),
    )
    assert _balance(db, cid) == BUDGET
    assert [a for a in _actions(db, cid) if a[0].startswith("campaign.")] == [
        ("campaign.propose", ALICE.user_id),
        ("campaign.approve", BOB.user_id),
        ("campaign.fund", BOB.user_id),
    ]
    assert_ledger_clean(db)

    db.transact(
        lambda uow: campaigns.close_registration(uow, campaign_id=cid, actor="op", now=t0 + HOUR)
    )
    db.transact(
        lambda uow: campaigns.draw(
            uow, campaign_id=cid, actor="op", encryptor=test_encryptor(), now=t0 + 2 * HOUR
        )
    )
    # the direct path refuses to continue an issue nobody approved
    _refused(
        "dual_control_required",
        lambda: control.continue_batches(
            db, kind="campaign.issue", target_id=cid, actor=ALICE, executors=_executors(), batches=1
        ),
    )
    # a rejected issue issues nothing
    rejected = _propose(db, "campaign.issue", cid)
    db.transact(lambda uow: control.reject(uow, proposal_id=rejected.id, actor=BOB, note="wait"))
    _refused(
        "proposal_not_pending",
        lambda: control.approve(db, proposal_id=rejected.id, actor=BOB, executors=_executors()),
    )
    with db.uow(readonly=True) as uow:
        assert campaigns.get_campaign(uow, campaign_id=cid).issued == 0
    # approved: the first batch in the approval's transaction, one more after it, the rest
    # under the approved proposal
    issue = _propose(db, "campaign.issue", cid)
    approved = control.approve(db, proposal_id=issue.id, actor=BOB, executors=_executors())
    assert (approved.state, approved.outcome) == ("approved", "7")
    with db.uow(readonly=True) as uow:
        assert campaigns.get_campaign(uow, campaign_id=cid).issued == 14
    assert (
        control.continue_batches(
            db, kind="campaign.issue", target_id=cid, actor=ALICE, executors=_executors(), batches=5
        )
        == 6
    )
    with db.uow(readonly=True) as uow:
        view = campaigns.get_campaign(uow, campaign_id=cid)
        assert (view.status, view.issued) == ("issued", 20)
        assert campaigns.campaign_balance(uow, campaign_id=cid) == 0
        assert sum(b.granted for b in uow.session.scalars(select(RestrictedBalance))) == BUDGET
    assert_ledger_clean(db)

    reclaim = _propose(db, "campaign.reclaim", cid)
    later = _executors(now=t0 + 4 * HOUR)
    control.approve(db, proposal_id=reclaim.id, actor=BOB, executors=later)
    control.continue_batches(
        db, kind="campaign.reclaim", target_id=cid, actor=BOB, executors=later, batches=5
    )
    with db.uow(readonly=True) as uow:
        assert campaigns.get_campaign(uow, campaign_id=cid).status == "ended"
    assert _balance(db, cid) == BUDGET
    assert_ledger_clean(db)


def test_freezing_a_resident_takes_two_operators_and_expiry_changes_nothing(
    db: Database, tmp_path: Path
) -> None:
    enc, bank = test_encryptor(), sandbox_bank()
    settings = wallet_settings(tmp_path, db)
    resident = make_resident(db, settings, enc, bank, 1, card_ending=None)
    uid = resident.user_id
    _refused(
        "reason_required",
        lambda: db.transact(
            lambda uow: control.propose(
                uow, kind="resident.freeze", target_id=uid, actor=ALICE, ttl_seconds=TTL
            )
        ),
    )
    _refused(
        "user_not_found",
        lambda: db.transact(
            lambda uow: control.propose(
                uow,
                kind="resident.freeze",
                target_id="usr_nobody",
                actor=ALICE,
                reason="x",
                ttl_seconds=TTL,
            )
        ),
    )

    # an expired proposal is refused, marked expired, and the resident stays active
    stale = _propose(db, "resident.freeze", uid, "fraud report")
    db.transact(
        lambda uow: uow.session.execute(
            update(Proposal).where(Proposal.public_id == stale.id).values(expires_at=1)
        )
    )
    _refused(
        "proposal_expired",
        lambda: control.approve(db, proposal_id=stale.id, actor=BOB, executors=_executors()),
    )
    with db.uow(readonly=True) as uow:
        assert control.get_proposal(uow, proposal_id=stale.id).state == "expired"
        assert identity.get_user(uow, user_id=uid).status == "active"
        assert [p.id for p in control.list_proposals(uow, state="pending")] == []

    freeze = _propose(db, "resident.freeze", uid, "fraud report")
    _refused(
        "self_approval_refused",
        lambda: control.approve(db, proposal_id=freeze.id, actor=ALICE, executors=_executors()),
    )
    with db.uow(readonly=True) as uow:
        assert identity.get_user(uow, user_id=uid).status == "active"
        assert [p.id for p in control.list_proposals(uow, state="pending")] == [freeze.id]
    done = control.approve(db, proposal_id=freeze.id, actor=BOB, executors=_executors())
    assert (done.state, done.outcome) == ("approved", "frozen")
    with db.uow(readonly=True) as uow:
        assert identity.get_user(uow, user_id=uid).status == "frozen"
    assert ("resident.freeze", BOB.user_id) in _actions(db, uid)

    # what cannot happen is not proposed; what became impossible meanwhile is refused at
    # approval and the proposal stays pending
    _refused("already_frozen", lambda: _propose(db, "resident.freeze", uid, "again"))
    twice = _propose(db, "resident.unfreeze", uid, "verified in person")
    db.transact(
        lambda uow: identity.unfreeze_user(uow, user_id=uid, reason="by the CLI", actor="op")
    )
    _refused(
        "not_frozen",
        lambda: control.approve(db, proposal_id=twice.id, actor=BOB, executors=_executors()),
    )
    with db.uow(readonly=True) as uow:
        assert control.get_proposal(uow, proposal_id=twice.id).state == "pending"

    # the job marks stale proposals expired
    with db.uow(readonly=True) as uow:
        expires_at = control.get_proposal(uow, proposal_id=twice.id).expires_at
    assert db.transact(lambda uow: control.expire_stale(uow, now=expires_at)) == 1
    with db.uow(readonly=True) as uow:
        assert control.get_proposal(uow, proposal_id=twice.id).state == "expired"
