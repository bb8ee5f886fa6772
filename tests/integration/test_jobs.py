"""The job queue, leases and the worker — including exactly-once across OS processes.

Run as a module (``python -m tests.integration.test_jobs URL WORKER_ID GO_FILE``) this file
is the child worker process of :func:`test_each_job_runs_exactly_once_across_processes`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from citywallet.ledger import service as ledger
from citywallet.ledger.service import expiry_void_id
from citywallet.ledger.types import AccountCode, AccountFlags, Result, TransferFlags, TransferSpec
from citywallet.platform import jobs, outbox
from citywallet.platform.clock import now_us
from citywallet.platform.config import Settings
from citywallet.platform.db import Database, UnitOfWork
from citywallet.platform.jobs import (
    ClaimedJob,
    Worker,
    acquire_lease,
    claim,
    enqueue,
    run_job,
    set_lease_expiry,
)
from citywallet.platform.outbox import SECOND_US, Message, backoff_us
from citywallet.runtime import Runtime
from citywallet.tasks import build_worker
from tests.ledger_checks import assert_ledger_clean, test_encryptor

REPO_ROOT = Path(__file__).resolve().parents[2]
PROCESS_JOBS = 100
PROCESSES = 3
SHARED_TASK = "test.shared_periodic"


def _job(db: Database, job_id: int) -> Any:
    with db.uow(readonly=True) as uow:
        return uow.session.execute(
            text(
                "SELECT status, attempts, run_at, locked_by, locked_until, last_error, "
                "finished_at FROM platform_jobs WHERE id = :id"
            ),
            {"id": job_id},
        ).one()


def _witnesses(db: Database, topic: str = "witness") -> list[dict[str, Any]]:
    with db.uow(readonly=True) as uow:
        rows = uow.session.execute(
            text("SELECT payload FROM platform_outbox WHERE topic = :t ORDER BY id"), {"t": topic}
        ).all()
    return [json.loads(r[0]) for r in rows]


def _witness(uow: UnitOfWork, payload: dict[str, Any]) -> None:
    """A handler whose effect the test can count: one outbox row per run."""
    outbox.enqueue(uow, topic="witness", payload=payload)


# --- the queue ----------------------------------------------------------------------------


def test_enqueue_claim_complete(db: Database) -> None:
    job_id = db.transact(lambda uow: enqueue(uow, name="mail", payload={"to": "a"}))
    job = claim(db, worker_id="w1")
    assert job == ClaimedJob(job_id, "mail", {"to": "a"}, 1, 10, "w1")
    row = _job(db, job_id)
    assert (row.status, row.locked_by) == ("running", "w1")
    assert row.locked_until > now_us()
    assert claim(db, worker_id="w2") is None  # claimed jobs are not handed out twice
    assert db.transact(lambda uow: jobs.complete(uow, job))
    row = _job(db, job_id)
    assert (row.status, row.locked_by, row.locked_until) == ("done", None, None)
    assert row.finished_at is not None
    assert claim(db, worker_id="w2") is None
    assert not db.transact(lambda uow: jobs.complete(uow, job))  # done is final


def test_claim_honours_run_at_order_and_names(db: Database) -> None:
    start = now_us()
    later = db.transact(
        lambda uow: enqueue(uow, name="a", payload={}, run_at=start + 60 * SECOND_US)
    )
    first = db.transact(lambda uow: enqueue(uow, name="a", payload={}, run_at=start - 2))
    second = db.transact(lambda uow: enqueue(uow, name="b", payload={}, run_at=start - 1))
    assert claim(db, worker_id="w", names=["c"]) is None
    assert claim(db, worker_id="w", names=[]) is None
    picked_b = claim(db, worker_id="w", names=["b"])
    assert picked_b is not None
    assert picked_b.id == second
    picked = claim(db, worker_id="w")
    assert picked is not None
    assert picked.id == first
    assert claim(db, worker_id="w") is None  # ``later`` is not due yet
    due_later = claim(db, worker_id="w", now=start + 60 * SECOND_US)
    assert due_later is not None
    assert due_later.id == later


def test_dedupe_key_makes_enqueue_idempotent(db: Database) -> None:
    def twice(uow: UnitOfWork) -> tuple[int, int]:
        one = enqueue(uow, name="draw", payload={"campaign": 7}, dedupe_key="draw:7")
        two = enqueue(uow, name="draw", payload={"campaign": 7}, dedupe_key="draw:7")
        return one, two

    one, two = db.transact(twice)
    assert one == two
    again = db.transact(
        lambda uow: enqueue(uow, name="draw", payload={"campaign": 7}, dedupe_key="draw:7")
    )
    assert again == one
    other = db.transact(
        lambda uow: enqueue(uow, name="draw", payload={"campaign": 8}, dedupe_key="draw:8")
    )
    assert other != one
    job = claim(db, worker_id="w")
    assert job is not None
    assert job.id == one
    assert run_job(db, job, lambda uow, payload: None) == "done"
    # Still the same, finished job: a dedupe key never runs twice.
    assert (
        db.transact(lambda uow: enqueue(uow, name="draw", payload={}, dedupe_key="draw:7")) == one
    )
    assert _job(db, one).status == "done"
    with db.uow(readonly=True) as uow:
        assert uow.session.execute(text("SELECT COUNT(*) FROM platform_jobs")).scalar_one() == 2


def test_failures_back_off_exponentially_then_fail(db: Database) -> None:
    def broken(uow: UnitOfWork, payload: dict[str, Any]) -> None:
        raise ValueError("upstream said no")

    job_id = db.transact(lambda uow: enqueue(uow, name="x", payload={}, max_attempts=3))
    moment = now_us()
    for attempt, expected in [(1, "queued"), (2, "queued"), (3, "failed")]:
        job = claim(db, worker_id="w", now=moment)
        assert job is not None
        assert job.attempts == attempt
        before = now_us()
        assert run_job(db, job, broken) == expected
        after = now_us()
        row = _job(db, job_id)
        assert row.attempts == attempt
        assert row.last_error == "ValueError: upstream said no"
        assert row.locked_by is None
        if expected == "queued":
            assert row.status == "queued"
            assert row.finished_at is None
            # 2 s after the first failure, 4 s after the second.
            assert before + backoff_us(attempt) <= row.run_at <= after + backoff_us(attempt)
            assert claim(db, worker_id="w", now=row.run_at - 1) is None  # not due yet
            moment = row.run_at
    row = _job(db, job_id)
    assert row.status == "failed"
    assert row.finished_at is not None
    assert claim(db, worker_id="w", now=now_us() + 10**12) is None  # never again


def test_handler_effects_and_completion_commit_together(db: Database) -> None:
    calls = 0

    def flaky(uow: UnitOfWork, payload: dict[str, Any]) -> None:
        nonlocal calls
        calls += 1
        _witness(uow, {"n": payload["n"], "call": calls})
        if calls == 1:
            raise RuntimeError("crashed after writing")

    job_id = db.transact(lambda uow: enqueue(uow, name="w", payload={"n": 1}))
    job = claim(db, worker_id="w")
    assert job is not None
    assert run_job(db, job, flaky) == "queued"
    assert _witnesses(db) == []  # the effect rolled back with the failed attempt
    retry = claim(db, worker_id="w", now=_job(db, job_id).run_at)
    assert retry is not None
    assert run_job(db, retry, flaky) == "done"
    assert _witnesses(db) == [{"n": 1, "call": 2}]
    assert _job(db, job_id).status == "done"


def test_enqueue_is_part_of_the_callers_transaction(db: Database) -> None:
    with db.uow() as uow:
        enqueue(uow, name="w", payload={})
        uow.rollback()
    assert claim(db, worker_id="w") is None


def test_expired_claim_is_taken_over_and_the_old_worker_cannot_finish(db: Database) -> None:
    ran: list[str] = []
    job_id = db.transact(lambda uow: enqueue(uow, name="w", payload={"n": 1}))
    start = now_us()
    stale = claim(db, worker_id="crashed", lock_seconds=1, now=start)
    assert stale is not None
    assert claim(db, worker_id="other", now=start + SECOND_US // 2) is None  # lock still held
    fresh = claim(db, worker_id="other", now=start + 2 * SECOND_US)
    assert fresh is not None
    assert fresh.id == job_id
    assert fresh.attempts == 2

    def record(who: str) -> jobs.JobHandler:
        def handler(uow: UnitOfWork, payload: dict[str, Any]) -> None:
            ran.append(who)
            _witness(uow, {"n": payload["n"], "by": who})

        return handler

    assert run_job(db, stale, record("crashed")) == "lost"
    assert db.transact(lambda uow: jobs.fail(uow, stale, error="late")) == "lost"
    assert run_job(db, fresh, record("other")) == "done"
    assert ran == ["other"]
    assert _witnesses(db) == [{"n": 1, "by": "other"}]


def test_a_worker_lost_on_the_final_attempt_fails_the_job(db: Database) -> None:
    job_id = db.transact(lambda uow: enqueue(uow, name="w", payload={}, max_attempts=1))
    start = now_us()
    assert claim(db, worker_id="crashed", lock_seconds=1, now=start) is not None
    assert claim(db, worker_id="other", now=start + 2 * SECOND_US) is None
    row = _job(db, job_id)
    assert row.status == "failed"
    assert "final attempt" in row.last_error


# --- leases and periodic tasks ------------------------------------------------------------


def test_lease_has_one_holder_until_it_expires(db: Database) -> None:
    start = now_us()

    def take(holder: str, at: int) -> bool:
        return db.transact(
            lambda uow: acquire_lease(uow, name="seal", holder=holder, seconds=10, now=at)
        )

    assert take("a", start)
    assert not take("b", start + 1)
    assert not take("a", start + 1)  # not re-entrant: the lease is also the schedule
    assert not take("b", start + 10 * SECOND_US - 1)
    assert take("b", start + 10 * SECOND_US)  # expired: b takes over
    assert not db.transact(lambda uow: set_lease_expiry(uow, name="seal", holder="a", until=0))
    assert db.transact(lambda uow: set_lease_expiry(uow, name="seal", holder="b", until=0))
    assert take("a", start + 10 * SECOND_US + 1)  # released early


def test_periodic_task_runs_on_one_worker_per_interval(db: Database) -> None:
    runs: list[str] = []

    def make_worker(name: str) -> Worker:
        worker = Worker(db, worker_id=name, handlers={})

        def tick(_db: Database) -> int:
            runs.append(name)
            return 1

        worker.register_periodic("tick", 600, tick)
        return worker

    first, second = make_worker("first"), make_worker("second")
    assert first.run_once() == 1
    assert second.run_once() == 0
    second.tasks["tick"].next_check = 0  # look again at once: the lease still says no
    assert second.run_once() == 0
    assert runs == ["first"]
    with db.uow(readonly=True) as uow:
        until = uow.session.execute(
            text("SELECT until FROM platform_leases WHERE name = 'task:tick'")
        ).scalar_one()
    assert until == first.tasks["tick"].next_check  # next due time, from the run's start


def test_a_failing_periodic_task_does_not_stop_the_worker(db: Database) -> None:
    def broken(_db: Database) -> int:
        raise RuntimeError("boom")

    job_id = db.transact(lambda uow: enqueue(uow, name="w", payload={"n": 1}))
    worker = Worker(db, worker_id="w", handlers={"w": _witness})
    worker.register_periodic("broken", 1, broken)
    assert worker.run_once() == 1  # the job still ran
    assert _job(db, job_id).status == "done"


def test_run_forever_until_stopped(db: Database) -> None:
    worker = Worker(db, worker_id="bg", handlers={"w": _witness})
    stop = threading.Event()
    thread = threading.Thread(
        target=worker.run_forever, args=(stop,), kwargs={"poll_seconds": 0.01}
    )
    thread.start()
    try:
        ids = [
            db.transact(lambda uow, n=n: enqueue(uow, name="w", payload={"n": n})) for n in range(3)
        ]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(_witnesses(db)) < 3:
            time.sleep(0.02)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert sorted(w["n"] for w in _witnesses(db)) == [0, 1, 2]
    assert {_job(db, i).status for i in ids} == {"done"}


def test_default_tasks_expire_seal_and_deliver(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    delivered: list[Message] = []
    monkeypatch.setattr(outbox, "_HANDLERS", {})  # register for this test only
    outbox.outbox_handler("test.jobs.default")(delivered.append)

    def setup(uow: UnitOfWork) -> list[Result]:
        bank = ledger.create_account(uow, ledger="CNY", code=AccountCode.BANK_SETTLEMENT)
        alice = ledger.create_account(
            uow,
            ledger="CNY",
            code=AccountCode.CUSTOMER_WALLET,
            flags=AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS,
        )
        outbox.enqueue(uow, topic="test.jobs.default", payload={"hello": 1})
        return ledger.post(
            uow,
            transfers=[
                TransferSpec("top", bank, alice, 1_000, "CNY", 1),
                TransferSpec(
                    "hold", alice, bank, 300, "CNY", 2, flags=TransferFlags.PENDING, timeout=1
                ),
            ],
        )

    assert db.transact(setup) == [Result.OK, Result.OK]
    time.sleep(1.1)  # let the hold's one-second timeout pass
    runtime = Runtime(Settings(var_dir=tmp_path, database_url=db.url), db, test_encryptor())
    worker = build_worker(runtime, worker_id="default")
    assert set(worker.tasks) == {
        "ledger.expire_pending",
        "ledger.seal_block",
        "outbox.deliver",
        "idempotency.purge",
        "ratelimit.purge",
        "control.expire_proposals",
        "interop.purge",
        "wallet.reconcile_fundings",
        "merchant.close_expired_orders",
        "merchant.settle",
        "merchant.purge_nonces",
        "redpacket.expire",
        "campaign.reclaim",
    }
    # expired 1 + sealed 3 (top, hold, its void) + delivered 1
    assert worker.run_once() == 5
    with db.uow(readonly=True) as uow:
        assert ledger.get_transfer(uow, transfer_id=expiry_void_id("hold")) is not None
        unsealed = uow.session.execute(
            text("SELECT COUNT(*) FROM ledger_transfers WHERE block_height IS NULL")
        ).scalar_one()
    assert unsealed == 0
    assert [m.payload for m in delivered] == [{"hello": 1}]
    assert_ledger_clean(db)


# --- exactly once across processes --------------------------------------------------------


def _child_main(url: str, worker_id: str, go_file: str) -> None:
    """A worker process: wait for the start signal, then drain the queue."""
    db = Database(url, pool_size=2)

    def record(uow: UnitOfWork, payload: dict[str, Any]) -> None:
        _witness(uow, {"n": payload["n"], "worker": worker_id})
        time.sleep(0.002)  # hold the job's transaction a moment, so workers overlap

    def shared(database: Database) -> int:
        database.transact(
            lambda uow: outbox.enqueue(uow, topic="witness.periodic", payload={"worker": worker_id})
        )
        return 1

    worker = Worker(db, worker_id=worker_id, handlers={"test.record": record}, max_jobs_per_run=1)
    worker.register_periodic(SHARED_TASK, 600, shared)
    Path(go_file + "." + worker_id).touch()  # ready
    deadline = time.monotonic() + 60
    while not Path(go_file).exists():
        if time.monotonic() > deadline:
            raise SystemExit("no start signal")
        time.sleep(0.005)
    ran = 0
    while done := worker.run_once():
        ran += done
        time.sleep(0.003)  # a pause between jobs, or SQLite's busy wait lets one process hog
    print(json.dumps({"worker": worker_id, "ran": ran}))
    db.dispose()


def test_each_job_runs_exactly_once_across_processes(db: Database, tmp_path: Path) -> None:
    db.transact(
        lambda uow: [
            enqueue(uow, name="test.record", payload={"n": n}) for n in range(PROCESS_JOBS)
        ]
    )
    go_file = str(tmp_path / "go")
    names = [f"proc{i}" for i in range(PROCESSES)]
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.integration.test_jobs", db.url, name, go_file],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in names
    ]
    try:
        deadline = time.monotonic() + 60
        while not all(Path(f"{go_file}.{n}").exists() for n in names):
            assert time.monotonic() < deadline, "worker processes did not start"
            assert all(c.poll() is None for c in children), "a worker process died at start"
            time.sleep(0.01)
        Path(go_file).touch()
        outputs = [c.communicate(timeout=120) for c in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
    for child, (_out, err) in zip(children, outputs, strict=True):
        assert child.returncode == 0, err
    reports = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]

    runs = _witnesses(db)
    per_job = Counter(w["n"] for w in runs)
    assert len(runs) == PROCESS_JOBS, f"{len(runs)} runs for {PROCESS_JOBS} jobs"
    assert set(per_job) == set(range(PROCESS_JOBS))
    assert max(per_job.values()) == 1, [n for n, c in per_job.items() if c > 1]
    with db.uow(readonly=True) as uow:
        states = uow.session.execute(
            text("SELECT status, attempts, COUNT(*) FROM platform_jobs GROUP BY status, attempts")
        ).all()
    assert [tuple(s) for s in states] == [("done", 1, PROCESS_JOBS)]
    per_worker = Counter(w["worker"] for w in runs)
    assert len(per_worker) >= 2, f"the processes did not overlap: {per_worker}"
    # The lease-guarded periodic task ran in exactly one of the three processes.
    assert len(_witnesses(db, "witness.periodic")) == 1
    assert sum(r["ran"] for r in reports) == PROCESS_JOBS + 1


if __name__ == "__main__":
    _child_main(*sys.argv[1:4])
