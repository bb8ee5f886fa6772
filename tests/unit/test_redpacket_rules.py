"""Pure red-packet rules: packet limits, equal and lucky (double-mean) splits, best luck."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from citywallet.platform.errors import InvalidInput
from citywallet.redpacket.rules import (
    KINDS,
    MAX_PACKET,
    MAX_SHARES,
    MIN_SHARE,
    best_luck,
    equal_split,
    lucky_range,
    lucky_split,
    next_lucky_share,
    next_share,
    validate_packet,
)

SEED = 20261123
seeds = st.integers(0, 2**32 - 1)


@st.composite
def packets(draw: st.DrawFn, *, capped: bool | None = None) -> tuple[int, int, int | None]:
    """A feasible (total, shares, cap): cap is None, or between the mean and the total."""
    shares = draw(st.integers(1, MAX_SHARES))
    total = draw(st.integers(shares * MIN_SHARE, 10**7))
    use_cap = draw(st.booleans()) if capped is None else capped
    cap = draw(st.integers(math.ceil(total / shares), total)) if use_cap else None
    return total, shares, cap


# --- limits -------------------------------------------------------------------------------


def test_constants_follow_the_domain() -> None:
    assert (MIN_SHARE, MAX_PACKET, MAX_SHARES) == (1, 200_00, 100)


@pytest.mark.parametrize(
    ("total", "shares", "options", "code"),
    [
        (0, 1, {}, "invalid_amount"),
        (-100, 5, {}, "invalid_amount"),
        (100, 0, {}, "invalid_share_count"),
        (100, -1, {}, "invalid_share_count"),
        (MAX_PACKET + 1, 1, {}, "packet_too_large"),
        (5_000, 1, {"max_total": 4_999}, "packet_too_large"),
        (10_000, MAX_SHARES + 1, {}, "too_many_shares"),
        (100, 11, {"max_shares": 10}, "too_many_shares"),
        (100, 6, {"members": 5}, "too_many_shares"),
        (100, 1, {"members": 0}, "too_many_shares"),
        (9, 10, {}, "share_too_small"),
        (1_001, 10, {"cap": 100}, "cap_too_small"),
        (10, 1, {"cap": 0}, "cap_too_small"),
    ],
)
def test_validate_packet_refusals(
    total: int, shares: int, options: dict[str, int], code: str
) -> None:
    with pytest.raises(InvalidInput) as exc:
        validate_packet(total, shares, **options)
    assert exc.value.code == code


def test_validate_packet_accepts_the_edges() -> None:
    validate_packet(MAX_PACKET, 1)  # 200 yuan to one person
    validate_packet(MAX_SHARES, MAX_SHARES)  # 100 shares of 0.01
    validate_packet(100, 5, members=5)  # as many shares as members
    validate_packet(1_000, 10, cap=100)  # a cap that forces equal shares
    validate_packet(50_000, 200, max_total=50_000, max_shares=200)  # configured limits


@given(packets())
def test_a_valid_packet_can_always_be_split(packet: tuple[int, int, int | None]) -> None:
    total, shares, cap = packet
    validate_packet(total, shares, max_total=10**7, cap=cap)
    assert sum(equal_split(total, shares)) == total
    assert sum(lucky_split(total, shares, random.Random(SEED), cap=cap)) == total


# --- equal split --------------------------------------------------------------------------


@given(st.integers(1, 10**9), st.integers(1, 200))
def test_equal_split_is_exact_and_even(total: int, n: int) -> None:
    assume(total >= n)
    parts = equal_split(total, n)
    assert len(parts) == n
    assert sum(parts) == total
    assert max(parts) - min(parts) <= 1
    assert min(parts) >= MIN_SHARE
    assert parts == sorted(parts, reverse=True)  # the first shares carry the extra fen


def test_equal_split_examples_and_refusals() -> None:
    assert equal_split(100, 3) == [34, 33, 33]
    assert equal_split(10, 10) == [1] * 10
    for total, n, code in [(9, 10, "share_too_small"), (100, 0, "invalid_share_count")]:
        with pytest.raises(InvalidInput) as exc:
            equal_split(total, n)
        assert exc.value.code == code


# --- lucky split: properties ----------------------------------------------------------------


@given(packets(), seeds)
def test_lucky_split_sums_exactly_and_respects_every_bound(
    packet: tuple[int, int, int | None], seed: int
) -> None:
    total, n, cap = packet
    amounts = lucky_split(total, n, random.Random(seed), cap=cap)
    assert len(amounts) == n
    assert sum(amounts) == total
    assert min(amounts) >= MIN_SHARE
    if cap is not None:
        assert max(amounts) <= cap
    remaining = total
    for position, share in enumerate(amounts):
        shares_left = n - position
        if shares_left == 1:
            assert share == remaining  # the last share takes the rest
        else:
            high = max(1, 2 * remaining // shares_left)  # the double mean
            assert 1 <= share <= min(high, remaining - (shares_left - 1))
        remaining -= share
    assert remaining == 0


@given(packets(), seeds)
def test_lucky_split_is_next_lucky_share_claim_by_claim(
    packet: tuple[int, int, int | None], seed: int
) -> None:
    total, n, cap = packet
    at_once = lucky_split(total, n, random.Random(seed), cap=cap)
    rng = random.Random(seed)
    remaining, one_by_one = total, []
    for shares_left in range(n, 0, -1):
        share = next_lucky_share(remaining, shares_left, rng, cap=cap)
        one_by_one.append(share)
        remaining -= share
    assert one_by_one == at_once


@given(st.integers(1, 10**7), st.integers(1, MAX_SHARES), st.data())
def test_lucky_range_is_the_double_mean_rule(total: int, k: int, data: st.DataObject) -> None:
    assume(total >= k)
    low, high = lucky_range(total, k)
    if k == 1:
        assert (low, high) == (total, total)
    else:
        assert (low, high) == (1, min(max(1, 2 * total // k), total - (k - 1)))
    cap = data.draw(st.integers(math.ceil(total / k), total))
    low, high = lucky_range(total, k, cap=cap)
    assert 1 <= low <= high <= cap  # never empty under a feasible cap
    # whatever is drawn, the rest still fits the later shares: ≥ 1 fen and ≤ cap each
    for share in (low, high):
        assert k - 1 <= total - share <= (k - 1) * cap


def test_the_last_share_takes_the_rest_without_drawing() -> None:
    rng = random.Random(SEED)
    state = rng.getstate()
    assert next_lucky_share(1_234, 1, rng) == 1_234
    assert next_lucky_share(5, 5, rng) == 1  # forced: every share gets exactly 1 fen
    assert next_lucky_share(1_000, 10, rng, cap=100) == 100  # forced by the cap
    assert rng.getstate() == state  # forced shares use no randomness


def test_lucky_draws_cover_their_range_uniformly() -> None:
    rng = random.Random(SEED)
    draws = 50_000
    assert lucky_range(20, 4) == (1, 10)  # ⌊2·20/4⌋ = 10; the cap 20 − 3 = 17 does not bind
    counts = dict.fromkeys(range(1, 11), 0)
    for _ in range(draws):
        counts[next_lucky_share(20, 4, rng)] += 1  # KeyError if a draw left the range
    p = 1 / 10
    standard_error = math.sqrt(draws * p * (1 - p))  # of a binomial count
    for count in counts.values():
        assert abs(count - draws * p) <= 5 * standard_error


# --- lucky split: fair to every claim position --------------------------------------------


def test_every_claim_position_expects_the_same_share_statistically() -> None:
    total, n, packets_drawn = 10_000, 10, 20_000
    rng = random.Random(SEED)
    sums, squares = [0] * n, [0] * n
    for _ in range(packets_drawn):
        for position, share in enumerate(lucky_split(total, n, rng)):
            sums[position] += share
            squares[position] += share * share
    for position in range(n):
        mean = sums[position] / packets_drawn
        variance = (squares[position] - packets_drawn * mean**2) / (packets_drawn - 1)
        standard_error = math.sqrt(variance / packets_drawn)
        assert abs(mean - total / n) <= 5 * standard_error, (position, mean, standard_error)


def exact_position_means(total: int, n: int, cap: int | None = None) -> list[float]:
    """The exact expected share of each claim position: the distribution of what is left is
    carried from claim to claim (each draw spreads a state's weight evenly over a range of
    amounts, done with a difference array)."""
    left = [0.0] * (total + 1)
    left[total] = 1.0
    means = []
    for shares_left in range(n, 0, -1):
        spread = [0.0] * (total + 2)
        mean = 0.0
        for remaining, weight in enumerate(left):
            if weight == 0.0:
                continue
            low, high = lucky_range(remaining, shares_left, cap=cap)
            mean += weight * (low + high) / 2
            spread[remaining - high] += weight / (high - low + 1)
            spread[remaining - low + 1] -= weight / (high - low + 1)
        means.append(mean)
        running = 0.0
        for amount in range(total + 1):
            running += spread[amount]
            left[amount] = running if running > 1e-15 else 0.0
    return means


@pytest.mark.parametrize(
    ("total", "n"),
    [(10_000, 10), (20_000, 7), (1_000, 3), (100, 10), (11, 10), (5_000, 50), (20_000, 100)],
)
def test_every_claim_position_expects_the_same_share_exactly(total: int, n: int) -> None:
    means = exact_position_means(total, n)
    assert math.isclose(sum(means), total)
    # Whole fen bias each draw by up to half a fen (the range [1, ⌊2M/k⌋]) and the later
    # shares give it back: every position stays within 1.5 fen of total / n (0.62 fen at 10
    # shares, 1.22 at 100), against shares of tens to thousands of fen.
    for mean in means:
        assert abs(mean - total / n) < 1.5, means


def test_a_cap_keeps_the_split_exact_and_tight_caps_make_it_equal() -> None:
    rng = random.Random(SEED)
    assert lucky_split(1_000, 10, rng, cap=100) == [100] * 10
    assert lucky_split(1_000, 10, rng, cap=1_000) != [100] * 10
    for _ in range(2_000):
        amounts = lucky_split(10_000, 10, rng, cap=1_200)
        assert sum(amounts) == 10_000
        assert max(amounts) <= 1_200
    means = exact_position_means(2_000, 10, cap=250)
    assert math.isclose(sum(means), 2_000)
    assert all(mean <= 250 for mean in means)


def test_infeasible_lucky_draws_are_refused() -> None:
    rng = random.Random(SEED)
    calls: list[tuple[Callable[[], object], str]] = [
        (lambda: lucky_split(1_001, 10, rng, cap=100), "cap_too_small"),
        (lambda: lucky_split(9, 10, rng), "share_too_small"),
        (lambda: lucky_split(0, 1, rng), "invalid_amount"),
        (lambda: next_lucky_share(10, 0, rng), "invalid_share_count"),
        (lambda: next_lucky_share(3, 4, rng), "share_too_small"),
        (lambda: next_lucky_share(500, 2, rng, cap=200), "cap_too_small"),
    ]
    for call, code in calls:
        with pytest.raises(InvalidInput) as exc:
            call()
        assert exc.value.code == code


# --- best luck ----------------------------------------------------------------------------


def test_best_luck_examples() -> None:
    assert best_luck([]) is None
    assert best_luck([5]) == 0
    assert best_luck([3, 9, 2, 9]) == 1  # the first of a tie
    assert best_luck((1, 1, 1)) == 0


@given(st.lists(st.integers(1, 20_000), min_size=1, max_size=MAX_SHARES))
def test_best_luck_is_the_first_largest_share(amounts: list[int]) -> None:
    index = best_luck(amounts)
    assert index is not None
    assert amounts[index] == max(amounts)
    assert all(amount < amounts[index] for amount in amounts[:index])


# --- the share a claim gets (next_share) -------------------------------------------------


def _drawn(kind: str, total: int, n: int, rng: random.Random, min_share: int = 1) -> list[int]:
    shares, remaining = [], total
    for left in range(n, 0, -1):
        share = next_share(kind, remaining, left, rng, min_share=min_share)
        shares.append(share)
        remaining -= share
    return shares


@given(packets(capped=False), seeds)
def test_equal_shares_drawn_one_by_one_are_the_equal_split(
    packet: tuple[int, int, int | None], seed: int
) -> None:
    total, n, _cap = packet
    for kind in ("equal", "single"):
        assert _drawn(kind, total, n, random.Random(seed)) == equal_split(total, n)


@given(packets(capped=False), seeds)
def test_lucky_shares_drawn_one_by_one_are_the_lucky_split(
    packet: tuple[int, int, int | None], seed: int
) -> None:
    total, n, _cap = packet
    assert _drawn("lucky", total, n, random.Random(seed)) == lucky_split(
        total, n, random.Random(seed)
    )


@given(st.integers(1, MAX_SHARES), st.integers(1, 500), st.integers(0, 10**5), seeds)
def test_a_minimum_share_lifts_every_share_and_keeps_the_sum(
    n: int, min_share: int, extra: int, seed: int
) -> None:
    total = n * min_share + extra
    for kind in ("lucky", "equal"):
        shares = _drawn(kind, total, n, random.Random(seed), min_share)
        assert sum(shares) == total
        assert min(shares) >= min_share


def test_next_share_refuses_what_cannot_be_shared() -> None:
    rng = random.Random(SEED)
    with pytest.raises(ValueError, match="unknown red-packet kind"):
        next_share("huge", 100, 2, rng)
    with pytest.raises(InvalidInput) as caught:
        next_share("lucky", 99, 2, rng, min_share=50)
    assert caught.value.code == "share_too_small"
    with pytest.raises(InvalidInput):
        next_share("equal", 1, 2, rng)


@pytest.mark.parametrize("kind", ["single", "equal", "lucky"])
def test_no_kind_hands_out_a_share_below_the_minimum(kind: str) -> None:
    """10 fen in 2 shares cannot give each at least 6 fen, whatever the kind."""
    with pytest.raises(InvalidInput) as caught:
        next_share(kind, 10, 2, random.Random(SEED), min_share=6)
    assert caught.value.code == "share_too_small"
    assert str(caught.value) == "Every share is at least 6 fen."
    # Exactly enough is fine: each gets the minimum.
    assert next_share(kind, 12, 2, random.Random(SEED), min_share=6) == 6


@pytest.mark.parametrize("min_share", [0, -1])
def test_a_minimum_share_below_one_fen_is_refused(min_share: int) -> None:
    with pytest.raises(InvalidInput) as caught:
        next_share("equal", 10, 2, random.Random(SEED), min_share=min_share)
    assert caught.value.code == "share_too_small"


def test_next_share_with_the_default_minimum() -> None:
    assert next_share("equal", 2, 2, random.Random(SEED)) == 1
    assert next_share("single", 7, 1, random.Random(SEED)) == 7
    assert next_share("equal", 7, 2, random.Random(SEED)) == 4  # the first gets the odd fen
    assert next_share("lucky", 3, 1, random.Random(SEED)) == 3


@pytest.mark.parametrize(
    ("total", "shares", "options", "message"),
    [
        (0, 1, {}, "The amount must be positive."),
        (100, 0, {}, "A red packet has at least one share."),
        (MAX_PACKET + 1, 1, {}, "A red packet holds at most 200.00 yuan."),
        (10_000, MAX_SHARES + 1, {}, "A red packet has at most 100 shares."),
        (100, 6, {"members": 5}, "More shares (6) than the group has members (5)."),
        (9, 10, {}, "Every share is at least 0.01 yuan."),
        (1_001, 10, {"cap": 100}, "10 shares of at most 1.00 yuan cannot hold 10.01 yuan."),
        (10, 1, {"cap": -5}, "1 shares of at most 0.00 yuan cannot hold 0.10 yuan."),
    ],
)
def test_validate_packet_says_why(
    total: int, shares: int, options: dict[str, int], message: str
) -> None:
    with pytest.raises(InvalidInput) as exc:
        validate_packet(total, shares, **options)
    assert str(exc.value) == message


def test_unknown_kind_is_a_bug() -> None:
    with pytest.raises(ValueError, match=r"^unknown red-packet kind 'huge'$"):
        next_share("huge", 100, 2, random.Random(SEED))
    assert KINDS == ("single", "equal", "lucky")
