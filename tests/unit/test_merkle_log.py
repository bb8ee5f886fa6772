"""The global log's pure parts: consistency proofs (RFC 9162 §2.1.4), proofs from stored
subtree nodes, the compact range that sealing appends with, and signed checkpoints
(C2SP tlog-checkpoint in a C2SP signed note), all checked against naive transcriptions of
the RFC and against tampering."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from citywallet.ledger.merkle import (
    EMPTY_ROOT,
    CompactRange,
    audit_path,
    consistency_proof,
    consistency_ranges,
    inclusion_ranges,
    merkle_root,
    nodes_for,
    range_hashes,
    subtree_nodes,
)
from citywallet.ledger.verifier import (
    Checkpoint,
    ProofError,
    checkpoint_body,
    leaf_hash,
    node_hash,
    note_key_hash,
    note_verifier_key,
    parse_checkpoint,
    root_from_inclusion_path,
    signature_line,
    verify_checkpoint,
    verify_checkpoint_consistency,
    verify_consistency,
)


def _leaves(n: int, salt: bytes = b"") -> list[bytes]:
    return [leaf_hash(salt + i.to_bytes(4, "big")) for i in range(n)]


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def naive_subproof(m: int, d: list[bytes], whole: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) exactly as RFC 9162 §2.1.4.1 writes it."""
    n = len(d)
    if m == n:
        return [] if whole else [merkle_root(d)]
    k = _k(n)
    if m <= k:
        return [*naive_subproof(m, d[:k], whole), merkle_root(d[k:])]
    return [*naive_subproof(m - k, d[k:], False), merkle_root(d[:k])]


def _flip(value: bytes) -> bytes:
    return bytes([value[0] ^ 1]) + value[1:]


# --- consistency proofs ----------------------------------------------------------------------


@pytest.mark.parametrize("n", range(1, 41))
def test_consistency_proof_matches_the_rfc_definition(n: int) -> None:
    leaves = _leaves(n)
    for m in range(1, n):
        assert consistency_proof(m, leaves) == naive_subproof(m, leaves, True), (m, n)
    assert consistency_proof(n, leaves) == []
    assert consistency_proof(0, leaves) == []


@pytest.mark.parametrize("n", range(1, 49))
def test_every_consistency_proof_verifies_and_any_alteration_fails(n: int) -> None:
    leaves = _leaves(n)
    new_root = merkle_root(leaves)
    for m in range(1, n + 1):
        old_root = merkle_root(leaves[:m])
        proof = consistency_proof(m, leaves)
        verify_consistency(m, n, old_root, new_root, proof)
        with pytest.raises(ProofError):
            verify_consistency(m, n, _flip(old_root), new_root, proof)
        with pytest.raises(ProofError):
            verify_consistency(m, n, old_root, _flip(new_root), proof)
        for i in range(len(proof)):
            bad = [*proof[:i], _flip(proof[i]), *proof[i + 1 :]]
            with pytest.raises(ProofError):
                verify_consistency(m, n, old_root, new_root, bad)
        if proof:
            with pytest.raises(ProofError):
                verify_consistency(m, n, old_root, new_root, proof[:-1])
            with pytest.raises(ProofError):
                verify_consistency(m, n, old_root, new_root, [*proof, proof[-1]])
        for other in (m - 1, m + 1):
            if 1 <= other <= n and other != m:
                with pytest.raises(ProofError):
                    verify_consistency(other, n, old_root, new_root, proof)


@given(
    n=st.integers(min_value=2, max_value=300),
    data=st.data(),
)
def test_a_rewritten_old_leaf_is_a_fork_no_proof_hides(n: int, data: st.DataObject) -> None:
    leaves = _leaves(n)
    m = data.draw(st.integers(min_value=1, max_value=n - 1))
    victim = data.draw(st.integers(min_value=0, max_value=m - 1))
    witnessed_root = merkle_root(leaves[:m])  # what a witness kept
    forged = list(leaves)
    forged[victim] = leaf_hash(b"changed amount")
    # The forger serves an honest proof of the forged tree; it cannot reach the witness's root.
    with pytest.raises(ProofError):
        verify_consistency(m, n, witnessed_root, merkle_root(forged), consistency_proof(m, forged))
    verify_consistency(m, n, witnessed_root, merkle_root(leaves), consistency_proof(m, leaves))


def test_equal_sizes_need_equal_roots_and_no_proof() -> None:
    root = merkle_root(_leaves(5))
    verify_consistency(5, 5, root, root, [])
    with pytest.raises(ProofError, match="fork"):
        verify_consistency(5, 5, root, _flip(root), [])
    with pytest.raises(ProofError):
        verify_consistency(5, 5, root, root, [root])
    with pytest.raises(ProofError):
        verify_consistency(6, 5, root, root, [])
    verify_consistency(0, 5, EMPTY_ROOT, root, [])
    with pytest.raises(ValueError, match="first <= second"):
        consistency_ranges(6, 5)


# --- proofs from stored subtree nodes --------------------------------------------------------


def _store(leaves: list[bytes]) -> dict[tuple[int, int], bytes]:
    tree = CompactRange()
    store: dict[tuple[int, int], bytes] = {}
    for leaf in leaves:
        for level, index, h in tree.append(leaf):
            assert (level, index) not in store
            store[(level, index)] = h
    return store


@given(st.integers(min_value=0, max_value=200))
def test_compact_range_roots_match_merkle_root_at_every_size(n: int) -> None:
    leaves = _leaves(n)
    tree = CompactRange()
    assert tree.root() == EMPTY_ROOT
    for i, leaf in enumerate(leaves):
        tree.append(leaf)
        assert tree.root() == merkle_root(leaves[: i + 1])
    resumed = CompactRange(tree.size, tree.hashes)
    resumed.append(leaf_hash(b"next"))
    tree.append(leaf_hash(b"next"))
    assert resumed.root() == tree.root()


def test_compact_range_refuses_a_frontier_of_the_wrong_shape() -> None:
    with pytest.raises(ValueError, match="frontier nodes"):
        CompactRange(3, [EMPTY_ROOT])


@given(n=st.integers(min_value=1, max_value=150), data=st.data())
def test_proofs_from_stored_nodes_equal_proofs_from_leaves(n: int, data: st.DataObject) -> None:
    leaves = _leaves(n)
    store = _store(leaves)
    size = data.draw(st.integers(min_value=1, max_value=n))
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    first = data.draw(st.integers(min_value=0, max_value=size))
    inclusion = inclusion_ranges(index, size)
    assert range_hashes(inclusion, store.__getitem__) == audit_path(index, leaves[:size])
    consistency = consistency_ranges(first, size)
    assert range_hashes(consistency, store.__getitem__) == consistency_proof(first, leaves[:size])
    # One read of a few nodes: O(log² n) at most, never the whole tree.
    assert len(nodes_for([*inclusion, *consistency])) <= 2 * n.bit_length() ** 2
    path = range_hashes(inclusion, store.__getitem__)
    assert root_from_inclusion_path(leaves[index], index, size, path) == merkle_root(leaves[:size])


def test_subtree_nodes_are_aligned_perfect_subtrees_covering_the_range() -> None:
    for lo in range(0, 40):
        for hi in range(lo, 70):
            covered: list[int] = []
            for level, index in subtree_nodes(lo, hi):
                covered.extend(range(index << level, (index + 1) << level))
            assert covered == list(range(lo, hi))
    assert subtree_nodes(0, 13) == [(3, 0), (2, 2), (0, 12)]


# --- checkpoints ---------------------------------------------------------------------------

ORIGIN = "wallet.example/ledger"


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def _note(key: Ed25519PrivateKey, size: int, root: bytes, origin: str = ORIGIN) -> str:
    body = checkpoint_body(origin, size, root, ["time 1796617508310203"])
    public = key.public_key().public_bytes_raw()
    return body + "\n" + signature_line(origin, public, key.sign(body.encode()))


def test_checkpoint_text_is_the_c2sp_format(key: Ed25519PrivateKey) -> None:
    root = merkle_root(_leaves(7))
    note = _note(key, 7, root)
    body, signature = note.split("\n\n")
    root_text = base64.b64encode(root).decode()
    assert body.split("\n") == [ORIGIN, "7", root_text, "time 1796617508310203"]
    assert signature.startswith("\u2014 " + ORIGIN + " ")
    assert signature.endswith("\n")
    blob = base64.b64decode(signature.split(" ")[-1])
    public = key.public_key().public_bytes_raw()
    expected_id = hashlib.sha256(ORIGIN.encode() + b"\n\x01" + public).digest()[:4]
    assert blob[:4] == expected_id == note_key_hash(ORIGIN, public)
    assert len(blob) == 4 + 64
    vkey = note_verifier_key(ORIGIN, public)
    encoded_key = base64.b64encode(b"\x01" + public).decode()
    assert vkey == f"{ORIGIN}+{expected_id.hex()}+{encoded_key}"
    checkpoint = verify_checkpoint(note, public, origin=ORIGIN)
    assert (checkpoint.tree_size, checkpoint.root_hash, checkpoint.time_us) == (
        7,
        root,
        1796617508310203,
    )


def test_a_tampered_or_foreign_checkpoint_is_rejected(key: Ed25519PrivateKey) -> None:
    public = key.public_key().public_bytes_raw()
    root = merkle_root(_leaves(7))
    note = _note(key, 7, root)
    with pytest.raises(ProofError, match="not valid"):
        verify_checkpoint(note.replace("\n7\n", "\n8\n", 1), public)
    forged_root = base64.b64encode(_flip(root)).decode()
    with pytest.raises(ProofError, match="not valid"):
        verify_checkpoint(note.replace(base64.b64encode(root).decode(), forged_root), public)
    other = Ed25519PrivateKey.generate()
    with pytest.raises(ProofError, match="no signature by this public key"):
        verify_checkpoint(_note(other, 7, root), public)
    with pytest.raises(ProofError, match="not 'another/log'"):
        verify_checkpoint(note, public, origin="another/log")
    for broken in (note.replace("\n\n", "\n"), note.replace("\u2014", "-"), "x\n\n"):
        with pytest.raises(ProofError):
            verify_checkpoint(broken, public)


def test_a_witness_cosignature_beside_the_log_signature_is_ignored(
    key: Ed25519PrivateKey,
) -> None:
    public = key.public_key().public_bytes_raw()
    note = _note(key, 3, merkle_root(_leaves(3)))
    witness = Ed25519PrivateKey.generate()
    body = parse_checkpoint(note)[0].body
    cosigned = note + signature_line(
        "witness.example", witness.public_key().public_bytes_raw(), witness.sign(body.encode())
    )
    assert verify_checkpoint(cosigned, public).tree_size == 3
    assert len(parse_checkpoint(cosigned)[1]) == 2


def test_checkpoint_consistency_catches_a_fork(key: Ed25519PrivateKey) -> None:
    public = key.public_key().public_bytes_raw()
    leaves = _leaves(20)
    old = verify_checkpoint(_note(key, 11, merkle_root(leaves[:11])), public)
    new = verify_checkpoint(_note(key, 20, merkle_root(leaves)), public)
    verify_checkpoint_consistency(old, new, consistency_proof(11, leaves))
    verify_checkpoint_consistency(new, old, consistency_proof(11, leaves))
    forked = [*leaves[:3], leaf_hash(b"rewritten"), *leaves[4:]]
    fork = Checkpoint(ORIGIN, 20, merkle_root(forked), (), "")
    with pytest.raises(ProofError):
        verify_checkpoint_consistency(old, fork, consistency_proof(11, forked))


def test_checkpoint_body_refuses_lines_that_would_break_the_format() -> None:
    with pytest.raises(ValueError, match="single lines"):
        checkpoint_body("a\nb", 1, EMPTY_ROOT, [])
    with pytest.raises(ValueError, match="non-empty"):
        checkpoint_body(ORIGIN, 1, EMPTY_ROOT, [""])
    assert node_hash(EMPTY_ROOT, EMPTY_ROOT) != EMPTY_ROOT
