"""What a notice can be about, and the page each one links to (pure: no DB, no web)."""

from __future__ import annotations

from urllib.parse import quote

REDPACKET_RECEIVED = "redpacket_received"
SPLIT_REQUESTED = "split_requested"
CAMPAIGN_WON = "campaign_won"
CAMPAIGN_DRAWN = "campaign_drawn"  # the draw ran and this registration was not drawn
CHARGE_WAITING = "charge_waiting"
DEVICE_SIGNIN = "device_signin"
PAYMENT_REFUSED = "payment_refused"

# kind -> (object type named in the API, the page path with {ref})
KINDS: dict[str, tuple[str, str]] = {
    REDPACKET_RECEIVED: ("redpacket", "/app/redpackets/{ref}"),
    SPLIT_REQUESTED: ("split", "/app/splits/{ref}"),
    CAMPAIGN_WON: ("campaign", "/app/campaigns/{ref}"),
    CAMPAIGN_DRAWN: ("campaign", "/app/campaigns/{ref}"),
    CHARGE_WAITING: ("order", "/app/paycode/confirm/{ref}"),
    DEVICE_SIGNIN: ("session", "/app/me/devices"),
    PAYMENT_REFUSED: ("merchant", "/app/paycode"),  # ref: the merchant (no order was made)
}


def object_type(kind: str) -> str:
    """The kind of object a notice of ``kind`` is about (``redpacket``, ``split``, …)."""
    return KINDS[kind][0]


def link(kind: str, ref: str) -> str:
    """The resident's page for a notice's object (its id quoted into the path)."""
    return KINDS[kind][1].format(ref=quote(ref, safe=""))
