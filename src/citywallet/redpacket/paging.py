"""Page sizes for red-packet lists (their cursors: ``citywallet.platform.cursors``)."""

from __future__ import annotations

MAX_PAGE = 100


def page_limit(limit: int) -> int:
    """``limit`` bounded to 1…``MAX_PAGE``."""
    return max(1, min(limit, MAX_PAGE))
