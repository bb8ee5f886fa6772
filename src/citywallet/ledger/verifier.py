"""Stand-alone verifier of CityWallet ledger proofs: inclusion, checkpoints, consistency.

This module imports nothing from CityWallet: copy it anywhere, with the ``cryptography``
package installed, and check a receipt against the platform's published Ed25519 public key
(``GET /v1/ledger/public-key``). The formats are documented in ``docs/ledger-proofs.md``.

Hashing follows RFC 6962 / RFC 9162 (Certificate Transparency): leaf = SHA-256(0x00 || data),
node = SHA-256(0x01 || left || right). A transfer's leaf data is its canonical JSON.
Checkpoints are C2SP tlog-checkpoint bodies in C2SP signed-note envelopes (Ed25519).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

NOTE_SIGNATURE_PREFIX = "\u2014 "  # an em dash and a space start every signature line
ED25519_SIGNATURE_TYPE = b"\x01"

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
    log = proof.get("log")
    if log is not None:
        checkpoint = verify_checkpoint(log["checkpoint"], public_key)
        path = [bytes.fromhex(h) for h in log["audit_path"]]
        root = root_from_inclusion_path(leaf, int(log["leaf_index"]), checkpoint.tree_size, path)
        if root != checkpoint.root_hash:
            raise ProofError("the log audit path does not lead to the checkpoint's root")
    return dict(header)


# --- checkpoints (C2SP tlog-checkpoint in a C2SP signed note) --------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """A verified (or just parsed) checkpoint: the log's tree size and root at one moment."""

    origin: str
    tree_size: int
    root_hash: bytes
    extensions: tuple[str, ...]
    body: str  # the signed text, final newline included

    @property
    def time_us(self) -> int | None:
        """The ``time`` extension: microseconds since the epoch when it was signed."""
        for line in self.extensions:
            name, _, value = line.partition(" ")
            if name == "time" and value.isdigit():
                return int(value)
        return None


def checkpoint_body(origin: str, tree_size: int, root_hash: bytes, extensions: list[str]) -> str:
    """The checkpoint text that is signed: origin, size, base64 root, extension lines."""
    lines = [origin, str(tree_size), base64.b64encode(root_hash).decode(), *extensions]
    if any(not line or "\n" in line for line in lines) or tree_size < 0:
        raise ValueError("checkpoint lines must be non-empty single lines")
    return "\n".join(lines) + "\n"


def note_key_hash(key_name: str, public_key: bytes) -> bytes:
    """C2SP signed-note key ID of an Ed25519 key: SHA-256(name ‖ 0x0A ‖ 0x01 ‖ key)[:4]."""
    return hashlib.sha256(key_name.encode() + b"\n" + ED25519_SIGNATURE_TYPE + public_key).digest()[
        :4
    ]


def note_verifier_key(key_name: str, public_key: bytes) -> str:
    """The signed-note verifier key text: ``name+hex(key ID)+base64(0x01 ‖ key)``."""
    encoded = base64.b64encode(ED25519_SIGNATURE_TYPE + public_key).decode()
    return f"{key_name}+{note_key_hash(key_name, public_key).hex()}+{encoded}"


def signature_line(key_name: str, public_key: bytes, signature: bytes) -> str:
    """One signed-note signature line (with its newline)."""
    blob = base64.b64encode(note_key_hash(key_name, public_key) + signature).decode()
    return f"{NOTE_SIGNATURE_PREFIX}{key_name} {blob}\n"


def parse_checkpoint(note: str) -> tuple[Checkpoint, list[tuple[str, bytes, bytes]]]:
    """Split a signed checkpoint into its body and its signature lines (name, key ID, sig).

    Checks the syntax only; :func:`verify_checkpoint` also checks a signature.
    """
    try:
        body, sep, signatures = note.rpartition("\n\n")
        if not sep or not signatures.endswith("\n"):
            raise ProofError("not a signed note: no blank line before signatures")
        body += "\n"
        lines = body[:-1].split("\n")
        if len(lines) < 3:
            raise ProofError("a checkpoint has an origin, a tree size and a root hash")
        origin, size_text, root_text, *extensions = lines
        if not size_text.isdigit() or (size_text != "0" and size_text.startswith("0")):
            raise ProofError("checkpoint tree size is not a decimal number")
        root = base64.b64decode(root_text, validate=True)
        if len(root) != 32 or not origin or any(not line for line in extensions):
            raise ProofError("malformed checkpoint body")
        parsed: list[tuple[str, bytes, bytes]] = []
        for line in signatures[:-1].split("\n"):
            if not line.startswith(NOTE_SIGNATURE_PREFIX):
                raise ProofError("malformed signature line")
            name, _, blob = line[len(NOTE_SIGNATURE_PREFIX) :].rpartition(" ")
            raw = base64.b64decode(blob, validate=True)
            if not name or len(raw) < 5:
                raise ProofError("malformed signature line")
            parsed.append((name, raw[:4], raw[4:]))
    except binascii.Error as exc:
        raise ProofError(f"bad base64 in checkpoint: {exc}") from exc
    checkpoint = Checkpoint(origin, int(size_text), root, tuple(extensions), body)
    return checkpoint, parsed


def verify_checkpoint(note: str, public_key: bytes, *, origin: str | None = None) -> Checkpoint:
    """Parse a signed checkpoint and check that ``public_key`` signed it (and its origin)."""
    checkpoint, signatures = parse_checkpoint(note)
    if origin is not None and checkpoint.origin != origin:
        raise ProofError(f"checkpoint is for log {checkpoint.origin!r}, not {origin!r}")
    key = Ed25519PublicKey.from_public_bytes(public_key)
    for name, key_hash, signature in signatures:
        if key_hash != note_key_hash(name, public_key):
            continue  # another key's signature (a witness's cosignature, say)
        try:
            key.verify(signature, checkpoint.body.encode())
        except InvalidSignature as exc:
            raise ProofError("the checkpoint signature is not valid for this key") from exc
        return checkpoint
    raise ProofError("the checkpoint carries no signature by this public key")


def verify_consistency(
    first_size: int, second_size: int, first_root: bytes, second_root: bytes, proof: list[bytes]
) -> None:
    """Check that the tree of ``second_size`` extends the one of ``first_size`` (RFC 9162
    §2.1.4.2); raises :class:`ProofError` when the proof does not show it."""
    if not 0 <= first_size <= second_size:
        raise ProofError("consistency needs 0 <= first size <= second size")
    if first_size == second_size:
        if proof:
            raise ProofError("a proof between equal sizes must be empty")
        if first_root != second_root:
            raise ProofError("two different roots for the same tree size (a fork)")
        return
    if first_size == 0:
        if proof:
            raise ProofError("a proof from the empty tree must be empty")
        return
    if not proof:
        raise ProofError("empty consistency proof")
    path = list(proof)
    if first_size & (first_size - 1) == 0:  # an exact power of two: the old root is a node
        path.insert(0, first_root)
    fn, sn = first_size - 1, second_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof is too short")
    if fr != first_root:
        raise ProofError("the proof does not lead to the older root (history was rewritten)")
    if sr != second_root:
        raise ProofError("the proof does not lead to the newer root")


def verify_checkpoint_consistency(older: Checkpoint, newer: Checkpoint, proof: list[bytes]) -> None:
    """Check that ``newer`` only appended to ``older`` (in either order of arguments)."""
    if older.tree_size > newer.tree_size:
        older, newer = newer, older
    verify_consistency(older.tree_size, newer.tree_size, older.root_hash, newer.root_hash, proof)
