"""Stand-alone verifier of CityWallet ledger inclusion proofs.

This module imports nothing from CityWallet: copy it anywhere, with the ``cryptography``
package installed, and check a receipt against the platform's published Ed25519 public key
(``GET /v1/ledger/public-key``). The format is documented in ``docs/ledger-proofs.md``.

Hashing follows RFC 6962 (Certificate Transparency): leaf = SHA-256(0x00 || data),
node = SHA-256(0x01 || left || right). A transfer's leaf data is its canonical JSON.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

PROOF_FORMAT = "citywallet-inclusion-proof/1"
TRANSFER_FIELDS = (
    "amount", "code", "credit_account_id", "debit_account_id", "flags", "id", "ledger",
    "pending_id", "reference", "timeout", "timestamp",
)  # fmt: skip


class ProofError(ValueError):
    """The proof does not show what it claims to."""


def canonical_json(value: Any) -> bytes:
    """Deterministic JSON: sorted keys, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def leaf_hash(data: bytes) -> bytes:
    """RFC 6962 leaf hash."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node hash."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def transfer_leaf_hash(transfer: dict[str, Any]) -> bytes:
    """The leaf hash of a transfer given as a dict of its sealed fields."""
    missing = [name for name in TRANSFER_FIELDS if name not in transfer]
    if missing:
        raise ProofError(f"transfer is missing fields: {', '.join(missing)}")
    return leaf_hash(canonical_json({name: transfer[name] for name in TRANSFER_FIELDS}))


def block_header_bytes(header: dict[str, Any]) -> bytes:
    """The exact bytes that are hashed and signed for a block header."""
    return canonical_json(header)


def root_from_inclusion_path(
    leaf: bytes, leaf_index: int, tree_size: int, path: list[bytes]
) -> bytes:
    """Recompute the Merkle root from a leaf and its audit path (RFC 9162 §2.1.3.2)."""
    if not 0 <= leaf_index < tree_size:
        raise ProofError("leaf index outside the tree")
    fn, sn, result = leaf_index, tree_size - 1, leaf
    for sibling in path:
        if sn == 0:
            raise ProofError("audit path is too long")
        if fn & 1 or fn == sn:
            result = node_hash(sibling, result)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            result = node_hash(result, sibling)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("audit path is too short")
    return result


def verify_inclusion_proof(
    proof: dict[str, Any], public_key: bytes, transfer: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Check a proof against a trusted Ed25519 public key (32 raw bytes).

    With ``transfer`` (the receipt's sealed fields), also check that the proof is about it.
    Returns the signed block header; raises :class:`ProofError` on any mismatch, and on a
    malformed proof (missing fields, bad hex, wrong types) too.
    """
    try:
        return _verify_inclusion_proof(proof, public_key, transfer)
    except ProofError:
        raise
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise ProofError(f"malformed proof: {exc.__class__.__name__}: {exc}") from exc


def _verify_inclusion_proof(
    proof: dict[str, Any], public_key: bytes, transfer: dict[str, Any] | None
) -> dict[str, Any]:
    if proof.get("format") != PROOF_FORMAT:
        raise ProofError(f"unknown proof format {proof.get('format')!r}")
    leaf = bytes.fromhex(proof["leaf_hash"])
    if transfer is not None and transfer_leaf_hash(transfer) != leaf:
        raise ProofError("the transfer does not match the proven leaf")
    header = proof["block"]
    path = [bytes.fromhex(h) for h in proof["audit_path"]]
    root = root_from_inclusion_path(leaf, int(proof["leaf_index"]), int(header["tree_size"]), path)
    if root.hex() != header["merkle_root"]:
        raise ProofError("the audit path does not lead to the block's Merkle root")
    header_bytes = block_header_bytes(header)
    if hashlib.sha256(header_bytes).hexdigest() != proof["block_hash"]:
        raise ProofError("block hash does not match the block header")
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(
            bytes.fromhex(proof["signature"]), header_bytes
        )
    except InvalidSignature as exc:
        raise ProofError("the block signature is not valid for this public key") from exc
    return dict(header)
