""" "Verify now": the ledger verifier run in a background thread of this process, its
progress readable while it runs. The run is a read-only check (one read transaction);
its audit entry, with the result, is written when it finishes."""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field

from citywallet.identity import audit
from citywallet.identity.audit import Actor
from citywallet.ledger.audit import verify_ledger
from citywallet.platform.clock import now_us
from citywallet.platform.logging import get_logger
from citywallet.runtime import Runtime

log = get_logger(__name__)
KEEP = 50  # finished runs remembered


@dataclass
class VerifyRun:
    """One verification: where it is and, once finished, what it found."""

    id: str
    actor: Actor
    started_at: int
    stage: str = "starting"
    done: int = 0
    total: int = 0
    finished: bool = False
    ok: bool = False
    problems: list[str] = field(default_factory=list)
    accounts: int = 0
    transfers: int = 0
    blocks: int = 0
    sealed_transfers: int = 0
    failed: bool = False

    @property
    def percent(self) -> int:
        """How far the current stage is (0–100)."""
        if self.finished:
            return 100
        return 0 if not self.total else min(99, self.done * 100 // self.total)


_runs: dict[str, VerifyRun] = {}
_lock = threading.Lock()


def start(runtime: Runtime, actor: Actor) -> VerifyRun:
    """Start a verification in the background; returns its run (poll :func:`get`)."""
    run = VerifyRun(secrets.token_urlsafe(9), actor, now_us())
    with _lock:
        _runs[run.id] = run
        for old in [r for r in _runs.values() if r.finished][:-KEEP]:
            _runs.pop(old.id, None)
    threading.Thread(target=_work, args=(runtime, run), daemon=True, name="verify").start()
    return run


def get(run_id: str) -> VerifyRun | None:
    """A run of this process, or None."""
    with _lock:
        return _runs.get(run_id)


def _work(runtime: Runtime, run: VerifyRun) -> None:
    def progress(stage: str, done: int, total: int) -> None:
        run.stage, run.done, run.total = stage, done, total

    try:
        public_key = runtime.ledger_signer().public_key
        with runtime.db.uow(readonly=True) as uow:
            report = verify_ledger(uow, public_key=public_key, progress=progress)
        run.problems = list(report.problems)
        run.accounts, run.transfers = report.accounts, report.transfers
        run.blocks, run.sealed_transfers = report.blocks, report.sealed_transfers
        run.ok = report.ok
    except Exception as exc:  # the page says it failed; the log says why
        log.error("ledger_verify_failed", error=repr(exc))
        run.failed, run.ok = True, False
        run.problems = ["the verification could not finish"]
    outcome = "ok" if run.ok else f"{len(run.problems)} problems"
    detail = f"{outcome}; {run.accounts} accounts, {run.transfers} transfers, {run.blocks} blocks"
    try:
        runtime.db.transact(
            lambda uow: audit.record(
                uow, actor=run.actor, action="ledger.verify", target_id=run.id, detail=detail
            )
        )
    finally:
        run.stage, run.finished = "finished", True
