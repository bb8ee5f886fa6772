"""``citywallet serve --server uvicorn|granian`` (docs/operations.md, "HTTP server"): the
choice is checked before anything starts, and granian is handed the app factory that
handles forwarded headers, with its log lines sent through our handler. granian itself is
an optional extra, so it is stood in for here (tests/api/test_http_guards.py runs the
factory it is given)."""

from __future__ import annotations

import os
import sys
import types
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from typer.testing import CliRunner

from citywallet import cli
from citywallet.platform.config import get_settings
from citywallet.platform.metrics import MULTIPROC_ENV


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("CITYWALLET_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("CITYWALLET_DATABASE_URL", f"sqlite:///{tmp_path / 'cw.db'}")
    monkeypatch.setenv("CITYWALLET_TRUSTED_PROXIES", "10.0.0.0/8")
    monkeypatch.setattr(cli, "configure_logging", lambda **_kw: None)
    # serve --workers N points its server processes at a metrics folder through the
    # environment: recorded here so it is gone again after the test
    monkeypatch.setenv(MULTIPROC_ENV, "")
    monkeypatch.delenv(MULTIPROC_ENV)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def _fake_granian(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []

    class Interfaces(StrEnum):
        ASGI = "asgi"

    class LogLevels(StrEnum):
        warning = "warning"

    class Server:
        def __init__(self, target: str, **options: Any) -> None:
            calls.append({"target": target, **options})

        def serve(self) -> None:
            calls[-1]["served"] = True

    modules = {
        "granian": types.ModuleType("granian"),
        "granian.constants": types.ModuleType("granian.constants"),
        "granian.log": types.ModuleType("granian.log"),
        "granian.server": types.ModuleType("granian.server"),
    }
    modules["granian.constants"].Interfaces = Interfaces  # type: ignore[attr-defined]
    modules["granian.log"].LogLevels = LogLevels  # type: ignore[attr-defined]
    modules["granian.server"].Server = Server  # type: ignore[attr-defined]
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    return calls


def test_an_unknown_server_is_refused_before_anything_starts(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[Any] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: started.append(kw))
    result = runner.invoke(cli.app, ["serve", "--server", "gunicorn"])
    assert result.exit_code == 2
    assert "uvicorn, granian" in result.output
    assert started == []
    assert not (tmp_path / "cw.db").exists()


def test_granian_serves_the_app_behind_trusted_proxies_only(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _fake_granian(monkeypatch)
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: pytest.fail("uvicorn started"))
    result = runner.invoke(
        cli.app, ["serve", "--server", "granian", "--workers", "2", "--port", "8123"]
    )
    assert result.exit_code == 0, result.output
    assert len(calls) == 1
    call = calls[0]
    assert call["target"] == "citywallet.api.app:create_app_behind_proxies"
    assert (call["factory"], call["workers"], call["port"], call["served"]) == (
        True,
        2,
        8123,
        True,
    )
    assert call["interface"].value == "asgi"
    for logger in ("_granian", "granian.access"):  # through our masking handler
        assert call["log_dictconfig"]["loggers"][logger]["propagate"] is True
        assert call["log_dictconfig"]["loggers"][logger]["handlers"] == []


def test_uvicorn_stays_the_default(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    started: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: started.append({"app": app, **kw}))
    result = runner.invoke(cli.app, ["serve", "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert len(started) == 1
    assert started[0]["app"] == "citywallet.api.app:create_app_from_env"
    assert (started[0]["workers"], started[0]["proxy_headers"]) == (2, True)
    assert started[0]["forwarded_allow_ips"] == "10.0.0.0/8"
    # several processes: each counts in files of one shared, emptied folder
    folder = tmp_path / "var" / "metrics"
    assert os.environ[MULTIPROC_ENV] == str(folder)
    assert folder.is_dir()
    assert list(folder.iterdir()) == []
