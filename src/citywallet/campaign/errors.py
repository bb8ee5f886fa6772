"""The campaigns' refusals, with the stable codes clients switch on (docs/campaigns.md)."""

from __future__ import annotations

from citywallet.platform.errors import Conflict, Forbidden, NotFound


class CampaignNotFound(NotFound):
    """No such campaign (or a draft, to anyone but operators)."""

    code = "campaign_not_found"


class CampaignStateError(Conflict):
    """The campaign is not in the state this step needs (``code`` may say more)."""

    code = "campaign_state_invalid"


class RegistrationClosed(Conflict):
    """Registration is not open (before its window, after it, or the campaign is closed)."""

    code = "registration_closed"


class NotEligible(Forbidden):
    """The resident does not meet the campaign's rule; ``code`` says which part."""

    code = "not_eligible"
