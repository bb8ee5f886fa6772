"""A resident's history: one line per transaction and side, and receipts with ledger proofs.

The ledger knows amounts and accounts; a history line adds what a person wants to see (who,
why, the note, the status while the bank answers). A receipt joins the two: the line, the
ledger transfers it consists of with their sealed fields, and an inclusion proof for each
transfer already sealed into a signed block (``not_sealed_yet`` for the newest ones).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Insert, Select, insert, select, update

from citywallet.ledger import service as ledger
from citywallet.ledger.blocks import LedgerSigner, NotSealedYet, inclusion_proof
from citywallet.ledger.types import TransferFlags
from citywallet.platform.clock import now_us
from citywallet.platform.cursors import decode_cursor, encode_cursor
from citywallet.platform.db import DriverSql, UnitOfWork
from citywallet.platform.errors import InvalidInput
from citywallet.wallet.errors import TransactionNotFound
from citywallet.wallet.models import Activity

KINDS = (
    "topup",
    "withdrawal",
    "transfer_out",
    "transfer_in",
    "split_payment",
    "split_collection",
    "merchant_payment",
    "merchant_refund",
    "redpacket_sent",
    "redpacket_received",
    "redpacket_refund",
)
INCOMING = frozenset(
    {
        "topup",
        "transfer_in",
        "split_collection",
        "merchant_refund",
        "redpacket_received",
        "redpacket_refund",
    }
)
MAX_PAGE = 100
CURSOR_TAG = "h1"  # the history list's cursors (citywallet.platform.cursors)


@dataclass(frozen=True)
class ActivityView:
    """One history line."""

    id: str
    kind: str
    direction: str  # "in" | "out"
    amount: int
    fee: int
    currency: str
    status: str
    counterparty_user_id: str | None
    counterparty_label: str
    note: str
    reference: str | None
    created_at: int
    updated_at: int
    origin: str | None = None  # the cell the line was brought from when the wallet moved


@dataclass(frozen=True)
class HistoryPage:
    """A page of history, newest first; ``next_cursor`` fetches the next one."""

    items: list[ActivityView]
    next_cursor: str | None


@dataclass(frozen=True)
class ReceiptTransfer:
    """A ledger transfer behind a transaction, its sealed fields and (once sealed) its proof."""

    id: str
    role: str  # "hold", "post", "void", "transfer"
    sealed_fields: dict[str, Any]
    proof: dict[str, Any] | None
    proof_status: str  # "sealed" | "not_sealed_yet"


@dataclass(frozen=True)
class Receipt:
    """A transaction with the ledger's evidence for it."""

    transaction: ActivityView
    transfers: list[ReceiptTransfer]
    proof_status: str  # "sealed" | "not_sealed_yet" (some transfer is not sealed yet)


def _view(row: Activity) -> ActivityView:
    return ActivityView(
        id=row.object_id,
        kind=row.kind,
        direction="in" if row.kind in INCOMING else "out",
        amount=row.amount,
        fee=row.fee,
        currency=row.currency,
        status=row.status,
        counterparty_user_id=row.counterparty_user_id,
        counterparty_label=row.counterparty_label,
        note=row.note,
        reference=row.reference,
        created_at=row.created_at,
        updated_at=row.updated_at,
        origin=row.origin,
    )


@dataclass(frozen=True)
class Line:
    """One history line to write (see :func:`record`)."""

    user_id: str
    object_id: str
    kind: str
    amount: int
    currency: str
    status: str
    transfer_ids: Sequence[str]
    fee: int = 0
    counterparty_user_id: str | None = None
    counterparty_label: str = ""
    note: str = ""
    reference: str | None = None


# Every payment writes its lines with this: sent at the driver's level, once per line (the
# driver's executemany: one round trip on PostgreSQL), nothing read back.
_INSERT_LINE = DriverSql(
    "INSERT INTO wallet_activity (user_id, object_id, kind, amount, fee, currency, status, "
    "counterparty_user_id, counterparty_label, note, reference, transfer_ids, created_at, "
    "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def record_many(uow: UnitOfWork, lines: Sequence[Line]) -> None:
    """Add lines to users' history (in the transaction that moves the money)."""
    moment = now_us()
    rows: list[tuple[Any, ...]] = []
    for line in lines:
        if line.kind not in KINDS:
            raise ValueError(f"unknown history kind {line.kind!r}")
        rows.append(
            (
                line.user_id, line.object_id, line.kind, line.amount, line.fee, line.currency,
                line.status, line.counterparty_user_id, line.counterparty_label[:100], line.note,
                line.reference, json.dumps(list(line.transfer_ids)), moment, moment,
            )
        )  # fmt: skip
    if len(rows) == 1:
        _INSERT_LINE.run(uow, rows[0])
    elif rows:
        _INSERT_LINE.run(uow, rows)


def record(
    uow: UnitOfWork,
    *,
    user_id: str,
    object_id: str,
    kind: str,
    amount: int,
    currency: str,
    status: str,
    transfer_ids: Sequence[str],
    fee: int = 0,
    counterparty_user_id: str | None = None,
    counterparty_label: str = "",
    note: str = "",
    reference: str | None = None,
) -> None:
    """Add a line to a user's history (in the transaction that moves the money)."""
    record_many(
        uow,
        [
            Line(
                user_id, object_id, kind, amount, currency, status, transfer_ids, fee,
                counterparty_user_id, counterparty_label, note, reference,
            )
        ],
    )  # fmt: skip


def insert_lines(source: Select[Any]) -> Insert:
    """``INSERT`` history lines from ``source``, whose columns are labelled as the history's
    columns (``user_id``, ``object_id``, ``kind``, …): for a feature that writes its line in
    the same statement as its own change (a data-modifying CTE on PostgreSQL)."""
    names = [column.name for column in source.selected_columns]
    return insert(Activity).from_select(names, source)


def set_status(
    uow: UnitOfWork, *, object_id: str, status: str, transfer_ids: Sequence[str]
) -> None:
    """Update every line of a transaction (its status and ledger transfers)."""
    uow.session.execute(
        update(Activity)
        .where(Activity.object_id == object_id)
        .values(status=status, transfer_ids=json.dumps(list(transfer_ids)), updated_at=now_us())
    )


def list_history(
    uow: UnitOfWork,
    *,
    user_id: str,
    kinds: Sequence[str] = (),
    since: int | None = None,
    until: int | None = None,
    counterparty: str | None = None,
    cursor: str | None = None,
    limit: int = 20,
    statuses: Sequence[str] = (),
) -> HistoryPage:
    """The user's history, newest first, filtered by kind, time (``since`` inclusive,
    ``until`` exclusive, microseconds), counterparty user id and status; paged by cursor."""
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise InvalidInput(f"Unknown kinds: {', '.join(sorted(unknown))}.", code="invalid_kind")
    limit = max(1, min(limit, MAX_PAGE))
    query = select(Activity).where(Activity.user_id == user_id)
    if kinds:
        query = query.where(Activity.kind.in_(list(kinds)))
    if statuses:
        query = query.where(Activity.status.in_(list(statuses)))
    if since is not None:
        query = query.where(Activity.created_at >= since)
    if until is not None:
        query = query.where(Activity.created_at < until)
    if counterparty is not None:
        query = query.where(Activity.counterparty_user_id == counterparty)
    if cursor is not None:
        query = query.where(Activity.id < decode_cursor(CURSOR_TAG, cursor))
    rows = list(uow.session.scalars(query.order_by(Activity.id.desc()).limit(limit + 1)))
    page = rows[:limit]
    following = encode_cursor(CURSOR_TAG, page[-1].id) if len(rows) > limit else None
    return HistoryPage([_view(r) for r in page], following)


def activity_row(uow: UnitOfWork, *, user_id: str, object_id: str) -> Activity:
    """The user's line for a transaction (``transaction_not_found`` for anyone else's)."""
    row = uow.session.scalar(
        select(Activity).where(Activity.user_id == user_id, Activity.object_id == object_id)
    )
    if row is None:
        raise TransactionNotFound("No such transaction.")
    return row


def get_transaction(uow: UnitOfWork, *, user_id: str, object_id: str) -> ActivityView:
    """One of the user's transactions."""
    return _view(activity_row(uow, user_id=user_id, object_id=object_id))


def _role(flags: int) -> str:
    if flags & TransferFlags.PENDING:
        return "hold"
    if flags & TransferFlags.POST_PENDING:
        return "post"
    if flags & TransferFlags.VOID_PENDING:
        return "void"
    return "transfer"


def receipt(uow: UnitOfWork, *, user_id: str, object_id: str, signer: LedgerSigner) -> Receipt:
    """The user's transaction with its ledger transfers and their inclusion proofs."""
    row = activity_row(uow, user_id=user_id, object_id=object_id)
    ids: list[str] = json.loads(row.transfer_ids)
    found = ledger.get_transfers(uow, ids=ids)
    transfers: list[ReceiptTransfer] = []
    for transfer_id in ids:
        transfer = found.get(transfer_id)
        if transfer is None:
            continue
        try:
            proof: dict[str, Any] | None = inclusion_proof(
                uow, transfer_id=transfer_id, signer=signer
            )
        except NotSealedYet:
            proof = None
        transfers.append(
            ReceiptTransfer(
                id=transfer_id,
                role=_role(transfer.flags),
                sealed_fields=transfer.canonical(),
                proof=proof,
                proof_status="sealed" if proof is not None else "not_sealed_yet",
            )
        )
    sealed = all(t.proof is not None for t in transfers)
    return Receipt(_view(row), transfers, "sealed" if sealed else "not_sealed_yet")
