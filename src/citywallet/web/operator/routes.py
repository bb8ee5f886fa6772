"""Pages of the operator console (``/operator``)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/operator", include_in_schema=False)
