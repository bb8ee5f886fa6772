"""Time in integer microseconds since the Unix epoch, the unit of every stored timestamp."""

from __future__ import annotations

import time
from datetime import UTC, datetime

DAY_US = 86_400_000_000


def now_us() -> int:
    """The current time in microseconds since the epoch."""
    return time.time_ns() // 1_000


def to_datetime(us: int) -> datetime:
    """A UTC datetime for a microsecond timestamp (for display at the edges)."""
    return datetime.fromtimestamp(us / 1_000_000, tz=UTC)
