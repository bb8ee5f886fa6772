"""Group commit: many requests' transfers posted and committed together, each with its own result.

Requests that each post a few transfers (a P2P transfer, a claim, a payment) all touch the
same hot rows — a merchant's account, an escrow account — and each pays for its own commit.
A :class:`PostingQueue` gathers the batches that concurrent requests submit, posts them as
one batch through the batch-first ledger (:func:`citywallet.ledger.service.post_on`) in one
transaction, and hands every request its own slice of the results. A hot account is then
locked once per batch and the commit (the WAL flush) is shared.

Several committer threads (``committers``; one on SQLite, whose single writer lock would
only make them queue) each hold one database connection for their whole life and run their
batches on it with SQLAlchemy Core: no ORM session, no pool checkout per batch. While one
batch waits for its commit (the WAL flush), the next is built and sent by another committer.

The contract, which callers rely on:

* **Same results as posting alone.** A request's transfers keep their order and their links.
  The merged batch is equivalent to committing the requests one after the other in the
  order the queue took them: a later request sees the balances the earlier ones left.
  Batches in flight at the same time never share an account, a transfer id or a pending id
  (a request that shares one with a batch in flight, or with an earlier request still
  waiting, waits its turn), so requests touching the same things are posted in the order
  they were queued and concurrent batches commute.
  One request's refused chain never fails another's (linked chains fail on their own).
  A request whose batch ends in an open chain (the last transfer carries ``LINKED``) is
  posted on its own inside the same transaction, so its open chain cannot link into the
  next request's transfers.
* **Durable before answered.** :meth:`PostingQueue.post` returns only after the transaction
  holding its transfers committed; if the commit fails every request of the batch gets the
  exception and nothing of the batch is on the books (retryable conflicts are retried first).
* **No waiting for company.** A free committer takes whatever is queued and free to go, up
  to ``max_batch`` transfers: a lone request is posted at once, and under load the batches
  grow by themselves while the previous ones commit (no timer adds latency).
* **No deadlock.** Every batch locks all its accounts in one statement, in ascending id
  order, before it writes anything (:func:`citywallet.ledger.service.post_on`), and
  concurrent batches share no account and no transfer id, so no two committers wait for each
  other. A poster outside the queue that races one is still safe: the database's ascending
  lock order holds for it too, and a deadlock or a duplicate id inserted meanwhile is retried.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from citywallet.ledger import service as ledger
from citywallet.ledger.batching import Key, request_keys, take_free
from citywallet.ledger.types import Result, TransferFlags, TransferSpec
from citywallet.platform import failpoints
from citywallet.platform.db import (
    RAN,
    Database,
    back_off,
    died_before_any_statement,
    is_retryable,
    is_sqlite,
)

ATTEMPTS = 8  # as Database.transact
UNIQUE_VIOLATION = "23505"  # an id inserted by a racing poster after our lookup: retry sees it


class _Request:
    """One caller's transfers, what they touch, and where its answer goes."""

    __slots__ = ("_done", "chain_open", "error", "keys", "results", "transfers")

    def __init__(self, transfers: list[TransferSpec]) -> None:
        self.transfers = transfers
        self.chain_open = bool(transfers[-1].flags & TransferFlags.LINKED)
        self.keys = request_keys(transfers)
        self.results: list[Result] = []
        self.error: BaseException | None = None
        self._done = threading.Lock()
        self._done.acquire()  # released once answered: the cheapest wait CPython has

    def answer(self, results: list[Result] | None, error: BaseException | None = None) -> None:
        self.results, self.error = results or [], error
        self._done.release()

    def wait(self, timeout: float | None) -> list[Result]:
        if not self._done.acquire(timeout=-1 if timeout is None else timeout):
            raise TimeoutError("the ledger did not answer in time")
        if self.error is not None:
            raise self.error
        return self.results


@dataclass(slots=True)
class QueueStats:
    """What the committers have done (for tests and benchmarks: counts, never timings)."""

    batches: int = 0
    requests: int = 0
    transfers: int = 0
    retries: int = 0


class _Turn:
    """The right to gather and post the next batch: one committer at a time holds it."""

    __slots__ = ("_held", "_lock")

    def __init__(self, lock: threading.Lock) -> None:
        lock.acquire()
        self._lock, self._held = lock, True

    def end(self) -> None:
        """Let the next committer gather (idempotent)."""
        if self._held:
            self._held = False
            self._lock.release()


@dataclass(slots=True)
class _Committer:
    thread: threading.Thread | None = None
    busy: frozenset[Key] = frozenset()  # the keys of its batch in flight


class PostingQueue:
    """Per-process committer threads that post concurrent requests' transfers together."""

    def __init__(
        self,
        database: Database,
        *,
        max_batch: int = 1000,
        committers: int | None = None,
        start: bool = True,
    ) -> None:
        self._database = database
        self._max_batch = max_batch
        if committers is None:
            committers = 1 if database.dialect == "sqlite" else 2
        self._committers = [_Committer() for _ in range(max(1, committers))]
        self._waiting: deque[_Request] = deque()
        self._cond = threading.Condition(threading.Lock())
        self._closing = False
        self._running = False
        # One committer at a time gathers and posts (holds the turn); the others commit or
        # wait. A batch grows while the one before it is posted, and a batch's COMMIT (the
        # WAL flush) overlaps the posting of the next.
        self._building = threading.Lock()
        self.stats = QueueStats()
        if start:
            self.start()

    def start(self) -> None:
        """Start the committer threads (idempotent)."""
        with self._cond:
            if self._running:
                return
            self._running, self._closing = True, False
            for index, committer in enumerate(self._committers):
                committer.thread = threading.Thread(
                    target=self._run,
                    args=(index,),
                    name=f"ledger-group-commit-{index}",
                    daemon=True,
                )
                committer.thread.start()

    def close(self) -> None:
        """Finish what is queued, then stop the committer threads."""
        with self._cond:
            if not self._running:
                return
            self._closing = True
            self._cond.notify_all()
            threads = [c.thread for c in self._committers if c.thread is not None]
        for thread in threads:
            thread.join()
        with self._cond:
            self._running = False
            for committer in self._committers:
                committer.thread = None

    def pending(self) -> int:
        """How many requests wait for a committer (approximate)."""
        return len(self._waiting)

    def post(
        self, transfers: Sequence[TransferSpec], *, timeout: float | None = 30
    ) -> list[Result]:
        """Post ``transfers`` as a batch of their own would be posted; return after commit."""
        if not transfers:
            return []
        request = _Request(list(transfers))
        with self._cond:
            self._waiting.append(request)
            self._cond.notify()
        return request.wait(timeout)

    # --- the committer threads --------------------------------------------------------------

    def _run(self, index: int) -> None:
        conn: Connection | None = None
        try:
            while True:
                turn = _Turn(self._building)
                try:
                    batch = self._take(index)
                    if batch is None:
                        return
                    conn = self._commit(conn, batch, turn)
                finally:
                    turn.end()
                with self._cond:
                    self._committers[index].busy = frozenset()
                    self._cond.notify_all()  # what waited for this batch's keys may go now
        finally:
            if conn is not None:
                conn.close()

    def _take(self, index: int) -> list[_Request] | None:
        """Wait for requests that no other batch in flight touches; None once closing and empty."""
        me = self._committers[index]
        with self._cond:
            while True:
                if self._waiting:
                    batch = self._select(me)
                    if batch:
                        return batch
                elif self._closing:
                    return None
                self._cond.wait()

    def _select(self, me: _Committer) -> list[_Request]:
        """Take what no other committer's batch in flight touches (batching.take_free)."""
        busy = [other.busy for other in self._committers if other is not me]
        batch, kept = take_free(self._waiting, busy, self._max_batch)
        if batch:
            self._waiting = deque(kept)
            me.busy = frozenset().union(*(r.keys for r in batch))
        return batch

    def _commit(
        self, conn: Connection | None, batch: list[_Request], turn: _Turn
    ) -> Connection | None:
        """Post and commit ``batch`` on this committer's connection; answer every request.
        Returns the connection to keep (None after it broke: the next batch opens another)."""
        attempt, reconnected = 0, False
        while True:
            attempt += 1
            ran: list[bool] | None = None  # as Database.uow: PostgreSQL marks a statement run
            try:
                if conn is None:
                    conn = self._database.engine.connect()
                if not is_sqlite(conn):
                    ran = conn.info[RAN] = []
                with conn.begin() as transaction:
                    results = _post_together(conn, batch)
                    turn.end()  # the next batch is gathered and posted while this one commits
                    failpoints.hit("commit.before")
                    transaction.commit()
                    failpoints.hit("commit.after")
                break
            except DBAPIError as exc:
                if exc.connection_invalidated and conn is not None:
                    conn.close()  # the next attempt or batch opens another
                    conn = None
                if not reconnected and died_before_any_statement(exc, ran):
                    reconnected, attempt = True, attempt - 1
                    continue
                sqlstate = getattr(exc.orig, "sqlstate", None)
                if attempt >= ATTEMPTS or not (is_retryable(exc) or sqlstate == UNIQUE_VIOLATION):
                    return _fail(batch, exc, conn)
                self._count_retry()
                back_off(attempt)
            except BaseException as exc:  # every waiter learns why; the committer carries on
                return _fail(batch, exc, conn)
        with self._cond:
            self.stats.batches += 1
            self.stats.requests += len(batch)
            self.stats.transfers += sum(len(r.transfers) for r in batch)
        for request, result in zip(batch, results, strict=True):
            request.answer(result)
        return conn

    def _count_retry(self) -> None:
        with self._cond:
            self.stats.retries += 1


def _fail(batch: list[_Request], exc: BaseException, conn: Connection | None) -> Connection | None:
    for request in batch:
        request.answer(None, exc)
    return conn


def _post_together(conn: Connection, batch: list[_Request]) -> list[list[Result]]:
    """One ledger batch for the closed requests, one for each open one; results per request."""
    closed = [r for r in batch if not r.chain_open]
    merged = ledger.post_on(conn, transfers=[t for r in closed for t in r.transfers])
    by_request: dict[int, list[Result]] = {}
    start = 0
    for request in closed:
        by_request[id(request)] = merged[start : start + len(request.transfers)]
        start += len(request.transfers)
    for request in batch:
        if request.chain_open:
            by_request[id(request)] = ledger.post_on(conn, transfers=request.transfers)
    return [by_request[id(r)] for r in batch]
