"""Which queued requests a group-commit committer takes (ledger/batching.py), as properties."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from citywallet.ledger.batching import Key, request_keys, take_free
from citywallet.ledger.types import TransferFlags, TransferSpec


@dataclass(frozen=True)
class _Req:
    n: int  # queue position
    transfers: tuple[TransferSpec, ...]

    @property
    def keys(self) -> frozenset[Key]:
        return request_keys(self.transfers)


def _spec(tid: str, debit: int, credit: int, pending: str | None = None) -> TransferSpec:
    flags = TransferFlags.POST_PENDING if pending else TransferFlags.NONE
    return TransferSpec(tid, debit, credit, 1, "CNY", 1, flags=flags, pending_id=pending)


_transfer = st.builds(
    _spec,
    st.sampled_from(["t1", "t2", "t3", "t4", "t5", "t6"]),
    st.integers(0, 6),
    st.integers(0, 6),
    st.one_of(st.none(), st.sampled_from(["t1", "t2", "p9"])),
)
_queues = st.lists(st.lists(_transfer, min_size=1, max_size=3), max_size=12).map(
    lambda qs: [_Req(i, tuple(ts)) for i, ts in enumerate(qs)]
)
_busy = st.lists(
    st.frozensets(st.one_of(st.integers(1, 6), st.sampled_from(["t1", "t4", "p9"]))),
    max_size=3,
)


def test_keys_are_accounts_and_ids_never_the_empty_account() -> None:
    keys = request_keys([_spec("a", 3, 0, pending="p"), _spec("b", 3, 4)])
    assert keys == frozenset({3, 4, "a", "b", "p"})


@given(_queues, _busy, st.integers(1, 8))
def test_taken_requests_touch_nothing_in_flight_and_keep_per_key_order(
    waiting: list[_Req], busy: list[frozenset[Key]], max_transfers: int
) -> None:
    taken, kept = take_free(waiting, busy, max_transfers)
    # nothing lost, nothing doubled, queue order kept on both sides
    assert sorted(r.n for r in taken + kept) == [r.n for r in waiting]
    assert [r.n for r in taken] == sorted(r.n for r in taken)
    assert [r.n for r in kept] == sorted(r.n for r in kept)
    in_flight = frozenset().union(*busy)
    for request in taken:
        assert request.keys.isdisjoint(in_flight)
        # no request that waits and shares a key was queued before a taken one
        assert all(k.keys.isdisjoint(request.keys) for k in kept if k.n < request.n), (
            "a taken request overtook an earlier request on one of its keys"
        )
    # the size cap: only the first taken request may exceed it on its own
    if len(taken) > 1:
        assert sum(len(r.transfers) for r in taken[:-1]) < max_transfers


@given(_queues, st.integers(1, 8))
def test_with_nothing_in_flight_the_head_of_the_queue_is_always_taken(
    waiting: list[_Req], max_transfers: int
) -> None:
    taken, _kept = take_free(waiting, [], max_transfers)
    assert (taken[:1] == waiting[:1]) if waiting else taken == []
