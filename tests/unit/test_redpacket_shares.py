"""Pure: a packet's shares drawn at sending, in the order claims take them (redpacket/shares.py).

The lucky shares are the double-mean split, uniformly shuffled, so that every claim position
expects exactly total / n. The statistical test below would fail for the split without the
shuffle: with few fen per share the double mean favours the first claims by half a fen.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from citywallet.platform.errors import InvalidInput
from citywallet.redpacket.rules import MAX_SHARES, equal_split, lucky_split
from citywallet.redpacket.shares import packet_shares

SEED = 20261207
seeds = st.integers(0, 2**32 - 1)
Split = Callable[[int, int, random.Random], list[int]]


@given(
    kind=st.sampled_from(["single", "equal", "lucky"]),
    n=st.integers(1, MAX_SHARES),
    extra=st.integers(0, 10**6),
    min_share=st.integers(1, 500),
    seed=seeds,
)
def test_shares_sum_exactly_and_respect_the_minimum(
    kind: str, n: int, extra: int, min_share: int, seed: int
) -> None:
    total = n * min_share + extra
    amounts = packet_shares(kind, total, n, random.Random(seed), min_share=min_share)
    assert len(amounts) == n
    assert sum(amounts) == total
    assert min(amounts) >= min_share
    if kind != "lucky":
        assert amounts == equal_split(total, n)  # the first claims get the odd fen


@given(n=st.integers(1, MAX_SHARES), extra=st.integers(0, 10**6), seed=seeds)
def test_lucky_shares_are_the_double_mean_split_reordered(n: int, extra: int, seed: int) -> None:
    total = n + extra
    drawn = packet_shares("lucky", total, n, random.Random(seed))
    assert sorted(drawn) == sorted(lucky_split(total, n, random.Random(seed)))


def test_refusals() -> None:
    with pytest.raises(ValueError, match="unknown red-packet kind"):
        packet_shares("huge", 100, 2, random.Random(SEED))
    for total, n, min_share in [(9, 10, 1), (19, 10, 2), (100, 0, 1), (100, 2, 0)]:
        with pytest.raises(InvalidInput) as caught:
            packet_shares("lucky", total, n, random.Random(SEED), min_share=min_share)
        assert caught.value.code == "share_too_small"


def _worst_position_bias(split: Split, total: int, n: int, packets: int) -> float:
    """The largest distance, in standard errors, of a claim position's mean share from
    ``total / n`` over ``packets`` seeded packets."""
    rng = random.Random(SEED)
    sums, squares = [0] * n, [0] * n
    for _ in range(packets):
        for position, share in enumerate(split(total, n, rng)):
            sums[position] += share
            squares[position] += share * share
    worst = 0.0
    for position in range(n):
        mean = sums[position] / packets
        variance = (squares[position] - packets * mean**2) / (packets - 1)
        worst = max(worst, abs(mean - total / n) / math.sqrt(variance / packets))
    return worst


@pytest.mark.parametrize(
    ("total", "n", "packets"), [(20, 10, 20_000), (15, 5, 20_000), (10_000, 10, 10_000)]
)
def test_every_claim_position_expects_the_same_share(total: int, n: int, packets: int) -> None:
    def shuffled(total: int, n: int, rng: random.Random) -> list[int]:
        return packet_shares("lucky", total, n, rng)

    assert _worst_position_bias(shuffled, total, n, packets) < 5


def test_the_statistic_sees_the_double_means_own_bias() -> None:
    """The check above can fail: the split without the shuffle expects 2.5 fen at the first
    position of 20 fen in 10 shares and 1.44 at the last (the rules tests compute it)."""
    assert _worst_position_bias(lucky_split, 20, 10, 20_000) > 20


def test_the_largest_share_lands_on_every_position_alike() -> None:
    rng, n, packets = random.Random(SEED), 8, 8_000
    seen = [0] * n
    for _ in range(packets):
        amounts = packet_shares("lucky", 8_000, n, rng)  # ties are rare: first largest
        seen[amounts.index(max(amounts))] += 1
    expected = packets / n
    chi_square = sum((count - expected) ** 2 / expected for count in seen)
    assert chi_square < 24.3  # the 0.1 % critical value with 7 degrees of freedom
