"""Counting the transactions and statements a call runs (a count, never a timing).

SQLAlchemy's engine events see every transaction (``begin``) and every statement
(``before_cursor_execute``) on every pooled connection, from any thread; the budget tests
of the money paths (payments, grabs) assert on what :func:`counted` gathered.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection

from citywallet.platform.db import Database

WRITES = ("INSERT", "UPDATE", "DELETE")


@dataclass
class Transaction:
    """One database transaction as the engine events saw it."""

    readonly: bool
    statements: list[str] = field(default_factory=list)

    @property
    def writes(self) -> bool:
        """Whether it is a write transaction: begun as one, or it wrote or locked a row."""
        return not self.readonly or any(
            s.lstrip().upper().startswith(WRITES) or "FOR UPDATE" in s.upper()
            for s in self.statements
        )


@dataclass
class Tally:
    """The transactions of one measured call."""

    transactions: list[Transaction] = field(default_factory=list)

    @property
    def write(self) -> list[Transaction]:
        """The write transactions."""
        return [t for t in self.transactions if t.writes]

    @property
    def read(self) -> list[Transaction]:
        """The read-only transactions."""
        return [t for t in self.transactions if not t.writes]

    @property
    def statements(self) -> int:
        """Every statement of every transaction."""
        return sum(len(t.statements) for t in self.transactions)


@contextmanager
def counted(db: Database) -> Iterator[Tally]:
    """Count the transactions and statements ``db`` runs inside the block (any thread)."""
    tally, open_by_connection, lock = Tally(), {}, threading.Lock()

    def begin(conn: Connection) -> None:
        transaction = Transaction(readonly=bool(conn.get_execution_options().get("readonly")))
        with lock:
            open_by_connection[id(conn)] = transaction
            tally.transactions.append(transaction)

    def statement(conn: Connection, _cursor: Any, sql: str, *_args: Any) -> None:
        if sql.lstrip().upper().startswith(("BEGIN", "PRAGMA")):  # SQLite's own BEGIN
            return
        with lock:
            open_by_connection[id(conn)].statements.append(sql)

    listeners = [("begin", begin), ("before_cursor_execute", statement)]
    for name, fn in listeners:
        event.listen(db.engine, name, fn)
    try:
        yield tally
    finally:
        for name, fn in listeners:
            event.remove(db.engine, name, fn)
