"""Liveness, readiness and metrics (docs/operations.md, "Observability")."""

from __future__ import annotations

import threading
import weakref

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from citywallet.api.deps import RuntimeDep
from citywallet.platform import metrics
from citywallet.platform.clock import now_us
from citywallet.platform.errors import DatabaseUnavailable
from citywallet.platform.migrations import head_revision
from citywallet.runtime import Runtime

router = APIRouter(tags=["health"])
_states: weakref.WeakKeyDictionary[Engine, metrics.DatabaseState] = weakref.WeakKeyDictionary()
_states_lock = threading.Lock()


@router.get("/healthz")
def healthz(runtime: RuntimeDep) -> dict[str, str]:
    """200 when the process and its database answer (alive)."""
    try:
        with runtime.db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        raise DatabaseUnavailable("The database is not reachable.") from exc
    return {"status": "ok", "database": runtime.db.dialect}


def readiness(runtime: Runtime) -> tuple[bool, dict[str, object]]:
    """Whether this process should get traffic: the database answers, its schema is the
    one this code expects, and sealing keeps up (the oldest unsealed transfer is younger
    than the bound ``ledger verify`` holds it to)."""
    checks: dict[str, object] = {}
    settings = runtime.settings
    bound = settings.seal_interval_seconds * settings.ledger_unsealed_bound_intervals
    try:
        with runtime.db.engine.connect() as conn:
            oldest = conn.execute(
                text("SELECT MIN(timestamp) FROM ledger_transfers WHERE block_height IS NULL")
            ).scalar()
            revision = _revision(conn)
            read_only = conn.dialect.name == "postgresql" and (
                conn.execute(text("SHOW transaction_read_only")).scalar() == "on"
            )
    except Exception:  # not ready is the answer, whatever the cause
        return False, {"database": "unreachable"}
    if read_only:  # a standby not promoted yet, or a primary demoted: no writes
        return False, {"database": "read_only"}
    checks["database"] = "ok"
    checks["migrations"] = {"database": revision, "code": head_revision()}
    lag = max(0.0, (now_us() - int(oldest)) / 1_000_000) if oldest is not None else 0.0
    checks["seal_lag_seconds"] = {"value": round(lag, 3), "bound": bound}
    ready = revision == head_revision() and lag <= bound
    return ready, checks


def _revision(conn: Connection) -> str | None:
    """The database's migration (``None``: never stamped, so not one this code knows)."""
    try:
        with conn.begin_nested():
            found = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except DBAPIError:
        return None
    return None if found is None else str(found)


@router.get("/readyz")
def readyz(runtime: RuntimeDep) -> JSONResponse:
    """200 ``ready`` or 503 ``not_ready``, with each check's finding."""
    ready, checks = readiness(runtime)
    body = {"status": "ready" if ready else "not_ready", "checks": checks}
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/metrics", include_in_schema=False)
def prometheus(runtime: RuntimeDep) -> Response:
    """Prometheus metrics of the server (every process of it) and the database's state."""
    engine = runtime.db.engine
    with _states_lock:
        state = _states.get(engine)
        if state is None:
            state = _states[engine] = metrics.DatabaseState(engine, clock=now_us)
    body, media_type = metrics.exposition(state)
    return Response(body, media_type=media_type)
