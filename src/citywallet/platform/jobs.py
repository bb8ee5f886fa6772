"""Background work: a job queue in the database, lease-guarded periodic tasks, the worker.

**Jobs run exactly once.** A worker *claims* a job in a short transaction of its own
(status ``running``, ``locked_by`` itself, ``locked_until`` a few minutes ahead; PostgreSQL
picks it with ``FOR UPDATE SKIP LOCKED``, SQLite's ``BEGIN IMMEDIATE`` writer lock
serialises the pick). It then *runs* the job in a second transaction that first re-checks
(and on PostgreSQL row-locks) that the claim is still its own, calls the handler with that
transaction's unit of work, and marks the job ``done`` — so the handler's effects and the
completion commit together or not at all. A worker that dies mid-job loses nothing: its
transaction rolls back, and once ``locked_until`` passes another worker claims the job again.
A failing handler is retried with exponential backoff until ``max_attempts``, then the job
is ``failed`` (kept, with ``last_error``, for an operator to look at).

**Periodic tasks** (expiry, sealing, outbox delivery, purges) are guarded by a lease in
``platform_leases``: whoever takes the expired lease runs the task; the lease is then set to
expire at the next due time, so across all processes a task runs about once per interval.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy import text

from citywallet.platform.clock import now_us
from citywallet.platform.db import Database, UnitOfWork
from citywallet.platform.outbox import SECOND_US, backoff_us

LOCK_SECONDS = 300  # how long a claim stays valid if its worker vanishes
TASK_LEASE_SECONDS = 300  # how long a periodic task may run before another may start it

log = structlog.get_logger(__name__)

JobHandler = Callable[[UnitOfWork, dict[str, Any]], None]
_HANDLERS: dict[str, JobHandler] = {}


def job_handler(name: str) -> Callable[[JobHandler], JobHandler]:
    """Register the handler of jobs called ``name`` (decorator); it gets ``(uow, payload)``."""

    def register(fn: JobHandler) -> JobHandler:
        _HANDLERS[name] = fn
        return fn

    return register


def registered_handlers() -> dict[str, JobHandler]:
    """A copy of the handlers registered with :func:`job_handler`."""
    return dict(_HANDLERS)


# --- the queue ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ClaimedJob:
    """A job this worker has claimed; ``attempts`` counts this attempt."""

    id: int
    name: str
    payload: dict[str, Any]
    attempts: int
    max_attempts: int
    worker_id: str


def enqueue(
    uow: UnitOfWork,
    *,
    name: str,
    payload: dict[str, Any],
    run_at: int | None = None,
    dedupe_key: str | None = None,
    max_attempts: int = 10,
) -> int:
    """Queue a job in the caller's transaction; with ``dedupe_key`` at most one job ever exists."""
    row = uow.session.execute(
        text(
            "INSERT INTO platform_jobs (name, dedupe_key, payload, status, run_at, attempts, "
            "max_attempts) VALUES (:name, :dedupe, :payload, 'queued', :run_at, 0, :max) "
            "ON CONFLICT (dedupe_key) DO NOTHING RETURNING id"
        ),
        {
            "name": name,
            "dedupe": dedupe_key,
            "payload": json.dumps(payload, sort_keys=True, separators=(",", ":")),
            "run_at": run_at if run_at is not None else now_us(),
            "max": max_attempts,
        },
    ).first()
    if row is None:  # the dedupe key exists: the job was queued before
        row = uow.session.execute(
            text("SELECT id FROM platform_jobs WHERE dedupe_key = :dedupe"),
            {"dedupe": dedupe_key},
        ).one()
    return int(row[0])


def claim(
    db: Database,
    *,
    worker_id: str,
    names: Iterable[str] | None = None,
    lock_seconds: int = LOCK_SECONDS,
    now: int | None = None,
) -> ClaimedJob | None:
    """Claim the next due job (optionally only these ``names``) and commit the claim."""
    moment = now if now is not None else now_us()
    wanted = None if names is None else sorted(names)
    if wanted == []:
        return None
    return db.transact(lambda uow: _claim(uow, worker_id, wanted, lock_seconds, moment))


def _claim(
    uow: UnitOfWork, worker_id: str, names: list[str] | None, lock_seconds: int, moment: int
) -> ClaimedJob | None:
    params: dict[str, Any] = {
        "now": moment,
        "worker": worker_id,
        "until": moment + lock_seconds * SECOND_US,
    }
    name_filter = ""
    if names is not None:
        marks = ", ".join(f":n{i}" for i in range(len(names)))
        name_filter = f"AND name IN ({marks}) "
        params.update({f"n{i}": n for i, n in enumerate(names)})
    lock = " FOR UPDATE SKIP LOCKED" if uow.dialect == "postgresql" else ""
    statement = text(
        "UPDATE platform_jobs SET status = 'running', attempts = attempts + 1, "
        "locked_by = :worker, locked_until = :until "
        "WHERE id = (SELECT id FROM platform_jobs "
        "WHERE ((status = 'queued' AND run_at <= :now) "
        "OR (status = 'running' AND locked_until < :now)) "
        f"{name_filter}ORDER BY run_at, id LIMIT 1{lock}) "
        "RETURNING id, name, payload, attempts, max_attempts"
    )
    while (row := uow.session.execute(statement, params).first()) is not None:
        job = ClaimedJob(
            int(row[0]), row[1], json.loads(row[2]), int(row[3]), int(row[4]), worker_id
        )
        if job.attempts <= job.max_attempts:
            return job
        # A worker died holding the final attempt: give up on the job instead of running it.
        _finish(uow, job, status="failed", error="worker lost on the final attempt", now=moment)
    return None


def complete(uow: UnitOfWork, job: ClaimedJob, *, now: int | None = None) -> bool:
    """Mark the job done if this worker still holds it; returns whether it did."""
    return _finish(uow, job, status="done", error=None, now=now)


def fail(uow: UnitOfWork, job: ClaimedJob, *, error: str, now: int | None = None) -> str:
    """Record a failed attempt: back to ``queued`` with backoff, or ``failed`` when exhausted.

    Returns the job's new status, or ``lost`` if this worker no longer holds the job.
    """
    moment = now if now is not None else now_us()
    if job.attempts >= job.max_attempts:
        return "failed" if _finish(uow, job, status="failed", error=error, now=moment) else "lost"
    result = uow.session.execute(
        text(
            "UPDATE platform_jobs SET status = 'queued', run_at = :run_at, last_error = :error, "
            "locked_by = NULL, locked_until = NULL "
            "WHERE id = :id AND status = 'running' AND locked_by = :worker"
        ),
        {
            "id": job.id,
            "worker": job.worker_id,
            "run_at": moment + backoff_us(job.attempts),
            "error": error[:2000],
        },
    )
    return "queued" if result.rowcount == 1 else "lost"  # type: ignore[attr-defined]


def _finish(
    uow: UnitOfWork, job: ClaimedJob, *, status: str, error: str | None, now: int | None
) -> bool:
    result = uow.session.execute(
        text(
            "UPDATE platform_jobs SET status = :status, finished_at = :now, last_error = :error, "
            "locked_by = NULL, locked_until = NULL "
            "WHERE id = :id AND status = 'running' AND locked_by = :worker"
        ),
        {
            "id": job.id,
            "worker": job.worker_id,
            "status": status,
            "now": now if now is not None else now_us(),
            "error": None if error is None else error[:2000],
        },
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


class _ClaimLost(Exception):
    """Another worker took the job over after our claim expired."""


def run_job(db: Database, job: ClaimedJob, handler: JobHandler) -> str:
    """Run a claimed job: handler and completion in one transaction; returns the outcome.

    Outcomes: ``done``; ``queued`` (will be retried) or ``failed`` after a handler error;
    ``lost`` if the claim was no longer ours (nothing was committed).
    """

    def attempt(uow: UnitOfWork) -> None:
        lock = " FOR UPDATE" if uow.dialect == "postgresql" else ""
        still_ours = uow.session.execute(
            text(
                "SELECT id FROM platform_jobs "
                f"WHERE id = :id AND status = 'running' AND locked_by = :worker{lock}"
            ),
            {"id": job.id, "worker": job.worker_id},
        ).first()
        if still_ours is None:
            raise _ClaimLost
        handler(uow, job.payload)
        if not complete(uow, job):
            raise _ClaimLost

    try:
        db.transact(attempt)
    except _ClaimLost:
        log.warning("job claim lost", job_id=job.id, job=job.name, worker=job.worker_id)
        return "lost"
    except Exception as exc:  # the handler (or its transaction) failed: retry later
        error = f"{exc.__class__.__name__}: {exc}"
        outcome = db.transact(lambda uow: fail(uow, job, error=error))
        log.warning(
            "job failed", job_id=job.id, job=job.name, attempt=job.attempts,
            outcome=outcome, error=error,
        )  # fmt: skip
        return outcome
    return "done"


# --- leases -------------------------------------------------------------------------------


def acquire_lease(
    uow: UnitOfWork, *, name: str, holder: str, seconds: float, now: int | None = None
) -> bool:
    """Take the lease ``name`` for ``seconds`` if nobody holds an unexpired one."""
    moment = now if now is not None else now_us()
    row = uow.session.execute(
        text(
            "INSERT INTO platform_leases (name, holder, until) VALUES (:name, :holder, :until) "
            "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until "
            "WHERE platform_leases.until <= :now RETURNING holder"
        ),
        {"name": name, "holder": holder, "until": moment + int(seconds * SECOND_US), "now": moment},
    ).first()
    return row is not None


def set_lease_expiry(uow: UnitOfWork, *, name: str, holder: str, until: int) -> bool:
    """Move the end of a lease this holder has (renew, or release early); returns success."""
    result = uow.session.execute(
        text("UPDATE platform_leases SET until = :until WHERE name = :name AND holder = :holder"),
        {"name": name, "holder": holder, "until": until},
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


# --- the worker ---------------------------------------------------------------------------

PeriodicFn = Callable[[Database], int]


@dataclass
class PeriodicTask:
    """A function run every ``every_seconds`` by one worker at a time; returns work done."""

    name: str
    every_seconds: float
    fn: PeriodicFn
    next_check: int = 0  # this process's next look at the lease (µs)


def default_worker_id() -> str:
    """``host:pid:random`` — unique per worker, readable in ``locked_by``."""
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class Worker:
    """Runs due periodic tasks and queued jobs; one per thread or process."""

    db: Database
    worker_id: str = field(default_factory=default_worker_id)
    handlers: Mapping[str, JobHandler] | None = None  # None: the @job_handler registry
    max_jobs_per_run: int = 50
    lock_seconds: int = LOCK_SECONDS
    tasks: dict[str, PeriodicTask] = field(default_factory=dict)

    def register_periodic(self, name: str, every_seconds: float, fn: PeriodicFn) -> None:
        """Run ``fn(db)`` about every ``every_seconds`` across all workers (lease ``name``)."""
        self.tasks[name] = PeriodicTask(name, every_seconds, fn)

    def run_once(self) -> int:
        """Run the due periodic tasks and up to ``max_jobs_per_run`` jobs; returns work done."""
        done = sum(self._run_task_if_due(task) for task in list(self.tasks.values()))
        handlers = self.handlers if self.handlers is not None else registered_handlers()
        for _ in range(self.max_jobs_per_run):
            job = claim(
                self.db, worker_id=self.worker_id, names=handlers, lock_seconds=self.lock_seconds
            )
            if job is None:
                break
            run_job(self.db, job, handlers[job.name])
            done += 1
        return done

    def run_forever(self, stop_event: threading.Event, *, poll_seconds: float = 0.5) -> None:
        """Loop :meth:`run_once` until ``stop_event`` is set, pausing when there was nothing."""
        log.info("worker started", worker=self.worker_id, tasks=sorted(self.tasks))
        while not stop_event.is_set():
            try:
                busy = self.run_once() > 0
            except Exception:  # keep the worker alive; the database may be briefly away
                log.exception("worker iteration failed", worker=self.worker_id)
                busy = False
            if not busy:
                stop_event.wait(poll_seconds)
        log.info("worker stopped", worker=self.worker_id)

    def run_task(self, name: str) -> int:
        """Run one periodic task now, by hand, ignoring its schedule (``KeyError`` if unknown)."""
        return self.tasks[name].fn(self.db)

    def _run_task_if_due(self, task: PeriodicTask) -> int:
        started = now_us()
        if started < task.next_check:
            return 0
        task.next_check = started + int(task.every_seconds * SECOND_US)
        lease = f"task:{task.name}"
        lease_seconds = max(task.every_seconds, TASK_LEASE_SECONDS)
        won = self.db.transact(
            lambda uow: acquire_lease(
                uow, name=lease, holder=self.worker_id, seconds=lease_seconds, now=started
            )
        )
        if not won:
            return 0
        try:
            return task.fn(self.db)
        except Exception:  # one broken task must not stop the others
            log.exception("periodic task failed", task=task.name, worker=self.worker_id)
            return 0
        finally:
            # The lease now marks the next due time, counted from this run's start.
            self.db.transact(
                lambda uow: set_lease_expiry(
                    uow, name=lease, holder=self.worker_id, until=task.next_check
                )
            )
