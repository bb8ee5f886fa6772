"""The rules of dual control, pure (no database, no web): which actions need two
operators, the states of a proposal and who may decide it when.

A proposal is ``pending`` until a *different* operator approves it (``approved``: the
action ran in the approver's transaction) or rejects it (``rejected``), or until its time
runs out (``expired``). Only ``pending`` moves; every other state is final.
"""

from __future__ import annotations

from dataclasses import dataclass

# The actions under dual control, by the kind of object they act on.
KINDS: dict[str, str] = {
    "campaign.fund": "campaign",
    "campaign.issue": "campaign",
    "campaign.reclaim": "campaign",
    "resident.freeze": "resident",
    "resident.unfreeze": "resident",
}
# Actions that need a reason (it becomes the action's own reason).
NEEDS_REASON = frozenset({"resident.freeze", "resident.unfreeze"})

PENDING, APPROVED, REJECTED, EXPIRED = "pending", "approved", "rejected", "expired"
STATES = (PENDING, APPROVED, REJECTED, EXPIRED)


@dataclass(frozen=True)
class Verdict:
    """What a decision on a proposal comes to: ``ok`` to go ahead, or the refusal's code."""

    ok: bool
    code: str = ""


def expired(*, expires_at: int, now: int) -> bool:
    """Past its time (a proposal may be decided up to, not at, ``expires_at``)."""
    return now >= expires_at


def may_decide(*, state: str, proposer: str, decider: str, expires_at: int, now: int) -> Verdict:
    """Whether ``decider`` may approve or reject now: a pending, unexpired proposal made by
    someone else. The codes: ``proposal_not_pending``, ``proposal_expired``,
    ``self_approval_refused``."""
    if state != PENDING:
        return Verdict(False, "proposal_not_pending")
    if expired(expires_at=expires_at, now=now):
        return Verdict(False, "proposal_expired")
    if proposer == decider:
        return Verdict(False, "self_approval_refused")
    return Verdict(True)
