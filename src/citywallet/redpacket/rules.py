"""Pure red-packet rules: the limits of a packet, the equal split, the lucky split, best luck.

The lucky split is WeChat's "double mean" (DOMAIN.md §4). With ``M`` fen and ``k`` shares
left (``k > 1``) the next share is drawn uniformly from ``[1, max(1, ⌊2·M/k⌋)]`` fen, capped at
``M − (k − 1)`` so every share still to come can get at least 1 fen; the last share takes
the rest. Why this rule:

* the shares always sum to the total exactly and each is at least 1 fen, by construction;
* it is fair to every claim position: a draw uniform on ``[0, 2·M/k]`` expects ``M/k``, the
  current mean, which leaves the mean of what remains unchanged, so by induction every
  position expects ``total / n``. Whole fen shift this a little: ``[1, ⌊2·M/k⌋]`` expects up
  to half a fen more than ``M/k`` and the last shares give the drift back; the unit tests
  compute the expectations exactly and find every position within 1.5 fen of the mean in
  the packets they check (0.6 fen at 10 shares, 1.2 fen at 100);
* it needs no plan stored in advance: ``next_lucky_share`` draws one share at claim time from
  the amount and the number of shares left, so a service keeps just those two numbers per
  packet (as WeChat does); ``lucky_split`` draws a whole packet the same way at once.

An optional ``cap`` puts a ceiling on every share. The draw then stays in the feasible range
``[max(1, M − (k−1)·cap), min(cap, M − (k−1))]`` as well as under the double mean, so the
shares still sum exactly and what is left can always be shared out without breaking the cap
(``M ≤ k·cap`` holds at every step once it holds at the start). A tight cap pushes the split
towards equal shares, and the position fairness above then holds only approximately.

Randomness comes from the caller: a seeded ``random.Random`` in tests, ``random.SystemRandom``
in production so shares cannot be predicted. No database, no clock; amounts are fen.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from citywallet.money import allocate
from citywallet.platform.errors import InvalidInput

MIN_SHARE = 1  # fen: 0.01 yuan, the smallest share
MAX_PACKET = 20_000  # fen: 200 yuan per packet (WeChat's rule)
MAX_SHARES = 100  # default most shares in one packet; callers may configure their own


def validate_packet(
    total: int,
    shares: int,
    *,
    max_total: int = MAX_PACKET,
    max_shares: int = MAX_SHARES,
    members: int | None = None,
    cap: int | None = None,
) -> None:
    """Refuse a packet of ``total`` fen in ``shares`` shares that breaks a limit (codes stable)."""
    if total <= 0:
        raise InvalidInput("The amount must be positive.", code="invalid_amount")
    if shares < 1:
        raise InvalidInput("A red packet has at least one share.", code="invalid_share_count")
    if total > max_total:
        raise InvalidInput(
            f"A red packet holds at most {max_total / 100:.2f} yuan.", code="packet_too_large"
        )
    if shares > max_shares:
        raise InvalidInput(f"A red packet has at most {max_shares} shares.", code="too_many_shares")
    if members is not None and shares > members:
        raise InvalidInput(
            f"More shares ({shares}) than the group has members ({members}).",
            code="too_many_shares",
        )
    if total < shares * MIN_SHARE:
        raise InvalidInput("Every share is at least 0.01 yuan.", code="share_too_small")
    if cap is not None and (cap < MIN_SHARE or total > shares * cap):
        raise InvalidInput(
            f"{shares} shares of at most {max(cap, 0) / 100:.2f} yuan cannot hold "
            f"{total / 100:.2f} yuan.",
            code="cap_too_small",
        )


def _check_feasible(remaining: int, shares_left: int, cap: int | None) -> None:
    """What is left can be shared out: the packet checks minus the configurable limits."""
    validate_packet(
        remaining, shares_left, max_total=remaining, max_shares=shares_left, members=None, cap=cap
    )


def equal_split(total: int, n: int) -> list[int]:
    """``total`` in ``n`` shares differing by at most 1 fen (the first get the extra fen)."""
    _check_feasible(total, n, None)
    return allocate(total, [1] * n)


def lucky_range(remaining: int, shares_left: int, *, cap: int | None = None) -> tuple[int, int]:
    """The inclusive range in fen the next lucky share is drawn from (just the rest if last)."""
    _check_feasible(remaining, shares_left, cap)
    if shares_left == 1:
        return remaining, remaining
    low = MIN_SHARE
    high = min(max(MIN_SHARE, 2 * remaining // shares_left), remaining - (shares_left - 1))
    if cap is not None:
        # Leave no more than the later shares can hold under the cap. ``remaining ≤
        # shares_left·cap`` makes ``low ≤ remaining/shares_left ≤ high``: the range is never empty.
        low = max(low, remaining - (shares_left - 1) * cap)
        high = min(high, cap)
    return low, high


def next_lucky_share(
    remaining: int, shares_left: int, rng: random.Random, *, cap: int | None = None
) -> int:
    """One lucky share drawn at claim time from ``remaining`` fen and ``shares_left`` shares."""
    low, high = lucky_range(remaining, shares_left, cap=cap)
    return low if low == high else rng.randint(low, high)


def lucky_split(total: int, n: int, rng: random.Random, *, cap: int | None = None) -> list[int]:
    """A whole lucky packet: ``n`` shares drawn in claim order by ``next_lucky_share``."""
    _check_feasible(total, n, cap)
    amounts: list[int] = []
    remaining = total
    for shares_left in range(n, 0, -1):
        share = next_lucky_share(remaining, shares_left, rng, cap=cap)
        amounts.append(share)
        remaining -= share
    return amounts


KINDS = ("single", "equal", "lucky")


def next_share(
    kind: str,
    remaining: int,
    shares_left: int,
    rng: random.Random,
    *,
    min_share: int = MIN_SHARE,
) -> int:
    """The share the next claim of a packet gets, from what is left of it.

    ``single`` and ``equal``: ``equal_split`` drawn claim by claim (the first claims get the
    odd fen). ``lucky``: ``next_lucky_share``. A ``min_share`` above 1 fen lifts every share by
    ``min_share − 1`` over a lucky draw of what is left above that floor, so shares still sum
    exactly, each is at least ``min_share``, and the positions stay equally fair.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown red-packet kind {kind!r}")
    if min_share < MIN_SHARE or remaining < shares_left * min_share:
        raise InvalidInput(f"Every share is at least {min_share} fen.", code="share_too_small")
    if kind != "lucky":
        return equal_split(remaining, shares_left)[0]
    floor = min_share - MIN_SHARE
    return floor + next_lucky_share(remaining - shares_left * floor, shares_left, rng)


def best_luck(amounts: Sequence[int]) -> int | None:
    """Index of the largest share (the first on ties), or ``None`` if there are no shares."""
    if not amounts:
        return None
    return max(range(len(amounts)), key=amounts.__getitem__)
