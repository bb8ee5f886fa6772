"""Sealing committed transfers into signed, hash-chained blocks, and inclusion proofs.

A block holds the RFC 6962 Merkle root of its transfers' leaf hashes (in ``seq`` order),
the hash of the previous block's header and an Ed25519 signature over its own header.
The same transfers are appended to the global log (``citywallet.ledger.log``), whose signed
checkpoint is published in the same transaction. Sealing runs as a periodic job beside
posting: it only reads unsealed transfers and writes their positions, so posting never
waits for it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import Connection

from citywallet.ledger.log import (
    append_leaves,
    latest_checkpoint,
    log_inclusion,
    publish_checkpoint,
)
from citywallet.ledger.merkle import audit_path, merkle_root
from citywallet.ledger.service import TRANSFER_COLUMNS, transfer_hash
from citywallet.ledger.types import ProgressFn, Transfer, VerifyReport
from citywallet.ledger.verifier import PROOF_FORMAT, block_header_bytes, parse_checkpoint
from citywallet.platform.clock import now_us
from citywallet.platform.crypto import Encryptor, get_or_create_secret
from citywallet.platform.db import UnitOfWork

GENESIS_PREV_HASH = "0" * 64
SIGNING_KEY_NAME = "ledger_signing_key"
BLOCK_VERSION = 1
DEFAULT_ORIGIN = "citywallet.example/ledger"
SEAL_LOCK_ID = 0x6C656467  # "ledg": the advisory lock that orders sealers on PostgreSQL


class NotSealedYet(Exception):
    """The transfer exists but is not in a block yet (sealing runs every few seconds)."""


@dataclass(frozen=True)
class LedgerSigner:
    """The platform's ledger key: signs block headers."""

    private_key: Ed25519PrivateKey
    origin: str = DEFAULT_ORIGIN  # the log's name in checkpoints, and the note key's name

    @property
    def public_key(self) -> bytes:
        """The raw 32-byte Ed25519 public key."""
        return self.private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @property
    def key_id(self) -> str:
        """A short, stable name for the key: the start of its SHA-256."""
        return hashlib.sha256(self.public_key).hexdigest()[:16]

    def sign(self, message: bytes) -> bytes:
        """An Ed25519 signature."""
        return self.private_key.sign(message)


def load_signer(
    uow: UnitOfWork, encryptor: Encryptor, *, origin: str = DEFAULT_ORIGIN
) -> LedgerSigner:
    """The ledger key, generated and stored encrypted on first use."""

    def create() -> tuple[bytes, str]:
        key = Ed25519PrivateKey.generate()
        public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return key.private_bytes_raw(), public.hex()

    raw, _public = get_or_create_secret(uow, encryptor, name=SIGNING_KEY_NAME, create=create)
    return LedgerSigner(Ed25519PrivateKey.from_private_bytes(raw), origin)


def block_header(row: Any) -> dict[str, Any]:
    """The signed header of a block row."""
    return {
        "version": BLOCK_VERSION,
        "height": int(row.height),
        "prev_hash": row.prev_hash,
        "merkle_root": row.merkle_root,
        "tree_size": int(row.tree_size),
        "sealed_at": int(row.sealed_at),
        "key_id": row.key_id,
    }


_BLOCK_COLUMNS = (
    "height, prev_hash, merkle_root, tree_size, sealed_at, key_id, block_hash, signature, leaves"
)


class SealingRefused(Exception):
    """An unsealed transfer's stored hash no longer matches its content."""


def seal_block(
    uow: UnitOfWork,
    signer: LedgerSigner,
    *,
    max_transfers: int = 10_000,
    witnesses: Sequence[str] = (),
) -> int:
    """Seal up to ``max_transfers`` unsealed transfers into the next block, append them to
    the log and publish its checkpoint (queued for ``witnesses``); returns how many."""
    conn = uow.session.connection()
    if conn.dialect.name == "postgresql":
        # Sealers take turns (a worker's periodic seal and `ledger seal` by hand may meet);
        # posting never waits on this lock. SQLite's writer lock already serialises them.
        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(%s)", (SEAL_LOCK_ID,))
    rows = conn.exec_driver_sql(
        _sql(
            conn,
            f"SELECT seq, hash, {TRANSFER_COLUMNS} FROM ledger_transfers "
            "WHERE block_height IS NULL ORDER BY seq LIMIT ?",
        ),
        (max_transfers,),
    ).all()
    if not rows:
        # Nothing new; a log without a checkpoint yet (just migrated) still gets one.
        publish_checkpoint(uow, signer, witnesses=witnesses)
        return 0
    leaves: list[bytes] = []
    for row in rows:
        leaf = transfer_hash(Transfer(*row[2:]))
        if leaf != bytes(row[1]):
            raise SealingRefused(f"transfer {row[2]} changed before it was sealed")
        leaves.append(leaf)
    last = conn.exec_driver_sql(
        f"SELECT {_BLOCK_COLUMNS} FROM ledger_blocks ORDER BY height DESC LIMIT 1"
    ).first()
    height = 0 if last is None else int(last.height) + 1
    header = {
        "version": BLOCK_VERSION,
        "height": height,
        "prev_hash": GENESIS_PREV_HASH if last is None else last.block_hash,
        "merkle_root": merkle_root(leaves).hex(),
        "tree_size": len(leaves),
        "sealed_at": now_us(),
        "key_id": signer.key_id,
    }
    header_bytes = block_header_bytes(header)
    conn.exec_driver_sql(
        _sql(
            conn,
            f"INSERT INTO ledger_blocks ({_BLOCK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        ),
        (
            height,
            header["prev_hash"],
            header["merkle_root"],
            len(leaves),
            header["sealed_at"],
            signer.key_id,
            hashlib.sha256(header_bytes).hexdigest(),
            signer.sign(header_bytes).hex(),
            b"".join(leaves),
        ),
    )
    start = append_leaves(uow, leaves)
    positions = [(height, i, start + i, int(row[0])) for i, row in enumerate(rows)]
    if conn.dialect.name == "postgresql":
        heights, indexes, log_indexes, seqs = (list(c) for c in zip(*positions, strict=True))
        conn.exec_driver_sql(
            "UPDATE ledger_transfers AS t SET block_height = v.h, leaf_index = v.i, "
            "log_index = v.g FROM unnest(%s::bigint[], %s::int[], %s::bigint[], %s::bigint[]) "
            "AS v(h, i, g, s) WHERE t.seq = v.s",
            (heights, indexes, log_indexes, seqs),
        )
    else:
        conn.exec_driver_sql(
            "UPDATE ledger_transfers SET block_height = ?, leaf_index = ?, log_index = ? "
            "WHERE seq = ?",
            positions,
        )
    publish_checkpoint(uow, signer, witnesses=witnesses)
    return len(rows)


def seal_all(
    uow: UnitOfWork,
    signer: LedgerSigner,
    *,
    max_transfers: int = 10_000,
    witnesses: Sequence[str] = (),
) -> int:
    """Seal until nothing is left; returns how many transfers were sealed."""
    total = 0
    while sealed := seal_block(uow, signer, max_transfers=max_transfers, witnesses=witnesses):
        total += sealed
    return total


def inclusion_proof(uow: UnitOfWork, *, transfer_id: str, signer: LedgerSigner) -> dict[str, Any]:
    """The proof that a transfer is in a signed block (format: docs/ledger-proofs.md).

    Raises ``LookupError`` for an unknown transfer and :class:`NotSealedYet` before sealing.
    """
    conn = uow.session.connection()
    row = conn.exec_driver_sql(
        _sql(conn, "SELECT block_height, leaf_index, log_index FROM ledger_transfers WHERE id = ?"),
        (transfer_id,),
    ).first()
    if row is None:
        raise LookupError(transfer_id)
    if row[0] is None:
        raise NotSealedYet(transfer_id)
    block = conn.exec_driver_sql(
        _sql(conn, f"SELECT {_BLOCK_COLUMNS} FROM ledger_blocks WHERE height = ?"), (row[0],)
    ).one()
    leaves = _split_leaves(bytes(block.leaves))
    index = int(row[1])
    proof: dict[str, Any] = {
        "format": PROOF_FORMAT,
        "transfer_id": transfer_id,
        "leaf_index": index,
        "leaf_hash": leaves[index].hex(),
        "audit_path": [h.hex() for h in audit_path(index, leaves)],
        "block": block_header(block),
        "block_hash": block.block_hash,
        "signature": block.signature,
        "public_key": signer.public_key.hex(),
    }
    note = latest_checkpoint(uow)
    if row[2] is not None and note is not None:
        size = parse_checkpoint(note)[0].tree_size
        path = log_inclusion(uow, log_index=int(row[2]), tree_size=size)
        proof["log"] = {
            "leaf_index": int(row[2]),
            "tree_size": size,
            "audit_path": [h.hex() for h in path],
            "checkpoint": note,
        }
    return proof


def _split_leaves(blob: bytes) -> list[bytes]:
    return [blob[i : i + 32] for i in range(0, len(blob), 32)]


def _sql(conn: Connection, statement: str) -> str:
    return statement.replace("?", "%s") if conn.dialect.name == "postgresql" else statement


def verify_blocks(
    uow: UnitOfWork,
    report: VerifyReport,
    *,
    public_key: bytes | None,
    progress: ProgressFn | None = None,
) -> None:
    """Checks 5–6 of ``citywallet.ledger.audit``, appending problems to ``report``."""
    conn = uow.session.connection()
    verifier = Ed25519PublicKey.from_public_bytes(public_key) if public_key else None
    total = int(conn.exec_driver_sql("SELECT COUNT(*) FROM ledger_blocks").scalar_one())
    prev_hash = GENESIS_PREV_HASH
    expected_height = 0
    blocks = conn.exec_driver_sql(f"SELECT {_BLOCK_COLUMNS} FROM ledger_blocks ORDER BY height")
    for block in blocks.all():
        height = int(block.height)
        report.blocks += 1
        if height != expected_height:
            report.problems.append(f"block {expected_height}: missing (next block is {height})")
        expected_height = height + 1
        header = block_header(block)
        header_bytes = block_header_bytes(header)
        if block.prev_hash != prev_hash:
            report.problems.append(f"block {height}: prev_hash does not match block {height - 1}")
        if hashlib.sha256(header_bytes).hexdigest() != block.block_hash:
            report.problems.append(f"block {height}: header changed (hash mismatch)")
        prev_hash = block.block_hash
        if verifier is not None:
            try:
                verifier.verify(bytes.fromhex(block.signature), header_bytes)
            except Exception:  # any failure means a bad signature
                report.problems.append(f"block {height}: signature is not valid")
        leaves = _split_leaves(bytes(block.leaves))
        if len(leaves) != block.tree_size or merkle_root(leaves).hex() != block.merkle_root:
            report.problems.append(f"block {height}: sealed leaf list altered (root mismatch)")
        _verify_block_transfers(conn, height, leaves, report)
        if progress:
            progress("blocks", report.blocks, total)
    _verify_orphans_and_unsealed(conn, report)


def _verify_orphans_and_unsealed(conn: Connection, report: VerifyReport) -> None:
    """Transfers sealed into a block that is gone, and unsealed transfers changed already."""
    orphans = conn.exec_driver_sql(
        "SELECT t.block_height, COUNT(*) FROM ledger_transfers t "
        "WHERE t.block_height IS NOT NULL AND NOT EXISTS "
        "(SELECT 1 FROM ledger_blocks b WHERE b.height = t.block_height) "
        "GROUP BY t.block_height ORDER BY t.block_height"
    ).all()
    for height, count in orphans:
        report.problems.append(
            f"block {height}: missing, but {count} transfers are sealed in it (deleted)"
        )
    unsealed = conn.exec_driver_sql(
        f"SELECT hash, {TRANSFER_COLUMNS} FROM ledger_transfers "
        "WHERE block_height IS NULL ORDER BY seq"
    ).all()
    for row in unsealed:
        transfer = Transfer(*row[1:])
        if transfer_hash(transfer) != bytes(row[0]):
            report.problems.append(
                f"transfer {transfer.id}: content does not match its stored hash "
                "(not sealed yet; sealing would refuse it)"
            )


def _verify_block_transfers(
    conn: Connection, height: int, leaves: list[bytes], report: VerifyReport
) -> None:
    rows = conn.exec_driver_sql(
        _sql(
            conn,
            f"SELECT seq, leaf_index, hash, {TRANSFER_COLUMNS} FROM ledger_transfers "
            "WHERE block_height = ? ORDER BY leaf_index",
        ),
        (height,),
    ).all()
    position = {leaf: i for i, leaf in enumerate(leaves)}
    seen: set[int] = set()
    last_seq = -1
    for row in rows:
        seq, transfer = int(row[0]), Transfer(*row[3:])
        report.sealed_transfers += 1
        if row[1] is None:
            report.problems.append(
                f"transfer {transfer.id}: sealed in block {height} but has no leaf position"
            )
            continue
        index = int(row[1])
        seen.add(index)
        content = transfer_hash(transfer)
        if index >= len(leaves):
            report.problems.append(
                f"transfer {transfer.id}: claims leaf {index} of block "
                f"{height}, which has only {len(leaves)}"
            )
            continue
        if content != leaves[index]:
            other = position.get(content)
            if other is not None:
                report.problems.append(
                    f"transfer {transfer.id}: moved from leaf {other} to leaf {index} of block "
                    f"{height} (reordered)"
                )
            else:
                report.problems.append(
                    f"transfer {transfer.id}: content changed since sealing in block {height} "
                    f"(leaf {index})"
                )
        elif bytes(row[2]) != content:
            report.problems.append(f"transfer {transfer.id}: stored hash column altered")
        if seq < last_seq:
            report.problems.append(
                f"transfer {transfer.id}: sequence order differs from sealed order in block "
                f"{height} (reordered)"
            )
        last_seq = seq
    for index in sorted(set(range(len(leaves))) - seen):
        report.problems.append(
            f"block {height}: sealed leaf {index} ({leaves[index].hex()[:16]}…) has no "
            "transfer (deleted)"
        )
