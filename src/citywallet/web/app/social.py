"""Residents' wallet pages: red packets, groups and campaigns."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/app", include_in_schema=False)
