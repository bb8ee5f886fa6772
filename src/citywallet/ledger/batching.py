"""Which queued requests a group-commit committer may take: pure, no database.

Several committers (ledger/groupcommit.py) post batches at the same time. Two batches in
flight never share a key (an account id, a transfer id, a pending transfer's id), so they
never wait for each other's row locks, and requests that share a key are posted in the order
they were queued. :func:`take_free` is that rule; the property tests check it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol, TypeVar

from citywallet.ledger.types import TransferSpec

Key = int | str


class Keyed(Protocol):
    """A queued request: its transfers and the keys they touch."""

    @property
    def transfers(self) -> Sequence[TransferSpec]: ...

    @property
    def keys(self) -> frozenset[Key]: ...


def request_keys(transfers: Iterable[TransferSpec]) -> frozenset[Key]:
    """What a request's transfers touch: accounts (ints) and transfer ids (strings)."""
    keys: set[Key] = set()
    for spec in transfers:
        keys.add(spec.debit_account_id)
        keys.add(spec.credit_account_id)
        keys.add(spec.id)
        if spec.pending_id:
            keys.add(spec.pending_id)
    keys.discard(0)  # "no account" (a post or void names its pending transfer instead)
    keys.discard("")
    return frozenset(keys)


R = TypeVar("R", bound=Keyed)


def take_free(
    waiting: Sequence[R], busy: Iterable[frozenset[Key] | set[Key]], max_transfers: int
) -> tuple[list[R], list[R]]:
    """Split ``waiting`` (in queue order) into (taken, kept).

    A request is taken unless it shares a key with a batch in flight (``busy``) or with a
    request kept before it, or the taken transfers already reach ``max_transfers`` (the first
    request is always taken when nothing blocks it, however large). Both lists keep the
    queue's order.
    """
    blocked: set[Key] = set()
    for keys in busy:
        blocked |= keys
    taken: list[R] = []
    kept: list[R] = []
    size = 0
    for request in waiting:
        if (taken and size >= max_transfers) or not blocked.isdisjoint(request.keys):
            blocked |= request.keys
            kept.append(request)
            continue
        taken.append(request)
        size += len(request.transfers)
    return taken, kept
