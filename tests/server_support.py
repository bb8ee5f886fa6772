"""``citywallet serve`` as a real server process, for tests that need one."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2

SRC = Path(__file__).resolve().parents[1] / "src"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve(tmp_path: Path, *args: str, **env: str) -> Iterator[str]:
    """``citywallet serve [args]`` in a subprocess on a free port (SQLite, sandbox); yields
    its URL."""
    port = free_port()
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CITYWALLET_")},
        "PYTHONPATH": str(SRC),
        "CITYWALLET_VAR_DIR": str(tmp_path / "var"),
        "CITYWALLET_RUN_WORKER_IN_SERVER": "false",
        **env,
    }
    command = [sys.executable, "-c", "from citywallet.cli import app; app()", "serve"]
    process = subprocess.Popen(
        [*command, *args, "--port", str(port)],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            try:
                if httpx2.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)
