"""Helpers for identity tests: valid resident ID numbers, codes from the sandbox outbox."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stdnum.cn import ric

from citywallet.identity import codes, service
from citywallet.identity.gateways import SandboxSmsGateway, sandbox_messages
from citywallet.identity.rules import normalize_phone
from citywallet.platform.config import Settings
from citywallet.platform.crypto import Encryptor
from citywallet.platform.db import Database

PASSWORD = "correct horse 7"


def resident_id(region: str = "110101", birth: str = "19900307", sequence: str = "001") -> str:
    """A valid 18-character resident ID number (right check digit)."""
    body = region + birth + sequence
    return body + ric.calc_check_digit(body + "0")


def test_settings(tmp_path: Path, db: Database, **overrides: object) -> Settings:
    """Settings for identity tests: no sandbox latency, cookies over plain HTTP."""
    values: dict[str, object] = {
        "var_dir": tmp_path,
        "database_url": db.url,
        "sandbox_verifier_latency_ms": 0,
        "session_cookie_secure": False,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


test_settings.__test__ = False  # type: ignore[attr-defined]


def last_code(db: Database, encryptor: Encryptor, phone: str) -> str:
    """The code in the newest sandbox message to ``phone``."""
    with db.uow(readonly=True) as uow:
        messages = sandbox_messages(uow, encryptor, phone=normalize_phone(phone), limit=1)
    assert messages, f"no SMS to {phone}"
    match = re.search(r"\d{6}", messages[0].text)
    assert match
    return match.group()


def _messages(db: Database, encryptor: Encryptor, phone: str) -> int:
    with db.uow(readonly=True) as uow:
        return len(sandbox_messages(uow, encryptor, phone=normalize_phone(phone), limit=1000))


def send_code(
    db: Database, settings: Settings, encryptor: Encryptor, phone: str, purpose: str = "register"
) -> str:
    """Ask for a code, deliver it through the sandbox gateway, return it."""
    before = _messages(db, encryptor, phone)
    sent = db.transact(
        lambda uow: service.send_sms_code(
            uow, phone=phone, purpose=purpose, settings=settings, encryptor=encryptor
        )
    )
    assert sent.outbox_id is not None
    handler = codes.sms_outbox_handler(SandboxSmsGateway(db, encryptor), encryptor)
    if not codes.deliver_now(db, message_id=sent.outbox_id, handler=handler):
        # A running server's worker took the message first (page tests): wait for it.
        deadline = time.monotonic() + 10
        while _messages(db, encryptor, phone) == before:
            assert time.monotonic() < deadline, "the SMS was never delivered"
            time.sleep(0.05)
    return last_code(db, encryptor, phone)


def sign_up(
    db: Database,
    settings: Settings,
    encryptor: Encryptor,
    phone: str,
    *,
    kind: str = "bearer",
) -> service.LoginResult:
    """A registered user with a session."""
    code = send_code(db, settings, encryptor, phone)
    return service.register(
        db,
        phone=phone,
        code=code,
        password=PASSWORD,
        device=service.Device(kind=kind, name="test", ip="10.0.0.1"),
        settings=settings,
        encryptor=encryptor,
    )


def in_threads(fn: Callable[[int], Any], n: int) -> list[Any]:
    """Run ``fn(i)`` in ``n`` threads released together; returns results or exceptions."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = fn(i)
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results
