"""What every merchant console page shares: which of the viewer's merchants it is about.

A resident may own several merchants; the one the console shows is kept in the
``cw_merchant`` cookie (chosen on the overview) and checked against the owner on every
request, so another resident's merchant id answers 404 like any unknown one. Without a
choice, the oldest merchant is shown.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from citywallet.merchant.errors import MerchantNotFound
from citywallet.merchant.service import (
    MerchantView,
    list_merchants,
    merchant_view,
    owned_merchant,
)
from citywallet.web.i18n import N_
from citywallet.web.session import Viewer, require_viewer, runtime_of

MERCHANT_COOKIE = "cw_merchant"
STATUS_LABELS = {
    "pending_review": N_("Pending review"),
    "active": N_("Approved"),
    "rejected": N_("Rejected"),
    "suspended": N_("Suspended"),
    "closed": N_("Closed"),
}
ORDER_STATUS_LABELS = {
    "created": N_("Waiting for payment"),
    "awaiting_confirmation": N_("Waiting for the customer to confirm"),
    "paid": N_("Paid"),
    "closed": N_("Closed"),
}

LINE_LABELS = {
    "payment": N_("Payment received"),
    "refund": N_("Refund given"),
    "settlement": N_("Payout"),
    "adjustment": N_("Adjustment"),
}
SETTLEMENT_LABELS = {
    "processing": N_("Sent to the bank"),
    "unknown": N_("The bank has not answered"),
    "paid": N_("Paid out"),
    "failed": N_("Failed, will retry"),
    "empty": N_("Nothing to pay out"),
}
EVENT_LABELS = {
    "pending": N_("Waiting to be sent"),
    "delivered": N_("Delivered"),
    "failed": N_("Gave up"),
}
# the flashes the console's redirects show (``?done=…``)
FLASHES = (
    N_("Application sent"),
    N_("Store opened"),
    N_("Refunded"),
    N_("Refund sent through the switch"),
    N_("Key revoked"),
    N_("Webhook saved"),
    N_("Secret replaced"),
    N_("Sent again"),
)


class NoMerchantYet(MerchantNotFound):
    """The signed-in resident owns no merchant (the overview offers the application)."""

    code = "no_merchant"


@dataclass(frozen=True)
class Console:
    """The signed-in owner and the merchant the page is about."""

    viewer: Viewer
    merchant: MerchantView
    pk: int
    merchants: list[MerchantView]


def owned(request: Request, viewer: Viewer) -> tuple[list[MerchantView], MerchantView | None, int]:
    """The viewer's merchants, the chosen one (None if they own none) and its key."""
    runtime = runtime_of(request)
    chosen = request.cookies.get(MERCHANT_COOKIE, "")
    with runtime.db.uow(readonly=True) as uow:
        merchants = list_merchants(uow, user_id=viewer.user_id)
        ids = [m.id for m in merchants]
        if not merchants:
            return [], None, 0
        merchant_id = chosen if chosen in ids else ids[0]
        row = owned_merchant(uow, user_id=viewer.user_id, merchant_id=merchant_id)
        return merchants, merchant_view(row), row.id


def require_console(request: Request) -> Console:
    """The page's merchant; 404 ``no_merchant`` for a resident who owns none."""
    viewer = require_viewer(request)
    merchants, merchant, pk = owned(request, viewer)
    if merchant is None:
        raise NoMerchantYet("You do not own a merchant yet: apply first.")
    return Console(viewer, merchant, pk, merchants)


ConsoleDep = Annotated[Console, Depends(require_console)]


def one_time_key(prefix: str) -> str:
    """A number made when a form is shown, so submitting it twice acts once."""
    return f"{prefix}{secrets.token_hex(10)}"
