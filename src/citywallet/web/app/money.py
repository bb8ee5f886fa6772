"""Residents' wallet pages: home, top-up, withdrawal, transfers, AA splits, history,
receipts, spending overview."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/app", include_in_schema=False)
