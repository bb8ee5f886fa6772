"""Group commit on SQLite and PostgreSQL: concurrent requests share a transaction, not a fate."""

from __future__ import annotations

import random
import threading
import time
import uuid

import pytest

from citywallet.ledger import service as ledger
from citywallet.ledger.groupcommit import PostingQueue
from citywallet.ledger.types import (
    Result,
    TransferFlags,
)
from citywallet.platform.db import Database
from tests.ledger_checks import assert_ledger_clean
from tests.ledger_support import funded_accounts, p2p


def _balances(db: Database, ids: list[int]) -> dict[int, int]:
    with db.uow(readonly=True) as uow:
        views = ledger.get_accounts(uow, ids=ids)
    return {i: views[i].balance for i in ids}


def test_waiting_requests_commit_as_one_batch_each_with_its_own_result(db: Database) -> None:
    """Eight requests queued while the committer is stopped go out in one transaction; the
    one that would overdraw is refused alone, and an open chain does not link into a neighbour."""
    _bank, (a, b, c) = funded_accounts(db, 3, 1_000)
    queue = PostingQueue(db, start=False)
    requests = [[p2p(f"ok-{i}", a, b, 10)] for i in range(6)]
    requests.append([p2p("too-much", c, a, 5_000)])  # exceeds c's credits
    requests.append([p2p("open", b, c, 1, TransferFlags.LINKED)])  # an open chain
    answers: dict[int, list[Result]] = {}

    def submit(i: int) -> None:
        answers[i] = queue.post(requests[i])

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while queue.pending() < len(requests) and time.monotonic() < deadline:
        time.sleep(0.005)
    assert queue.pending() == len(requests)
    queue.start()
    for t in threads:
        t.join()
    queue.close()

    assert queue.stats.batches == 1
    assert queue.stats.requests == len(requests)
    assert [answers[i] for i in range(6)] == [[Result.OK]] * 6
    assert answers[6] == [Result.EXCEEDS_CREDITS]
    assert answers[7] == [Result.LINKED_EVENT_CHAIN_OPEN]
    assert _balances(db, [a, b, c]) == {a: 940, b: 1_060, c: 1_000}
    assert_ledger_clean(db)


def test_results_match_posting_alone_under_concurrency(db: Database) -> None:
    """Many threads post single transfers and linked pairs through one queue; every
    acknowledged transfer is on the books once, nothing else is, and no account overdraws."""
    _bank, ids = funded_accounts(db, 10, 500)
    queue = PostingQueue(db)
    acknowledged: list[str] = []
    refused: list[str] = []
    guard = threading.Lock()

    def client(seed: int) -> None:
        rnd = random.Random(seed)
        for n in range(25):
            debit, credit, third = rnd.sample(ids, 3)
            tid = f"t{seed}-{n}-{uuid.uuid4().hex[:6]}"
            if n % 5 == 0:  # a linked pair: both or neither
                specs = [
                    p2p(tid + "a", debit, credit, rnd.randint(1, 300), TransferFlags.LINKED),
                    p2p(tid + "b", credit, third, rnd.randint(1, 300)),
                ]
            else:
                specs = [p2p(tid, debit, credit, rnd.randint(1, 300))]
            results = queue.post(specs)
            assert len(results) == len(specs)
            assert len(set(results)) == 1 or Result.LINKED_EVENT_FAILED in results
            with guard:
                for spec, result in zip(specs, results, strict=True):
                    (acknowledged if result == Result.OK else refused).append(spec.id)

    threads = [threading.Thread(target=client, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    queue.close()

    with db.uow(readonly=True) as uow:
        stored = set(ledger.get_transfers(uow, ids=acknowledged + refused))
    assert stored == set(acknowledged)
    assert queue.stats.requests == 8 * 25
    assert queue.stats.batches <= queue.stats.requests
    assert sum(_balances(db, ids).values()) == 10 * 500
    assert min(_balances(db, ids).values()) >= 0
    assert_ledger_clean(db)


def test_a_failed_commit_fails_every_request_of_its_batch_and_the_queue_carries_on(
    db: Database,
) -> None:
    """An exception in the batch's transaction reaches each waiter; nothing of it is stored."""
    _bank, (a, b) = funded_accounts(db, 2, 100)
    queue = PostingQueue(db)
    with pytest.raises(TypeError):  # the batch's transaction raises while posting
        queue.post([p2p("bad", a, b, "not-an-int")])  # type: ignore[arg-type]
    assert queue.post([p2p("good", a, b, 7)]) == [Result.OK]
    queue.close()
    assert _balances(db, [a, b]) == {a: 93, b: 107}
    assert_ledger_clean(db)
