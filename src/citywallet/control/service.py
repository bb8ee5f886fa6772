"""Dual control's use cases: propose an action, approve it (the action runs in the
approver's transaction, exactly once), reject it, expire stale proposals, list them.

Every step is written to the operator audit log in its own transaction: the proposal
(``campaign.propose`` / ``resident.propose``), the decision (``….approve`` /
``….reject``) and the action itself as it always was (``campaign.fund``,
``resident.freeze`` …, with the approver as its actor). Approval locks the proposal's row
and moves it from ``pending`` to ``approved`` in the same transaction as the action, so two
approvers racing cannot both run it; approving an approved proposal again only answers it.
Funding is the exception to "one transaction": :func:`citywallet.campaign.service.
fund_campaign` talks to the bank between transactions, and the approval is made in its first
one (its ``on_start``). Issue and reclaim run in batches: the first in the approval's
transaction, the rest (:func:`continue_batches`) under the approved proposal.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, or_, select, update

from citywallet.campaign import service as campaigns
from citywallet.control import rules
from citywallet.control.errors import (
    DualControlRequired,
    InvalidProposal,
    ProposalExpired,
    ProposalNotFound,
    ProposalNotPending,
    SelfApprovalRefused,
)
from citywallet.control.models import Proposal
from citywallet.identity import audit
from citywallet.identity import service as identity
from citywallet.identity.audit import Actor
from citywallet.identity.queries import new_public_id
from citywallet.platform.clock import now_us
from citywallet.platform.crypto import Encryptor
from citywallet.platform.db import Database, UnitOfWork
from citywallet.platform.errors import Conflict, DomainError
from citywallet.wallet.bank import Bank

MAX_PAGE = 200
REFUSALS: dict[str, type[DomainError]] = {
    "proposal_not_pending": ProposalNotPending,
    "proposal_expired": ProposalExpired,
    "self_approval_refused": SelfApprovalRefused,
}
MESSAGES = {
    "proposal_not_pending": "This proposal has already been decided.",
    "proposal_expired": "This proposal has expired; propose the action again.",
    "self_approval_refused": "Another operator must approve or reject your own proposal.",
}


@dataclass(frozen=True)
class ProposalView:
    """A proposal as the console and the API show it."""

    id: str
    kind: str
    target_kind: str
    target_id: str
    params: dict[str, Any]
    reason: str
    proposer_user_id: str
    proposer_label: str
    created_at: int
    expires_at: int
    state: str
    decided_by_user_id: str | None
    decided_by_label: str | None
    decided_at: int | None
    note: str
    outcome: str


@dataclass(frozen=True)
class Executors:
    """What running the actions needs beyond the database (funding calls the bank)."""

    bank: Bank
    encryptor: Encryptor
    batch_size: int = 1_000
    max_batches: int = 5
    now: int | None = None  # the moment reclaim runs as (tests); None: the clock


def _view(row: Proposal, now: int | None = None) -> ProposalView:
    moment = now if now is not None else now_us()
    state = row.state
    if state == rules.PENDING and rules.expired(expires_at=row.expires_at, now=moment):
        state = rules.EXPIRED  # shown as it is, whether or not the job has marked it yet
    return ProposalView(
        id=row.public_id,
        kind=row.kind,
        target_kind=rules.KINDS.get(row.kind, ""),
        target_id=row.target_id,
        params=json.loads(row.params or "{}"),
        reason=row.reason,
        proposer_user_id=row.proposer_user_id,
        proposer_label=row.proposer_label,
        created_at=row.created_at,
        expires_at=row.expires_at,
        state=state,
        decided_by_user_id=row.decided_by_user_id,
        decided_by_label=row.decided_by_label,
        decided_at=row.decided_at,
        note=row.note,
        outcome=row.outcome,
    )


def _row(uow: UnitOfWork, proposal_id: str, *, lock: bool = False) -> Proposal:
    query = select(Proposal).where(Proposal.public_id == proposal_id)
    if lock:
        query = query.with_for_update()
    row = uow.session.scalar(query)
    if row is None:
        raise ProposalNotFound("No such proposal.")
    return row


def _check_target(uow: UnitOfWork, kind: str, target_id: str) -> None:
    """The target exists, and a freeze or unfreeze fits its status now (so nobody is asked to
    approve what cannot happen; the approval checks again)."""
    if rules.KINDS[kind] == "campaign":
        campaigns.get_campaign(uow, campaign_id=target_id, include_draft=True)
        return
    status = identity.get_user(uow, user_id=target_id).status
    if kind == "resident.freeze" and status == "frozen":
        raise Conflict("The account is already frozen.", code="already_frozen")
    if kind == "resident.unfreeze" and status != "frozen":
        raise Conflict("The account is not frozen.", code="not_frozen")


def _group(kind: str) -> str:
    return rules.KINDS[kind]


def propose(
    uow: UnitOfWork,
    *,
    kind: str,
    target_id: str,
    actor: Actor,
    reason: str = "",
    ttl_seconds: int,
) -> tuple[ProposalView, bool]:
    """Propose ``kind`` on ``target_id``; returns the proposal and whether it is new (the
    same action already pending on the same target is answered, not proposed twice)."""
    if kind not in rules.KINDS:
        raise InvalidProposal(f"{kind!r} is not an action under dual control.")
    reason = reason.strip()
    if kind in rules.NEEDS_REASON and not reason:
        raise InvalidProposal("Say why.", code="reason_required")
    _check_target(uow, kind, target_id)
    moment = now_us()
    existing = uow.session.scalar(
        select(Proposal)
        .where(
            Proposal.target_id == target_id,
            Proposal.kind == kind,
            Proposal.state == rules.PENDING,
            Proposal.expires_at > moment,
        )
        .order_by(Proposal.id.desc())
        .limit(1)
    )
    if existing is not None:
        return _view(existing, moment), False
    row = Proposal(
        public_id=new_public_id("prp"),
        kind=kind,
        target_id=target_id,
        params="{}",
        reason=reason[:500],
        proposer_user_id=actor.user_id,
        proposer_label=actor.label[:64],
        created_at=moment,
        expires_at=moment + ttl_seconds * 1_000_000,
        state=rules.PENDING,
        note="",
        outcome="",
    )
    uow.session.add(row)
    uow.session.flush()
    audit.record(
        uow,
        actor=actor,
        action=f"{_group(kind)}.propose",
        target_id=target_id,
        reason=reason,
        detail=f"{kind} · {row.public_id}",
    )
    return _view(row, moment), True


def _decide(uow: UnitOfWork, proposal_id: str, actor: Actor, to: str, note: str = "") -> Proposal:
    """Lock the proposal and move it out of ``pending`` (or raise the refusal)."""
    row = _row(uow, proposal_id, lock=True)
    moment = now_us()
    verdict = rules.may_decide(
        state=row.state,
        proposer=row.proposer_user_id,
        decider=actor.user_id,
        expires_at=row.expires_at,
        now=moment,
    )
    if not verdict.ok:
        raise REFUSALS[verdict.code](MESSAGES[verdict.code])
    row.state, row.decided_at, row.note = to, moment, note.strip()[:500]
    row.decided_by_user_id, row.decided_by_label = actor.user_id, actor.label[:64]
    uow.session.flush()
    verb = "approve" if to == rules.APPROVED else "reject"
    audit.record(
        uow,
        actor=actor,
        action=f"{_group(row.kind)}.{verb}",
        target_id=row.target_id,
        reason=note,
        detail=f"{row.kind} · {row.public_id} · proposed by {row.proposer_label}",
    )
    return row


def _mark_if_expired(db: Database, proposal_id: str) -> ProposalView:
    """Settle an expired proposal's state first (committed), so a refusal leaves it marked."""

    def work(uow: UnitOfWork) -> ProposalView:
        row = _row(uow, proposal_id, lock=True)
        if row.state == rules.PENDING and rules.expired(expires_at=row.expires_at, now=now_us()):
            row.state = rules.EXPIRED
            uow.session.flush()
        return _view(row)

    view = db.transact(work)
    if view.state == rules.EXPIRED:
        raise ProposalExpired(MESSAGES["proposal_expired"])
    return view


def _issue_or_reclaim(uow: UnitOfWork, kind: str, campaign_id: str, executors: Executors) -> int:
    limit = executors.batch_size
    if kind == "campaign.issue":
        return campaigns.issue_batch(uow, campaign_id=campaign_id, limit=limit)
    return campaigns.reclaim_batch(uow, campaign_id=campaign_id, limit=limit, now=executors.now)


def approve(db: Database, *, proposal_id: str, actor: Actor, executors: Executors) -> ProposalView:
    """Approve and run the action (refusals: ``self_approval_refused``,
    ``proposal_not_pending``, ``proposal_expired``, or the action's own, which leave the
    proposal pending). Approving an approved proposal again answers it and runs nothing."""
    before = _mark_if_expired(db, proposal_id)
    if before.state == rules.APPROVED:
        return before
    if before.state != rules.PENDING:
        raise ProposalNotPending(MESSAGES["proposal_not_pending"])
    kind, target = before.kind, before.target_id
    if kind == "campaign.fund":

        def started(uow: UnitOfWork) -> None:
            row = _decide(uow, proposal_id, actor, rules.APPROVED)
            audit.record(
                uow,
                actor=actor,
                action="campaign.fund",
                target_id=target,
                detail=f"approved {row.public_id}",
            )

        status = campaigns.fund_campaign(
            db,
            campaign_id=target,
            bank=executors.bank,
            encryptor=executors.encryptor,
            on_start=started,
        )
        return db.transact(lambda uow: _set_outcome(uow, proposal_id, status))

    def work(uow: UnitOfWork) -> ProposalView:
        row = _decide(uow, proposal_id, actor, rules.APPROVED)
        if kind in ("resident.freeze", "resident.unfreeze"):
            change = identity.freeze_user if kind == "resident.freeze" else identity.unfreeze_user
            view = change(uow, user_id=target, reason=row.reason, actor=actor.ref)
            audit.record(
                uow,
                actor=actor,
                action=kind,
                target_id=target,
                reason=row.reason,
                detail=f"approved {row.public_id}",
            )
            row.outcome = view.status
        else:
            count = _issue_or_reclaim(uow, kind, target, executors)
            audit.record(
                uow,
                actor=actor,
                action=kind,
                target_id=target,
                detail=f"batch of {count}; approved {row.public_id}",
            )
            row.outcome = f"{count}"
        uow.session.flush()
        return _view(row)

    view = db.transact(work)
    if kind in ("campaign.issue", "campaign.reclaim") and view.outcome != "0":
        continue_batches(
            db,
            kind=kind,
            target_id=target,
            actor=actor,
            executors=executors,
            batches=executors.max_batches - 1,
        )
        view = get_proposal_in(db, proposal_id)
    return view


def _set_outcome(uow: UnitOfWork, proposal_id: str, outcome: str) -> ProposalView:
    row = _row(uow, proposal_id, lock=True)
    row.outcome = outcome[:200]
    uow.session.flush()
    return _view(row)


def approved_proposal(uow: UnitOfWork, *, kind: str, target_id: str) -> ProposalView | None:
    """The latest approved proposal of ``kind`` on ``target_id``, if any."""
    row = uow.session.scalar(
        select(Proposal)
        .where(
            Proposal.target_id == target_id, Proposal.kind == kind, Proposal.state == rules.APPROVED
        )
        .order_by(Proposal.id.desc())
        .limit(1)
    )
    return None if row is None else _view(row)


def continue_batches(
    db: Database,
    *,
    kind: str,
    target_id: str,
    actor: Actor,
    executors: Executors,
    batches: int,
) -> int:
    """Run up to ``batches`` more batches of an approved issue or reclaim (each in its own
    transaction with its audit entry); ``dual_control_required`` without an approved
    proposal. Returns how many winners or balances were done."""
    total = 0
    for _ in range(max(batches, 0)):

        def batch(uow: UnitOfWork) -> int:
            found = approved_proposal(uow, kind=kind, target_id=target_id)
            if found is None:
                raise DualControlRequired(
                    "Propose this step: another operator must approve it first."
                )
            count = _issue_or_reclaim(uow, kind, target_id, executors)
            if count:
                audit.record(
                    uow,
                    actor=actor,
                    action=kind,
                    target_id=target_id,
                    detail=f"batch of {count}; under {found.id}",
                )
            return count

        count = db.transact(batch)
        total += count
        if count == 0:
            break
    return total


def reject(uow: UnitOfWork, *, proposal_id: str, actor: Actor, note: str = "") -> ProposalView:
    """Reject a proposal (another operator only); nothing of the action happens."""
    return _view(_decide(uow, proposal_id, actor, rules.REJECTED, note))


def reject_in(db: Database, *, proposal_id: str, actor: Actor, note: str = "") -> ProposalView:
    """:func:`reject`, after settling an expired proposal's state."""
    _mark_if_expired(db, proposal_id)
    return db.transact(lambda uow: reject(uow, proposal_id=proposal_id, actor=actor, note=note))


def expire_stale(uow: UnitOfWork, *, now: int | None = None) -> int:
    """Mark every pending proposal past its time ``expired`` (the periodic job)."""
    moment = now if now is not None else now_us()
    result = uow.session.execute(
        update(Proposal)
        .where(Proposal.state == rules.PENDING, Proposal.expires_at <= moment)
        .values(state=rules.EXPIRED)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def get_proposal(uow: UnitOfWork, *, proposal_id: str) -> ProposalView:
    """One proposal (404 ``proposal_not_found``)."""
    return _view(_row(uow, proposal_id))


def get_proposal_in(db: Database, proposal_id: str) -> ProposalView:
    """:func:`get_proposal` in a read-only unit of work of its own."""
    with db.uow(readonly=True) as uow:
        return get_proposal(uow, proposal_id=proposal_id)


def list_proposals(
    uow: UnitOfWork,
    *,
    state: str | None = None,
    target_id: str | None = None,
    limit: int = 50,
) -> list[ProposalView]:
    """Proposals newest first; ``state="pending"`` is the queue (unexpired ones only)."""
    moment = now_us()
    query = select(Proposal).order_by(Proposal.id.desc()).limit(max(1, min(limit, MAX_PAGE)))
    if state == rules.PENDING:
        query = query.where(Proposal.state == rules.PENDING, Proposal.expires_at > moment)
    elif state == rules.EXPIRED:
        stale = and_(Proposal.state == rules.PENDING, Proposal.expires_at <= moment)
        query = query.where(or_(Proposal.state == rules.EXPIRED, stale))
    elif state:
        query = query.where(Proposal.state == state)
    if target_id:
        query = query.where(Proposal.target_id == target_id)
    return [_view(row, moment) for row in uow.session.scalars(query)]
