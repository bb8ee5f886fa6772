"""The logging set-up: standard-library lines are masked like structlog's events, and the
HTTP client's per-request lines (full URLs) are not written at all."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import structlog

from citywallet.platform.logging import configure_logging

PHONE, ID_NUMBER, CARD = "13812345678", "110101199003070011", "6222020000001234567"


@contextmanager
def bare_root() -> Iterator[logging.Logger]:
    """The root logger without pytest's capture handlers (which it adds for each test
    phase), as in a real process; put back afterwards, so no handler outlives the test's
    captured stream."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    quiet = {name: logging.getLogger(name).level for name in ("httpx2", "httpcore2")}
    # An in-process uvicorn of an earlier test gave its loggers handlers of their own;
    # `citywallet serve` runs uvicorn with log_config=None, so there they propagate to root.
    servers = [logging.getLogger(n) for n in ("uvicorn", "uvicorn.error", "uvicorn.access")]
    saved_servers = [(lg.handlers[:], lg.propagate, lg.level) for lg in servers]
    root.handlers.clear()
    for lg in servers:
        lg.handlers.clear()
        lg.propagate, lg.level = True, logging.NOTSET
    try:
        yield root
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        for name, level in quiet.items():
            logging.getLogger(name).setLevel(level)
        for lg, (handlers, propagate, level) in zip(servers, saved_servers, strict=True):
            lg.handlers[:], lg.propagate, lg.level = handlers, propagate, level


def test_standard_library_lines_are_masked(capfd: pytest.CaptureFixture[str]) -> None:
    with bare_root() as root:
        configure_logging(level="DEBUG")
        assert len(root.handlers) == 1
        logging.getLogger("uvicorn.error").warning("from %s id %s card %s", PHONE, ID_NUMBER, CARD)
        logging.getLogger("httpx2").info("HTTP Request: POST https://shop.example/hook?token=t0p")
        logging.getLogger("httpcore2.http11").debug("send_request_headers.started")
        logging.getLogger("httpx2").warning("a warning still shows")
    err = capfd.readouterr().err
    assert "WARNING uvicorn.error from 138******78 id 110*************11" in err
    assert "a warning still shows" in err
    for secret in (PHONE, ID_NUMBER, CARD, "token=t0p", "send_request_headers"):
        assert secret not in err


def test_a_log_file_takes_every_line_and_the_terminal_none(
    capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """``citywallet demo`` sends logs to a file: both pipelines write there, masked."""
    target = tmp_path / "var" / "demo.log"
    with bare_root() as root:
        try:
            configure_logging(level="INFO", file=target)
            logging.getLogger("alembic.runtime.migration").info("Running upgrade for %s", PHONE)
            structlog.get_logger("citywallet.demo").info("user registered", phone=PHONE)
        finally:
            configure_logging(level="INFO")  # structlog back to stderr for later tests
            for handler in root.handlers:  # the file, opened for the process's life
                if isinstance(handler, logging.StreamHandler) and handler.stream is not None:
                    handler.stream.close()
    written = target.read_text(encoding="utf-8")
    assert "INFO alembic.runtime.migration Running upgrade for 138******78" in written
    assert "user registered" in written
    assert PHONE not in written
    assert capfd.readouterr().err == ""
