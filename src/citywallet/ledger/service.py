"""Ledger use cases: create accounts, post batches of transfers, read balances and transfers.

The posting engine is batch-first: one batch reads the transfers and pending transfers it
names, locks the accounts it touches in ascending id order (``FOR UPDATE`` on PostgreSQL;
the ``BEGIN IMMEDIATE`` writer lock on SQLite), applies the pure rules of
:mod:`citywallet.ledger.posting` in memory, and writes the new transfers and the new
counters in a handful of set-based statements. A hot account is locked once per batch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from citywallet.ledger.posting import apply_batch
from citywallet.ledger.types import (
    AccountFlags,
    AccountState,
    PendingState,
    PendingStatus,
    Result,
    Transfer,
    TransferCode,
    TransferFlags,
    TransferSpec,
)
from citywallet.ledger.verifier import canonical_json, leaf_hash
from citywallet.platform import failpoints, metrics
from citywallet.platform.clock import now_us
from citywallet.platform.db import UnitOfWork, copy_in

TRANSFER_COLUMNS = (
    "id, debit_account_id, credit_account_id, amount, ledger, code, flags, pending_id, "
    "timeout, reference, timestamp"
)
_COUNTERS = "debits_pending, debits_posted, credits_pending, credits_posted"


@dataclass(frozen=True, slots=True)
class AccountSpec:
    """An account to open."""

    ledger: str
    code: int
    flags: int = AccountFlags.NONE
    owner_ref: str | None = None


@dataclass(frozen=True, slots=True)
class AccountView:
    """An account with its counters, for reading."""

    id: int
    ledger: str
    code: int
    flags: int
    owner_ref: str | None
    debits_pending: int
    debits_posted: int
    credits_pending: int
    credits_posted: int

    @property
    def balance(self) -> int:
        """Posted credits minus posted debits."""
        return self.credits_posted - self.debits_posted

    @property
    def available(self) -> int:
        """Posted balance less outgoing holds."""
        return self.balance - self.debits_pending


def transfer_hash(transfer: Transfer) -> bytes:
    """The RFC 6962 leaf hash that seals a transfer."""
    return leaf_hash(canonical_json(transfer.canonical()))


def create_accounts(uow: UnitOfWork, *, accounts: Sequence[AccountSpec]) -> list[int]:
    """Open accounts with zero counters; returns their ids in order."""
    conn = uow.session.connection()
    now = now_us()
    if conn.dialect.name == "postgresql" and len(accounts) > 1:
        return _create_accounts_pg(conn, accounts, now)
    ids: list[int] = []
    for spec in accounts:
        row = conn.exec_driver_sql(
            _sql(
                conn,
                "INSERT INTO ledger_accounts (ledger, code, flags, owner_ref, debits_pending, "
                "debits_posted, credits_pending, credits_posted, created_at) "
                "VALUES (?, ?, ?, ?, 0, 0, 0, 0, ?) RETURNING id",
            ),
            (spec.ledger, int(spec.code), int(spec.flags), spec.owner_ref, now),
        ).one()
        ids.append(int(row[0]))
    return ids


def _create_accounts_pg(conn: Connection, accounts: Sequence[AccountSpec], now: int) -> list[int]:
    """Many accounts in two statements: take the ids from the table's sequence (so they come
    back in order), then insert every row from column arrays."""
    ids = [
        int(i)
        for (i,) in conn.exec_driver_sql(
            "SELECT nextval(pg_get_serial_sequence('ledger_accounts', 'id')) "
            "FROM generate_series(1, %(n)s)",
            {"n": len(accounts)},
        )
    ]
    conn.exec_driver_sql(
        "INSERT INTO ledger_accounts (id, ledger, code, flags, owner_ref, debits_pending, "
        "debits_posted, credits_pending, credits_posted, created_at) OVERRIDING SYSTEM VALUE "
        "SELECT id, ledger, code, flags, owner_ref, 0, 0, 0, 0, %(now)s FROM unnest("
        "%(ids)s::bigint[], %(ledgers)s::text[], %(codes)s::int[], %(flags)s::int[], "
        "%(refs)s::text[]) AS t(id, ledger, code, flags, owner_ref)",
        {
            "ids": ids,
            "ledgers": [spec.ledger for spec in accounts],
            "codes": [int(spec.code) for spec in accounts],
            "flags": [int(spec.flags) for spec in accounts],
            "refs": [spec.owner_ref for spec in accounts],
            "now": now,
        },
    )
    return ids


def create_account(
    uow: UnitOfWork,
    *,
    ledger: str,
    code: int,
    flags: int = AccountFlags.NONE,
    owner_ref: str | None = None,
) -> int:
    """Open one account; returns its id."""
    return create_accounts(uow, accounts=[AccountSpec(ledger, code, flags, owner_ref)])[0]


def post(
    uow: UnitOfWork,
    *,
    transfers: Sequence[TransferSpec],
    system: bool = False,
    now: int | None = None,
    fresh: bool = False,
    guard: Callable[[Mapping[int, AccountState]], None] | None = None,
) -> list[Result]:
    """Post a batch; one result per transfer. Only OK and EXISTS are on the books.

    ``system`` is for the ledger's own jobs (it allows the EXPIRED flag on voids); ``now``
    (microseconds) is the ledger's clock for such a job, which must judge expiry by the same
    moment it selected the expired transfers with.

    The money paths' two savings of a statement each (docs/ledger.md#fast-paths):
    ``fresh`` says the ids were never posted: they are random, or derive from a row whose
    state this transaction has just moved under its lock (an order leaving ``created``), so
    the lookup of existing ids is skipped; a duplicate would still be refused by the primary
    key, never posted twice. ``guard`` sees the locked accounts' counters before the batch
    is applied and may raise to refuse it (a payee's balance limit), instead of a read of
    its own.
    """
    return post_on(
        uow.session.connection(),
        transfers=transfers,
        system=system,
        now=now,
        fresh=fresh,
        guard=guard,
    )


def post_on(
    conn: Connection,
    *,
    transfers: Sequence[TransferSpec],
    system: bool = False,
    now: int | None = None,
    fresh: bool = False,
    guard: Callable[[Mapping[int, AccountState]], None] | None = None,
) -> list[Result]:
    """:func:`post` on a Core connection inside its transaction, with no ORM session (the
    group-commit committers each hold one connection: ledger/groupcommit.py)."""
    if not transfers:
        return []
    failpoints.hit("ledger.post.before")
    # Pending transfers are immutable: read them before locking only to learn their accounts.
    pending_ids = list({spec.pending_id for spec in transfers if spec.pending_id})
    originals = _load_transfers(conn, "id", pending_ids)
    account_ids: set[int] = set()
    for spec in transfers:
        account_ids.add(spec.debit_account_id)
        account_ids.add(spec.credit_account_id)
    for original in originals.values():
        account_ids.add(original.debit_account_id)
        account_ids.add(original.credit_account_id)
    account_ids.discard(0)
    accounts = _lock_accounts(conn, sorted(account_ids))
    # What can change, only under the locks: a racing batch on these accounts has committed
    # by now and READ COMMITTED shows it. Read before the locks, a racing post/void of the
    # same pending or a duplicate submission would be judged on stale state (and fail on a
    # constraint instead of getting already_posted/already_voided/exists).
    if guard is not None:
        guard(accounts)
    ids = [] if fresh else list({spec.id for spec in transfers if spec.id})
    existing = _load_transfers(conn, "id", ids)
    pendings = _load_pendings(conn, originals)
    moment = now if now is not None else now_us()
    outcome = apply_batch(transfers, accounts, existing, pendings, now=moment, system=system)
    if outcome.created:
        _write_batch(conn, outcome.created, [accounts[i] for i in sorted(outcome.touched_accounts)])
        created = ((_code_name(t.code), t.flags, t.amount) for t in outcome.created)
        metrics.count_transfers(conn, created)
        timeouts = [(t.id, t.expires_at) for t in outcome.created if t.expires_at is not None]
        if timeouts:
            _executemany(
                conn,
                "INSERT INTO ledger_pending_timeouts (transfer_id, expires_at) VALUES (?, ?)",
                timeouts,
            )
        if outcome.resolved_pending_ids:
            _executemany(
                conn,
                "DELETE FROM ledger_pending_timeouts WHERE transfer_id = ?",
                [(i,) for i in outcome.resolved_pending_ids],
            )
    failpoints.hit("ledger.post.after")
    return outcome.results


def _code_name(code: int) -> str:
    try:
        return TransferCode(code).name.lower()
    except ValueError:
        return str(code)


def get_accounts(uow: UnitOfWork, *, ids: Iterable[int]) -> dict[int, AccountView]:
    """Accounts by id (missing ids are simply absent)."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    conn = uow.session.connection()
    rows = conn.exec_driver_sql(
        _sql(
            conn,
            f"SELECT id, ledger, code, flags, owner_ref, {_COUNTERS} FROM ledger_accounts "
            f"WHERE id IN ({_marks(conn, len(wanted))})",
        ),
        tuple(wanted),
    ).all()
    return {int(r[0]): AccountView(*r) for r in rows}


def get_account(uow: UnitOfWork, *, account_id: int) -> AccountView | None:
    """One account, or None."""
    return get_accounts(uow, ids=[account_id]).get(account_id)


def find_account(uow: UnitOfWork, *, owner_ref: str) -> int | None:
    """The id of the first account opened for ``owner_ref``, or None."""
    conn = uow.session.connection()
    row = conn.exec_driver_sql(
        _sql(conn, "SELECT id FROM ledger_accounts WHERE owner_ref = ? ORDER BY id LIMIT 1"),
        (owner_ref,),
    ).first()
    return None if row is None else int(row[0])


def get_transfers(uow: UnitOfWork, *, ids: Iterable[str]) -> dict[str, Transfer]:
    """Recorded transfers by id."""
    return _load_transfers(uow.session.connection(), "id", list(set(ids)))


def get_transfer(uow: UnitOfWork, *, transfer_id: str) -> Transfer | None:
    """One recorded transfer, or None."""
    return get_transfers(uow, ids=[transfer_id]).get(transfer_id)


def account_transfers(
    uow: UnitOfWork, *, account_id: int, before_seq: int | None = None, limit: int = 50
) -> list[tuple[int, Transfer]]:
    """An account's transfers, newest first, as (seq, transfer); page with ``before_seq``."""
    conn = uow.session.connection()
    bound = before_seq if before_seq is not None else 2**62
    rows = conn.exec_driver_sql(
        _sql(
            conn,
            f"SELECT seq, {TRANSFER_COLUMNS} FROM ledger_transfers "
            "WHERE (debit_account_id = ? OR credit_account_id = ?) AND seq < ? "
            "ORDER BY seq DESC LIMIT ?",
        ),
        (account_id, account_id, bound, limit),
    ).all()
    return [(int(r[0]), Transfer(*r[1:])) for r in rows]


def expire_pending(uow: UnitOfWork, *, now: int | None = None, limit: int = 1000) -> int:
    """Void pending transfers whose timeout has passed; returns how many were voided."""
    conn = uow.session.connection()
    moment = now if now is not None else now_us()
    rows = conn.exec_driver_sql(
        _sql(
            conn,
            "SELECT transfer_id FROM ledger_pending_timeouts WHERE expires_at <= ? "
            "ORDER BY expires_at LIMIT ?",
        ),
        (moment, limit),
    ).all()
    specs = [
        TransferSpec(
            id=expiry_void_id(r[0]),
            pending_id=r[0],
            flags=TransferFlags.VOID_PENDING | TransferFlags.EXPIRED,
            amount=None,
        )
        for r in rows
    ]
    results = post(uow, transfers=specs, system=True, now=moment)
    return sum(1 for r in results if r is Result.OK)


def expiry_void_id(pending_id: str) -> str:
    """The deterministic id of the void that expires a pending transfer (runs once)."""
    return "exp_" + hashlib.sha256(pending_id.encode()).hexdigest()[:40]


# --- SQL plumbing -------------------------------------------------------------------------


def _is_pg(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def _sql(conn: Connection, statement: str) -> str:
    """Our SQL is written with ``?`` placeholders; psycopg wants ``%s``."""
    return statement.replace("?", "%s") if _is_pg(conn) else statement


def _marks(conn: Connection, n: int) -> str:
    return ", ".join(["%s" if _is_pg(conn) else "?"] * n)


def _executemany(conn: Connection, statement: str, rows: list[tuple[Any, ...]]) -> None:
    conn.exec_driver_sql(_sql(conn, statement), rows)


def _chunks(items: list[Any], size: int = 900) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _key_chunks(conn: Connection, items: list[Any]) -> Iterable[list[Any]]:
    """Lookup keys per statement: all at once on PostgreSQL (see :func:`_key_filter`); on
    SQLite, IN-lists under its parameter limit. Ascending input stays ascending."""
    if _is_pg(conn):
        return [items] if items else []
    return _chunks(items)


def _key_filter(
    conn: Connection, column: str, keys: list[Any], pg_type: str
) -> tuple[str, tuple[Any, ...]]:
    """``column`` matches one of ``keys``: the SQL condition and its parameters.

    On PostgreSQL the keys are one binary array (``= ANY``): one statement whatever the batch
    size, with the same text every time, so psycopg parses and prepares it once.
    """
    if _is_pg(conn):
        return f"{column} = ANY(%b::{pg_type}[])", (keys,)
    return f"{column} IN ({_marks(conn, len(keys))})", tuple(keys)


def _load_transfers(conn: Connection, column: str, keys: list[str]) -> dict[str, Transfer]:
    found: dict[str, Transfer] = {}
    for chunk in _key_chunks(conn, keys):
        condition, params = _key_filter(conn, column, chunk, "text")
        rows = conn.exec_driver_sql(
            f"SELECT {TRANSFER_COLUMNS} FROM ledger_transfers WHERE {condition}", params
        ).all()
        for r in rows:
            transfer = Transfer(*r)
            found[transfer.pending_id if column == "pending_id" else transfer.id] = transfer  # type: ignore[index]
    return found


def _load_pendings(conn: Connection, originals: dict[str, Transfer]) -> dict[str, PendingState]:
    """The state of each pending transfer in ``originals`` (call with their accounts locked)."""
    if not originals:
        return {}
    resolutions = _load_transfers(conn, "pending_id", list(originals))
    states: dict[str, PendingState] = {}
    for pending_id, transfer in originals.items():
        resolution = resolutions.get(pending_id)
        if resolution is None:
            status = PendingStatus.PENDING
        elif resolution.flags & TransferFlags.POST_PENDING:
            status = PendingStatus.POSTED
        elif resolution.flags & TransferFlags.EXPIRED:
            status = PendingStatus.EXPIRED
        else:
            status = PendingStatus.VOIDED
        states[pending_id] = PendingState(transfer, status)
    return states


def _lock_accounts(conn: Connection, ids: list[int]) -> dict[int, AccountState]:
    accounts: dict[int, AccountState] = {}
    lock = " FOR UPDATE" if _is_pg(conn) else ""
    for chunk in _key_chunks(conn, ids):
        condition, params = _key_filter(conn, "id", chunk, "bigint")
        rows = conn.exec_driver_sql(
            f"SELECT id, ledger, flags, {_COUNTERS} FROM ledger_accounts "
            f"WHERE {condition} ORDER BY id{lock}",
            params,
        ).all()
        for r in rows:
            accounts[int(r[0])] = AccountState(*r)
    return accounts


def _write_batch(conn: Connection, transfers: list[Transfer], states: list[AccountState]) -> None:
    """Insert the new transfers and store the touched accounts' new counters."""
    rows = _transfer_rows(transfers)
    columns = f"{TRANSFER_COLUMNS}, hash"
    if _is_pg(conn):
        # One statement, one round trip, whatever the batch size: the INSERT rides in a
        # data-modifying CTE of the UPDATE (both always run to completion; constraints are
        # checked as for two statements). Batches travel as binary arrays, one per column.
        source: str = f"VALUES ({_marks(conn, 12)})"
        values: Sequence[Any] = rows[0]
        if len(rows) > 1:
            source = (
                "SELECT * FROM unnest(%b::text[], %b::bigint[], %b::bigint[], %b::bigint[], "
                "%b::text[], %b::int[], %b::int[], %b::text[], %b::int[], %b::text[], "
                "%b::bigint[], %b::bytea[])"
            )
            values = _columns(rows, 12)
        conn.exec_driver_sql(
            f"WITH new_transfers AS (INSERT INTO ledger_transfers ({columns}) {source}) "
            "UPDATE ledger_accounts AS a SET debits_pending = v.dp, debits_posted = v.dpo, "
            "credits_pending = v.cp, credits_posted = v.cpo FROM unnest(%b::bigint[], "
            "%b::bigint[], %b::bigint[], %b::bigint[], %b::bigint[]) AS v(dp, dpo, cp, cpo, id) "
            "WHERE a.id = v.id",
            (*values, *_columns(_counter_rows(states), 5)),
        )
        return
    _executemany(
        conn, f"INSERT INTO ledger_transfers ({columns}) VALUES ({_marks(conn, 12)})", rows
    )
    _store_counters(conn, states)


def _store_counters(conn: Connection, states: list[AccountState]) -> None:
    """Store accounts' counters, one UPDATE per account (few accounts)."""
    _executemany(
        conn,
        "UPDATE ledger_accounts SET debits_pending = ?, debits_posted = ?, "
        "credits_pending = ?, credits_posted = ? WHERE id = ?",
        _counter_rows(states),
    )


def _counter_rows(states: list[AccountState]) -> list[tuple[int, ...]]:
    """Accounts' four counters, then their id (the order both writes of them take)."""
    return [
        (s.debits_pending, s.debits_posted, s.credits_pending, s.credits_posted, s.id)
        for s in states
    ]


def _transfer_rows(transfers: list[Transfer]) -> list[tuple[Any, ...]]:
    """The rows of ``ledger_transfers`` for new transfers (its columns, then the hash)."""
    return [
        (
            t.id,
            t.debit_account_id,
            t.credit_account_id,
            t.amount,
            t.ledger,
            t.code,
            t.flags,
            t.pending_id,
            t.timeout,
            t.reference,
            t.timestamp,
            transfer_hash(t),
        )
        for t in transfers
    ]


def _columns(rows: list[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows turned into one list per column (for array parameters)."""
    return [[row[i] for row in rows] for i in range(width)]


# --- bulk helpers (campaign issuance and reclaim) -----------------------------------------


@dataclass(frozen=True, slots=True)
class Funding:
    """One new account and the transfer that funds it (see :func:`open_funded_accounts`)."""

    account: AccountSpec
    transfer_id: str
    amount: int
    code: int
    reference: str | None = None


def open_funded_accounts(
    uow: UnitOfWork, *, source_account_id: int, fundings: Sequence[Funding]
) -> tuple[list[int], list[Result]]:
    """Open one account per funding and fund each from ``source_account_id`` with one
    transfer: the bulk path for "one funded source, many fresh accounts" (campaign grants).

    The transfers go through the same pure rules as :func:`post` (``apply_batch``), with the
    source locked and the new accounts as they are born (zero counters, nobody else can see
    them yet); what is written is exactly what :func:`post` would write (same transfers, same
    hashes, same counters), in fewer statements: the accounts are inserted with their final
    counters (no lock and update of thousands of rows) and the transfers go in with ``COPY``
    on PostgreSQL. The ids must be fresh (a repeated id is refused by the primary key, never
    posted twice). All or nothing: if any transfer is refused nothing is written, and the
    results say why (the ids returned are then unused).
    """
    if not fundings:
        return [], []
    conn = uow.session.connection()
    moment = now_us()
    ids = _next_account_ids(conn, len(fundings))
    source = _lock_accounts(conn, [source_account_id])
    accounts: dict[int, AccountState] = dict(source)
    for account_id, funding in zip(ids, fundings, strict=True):
        accounts[account_id] = AccountState(
            account_id, funding.account.ledger, int(funding.account.flags)
        )
    specs = [
        TransferSpec(
            id=funding.transfer_id,
            debit_account_id=source_account_id,
            credit_account_id=account_id,
            amount=funding.amount,
            ledger=funding.account.ledger,
            code=funding.code,
            reference=funding.reference,
        )
        for account_id, funding in zip(ids, fundings, strict=True)
    ]
    outcome = apply_batch(specs, accounts, {}, {}, now=moment)
    if any(result is not Result.OK for result in outcome.results):
        return ids, outcome.results
    rows = [
        (
            account_id,
            funding.account.ledger,
            int(funding.account.code),
            int(funding.account.flags),
            funding.account.owner_ref,
            0,  # debits pending, debits posted, credits pending: a fresh account
            0,
            0,
            accounts[account_id].credits_posted,
            moment,
        )
        for account_id, funding in zip(ids, fundings, strict=True)
    ]
    touched = [accounts[source_account_id]]
    if not _is_pg(conn):
        _executemany(conn, f"INSERT INTO ledger_accounts ({_ACCOUNT_COLUMNS}) {_VALUES_10}", rows)
        _write_batch(conn, outcome.created, touched)
        return ids, outcome.results
    with copy_in(conn, f"ledger_accounts ({_ACCOUNT_COLUMNS})", types=_ACCOUNT_TYPES) as copy:
        for row in rows:
            copy.write_row(row)
    with copy_in(
        conn, f"ledger_transfers ({TRANSFER_COLUMNS}, hash)", types=_TRANSFER_TYPES
    ) as copy:
        for row in _transfer_rows(outcome.created):
            copy.write_row(row)
    _store_counters(conn, touched)
    return ids, outcome.results


_ACCOUNT_COLUMNS = f"id, ledger, code, flags, owner_ref, {_COUNTERS}, created_at"
_VALUES_10 = "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_ACCOUNT_TYPES = ["int8", "text", "int4", "int4", "text", "int8", "int8", "int8", "int8", "int8"]
_TRANSFER_TYPES = [
    "text", "int8", "int8", "int8", "text", "int4", "int4", "text", "int4", "text", "int8", "bytea",
]  # fmt: skip


def _next_account_ids(conn: Connection, count: int) -> list[int]:
    """``count`` new account ids, ascending: from the table's sequence on PostgreSQL; on
    SQLite (one writer at a time) after the highest id so far."""
    if _is_pg(conn):
        return [
            int(i)
            for (i,) in conn.exec_driver_sql(
                "SELECT nextval(pg_get_serial_sequence('ledger_accounts', 'id')) "
                "FROM generate_series(1, %(n)s)",
                {"n": count},
            )
        ]
    top = conn.exec_driver_sql("SELECT coalesce(max(id), 0) FROM ledger_accounts").scalar_one()
    return list(range(int(top) + 1, int(top) + 1 + count))


def get_accounts_bulk(uow: UnitOfWork, *, ids: Iterable[int]) -> dict[int, AccountView]:
    """:func:`get_accounts` for thousands of ids: one ``= ANY`` array statement on
    PostgreSQL (the same text every time) instead of an IN list of one parameter per id."""
    wanted = sorted(set(ids))
    conn = uow.session.connection()
    if not wanted or not _is_pg(conn):
        return get_accounts(uow, ids=wanted)
    condition, params = _key_filter(conn, "id", wanted, "bigint")
    rows = conn.exec_driver_sql(
        f"SELECT id, ledger, code, flags, owner_ref, {_COUNTERS} FROM ledger_accounts "
        f"WHERE {condition}",
        params,
    ).all()
    return {int(r[0]): AccountView(*r) for r in rows}
