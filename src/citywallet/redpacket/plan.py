"""Pure: what sending a red packet decides before any money moves.

:func:`citywallet.redpacket.packets.send_packet` is thin database code around this module:
it looks up the sender, the recipient or the group, then asks :func:`plan_packet` for the
packet — its kind, its cleaned greeting, every share (:mod:`.shares`) and the **escrow
stripes** the shares are paid from — and writes what the plan says.

**Escrow stripes.** A packet's money sits in ``stripes`` escrow accounts of its own (all
``REDPACKET_ESCROW``, owner ``rpk_X``); the share at position ``p`` is paid from stripe
``(p − 1) mod stripes``. Claims take shares in position order, so the claims in flight at one
moment hold consecutive positions and post to different stripes: no escrow row is locked by
every claim of a hot packet. A small packet has one stripe (its claims rarely overlap and
one account is cheaper to open); the number grows with the shares, one stripe per
:data:`SHARES_PER_STRIPE`, up to :data:`MAX_STRIPES`. Stripe 0 is the packet's
``escrow_account_id``: the sender funds it and it funds the others at sending; at expiry the
others give their remainder back to it and it returns the total to the sender.

No database, no clock; amounts are fen.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from citywallet.money import Money
from citywallet.platform.errors import InvalidInput
from citywallet.redpacket.rules import validate_packet
from citywallet.redpacket.shares import packet_shares

GREETING_MAX = 40
DEFAULT_GREETING = "恭喜发财，大吉大利"
MAX_STRIPES = 16  # escrow accounts of one packet at most
SHARES_PER_STRIPE = 8  # a stripe per this many shares (rounded up)


@dataclass(frozen=True)
class PacketPlan:
    """A packet as it will be written: its shares by position and their escrow stripes."""

    kind: str
    greeting: str
    amounts: list[int]  # by position (index 0 is position 1)
    stripes: int

    @property
    def stripe_of_share(self) -> list[int]:
        """The stripe each share is paid from, by position."""
        return [stripe_of(position, self.stripes) for position in range(1, len(self.amounts) + 1)]

    @property
    def stripe_totals(self) -> list[int]:
        """What each stripe holds at sending."""
        return stripe_totals(self.amounts, self.stripes)


def clean_greeting(greeting: str) -> str:
    """Whitespace collapsed; empty means the traditional wish; at most 40 characters."""
    clean = " ".join(greeting.split()) or DEFAULT_GREETING
    if len(clean) > GREETING_MAX:
        raise InvalidInput(
            f"A greeting has at most {GREETING_MAX} characters.", code="greeting_too_long"
        )
    return clean


def choose_kind(*, to: str | None, group_id: str | None, kind: str | None, shares: int) -> str:
    """The packet's kind from what the sender asked for (``single`` to one person, ``lucky``
    by default to a group), refusing a combination that makes no sense."""
    if (to is None) == (group_id is None):
        raise InvalidInput(
            "Send a red packet either to one person (to) or to a group (group_id).",
            code="redpacket_target_required",
        )
    chosen = kind or ("single" if to is not None else "lucky")
    if to is not None and (chosen != "single" or shares != 1):
        raise InvalidInput(
            "A red packet to one person is one share of a fixed amount (kind 'single').",
            code="invalid_redpacket_kind",
        )
    if group_id is not None and chosen not in ("equal", "lucky"):
        raise InvalidInput(
            "A red packet to a group is 'lucky' or 'equal'.", code="invalid_redpacket_kind"
        )
    return chosen


def escrow_stripes(shares: int) -> int:
    """How many escrow accounts a packet of ``shares`` shares is paid from (1 … MAX_STRIPES)."""
    return max(1, min(MAX_STRIPES, -(-shares // SHARES_PER_STRIPE)))


def stripe_of(position: int, stripes: int) -> int:
    """The stripe (0-based) the share at ``position`` (1-based) is paid from."""
    return (position - 1) % stripes


def stripe_totals(amounts: list[int], stripes: int) -> list[int]:
    """What each stripe must hold: the sum of the shares it pays."""
    totals = [0] * stripes
    for position, amount in enumerate(amounts, start=1):
        totals[stripe_of(position, stripes)] += amount
    return totals


def plan_packet(
    *,
    kind: str,
    amount: int,
    shares: int,
    greeting: str,
    rng: random.Random,
    max_total: int,
    max_shares: int,
    min_share: int,
    members: int | None,
) -> PacketPlan:
    """Validate a packet of ``amount`` fen in ``shares`` shares (``members``: the group's
    size, counting the sender; None for a packet to one person) and draw its shares."""
    validate_packet(amount, shares, max_total=max_total, max_shares=max_shares, members=members)
    if amount < shares * min_share:
        raise InvalidInput(f"Every share is at least {Money(min_share)}.", code="share_too_small")
    amounts = packet_shares(kind, amount, shares, rng, min_share=min_share)
    return PacketPlan(
        kind=kind,
        greeting=clean_greeting(greeting),
        amounts=amounts,
        stripes=escrow_stripes(shares),
    )
