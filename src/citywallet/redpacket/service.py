"""The red-packet use cases, in one place: groups from ``groups``, sending and
viewing from ``packets``, claims and expiry from ``claims``.

Functions take ``uow`` keyword-first and never commit; the caller runs each in one
``db.transact``. Sending confirms the sender's payment PIN first (``confirm_payment_pin``,
its own transaction), as every money movement does. The periodic job that returns what is
unclaimed is :func:`expire_packets` (``redpacket.expire`` in ``citywallet.tasks``).
"""

from __future__ import annotations

from citywallet.redpacket.claims import (
    ClaimResult,
    claim_packet,
    expire_packets,
    return_transfer_id,
)
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
    "ClaimView",
    "GroupPage",
    "GroupView",
    "MemberView",
    "PacketPage",
    "PacketView",
    "add_members",
    "claim_packet",
    "create_group",
    "expire_packets",
    "get_group",
    "get_packet",
    "list_group_packets",
    "list_groups",
    "list_packets",
    "open_packets_count",
    "remove_member",
    "return_transfer_id",
    "send_packet",
]
