"""Pure: every share of a red packet, drawn when it is sent, in the order claims take them.

A packet's shares are rows made at sending (:mod:`citywallet.redpacket.packets`) and a claim
takes the free one with the lowest position, so what this module returns is exactly what
the first, second, … claim will get. Two kinds:

* ``single`` and ``equal``: ``rules.equal_split`` in position order — the first claims get
  the odd fen, as documented for equal packets (shares differ by at most 1 fen);
* ``lucky``: the double-mean split (``rules.lucky_split``) and then a uniformly random
  permutation. The double mean alone expects the same amount at every position only within
  about a fen (whole fen bias each draw, the last shares give it back); after a uniform
  shuffle every position holds each drawn share with probability 1/n, so every claim
  position expects exactly ``total / n`` — whoever opens first, last or in between.

A minimum share above 1 fen lifts every share by ``min_share − 1`` over a split of what is
left above that floor, so shares still sum exactly and each is at least ``min_share``.
Randomness comes from the caller: a seeded ``random.Random`` in tests,
``random.SystemRandom`` in production (the permutation too), so no one can predict which
position holds the large share.
"""

from __future__ import annotations

import random

from citywallet.platform.errors import InvalidInput
from citywallet.redpacket.rules import KINDS, MIN_SHARE, equal_split, lucky_split


def packet_shares(
    kind: str, total: int, n: int, rng: random.Random, *, min_share: int = MIN_SHARE
) -> list[int]:
    """The ``n`` shares of a packet of ``total`` fen, by claim position (first claim first)."""
    if kind not in KINDS:
        raise ValueError(f"unknown red-packet kind {kind!r}")
    if min_share < MIN_SHARE or n < 1 or total < n * min_share:
        raise InvalidInput(f"Every share is at least {min_share} fen.", code="share_too_small")
    if kind != "lucky":
        return equal_split(total, n)
    floor = min_share - MIN_SHARE
    amounts = [floor + share for share in lucky_split(total - n * floor, n, rng)]
    rng.shuffle(amounts)  # Fisher–Yates: every order equally likely
    return amounts
