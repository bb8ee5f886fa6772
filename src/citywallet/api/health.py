"""Liveness and metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from citywallet.api.deps import RuntimeDep
from citywallet.platform.errors import DomainError

router = APIRouter(tags=["health"])


class DatabaseUnavailable(DomainError):
    """The database did not answer."""

    code = "database_unavailable"
    status = 503
    title = "Service unavailable"


@router.get("/healthz")
def healthz(runtime: RuntimeDep) -> dict[str, str]:
    """200 when the process and its database answer."""
    try:
        with runtime.db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        raise DatabaseUnavailable("The database is not reachable.") from exc
    return {"status": "ok", "database": runtime.db.dialect}


@router.get("/metrics", include_in_schema=False)
def metrics() -> Response:
    """Prometheus metrics of this process."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
