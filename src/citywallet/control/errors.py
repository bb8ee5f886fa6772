"""The refusals of dual control (stable codes, docs/api.md)."""

from __future__ import annotations

from citywallet.platform.errors import Conflict, Forbidden, InvalidInput, NotFound


class ProposalNotFound(NotFound):
    code = "proposal_not_found"


class SelfApprovalRefused(Forbidden):
    """The proposer tried to approve or reject their own proposal."""

    code = "self_approval_refused"
    title = "Another operator must decide"


class ProposalNotPending(Conflict):
    """Already approved, rejected or expired."""

    code = "proposal_not_pending"


class ProposalExpired(Conflict):
    code = "proposal_expired"


class DualControlRequired(Conflict):
    """The action needs a proposal and another operator's approval."""

    code = "dual_control_required"


class InvalidProposal(InvalidInput):
    code = "invalid_proposal"
