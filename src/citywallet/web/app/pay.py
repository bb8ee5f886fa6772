"""Residents' wallet pages: scan to pay and the payment code."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/app", include_in_schema=False)
