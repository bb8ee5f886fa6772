"""Request and response models of dual control (``/v1/operator/proposals``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from citywallet.control.service import ProposalView

Kind = Literal[
    "campaign.fund", "campaign.issue", "campaign.reclaim", "resident.freeze", "resident.unfreeze"
]
State = Literal["pending", "approved", "rejected", "expired"]


class ProposalCreate(BaseModel):
    """Propose an action; another operator approves it."""

    model_config = ConfigDict(extra="forbid")

    kind: Kind
    target_id: str = Field(min_length=1, max_length=64, description="cmp_… or usr_…")
    reason: str = Field(default="", max_length=500, description="Required to freeze/unfreeze.")


class ProposalDecision(BaseModel):
    """A rejection's note (optional)."""

    model_config = ConfigDict(extra="forbid")

    note: str = Field(default="", max_length=500)


class ProposalPublic(BaseModel):
    """A proposal: what, on what, who proposed it, and its decision."""

    id: str
    kind: str
    target_id: str
    reason: str
    proposer_user_id: str
    created_at: int = Field(description="Microseconds since the epoch.")
    expires_at: int
    state: State
    decided_by_user_id: str | None
    decided_at: int | None
    note: str
    outcome: str = Field(description="What the action did: funded, frozen, a batch count …")

    @classmethod
    def of(cls, view: ProposalView) -> ProposalPublic:
        return cls(
            id=view.id,
            kind=view.kind,
            target_id=view.target_id,
            reason=view.reason,
            proposer_user_id=view.proposer_user_id,
            created_at=view.created_at,
            expires_at=view.expires_at,
            state=view.state,
            decided_by_user_id=view.decided_by_user_id,
            decided_at=view.decided_at,
            note=view.note,
            outcome=view.outcome,
        )


class ProposalList(BaseModel):
    items: list[ProposalPublic]
