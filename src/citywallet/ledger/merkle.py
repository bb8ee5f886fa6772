"""Building RFC 6962 Merkle trees: roots and audit paths (pure)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from citywallet.ledger.verifier import node_hash

EMPTY_ROOT = hashlib.sha256(b"").digest()


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


def audit_path(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]): the sibling hashes from leaf ``index`` up to the root."""
    if not 0 <= index < len(leaves):
        raise IndexError("leaf index outside the tree")
    path: list[bytes] = []
    lo, hi, m = 0, len(leaves), index
    stack: list[bytes] = []
    while hi - lo > 1:
        k = _split(hi - lo)
        if m < k:
            stack.append(merkle_root(leaves[lo + k : hi]))
            hi = lo + k
        else:
            stack.append(merkle_root(leaves[lo : lo + k]))
            lo, m = lo + k, m - k
    path.extend(reversed(stack))
    return path
