"""Pages of the merchant console (``/merchant``)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/merchant", include_in_schema=False)
