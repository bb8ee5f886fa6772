"""The global log: one RFC 9162 Merkle tree over every sealed transfer, and its checkpoints.

Blocks are consecutive runs of this log. Each seal appends its leaves here, stores the
subtree nodes the append completed (``ledger_tree_nodes``: level 0 are the leaves), and
publishes a signed checkpoint (C2SP tlog-checkpoint text in a C2SP signed note) that is
kept forever in ``ledger_checkpoints`` and pushed to the configured witnesses through the
outbox. Roots and proofs read O(log n) stored nodes per hash, never the whole log.

A signature by the platform's own key cannot stop the platform from rewriting history and
signing again; a checkpoint held by someone else can. :func:`verify_log` recomputes the log
from the transfers' fields and compares it with every stored checkpoint and with checkpoints
kept elsewhere (``citywallet ledger verify --checkpoint``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import fields
from typing import TYPE_CHECKING

from sqlalchemy import func, insert, select, tuple_

from citywallet.ledger.merkle import (
    CompactRange,
    Node,
    consistency_ranges,
    inclusion_ranges,
    nodes_for,
    range_hashes,
    subtree_nodes,
)
from citywallet.ledger.models import CheckpointRow, TransferRow, TreeNode
from citywallet.ledger.service import transfer_hash
from citywallet.ledger.types import ProgressFn, Transfer, VerifyReport
from citywallet.ledger.verifier import (
    Checkpoint,
    ProofError,
    checkpoint_body,
    parse_checkpoint,
    signature_line,
    verify_checkpoint,
)
from citywallet.platform import outbox
from citywallet.platform.clock import now_us
from citywallet.platform.db import UnitOfWork

if TYPE_CHECKING:
    from citywallet.ledger.blocks import LedgerSigner

WITNESS_TOPIC = "ledger.checkpoint"
_BATCH = 5_000


class TreeSizeError(ValueError):
    """Sizes asked of the log that it does not have (or in the wrong order)."""

    def __init__(self, detail: str, *, code: str) -> None:
        super().__init__(detail)
        self.code = code


# --- writing -----------------------------------------------------------------------------


def log_size(uow: UnitOfWork) -> int:
    """How many leaves the log holds (one index lookup)."""
    last = uow.session.execute(select(func.max(TreeNode.idx)).where(TreeNode.level == 0))
    value = last.scalar_one()
    return 0 if value is None else int(value) + 1


def append_leaves(uow: UnitOfWork, leaves: Sequence[bytes]) -> int:
    """Append leaves to the log; returns the log index of the first."""
    size = log_size(uow)
    tree = CompactRange(size, _read_frontier(uow, size))
    rows = [
        {"level": level, "idx": index, "hash": h}
        for leaf in leaves
        for level, index, h in tree.append(leaf)
    ]
    if rows:
        uow.session.execute(insert(TreeNode), rows)
    return size


def publish_checkpoint(
    uow: UnitOfWork, signer: LedgerSigner, *, witnesses: Sequence[str] = ()
) -> str | None:
    """Sign and store a checkpoint of the log as it is now, unless the newest already is;
    queue it for every witness. Returns the signed note when one was published."""
    size = log_size(uow)
    newest = uow.session.execute(select(func.max(CheckpointRow.tree_size))).scalar_one()
    if size == 0 or (newest is not None and int(newest) == size):
        return None
    moment = now_us()
    root = CompactRange(size, _read_frontier(uow, size)).root()
    note = sign_checkpoint(signer, size, root, moment)
    uow.session.execute(
        insert(CheckpointRow).values(
            tree_size=size, root_hash=root.hex(), created_at=moment, note=note
        )
    )
    for target in witnesses:
        outbox.enqueue(
            uow, topic=WITNESS_TOPIC, payload={"target": target, "tree_size": size, "note": note}
        )
    return note


def sign_checkpoint(signer: LedgerSigner, size: int, root: bytes, moment: int) -> str:
    """The signed-note text of a checkpoint (format: docs/ledger-proofs.md)."""
    body = checkpoint_body(signer.origin, size, root, [f"time {moment}"])
    signature = signer.sign(body.encode())
    return body + "\n" + signature_line(signer.origin, signer.public_key, signature)


# --- reading ------------------------------------------------------------------------------


def latest_checkpoint(uow: UnitOfWork) -> str | None:
    """The newest published checkpoint (signed note), if any."""
    row = uow.session.execute(
        select(CheckpointRow.note).order_by(CheckpointRow.tree_size.desc()).limit(1)
    ).first()
    return None if row is None else str(row[0])


def checkpoint_at(uow: UnitOfWork, size: int) -> str | None:
    """The checkpoint published at exactly ``size`` leaves, if one was."""
    row = uow.session.get(CheckpointRow, size)
    return None if row is None else row.note


def log_inclusion(uow: UnitOfWork, *, log_index: int, tree_size: int) -> list[bytes]:
    """The audit path of leaf ``log_index`` in the log of ``tree_size`` leaves."""
    ranges = inclusion_ranges(log_index, tree_size)
    return _range_hashes(uow, ranges)


def consistency(uow: UnitOfWork, *, first: int, second: int) -> list[bytes]:
    """RFC 9162 consistency proof between two sizes of the log.

    Raises :class:`TreeSizeError` when ``first > second`` or the log is smaller than
    ``second``.
    """
    if first < 0 or first > second:
        raise TreeSizeError("Consistency needs 0 <= from <= to.", code="consistency_sizes_invalid")
    size = log_size(uow)
    if second > size:
        raise TreeSizeError(
            f"The log has {size} leaves; it has no tree of size {second}.",
            code="tree_size_unknown",
        )
    return _range_hashes(uow, consistency_ranges(first, second))


def _range_hashes(uow: UnitOfWork, ranges: list[tuple[int, int]]) -> list[bytes]:
    stored = _read_nodes(uow, nodes_for(ranges))
    return range_hashes(ranges, stored.__getitem__)


def _read_frontier(uow: UnitOfWork, size: int) -> list[bytes]:
    wanted = subtree_nodes(0, size)
    stored = _read_nodes(uow, set(wanted))
    return [stored[n] for n in wanted]


def _read_nodes(uow: UnitOfWork, wanted: set[Node]) -> dict[Node, bytes]:
    """The stored hashes of ``wanted`` nodes, in one query; a missing node is an error."""
    if not wanted:
        return {}
    rows = uow.session.execute(
        select(TreeNode.level, TreeNode.idx, TreeNode.hash).where(
            tuple_(TreeNode.level, TreeNode.idx).in_(sorted(wanted))
        )
    ).all()
    found = {(int(level), int(index)): bytes(h) for level, index, h in rows}
    missing = wanted - found.keys()
    if missing:
        raise LookupError(f"log tree nodes missing: {sorted(missing)[:5]}")
    return found


# --- verifying ----------------------------------------------------------------------------


def verify_log(
    uow: UnitOfWork,
    report: VerifyReport,
    *,
    public_key: bytes | None,
    outside: Sequence[Checkpoint] = (),
    progress: ProgressFn | None = None,
) -> None:
    """Recompute the log from the transfers' own fields and hold it to every checkpoint.

    Checks: log positions are 0..n-1 without gaps and every sealed transfer has one; the
    stored tree's frontier equals the recomputation (proofs are served from it); every stored
    checkpoint is validly signed and has the recomputed root at its size, and the newest one
    covers the whole log; every checkpoint kept elsewhere (``outside``) fits the log too.
    """
    tree = CompactRange()
    wanted = _checkpoint_sizes(uow, outside)
    roots: dict[int, bytes] = {}
    if 0 in wanted:
        roots[0] = tree.root()
    total = int(
        uow.session.execute(
            select(func.count()).select_from(TransferRow).where(TransferRow.log_index.is_not(None))
        ).scalar_one()
    )
    complete = True
    for log_index, transfer in _logged_transfers(uow):
        if log_index != tree.size:
            report.problems.append(
                f"log: position {tree.size} is missing (next transfer {transfer.id} is at "
                f"{log_index}): sealed transfers were deleted"
            )
            complete = False
            break
        tree.append(transfer_hash(transfer))
        if tree.size in wanted:
            roots[tree.size] = tree.root()
        if progress and tree.size % 10_000 == 0:
            progress("log", tree.size, total)
    unplaced = uow.session.execute(
        select(func.count())
        .select_from(TransferRow)
        .where(TransferRow.block_height.is_not(None), TransferRow.log_index.is_(None))
    ).scalar_one()
    if unplaced:
        report.problems.append(f"log: {unplaced} sealed transfers have no log position")
    before = len(report.problems)
    _check_stored_checkpoints(uow, tree.size, roots, public_key, report)
    if complete and len(report.problems) == before:
        _check_stored_tree(uow, tree, report)  # else it only repeats what was said
    for checkpoint in outside:
        problem = _misfit(checkpoint, tree.size, roots)
        if problem:
            report.problems.append(f"outside checkpoint {checkpoint.tree_size}: {problem}")


def _logged_transfers(uow: UnitOfWork) -> Iterator[tuple[int, Transfer]]:
    """Every transfer with a log position, in log order, read in batches (keyset)."""
    after = -1
    columns = [getattr(TransferRow, f.name) for f in fields(Transfer)]
    while True:
        rows = uow.session.execute(
            select(TransferRow.log_index, *columns)
            .where(TransferRow.log_index > after)
            .order_by(TransferRow.log_index)
            .limit(_BATCH)
        ).all()
        for row in rows:
            yield int(row[0]), Transfer(*row[1:])
        if len(rows) < _BATCH:
            return
        after = int(rows[-1][0])


def _checkpoint_sizes(uow: UnitOfWork, outside: Sequence[Checkpoint]) -> set[int]:
    stored = uow.session.execute(select(CheckpointRow.tree_size)).scalars()
    return {int(size) for size in stored} | {c.tree_size for c in outside}


def _check_stored_tree(uow: UnitOfWork, tree: CompactRange, report: VerifyReport) -> None:
    stored_size = log_size(uow)
    if stored_size != tree.size:
        report.problems.append(
            f"log: the stored tree has {stored_size} leaves but {tree.size} transfers are "
            "in the log"
        )
        return
    try:
        frontier = _read_frontier(uow, stored_size)
    except LookupError as exc:
        report.problems.append(f"log: {exc}")
        return
    if frontier != tree.hashes:
        report.problems.append(
            "log: the stored tree nodes differ from the transfers' recomputed hashes "
            "(proofs served from them would not verify)"
        )


def _check_stored_checkpoints(
    uow: UnitOfWork,
    size: int,
    roots: dict[int, bytes],
    public_key: bytes | None,
    report: VerifyReport,
) -> None:
    """Every stored checkpoint: signed, its columns match its note, and it fits the log.
    Damage usually spoils a run of checkpoints; each kind is reported once, at its first."""
    newest = 0
    unsigned: list[int] = []
    misfits: list[tuple[int, str]] = []
    for row in uow.session.execute(select(CheckpointRow).order_by(CheckpointRow.tree_size)):
        stored: CheckpointRow = row[0]
        newest = int(stored.tree_size)
        try:
            parsed = _read_note(stored.note, public_key)
        except ProofError:
            unsigned.append(newest)
            continue
        if parsed.tree_size != newest or parsed.root_hash.hex() != stored.root_hash:
            report.problems.append(f"checkpoint {newest}: its columns differ from its signed note")
        problem = _misfit(parsed, size, roots)
        if problem:
            misfits.append((newest, problem))
    if unsigned:
        report.problems.append(
            f"checkpoint {unsigned[0]}: no valid signature by this public key"
            + (f" (nor {len(unsigned) - 1} later checkpoints)" if len(unsigned) > 1 else "")
        )
    if misfits:
        first, problem = misfits[0]
        later = f" ({len(misfits) - 1} later checkpoints too)" if len(misfits) > 1 else ""
        report.problems.append(f"checkpoint {first}: {problem}{later}")
    if size > newest:
        report.problems.append(
            f"log: {size} transfers are sealed but the newest checkpoint covers {newest}"
        )


def _read_note(note: str, public_key: bytes | None) -> Checkpoint:
    if public_key is None:
        return parse_checkpoint(note)[0]
    return verify_checkpoint(note, public_key)


def _misfit(checkpoint: Checkpoint, size: int, roots: dict[int, bytes]) -> str | None:
    """Why the log does not fit a checkpoint, or None when it does."""
    if checkpoint.tree_size > size:
        return (
            f"signed for {checkpoint.tree_size} sealed transfers but the log has only {size} "
            "(history was truncated)"
        )
    if roots.get(checkpoint.tree_size) != checkpoint.root_hash:
        return (
            f"the log's first {checkpoint.tree_size} transfers no longer hash to its root "
            "(history was rewritten)"
        )
    return None
