"""Group commit: many requests' transfers posted and committed together, each with its own result.

Requests that each post a few transfers (a P2P transfer, a claim, a payment) all touch the
same hot rows — a merchant's account, an escrow account — and each pays for its own commit.
A :class:`PostingQueue` gathers the batches that concurrent requests submit, posts them as
one batch through the batch-first ledger (:func:`citywallet.ledger.service.post`) in one
transaction, and hands every request its own slice of the results. A hot account is then
locked once per batch and the commit (the WAL flush) is shared.

The contract, which callers rely on:

* **Same results as posting alone.** A request's transfers keep their order and their links.
  The merged batch is equivalent to committing the requests one after the other in the
  order the queue took them: a later request sees the balances the earlier ones left.
  One request's refused chain never fails another's (linked chains fail on their own).
  A request whose batch ends in an open chain (the last transfer carries ``LINKED``) is
  posted on its own inside the same transaction, so its open chain cannot link into the
  next request's transfers.
* **Durable before answered.** :meth:`PostingQueue.post` returns only after the transaction
  holding its transfers committed; if the commit fails every request of the batch gets the
  exception and nothing of the batch is on the books (retryable conflicts are retried first).
* **No waiting for company.** The committer takes whatever is queued when it is free, up to
  ``max_batch`` transfers: a lone request is posted at once, and under load the batches grow
  by themselves while the previous one commits (no timer adds latency).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

from citywallet.ledger import service as ledger
from citywallet.ledger.types import Result, TransferFlags, TransferSpec
from citywallet.platform.db import Database, UnitOfWork


@dataclass(slots=True)
class _Request:
    transfers: list[TransferSpec]
    future: Future[list[Result]] = field(default_factory=Future)

    @property
    def chain_open(self) -> bool:
        return bool(self.transfers[-1].flags & TransferFlags.LINKED)


@dataclass(slots=True)
class QueueStats:
    """What the committer has done (for tests and benchmarks: counts, never timings)."""

    batches: int = 0
    requests: int = 0
    transfers: int = 0


class PostingQueue:
    """A per-process committer thread that posts concurrent requests' transfers together."""

    def __init__(self, database: Database, *, max_batch: int = 1000, start: bool = True) -> None:
        self._database = database
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.stats = QueueStats()
        if start:
            self.start()

    def start(self) -> None:
        """Start the committer thread (idempotent)."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="ledger-group-commit", daemon=True
                )
                self._thread.start()

    def close(self) -> None:
        """Finish what is queued, then stop the committer thread."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join()

    def pending(self) -> int:
        """How many requests wait for the committer (approximate)."""
        return self._queue.qsize()

    def post(
        self, transfers: Sequence[TransferSpec], *, timeout: float | None = 30
    ) -> list[Result]:
        """Post ``transfers`` as a batch of their own would be posted; return after commit."""
        if not transfers:
            return []
        request = _Request(list(transfers))
        self._queue.put(request)
        return request.future.result(timeout=timeout)

    # --- the committer thread ---------------------------------------------------------------

    def _run(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is None:
                return
            batch, size = [first], len(first.transfers)
            while size < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
                size += len(item.transfers)
            self._commit(batch)

    def _commit(self, batch: list[_Request]) -> None:
        try:
            results = self._database.transact(lambda uow: _post_together(uow, batch))
        except BaseException as exc:  # every waiter learns why; the thread carries on
            for request in batch:
                request.future.set_exception(exc)
            return
        self.stats.batches += 1
        self.stats.requests += len(batch)
        self.stats.transfers += sum(len(r.transfers) for r in batch)
        for request, result in zip(batch, results, strict=True):
            request.future.set_result(result)


def _post_together(uow: UnitOfWork, batch: list[_Request]) -> list[list[Result]]:
    """One ledger batch for the closed requests, one for each open one; results per request."""
    closed = [r for r in batch if not r.chain_open]
    merged = ledger.post(uow, transfers=[t for r in closed for t in r.transfers])
    by_request: dict[int, list[Result]] = {}
    start = 0
    for request in closed:
        by_request[id(request)] = merged[start : start + len(request.transfers)]
        start += len(request.transfers)
    for request in batch:
        if request.chain_open:
            by_request[id(request)] = ledger.post(uow, transfers=request.transfers)
    return [by_request[id(r)] for r in batch]
