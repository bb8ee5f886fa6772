"""The red-packet use cases, in one place: groups from ``groups``, sending and
viewing from ``packets``, claims from ``claims``, expiry from ``expiry``.

Functions take ``uow`` keyword-first and never commit; the caller runs each in one
``db.transact``. Sending checks the sender's payment PIN inside its transaction
(``send_packet(pin=…)`` under ``identity.run_confirmed``), as every payment does. A grab
is two steps so that a refused one never writes: :func:`check_claim` in a read-only unit
of work (:func:`checking`: autocommit on PostgreSQL), then :func:`take_share` in one write
transaction (:func:`grab` does both from a ``Database``; :func:`claim_packet` both in one
unit of work). The periodic job that returns what is unclaimed is
:func:`expire_packets` (``redpacket.expire`` in ``citywallet.tasks``).
"""

from __future__ import annotations

from citywallet.redpacket.claims import (
    ClaimResult,
    ClaimTicket,
    check_claim,
    checking,
    claim_packet,
    grab,
    take_share,
)
from citywallet.redpacket.expiry import expire_packets, return_transfer_id
from citywallet.redpacket.groups import (
    GroupPage,
    GroupView,
    MemberView,
    add_members,
    create_group,
    get_group,
    list_groups,
    remove_member,
)
from citywallet.redpacket.packets import (
    ClaimView,
    PacketPage,
    PacketView,
    get_packet,
    list_group_packets,
    list_packets,
    open_packets_count,
    send_packet,
)

__all__ = [
    "ClaimResult",
    "ClaimTicket",
    "ClaimView",
    "GroupPage",
    "GroupView",
    "MemberView",
    "PacketPage",
    "PacketView",
    "add_members",
    "check_claim",
    "checking",
    "claim_packet",
    "create_group",
    "expire_packets",
    "get_group",
    "get_packet",
    "grab",
    "list_group_packets",
    "list_groups",
    "list_packets",
    "open_packets_count",
    "remove_member",
    "return_transfer_id",
    "send_packet",
    "take_share",
]
