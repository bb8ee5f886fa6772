"""Failpoints: named places in the money flows where a test makes the process die (or the
step fail) on purpose, to prove that a crash there loses nothing and doubles nothing.

Off unless ``CITYWALLET_FAILPOINTS`` names some (``name=action[@n],...``: ``crash`` kills
the process with SIGKILL, as a power cut would; ``error`` raises :class:`FailpointError`;
``@n`` fires on the n-th time the point is reached, default the first). A production
process refuses to start with any set (runtime.refuse_unsafe_start). The points:

- ``ledger.post.before`` / ``ledger.post.after``: around every ledger batch;
- ``commit.before`` / ``commit.after``: around every commit (units of work and the ledger's
  group committers);
- ``response.before``: the response is ready and not sent;
- ``bank.call.before`` / ``bank.call.after``: around every call to the bank adapter.

``tests/integration/test_failpoints.py`` crashes a real server at each of them.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from dataclasses import dataclass

POINTS = frozenset({
    "ledger.post.before", "ledger.post.after", "commit.before", "commit.after",
    "response.before", "bank.call.before", "bank.call.after",
})  # fmt: skip
ACTIONS = frozenset({"crash", "error"})


class FailpointError(RuntimeError):
    """An ``error`` failpoint fired."""


@dataclass
class _Armed:
    action: str
    on_hit: int
    hits: int = 0


_armed: dict[str, _Armed] = {}
_lock = threading.Lock()


def parse(spec: str) -> dict[str, tuple[str, int]]:
    """``"commit.after=crash@2, bank.call.before=error"`` → ``{name: (action, n)}``;
    ``ValueError`` naming what is wrong."""
    found: dict[str, tuple[str, int]] = {}
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        name, _, rest = item.partition("=")
        action, _, count = rest.partition("@")
        name, action = name.strip(), action.strip() or "crash"
        if name not in POINTS:
            raise ValueError(f"unknown failpoint {name!r} (one of {', '.join(sorted(POINTS))})")
        if action not in ACTIONS:
            raise ValueError(f"failpoint {name}: action is crash or error, not {action!r}")
        n = int(count) if count.strip() else 1
        if n < 1:
            raise ValueError(f"failpoint {name}: @n counts from 1")
        found[name] = (action, n)
    return found


def arm(spec: str) -> None:
    """Arm the failpoints ``spec`` names (and disarm every other)."""
    parsed = parse(spec)
    with _lock:
        _armed.clear()
        _armed.update({name: _Armed(action, n) for name, (action, n) in parsed.items()})


def armed() -> bool:
    """Whether any failpoint is armed."""
    return bool(_armed)


def hit(name: str) -> None:
    """Reach failpoint ``name``: nothing unless it is armed and this is its n-th time."""
    if not _armed:  # the production path: one dict truth test
        return
    point = _armed.get(name)
    if point is None:
        return
    with _lock:
        point.hits += 1
        fire = point.hits == point.on_hit
    if not fire:
        return
    sys.stderr.write(f"failpoint {name}: {point.action}\n")
    sys.stderr.flush()
    if point.action == "crash":
        os.kill(os.getpid(), signal.SIGKILL)
    raise FailpointError(f"failpoint {name}")
