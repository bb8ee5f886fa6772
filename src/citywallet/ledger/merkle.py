"""RFC 6962 / RFC 9162 Merkle trees: roots, inclusion and consistency proofs (pure).

Two ways in. From a list of leaf hashes (small trees: one block, tests). Or from a store of
complete subtree hashes — a *node* ``(level, index)`` is the root of the perfect subtree
over leaves ``[index·2^level, (index+1)·2^level)``. Every subtree of an RFC 6962 tree is the
concatenation of at most log₂ n such nodes (:func:`subtree_nodes`), so the root of the tree
of any size, and every hash of an inclusion or consistency proof, is computed from
O(log n) stored nodes each: proofs cost O(log² n) reads at worst, never O(n).
:class:`CompactRange` appends leaves and yields the nodes each append completes, which is
what sealing stores.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

from citywallet.ledger.verifier import node_hash

EMPTY_ROOT = hashlib.sha256(b"").digest()

Node = tuple[int, int]  # (level, index)
Range = tuple[int, int]  # leaves [lo, hi)


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) of already-hashed leaves (RFC 6962 §2.1)."""
    if not leaves:
        return EMPTY_ROOT
    level = list(leaves)
    # Bottom-up pairing gives the same tree as the recursive definition: an unpaired last
    # node is promoted unchanged, which is exactly how RFC 6962 splits at powers of two.
    while len(level) > 1:
        nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def subtree_nodes(lo: int, hi: int) -> list[Node]:
    """The perfect subtrees, largest first, that make up leaves ``[lo, hi)``.

    For a subtree of an RFC 6962 tree (``lo`` a multiple of the smallest power of two not
    below ``hi - lo``, as every range of :func:`inclusion_ranges` and
    :func:`consistency_ranges` is) its hash is :func:`fold` of these nodes' hashes.
    """
    if not 0 <= lo <= hi:
        raise ValueError("bad leaf range")
    nodes: list[Node] = []
    while lo < hi:
        size = 1 << ((hi - lo).bit_length() - 1)
        while lo % size:
            size >>= 1
        level = size.bit_length() - 1
        nodes.append((level, lo >> level))
        lo += size
    return nodes


def fold(hashes: Sequence[bytes]) -> bytes:
    """The root over consecutive perfect subtrees given largest first (a right fold)."""
    if not hashes:
        return EMPTY_ROOT
    result = hashes[-1]
    for left in reversed(hashes[:-1]):
        result = node_hash(left, result)
    return result


def inclusion_ranges(index: int, size: int) -> list[Range]:
    """The subtrees whose hashes form PATH(index, D[size]) (RFC 9162 §2.1.3.1), leaf first."""
    if not 0 <= index < size:
        raise IndexError("leaf index outside the tree")
    ranges: list[Range] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo += k
    ranges.reverse()
    return ranges


def consistency_ranges(first: int, second: int) -> list[Range]:
    """The subtrees whose hashes form PROOF(first, D[second]) (RFC 9162 §2.1.4.1).

    Empty when ``first`` is 0 or equals ``second``: nothing needs proving.
    """
    if not 0 <= first <= second:
        raise ValueError("consistency needs 0 <= first <= second")
    if first in (0, second):
        return []
    ranges: list[Range] = []
    lo, hi, whole = 0, second, True
    while True:
        if first - lo == hi - lo:
            if not whole:  # the old tree's root is a node here: the verifier needs it
                ranges.append((lo, hi))
            break
        k = _split(hi - lo)
        if first - lo <= k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo += k
            whole = False
    ranges.reverse()
    return ranges


def audit_path(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]): the sibling hashes from leaf ``index`` up to the root."""
    return [merkle_root(leaves[lo:hi]) for lo, hi in inclusion_ranges(index, len(leaves))]


def consistency_proof(first: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PROOF(first, D[n]) computed from the leaves themselves."""
    return [merkle_root(leaves[lo:hi]) for lo, hi in consistency_ranges(first, len(leaves))]


def range_hashes(ranges: Sequence[Range], node: Callable[[Node], bytes]) -> list[bytes]:
    """The hash of each subtree in ``ranges``, from stored perfect-subtree hashes."""
    return [fold([node(n) for n in subtree_nodes(lo, hi)]) for lo, hi in ranges]


def nodes_for(ranges: Iterable[Range]) -> set[Node]:
    """Every stored node that :func:`range_hashes` will ask for (to read them in one go)."""
    return {n for lo, hi in ranges for n in subtree_nodes(lo, hi)}


class CompactRange:
    """The perfect subtrees covering leaves ``[0, size)``: enough to append and to get roots."""

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        nodes = subtree_nodes(0, size)
        if len(nodes) != len(hashes):
            raise ValueError(f"a tree of {size} leaves has {len(nodes)} frontier nodes")
        self.size = size
        self._stack = [(level, index, h) for (level, index), h in zip(nodes, hashes, strict=True)]

    @property
    def hashes(self) -> list[bytes]:
        """The frontier hashes, largest subtree first."""
        return [h for _, _, h in self._stack]

    def root(self) -> bytes:
        """MTH of the leaves appended so far."""
        return fold(self.hashes)

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add one leaf; returns the nodes it completes (the leaf itself first)."""
        entry = (0, self.size, leaf)
        completed = [entry]
        while self._stack and self._stack[-1][0] == entry[0]:
            level, index, left = self._stack.pop()
            entry = (level + 1, index >> 1, node_hash(left, entry[2]))
            completed.append(entry)
        self._stack.append(entry)
        self.size += 1
        return completed
