"""What the operator console's pages share: the acting operator for the audit log, the
labels of statuses, and the error mapping of forms."""

from __future__ import annotations

from citywallet.identity.audit import Actor
from citywallet.platform.errors import NotFound
from citywallet.web.i18n import N_
from citywallet.web.session import Viewer


def actor_of(viewer: Viewer) -> Actor:
    """The signed-in operator as the audit log names them."""
    return Actor(viewer.user_id, viewer.phone_masked)


RESIDENT_STATUS = {
    "active": N_("Active"),
    "frozen": N_("Frozen"),
    "closed": N_("Closed"),
}
MERCHANT_STATUS = {
    "pending_review": N_("Waiting for review"),
    "active": N_("Active"),
    "suspended": N_("Suspended"),
    "rejected": N_("Rejected"),
    "closed": N_("Closed"),
}
CAMPAIGN_STATUS = {
    "draft": N_("Draft"),
    "open": N_("Registration open"),
    "closed": N_("Registration closed"),
    "drawn": N_("Drawn"),
    "issued": N_("Issued"),
    "ended": N_("Ended"),
}
FUNDING_STATUS = {
    "unfunded": N_("Not funded"),
    "pending": N_("Funding pending"),
    "funded": N_("Funded"),
}
ACTION_LABELS = {
    "resident.freeze": N_("Froze a resident"),
    "resident.unfreeze": N_("Unfroze a resident"),
    "merchant.approve": N_("Approved a merchant"),
    "merchant.reject": N_("Rejected a merchant"),
    "merchant.suspend": N_("Suspended a merchant"),
    "merchant.reactivate": N_("Reactivated a merchant"),
    "campaign.create": N_("Created a campaign"),
    "campaign.fund": N_("Funded a campaign"),
    "campaign.open": N_("Opened registration"),
    "campaign.close": N_("Closed registration"),
    "campaign.draw": N_("Ran the draw"),
    "campaign.issue": N_("Issued red packets"),
    "campaign.reclaim": N_("Reclaimed balances"),
    "ledger.verify": N_("Verified the ledger"),
    "switch.participant": N_("Saved a switch participant"),
    "switch.cap": N_("Changed a net debit cap"),
    "switch.deactivate": N_("Deactivated a switch participant"),
    "switch.close_window": N_("Closed a settlement window"),
}
LABELS = {
    "resident_status": RESIDENT_STATUS,
    "merchant_status": MERCHANT_STATUS,
    "campaign_status": CAMPAIGN_STATUS,
    "funding_status": FUNDING_STATUS,
    "action": ACTION_LABELS,
}


def not_found() -> NotFound:
    """The refusal for an unknown page action."""
    return NotFound("There is nothing at this address.", code="http_404")
