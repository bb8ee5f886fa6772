"""Structured logs (structlog) with sensitive values masked before anything is written."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any, TextIO

import structlog

SENSITIVE_KEYS = {
    "password", "pin", "payment_pin", "id_number", "card_number", "phone", "secret",
    "token", "authorization", "cvv", "code", "sms_code", "api_key",
}  # fmt: skip
# Mainland mobile numbers, 18-character resident ID numbers and card-like digit runs.
_PATTERNS = [
    re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)"),
    re.compile(r"(?<![\dA-Za-z])\d{17}[\dXx](?![\dA-Za-z])"),
    re.compile(r"(?<!\d)\d{13,19}(?!\d)"),
]


def mask_text(text: str) -> str:
    """Mask phone, ID and card numbers inside free text."""
    for pattern in _PATTERNS:
        text = pattern.sub(
            lambda m: m.group(0)[:3] + "*" * (len(m.group(0)) - 5) + m.group(0)[-2:], text
        )
    return text


class RedactingFormatter(logging.Formatter):
    """Standard-library log lines (uvicorn, SQLAlchemy, libraries) masked like structlog's
    events: they never pass through :func:`redact`."""

    def format(self, record: logging.LogRecord) -> str:
        """The formatted line with phone, ID and card numbers masked."""
        return mask_text(super().format(record))


# httpx2 is the webhook client (and the demo seeder's TestClient): it logs every request's
# full URL at INFO, and httpcore2 traces each step at DEBUG. A merchant's notify URL may
# carry its own secret token in the path or query, so their per-request lines are never
# written; warnings still are.
QUIET_LOGGERS = ("httpx2", "httpcore2")


def redact(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: drop sensitive fields' values and mask numbers in text."""
    for key, value in list(event.items()):
        if key.lower() in SENSITIVE_KEYS:
            event[key] = "***"
        elif isinstance(value, str):
            event[key] = mask_text(value)
    return event


def configure_logging(*, level: str = "INFO", json: bool = False, file: Path | None = None) -> None:
    """Route structlog and the standard library through one redacting pipeline, to stderr
    or (``file``) appended to a file."""
    stream: TextIO = sys.stderr
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        stream = file.open("a", encoding="utf-8", buffering=1)  # for the process's life
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingFormatter("%(levelname)s %(name)s %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler])
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def get_logger(name: str) -> Any:
    """A structlog logger bound to ``name``."""
    return structlog.get_logger(name)
