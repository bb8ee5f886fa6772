"""Red-packet refusals, with the stable codes clients switch on (see docs/redpackets.md)."""

from __future__ import annotations

from citywallet.platform.errors import Conflict, Forbidden, NotFound


class GroupNotFound(NotFound):
    """No such group, or not one of yours (outsiders get the same answer)."""

    code = "redpacket_group_not_found"


class MemberNotFound(NotFound):
    """That person is not a member of the group."""

    code = "redpacket_group_member_not_found"


class GroupOwnerOnly(Forbidden):
    """Only the group's owner may add or remove other members."""

    code = "redpacket_group_owner_only"


class OwnerCannotLeave(Conflict):
    """The owner stays a member of their own group."""

    code = "redpacket_group_owner_cannot_leave"


class GroupFull(Conflict):
    """The group already has as many members as it may."""

    code = "redpacket_group_full"


class PacketNotFound(NotFound):
    """No such red packet, or one you may not see (outsiders get the same answer)."""

    code = "redpacket_not_found"


class PacketEmpty(Conflict):
    """Every share of the packet has been claimed."""

    code = "redpacket_empty"
    title = "All claimed"


class AlreadyClaimed(Conflict):
    """You already claimed a share of this packet (one per person)."""

    code = "redpacket_already_claimed"
    title = "Already claimed"


class PacketExpired(Conflict):
    """The packet's claim period has ended; what was left went back to its sender."""

    code = "redpacket_expired"
    title = "Expired"


class NotClaimable(Forbidden):
    """The sender of a packet to one person cannot open it themself."""

    code = "redpacket_not_claimable"
