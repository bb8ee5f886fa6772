"""Group commit on SQLite and PostgreSQL: concurrent requests share a transaction, not a fate."""

from __future__ import annotations

import random
import threading
import time
import uuid

import pytest
from sqlalchemy import text

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


@pytest.mark.parametrize("committers", [1, 3])
def test_results_match_posting_alone_under_concurrency(db: Database, committers: int) -> None:
    """Many threads post single transfers and linked pairs through one queue; every
    acknowledged transfer is on the books once, nothing else is, and no account overdraws."""
    _bank, ids = funded_accounts(db, 10, 500)
    queue = PostingQueue(db, committers=committers)
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


def test_committers_never_wait_for_each_other_on_a_hot_account(db: Database) -> None:
    """Three committers, every request paying one merchant: every payment lands, no batch is
    retried for a lock conflict, and the merchant's balance is the exact sum (the pick rule
    that keeps batches of one account apart is checked in tests/unit/test_ledger_batching.py)."""
    _bank, ids = funded_accounts(db, 9, 1_000)
    merchant, payers = ids[0], ids[1:]
    queue = PostingQueue(db, committers=3)

    def client(payer: int) -> None:
        for n in range(20):
            assert queue.post([p2p(f"pay-{payer}-{n}", payer, merchant, 7)]) == [Result.OK]

    threads = [threading.Thread(target=client, args=(p,)) for p in payers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    queue.close()

    assert queue.stats.requests == 8 * 20
    assert queue.stats.retries == 0
    assert _balances(db, [merchant]) == {merchant: 1_000 + 8 * 20 * 7}
    assert_ledger_clean(db)


def test_one_id_submitted_by_many_at_once_is_posted_once(db: Database) -> None:
    """Concurrent submissions of one transfer id (a client's retries, and one with other
    fields) are ordered by the id: one OK, the same fields EXISTS, other fields refused, and
    no batch fails on the unique id."""
    _bank, (a, b, c) = funded_accounts(db, 3, 1_000)
    queue = PostingQueue(db, committers=3)
    answers: list[Result] = []
    guard = threading.Lock()

    def submit(i: int) -> None:
        spec = p2p("once", a, c if i == 0 else b, 10)
        (result,) = queue.post([spec])
        with guard:
            answers.append(result)

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    queue.close()

    assert answers.count(Result.OK) == 1
    assert set(answers) <= {Result.OK, Result.EXISTS, Result.EXISTS_WITH_DIFFERENT_FIELDS}
    assert queue.stats.retries == 0
    assert sum(_balances(db, [a, b, c]).values()) == 3_000
    assert _balances(db, [a]) == {a: 990}
    assert_ledger_clean(db)


def test_closing_finishes_what_is_queued_and_refuses_nothing(db: Database) -> None:
    """Requests queued before close() are all answered; close() twice is harmless."""
    _bank, (a, b) = funded_accounts(db, 2, 100)
    queue = PostingQueue(db, committers=2, start=False)
    answers: list[list[Result]] = []
    threads = [
        threading.Thread(target=lambda n=n: answers.append(queue.post([p2p(f"q{n}", a, b, 1)])))
        for n in range(5)
    ]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while queue.pending() < 5 and time.monotonic() < deadline:
        time.sleep(0.005)
    queue.start()
    queue.close()
    queue.close()
    for t in threads:
        t.join()
    assert answers == [[Result.OK]] * 5
    assert _balances(db, [a, b]) == {a: 95, b: 105}
    assert_ledger_clean(db)


def test_a_committer_whose_connection_died_while_idle_reconnects(pg_url: str) -> None:
    """PostgreSQL: the committer's held connection is killed between batches; the next batch
    found it dead before any statement succeeded, so it runs again on a new connection, once."""
    db = Database(pg_url, ping_idle_seconds=0)
    try:
        _bank, (a, b) = funded_accounts(db, 2, 100)
        queue = PostingQueue(db, committers=1)
        assert queue.post([p2p("before", a, b, 5)]) == [Result.OK]
        with db.engine.connect() as conn:  # the pool's idle connection kills all the others
            killed = conn.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).scalar_one()
        assert killed >= 1
        assert queue.post([p2p("after", a, b, 7)]) == [Result.OK]
        queue.close()
        assert queue.stats.batches == 2
        assert _balances(db, [a, b]) == {a: 88, b: 112}
        assert_ledger_clean(db)
    finally:
        db.dispose()
