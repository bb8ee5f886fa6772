"""The client address behind ``citywallet serve`` (issue 12, item 8): ``X-Forwarded-For``
is believed only from ``CITYWALLET_TRUSTED_PROXIES`` (default: nobody), so a local client
cannot pick its own address for the per-IP limits. A real server, started by the command."""

from __future__ import annotations

import re
from pathlib import Path

import httpx2
import pytest

from citywallet.identity import consent
from tests.server_support import serve as _serve

FORGED = "198.51.100.7"


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
