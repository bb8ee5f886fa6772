"""Residents' wallet pages: sign-up, real name and tiers, bank cards, devices, the PWA's files."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/app", include_in_schema=False)
