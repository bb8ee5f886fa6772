"""RFC 6962 Merkle trees and the stand-alone inclusion-proof verifier (pure, no database).

``merkle_root`` and ``audit_path`` are checked against a naive transcription of the RFC's
recursive definitions (MTH and PATH, RFC 6962 §2.1) and against the Certificate Transparency
test vectors; ``root_from_inclusion_path`` and ``verify_inclusion_proof`` are checked to
accept every honest proof and to reject tampered ones.
"""

from __future__ import annotations

import copy
import hashlib
import random
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from citywallet.ledger.merkle import EMPTY_ROOT, audit_path, merkle_root
from citywallet.ledger.types import Transfer, TransferFlags
from citywallet.ledger.verifier import (
    PROOF_FORMAT,
    TRANSFER_FIELDS,
    ProofError,
    block_header_bytes,
    canonical_json,
    leaf_hash,
    node_hash,
    root_from_inclusion_path,
    transfer_leaf_hash,
    verify_inclusion_proof,
)

# --- a naive reference, straight from RFC 6962 §2.1 -----------------------------------------


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _k(n: int) -> int:
    """The largest power of two strictly smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def naive_mth(data: list[bytes]) -> bytes:
    """MTH(D[n]) over raw entries (the RFC hashes the leaves itself)."""
    n = len(data)
    if n == 0:
        return _sha256(b"")
    if n == 1:
        return _sha256(b"\x00" + data[0])
    k = _k(n)
    return _sha256(b"\x01" + naive_mth(data[:k]) + naive_mth(data[k:]))


def naive_path(m: int, data: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) over raw entries, leaf to root."""
    n = len(data)
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return [*naive_path(m, data[:k]), naive_mth(data[k:])]
    return [*naive_path(m - k, data[k:]), naive_mth(data[:k])]


def _random_entries(rng: random.Random, n: int) -> list[bytes]:
    """``n`` distinct entries of random length (0 to 40 bytes)."""
    entries: list[bytes] = []
    while len(entries) < n:
        entry = rng.randbytes(rng.randint(0, 40))
        if entry not in entries:
            entries.append(entry)
    return entries


def _flip(data: bytes, bit: int = 0) -> bytes:
    """``data`` with one bit flipped."""
    out = bytearray(data)
    out[bit // 8 % len(out)] ^= 1 << (bit % 8)
    return bytes(out)


# --- Certificate Transparency test vectors (RFC 6962 reference implementation) ------------

CT_ENTRIES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# (leaf index, tree size, audit path), from the CT reference tests (which number leaves from 1).
CT_INCLUSION = [
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]


def test_empty_tree_root_is_sha256_of_nothing() -> None:
    assert EMPTY_ROOT.hex() == CT_ROOTS[0]
    assert merkle_root([]).hex() == CT_ROOTS[0]
    assert naive_mth([]).hex() == CT_ROOTS[0]


def test_leaf_and_node_hashes_use_the_rfc_prefixes() -> None:
    assert leaf_hash(b"abc") == _sha256(b"\x00abc")
    assert node_hash(b"L" * 32, b"R" * 32) == _sha256(b"\x01" + b"L" * 32 + b"R" * 32)
    assert leaf_hash(b"") != EMPTY_ROOT  # a one-leaf tree never looks like an empty one


@pytest.mark.parametrize("size", range(len(CT_ROOTS)))
def test_ct_reference_roots(size: int) -> None:
    leaves = [leaf_hash(e) for e in CT_ENTRIES[:size]]
    assert merkle_root(leaves).hex() == CT_ROOTS[size]
    assert naive_mth(CT_ENTRIES[:size]).hex() == CT_ROOTS[size]  # the reference is right too


@pytest.mark.parametrize(("index", "size", "expected"), CT_INCLUSION)
def test_ct_reference_inclusion_paths(index: int, size: int, expected: list[str]) -> None:
    leaves = [leaf_hash(e) for e in CT_ENTRIES[:size]]
    path = audit_path(index, leaves)
    assert [h.hex() for h in path] == expected
    root = root_from_inclusion_path(leaves[index], index, size, path)
    assert root.hex() == CT_ROOTS[size]


def test_merkle_root_matches_naive_mth_for_sizes_0_to_70() -> None:
    rng = random.Random(6962)
    for size in range(71):
        for _ in range(3):
            entries = _random_entries(rng, size)
            leaves = [leaf_hash(e) for e in entries]
            assert merkle_root(leaves) == naive_mth(entries), f"size {size}"


def test_merkle_root_depends_on_every_leaf_and_on_order() -> None:
    rng = random.Random(1)
    for size in (2, 3, 5, 8, 13, 33):
        leaves = [leaf_hash(e) for e in _random_entries(rng, size)]
        root = merkle_root(leaves)
        for i in range(size):
            changed = [*leaves[:i], _flip(leaves[i], i), *leaves[i + 1 :]]
            assert merkle_root(changed) != root
        assert merkle_root(leaves[::-1]) != root
        assert merkle_root(leaves[:-1]) != root
        assert merkle_root([*leaves, leaves[-1]]) != root


def _expected_path_length(index: int, size: int) -> int:
    """len(PATH(index, D[size])), computed by walking the RFC's splits."""
    length = 0
    while size > 1:
        k = _k(size)
        if index < k:
            size = k
        else:
            index, size = index - k, size - k
        length += 1
    return length


def _fails(leaf: bytes, index: int, size: int, path: list[bytes], root: bytes) -> bool:
    """Whether verification against ``root`` fails (an error, or a different root)."""
    try:
        return root_from_inclusion_path(leaf, index, size, path) != root
    except ProofError:
        return True


@pytest.mark.parametrize("size", range(1, 65))
def test_every_audit_path_reproduces_the_root_and_tampering_fails(size: int) -> None:
    rng = random.Random(size)
    entries = _random_entries(rng, size)
    leaves = [leaf_hash(e) for e in entries]
    root = merkle_root(leaves)
    assert root == naive_mth(entries)
    for index in range(size):
        path = audit_path(index, leaves)
        assert path == naive_path(index, entries), f"PATH({index}, D[{size}])"
        assert len(path) == _expected_path_length(index, size)
        assert root_from_inclusion_path(leaves[index], index, size, path) == root
        # Any change to a path element, or to the leaf, leads elsewhere.
        for j in range(len(path)):
            bad_path = [*path[:j], _flip(path[j], 8 * j + 3), *path[j + 1 :]]
            assert _fails(leaves[index], index, size, bad_path, root)
        assert _fails(_flip(leaves[index], index), index, size, path, root)
        # Another leaf of the same tree, with this leaf's path, does not verify.
        if size > 1:
            other = (index + 1) % size
            assert _fails(leaves[other], index, size, path, root)
        # Any other index: an error, or a different root.
        for wrong in range(-1, size + 1):
            if wrong != index:
                assert _fails(leaves[index], wrong, size, path, root), (index, wrong)
        # Paths with a hash added or dropped.
        assert _fails(leaves[index], index, size, [*path, root], root)
        if path:
            assert _fails(leaves[index], index, size, path[:-1], root)
            assert _fails(leaves[index], index, size, path[1:], root)


@pytest.mark.parametrize("size", range(1, 40))
def test_a_path_of_the_wrong_length_for_the_tree_size_is_rejected(size: int) -> None:
    """tree_size decides the path's shape; a path that does not fit it is an error.

    (Another tree size may have the same shape for this index, e.g. index 0 in sizes 3 and
    4, and then the same root comes out: that is why ``tree_size`` is part of the signed
    block header, tested end to end below.)
    """
    rng = random.Random(1000 + size)
    leaves = [leaf_hash(e) for e in _random_entries(rng, size)]
    for index in range(size):
        path = audit_path(index, leaves)
        for other_size in range(index + 1, size + 40):
            if _expected_path_length(index, other_size) != len(path):
                with pytest.raises(ProofError):
                    root_from_inclusion_path(leaves[index], index, other_size, path)
        for bad_size in (0, index, -1):
            with pytest.raises(ProofError):
                root_from_inclusion_path(leaves[index], index, bad_size, path)


def test_audit_path_rejects_an_index_outside_the_tree() -> None:
    leaves = [leaf_hash(bytes([i])) for i in range(5)]
    for index in (-1, 5, 6):
        with pytest.raises(IndexError):
            audit_path(index, leaves)
    with pytest.raises(IndexError):
        audit_path(0, [])


# --- end to end: a proof exactly as blocks.inclusion_proof builds it -----------------------


def _transfer(i: int) -> Transfer:
    return Transfer(
        id=f"tr-{i}",
        debit_account_id=1 + i % 3,
        credit_account_id=10 + i % 4,
        amount=100 + i,
        ledger="CNY",
        code=4,
        flags=int(TransferFlags.PENDING) if i % 5 == 0 else 0,
        pending_id=None,
        timeout=30 if i % 5 == 0 else 0,
        reference=None if i % 2 else f"ref-{i}-é",
        timestamp=1_750_000_000_000_000 + i,
    )


def _raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _build_proof(key: Ed25519PrivateKey, transfers: list[Transfer], index: int) -> dict[str, Any]:
    """What seal_block stores and inclusion_proof returns, built without a database."""
    leaves = [leaf_hash(canonical_json(t.canonical())) for t in transfers]
    public = _raw_public(key)
    header = {
        "version": 1,
        "height": 7,
        "prev_hash": hashlib.sha256(b"block 6").hexdigest(),
        "merkle_root": merkle_root(leaves).hex(),
        "tree_size": len(leaves),
        "sealed_at": 1_750_000_001_000_000,
        "key_id": hashlib.sha256(public).hexdigest()[:16],
    }
    header_bytes = block_header_bytes(header)
    return {
        "format": PROOF_FORMAT,
        "transfer_id": transfers[index].id,
        "leaf_index": index,
        "leaf_hash": leaves[index].hex(),
        "audit_path": [h.hex() for h in audit_path(index, leaves)],
        "block": header,
        "block_hash": hashlib.sha256(header_bytes).hexdigest(),
        "signature": key.sign(header_bytes).hex(),
        "public_key": public.hex(),
    }


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


TRANSFERS = [_transfer(i) for i in range(11)]


def test_transfer_leaf_hash_matches_the_sealed_leaf() -> None:
    for t in TRANSFERS:
        fields = t.canonical()
        assert sorted(fields) == sorted(TRANSFER_FIELDS)
        assert transfer_leaf_hash(fields) == leaf_hash(canonical_json(fields))
        # Extra keys in a receipt do not change the leaf; only the sealed fields count.
        assert transfer_leaf_hash({**fields, "note": "x"}) == transfer_leaf_hash(fields)
    assert canonical_json({"b": 1, "a": "é"}) == '{"a":"é","b":1}'.encode()


@pytest.mark.parametrize("index", range(len(TRANSFERS)))
def test_honest_proof_verifies(key: Ed25519PrivateKey, index: int) -> None:
    proof = _build_proof(key, TRANSFERS, index)
    header = verify_inclusion_proof(proof, _raw_public(key), TRANSFERS[index].canonical())
    assert header == proof["block"]
    # Without a receipt, the proof still shows the leaf is in the signed block.
    assert verify_inclusion_proof(proof, _raw_public(key)) == proof["block"]


def test_wrong_public_key_is_rejected(key: Ed25519PrivateKey) -> None:
    proof = _build_proof(key, TRANSFERS, 3)
    other = _raw_public(Ed25519PrivateKey.generate())
    with pytest.raises(ProofError, match="signature"):
        verify_inclusion_proof(proof, other, TRANSFERS[3].canonical())
    # The key printed inside the proof is not trusted: only the pinned key counts.
    forged = _build_proof(Ed25519PrivateKey.generate(), TRANSFERS, 3)
    with pytest.raises(ProofError):
        verify_inclusion_proof(forged, _raw_public(key), TRANSFERS[3].canonical())


@pytest.mark.parametrize("field", TRANSFER_FIELDS)
def test_changed_transfer_field_is_rejected(key: Ed25519PrivateKey, field: str) -> None:
    proof = _build_proof(key, TRANSFERS, 4)
    receipt = TRANSFERS[4].canonical()
    value = receipt[field]
    if isinstance(value, int):
        receipt[field] = value + 1
    elif value is None:
        receipt[field] = "x"
    else:
        receipt[field] = str(value) + "x"
    with pytest.raises(ProofError, match="does not match"):
        verify_inclusion_proof(proof, _raw_public(key), receipt)


def test_receipt_of_another_transfer_in_the_block_is_rejected(key: Ed25519PrivateKey) -> None:
    proof = _build_proof(key, TRANSFERS, 4)
    with pytest.raises(ProofError):
        verify_inclusion_proof(proof, _raw_public(key), TRANSFERS[5].canonical())


def test_receipt_missing_a_field_is_rejected(key: Ed25519PrivateKey) -> None:
    proof = _build_proof(key, TRANSFERS, 4)
    receipt = TRANSFERS[4].canonical()
    del receipt["reference"]
    with pytest.raises(ProofError, match="missing"):
        verify_inclusion_proof(proof, _raw_public(key), receipt)


HEADER_CHANGES: list[tuple[str, Any]] = [
    ("version", 2),
    ("height", 8),
    ("prev_hash", hashlib.sha256(b"another block").hexdigest()),
    ("merkle_root", hashlib.sha256(b"another root").hexdigest()),
    ("tree_size", 12),
    ("tree_size", 10),
    ("sealed_at", 1_750_000_001_000_001),
    ("key_id", "0" * 16),
]


@pytest.mark.parametrize(("field", "value"), HEADER_CHANGES)
def test_changed_header_field_is_rejected(key: Ed25519PrivateKey, field: str, value: Any) -> None:
    for index in (0, 4, 10):
        proof = _build_proof(key, TRANSFERS, index)
        proof["block"][field] = value
        with pytest.raises(ProofError):
            verify_inclusion_proof(proof, _raw_public(key), TRANSFERS[index].canonical())


def test_changed_header_with_recomputed_block_hash_fails_the_signature(
    key: Ed25519PrivateKey,
) -> None:
    proof = _build_proof(key, TRANSFERS, 2)
    proof["block"]["sealed_at"] += 1
    proof["block_hash"] = hashlib.sha256(block_header_bytes(proof["block"])).hexdigest()
    with pytest.raises(ProofError, match="signature"):
        verify_inclusion_proof(proof, _raw_public(key), TRANSFERS[2].canonical())


def _tamper(proof: dict[str, Any], what: str) -> None:
    if what == "leaf_hash":
        proof["leaf_hash"] = _flip(bytes.fromhex(proof["leaf_hash"])).hex()
    elif what == "audit_path":
        proof["audit_path"][1] = _flip(bytes.fromhex(proof["audit_path"][1]), 77).hex()
    elif what == "path_dropped":
        proof["audit_path"].pop()
    elif what == "path_added":
        proof["audit_path"].append(proof["block"]["merkle_root"])
    elif what == "leaf_index":
        proof["leaf_index"] += 1
    elif what == "block_hash":
        proof["block_hash"] = _flip(bytes.fromhex(proof["block_hash"])).hex()
    elif what == "signature":
        proof["signature"] = _flip(bytes.fromhex(proof["signature"]), 100).hex()
    elif what == "signature_truncated":
        proof["signature"] = proof["signature"][:-2]
    else:
        raise AssertionError(what)


@pytest.mark.parametrize(
    "what",
    [
        "leaf_hash",
        "audit_path",
        "path_dropped",
        "path_added",
        "leaf_index",
        "block_hash",
        "signature",
        "signature_truncated",
    ],
)
def test_tampered_proof_is_rejected(key: Ed25519PrivateKey, what: str) -> None:
    proof = _build_proof(key, TRANSFERS, 4)
    verify_inclusion_proof(copy.deepcopy(proof), _raw_public(key))  # honest: passes
    _tamper(proof, what)
    with pytest.raises(ProofError):
        verify_inclusion_proof(proof, _raw_public(key))


@pytest.mark.parametrize("fmt", ["citywallet-inclusion-proof/2", "", None, "CITYWALLET"])
def test_wrong_format_is_rejected(key: Ed25519PrivateKey, fmt: str | None) -> None:
    proof = _build_proof(key, TRANSFERS, 1)
    proof["format"] = fmt
    with pytest.raises(ProofError, match="format"):
        verify_inclusion_proof(proof, _raw_public(key), TRANSFERS[1].canonical())
    del proof["format"]
    with pytest.raises(ProofError, match="format"):
        verify_inclusion_proof(proof, _raw_public(key), TRANSFERS[1].canonical())


def test_single_transfer_block(key: Ed25519PrivateKey) -> None:
    proof = _build_proof(key, TRANSFERS[:1], 0)
    assert proof["audit_path"] == []
    assert proof["block"]["merkle_root"] == proof["leaf_hash"]
    assert verify_inclusion_proof(proof, _raw_public(key), TRANSFERS[0].canonical())
    proof["leaf_index"] = 1
    with pytest.raises(ProofError):
        verify_inclusion_proof(proof, _raw_public(key), TRANSFERS[0].canonical())


MALFORMED: list[tuple[str, Any]] = [
    ("leaf_hash", None),  # missing
    ("leaf_hash", "zz"),
    ("audit_path", None),
    ("audit_path", ["not hex"]),
    ("leaf_index", "first"),
    ("block", None),  # missing
    ("block", []),
    ("block_hash", None),  # missing
    ("signature", None),  # missing
    ("signature", "xyz"),
]


@pytest.mark.parametrize(("field", "value"), MALFORMED)
def test_malformed_proof_raises_proof_error(key: Ed25519PrivateKey, field: str, value: Any) -> None:
    """A receipt checker catching ProofError must not crash on a garbled proof."""
    proof = _build_proof(key, TRANSFERS, 4)
    if value is None:
        del proof[field]
    else:
        proof[field] = value
    with pytest.raises(ProofError):
        verify_inclusion_proof(proof, _raw_public(key), TRANSFERS[4].canonical())
    with pytest.raises(ProofError):
        verify_inclusion_proof([], _raw_public(key))  # type: ignore[arg-type]
