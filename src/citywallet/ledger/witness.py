"""Pushing checkpoints to witnesses, and reading a witness's copy back.

A witness keeps the checkpoints somewhere the platform cannot rewrite: a file on another
disk or host (appended, one JSON line per checkpoint: ``{"tree_size": n, "checkpoint":
"<signed note>"}``), or a webhook URL that receives each signed note as ``text/plain``.
Delivery goes through the outbox (written with the seal, delivered after it committed, at
least once): a repeated delivery to a file is recognised and not appended twice.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from citywallet.platform import outbox

WebPost = Callable[[str, bytes], int]  # (url, body) -> HTTP status


def is_url(target: str) -> bool:
    """Whether a witness target is a webhook URL (else it is a file path)."""
    return target.startswith(("http://", "https://"))


def witness_handler(post: WebPost) -> outbox.OutboxHandler:
    """The outbox handler of ``ledger.checkpoint`` messages; ``post`` sends to a URL."""

    def deliver(message: outbox.Message) -> None:
        target = str(message.payload["target"])
        note = str(message.payload["note"])
        if is_url(target):
            status = post(target, note.encode())
            if not 200 <= status < 300:
                raise RuntimeError(f"witness {target} answered HTTP {status}")
        else:
            append_checkpoint(Path(target), int(message.payload["tree_size"]), note)

    return deliver


def append_checkpoint(path: Path, tree_size: int, note: str) -> bool:
    """Append one checkpoint line to a witness file unless it is the last one already."""
    line = json.dumps({"tree_size": tree_size, "checkpoint": note}, sort_keys=True) + "\n"
    if _last_line(path) == line:
        return False  # an outbox redelivery
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return True


def _last_line(path: Path) -> str | None:
    try:
        with path.open("rb") as file:
            file.seek(0, os.SEEK_END)
            file.seek(max(0, file.tell() - 16_384))
            tail = file.read().decode(errors="replace")
    except FileNotFoundError:
        return None
    lines = tail.splitlines(keepends=True)
    return lines[-1] if lines else None


def read_checkpoints(text: str) -> list[str]:
    """The signed notes in a witness file (JSON lines), or ``text`` itself if it is one note."""
    if not text.lstrip().startswith("{"):
        return [text]
    notes: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            notes.append(str(json.loads(line)["checkpoint"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"line {number} is not a witness checkpoint line") from exc
    return notes
