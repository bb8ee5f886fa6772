"""What the operator console's pages share: the acting operator for the audit log, the
labels of statuses, and the error mapping of forms."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Request

from citywallet.identity import totp
from citywallet.identity.audit import Actor
from citywallet.platform.errors import NotFound
from citywallet.web.i18n import N_
from citywallet.web.session import LoginRequired, Viewer, require_operator, runtime_of

SECOND_FACTOR_PAGE = "/operator/second-factor"


def actor_of(viewer: Viewer) -> Actor:
    """The signed-in operator as the audit log names them: masked real name and phone."""
    label = viewer.phone_masked
    if viewer.name_masked:
        label = f"{viewer.name_masked} {viewer.phone_masked}"
    return Actor(viewer.user_id, label)


class SecondFactorRequired(LoginRequired):
    """Signed in with the password only: off to the second-factor step, then back."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.redirect_to = f"{SECOND_FACTOR_PAGE}?next={quote(next_url, safe='/')}"


def require_console_operator(request: Request) -> Viewer:
    """An operator whose session passed a second factor (TOTP, or a passkey: whatever
    :func:`citywallet.identity.totp.mark_verified` recorded), when the settings ask for one
    (``operator_second_factor``); else a 303 to the second-factor page."""
    found = require_operator(request)
    runtime = runtime_of(request)
    if not runtime.settings.operator_second_factor:
        return found
    with runtime.db.uow(readonly=True) as uow:
        factor = totp.session_factor(uow, session_id=found.session_id)
    if factor is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SecondFactorRequired(target if request.method == "GET" else "/operator")
    return found


# The operator console's pages use this one; the second-factor page itself uses the
# password-only ``citywallet.web.session.OperatorDep``.
OperatorDep = Annotated[Viewer, Depends(require_console_operator)]


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
    "campaign.propose": N_("Proposed a campaign step"),
    "campaign.approve": N_("Approved a campaign step"),
    "campaign.reject": N_("Rejected a campaign step"),
    "resident.propose": N_("Proposed a freeze or unfreeze"),
    "resident.approve": N_("Approved a freeze or unfreeze"),
    "resident.reject": N_("Rejected a freeze or unfreeze"),
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
