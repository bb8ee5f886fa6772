"""The client address behind ``citywallet serve`` (issue 12, item 8): ``X-Forwarded-For``
is believed only from ``CITYWALLET_TRUSTED_PROXIES`` (default: nobody), so a local client
cannot pick its own address for the per-IP limits. A real server, started by the command."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2
import pytest

from citywallet.identity import consent

SRC = Path(__file__).resolve().parents[2] / "src"
FORGED = "198.51.100.7"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _serve(tmp_path: Path, **env: str) -> Iterator[str]:
    """``citywallet serve`` in a subprocess on a free port (SQLite, sandbox); yields its URL."""
    port = _free_port()
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CITYWALLET_")},
        "PYTHONPATH": str(SRC),
        "CITYWALLET_VAR_DIR": str(tmp_path / "var"),
        "CITYWALLET_RUN_WORKER_IN_SERVER": "false",
        **env,
    }
    command = [sys.executable, "-c", "from citywallet.cli import app; app()", "serve"]
    process = subprocess.Popen(
        [*command, "--port", str(port)],
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


def _session_address(base: str, phone: str) -> str:
    """Sign up through the API with a forged X-Forwarded-For; the address the session got."""
    forged = {"X-Forwarded-For": FORGED}
    sent = httpx2.post(f"{base}/v1/auth/sms-codes", json={"phone": phone}, headers=forged)
    assert sent.status_code == 202, sent.text
    messages = httpx2.get(f"{base}/v1/dev/sms", params={"phone": phone}).json()["items"]
    code = re.search(r"\d{6}", messages[0]["text"])
    assert code is not None
    body = {
        "phone": phone,
        "code": code.group(),
        "password": "correct horse 7",
        "consent": consent.signup_body(),
    }
    signed = httpx2.post(f"{base}/v1/auth/register", json=body, headers=forged)
    assert signed.status_code == 201, signed.text
    token = signed.json()["session"]["token"]
    listed = httpx2.get(f"{base}/v1/me/sessions", headers={"Authorization": f"Bearer {token}"})
    return str(listed.json()["items"][0]["ip"])


@pytest.mark.parametrize(
    ("trusted", "seen"), [(None, "127.0.0.1"), ("127.0.0.1", FORGED), ("10.0.0.0/8", "127.0.0.1")]
)
def test_forwarded_for_counts_only_from_a_trusted_proxy(
    tmp_path: Path, trusted: str | None, seen: str
) -> None:
    env = {"CITYWALLET_TRUSTED_PROXIES": trusted} if trusted is not None else {}
    with _serve(tmp_path, **env) as base:
        assert _session_address(base, "13800138000") == seen
