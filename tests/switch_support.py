"""Test helpers for the switch: three participants with fixed keys, signed calls, the outbox."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi.testclient import TestClient
from httpx2 import Response
from sqlalchemy import text

from citywallet.interop.conditions import condition_of, new_fulfilment
from citywallet.interop.messages import Amount, Message, TransferPrepare
from citywallet.interop.switch import registry
from citywallet.interop.transport import TOPIC, signed_headers
from citywallet.platform.config import Settings
from citywallet.platform.db import Database
from citywallet.runtime import Runtime
from tests.ledger_checks import test_encryptor

SWITCH_SEED = bytes([7] * 32)
KEYS = {
    "provider-a": Ed25519PrivateKey.from_private_bytes(bytes([1] * 32)),
    "provider-b": Ed25519PrivateKey.from_private_bytes(bytes([2] * 32)),
    "provider-c": Ed25519PrivateKey.from_private_bytes(bytes([3] * 32)),
}
CAP = 100_000


def url_of(participant: str) -> str:
    return f"http://{participant}.test/fspiop"


def public_b64(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def switch_runtime(db: Database, tmp_path: Path, **overrides: Any) -> Runtime:
    settings = Settings(
        var_dir=tmp_path,
        database_url=db.url,
        interop_key=base64.b64encode(SWITCH_SEED).decode("ascii"),
        **overrides,
    )
    return Runtime(settings, db, test_encryptor())


def add_participants(db: Database, cap: int = CAP) -> None:
    for participant, key in KEYS.items():
        db.transact(
            lambda uow, p=participant, k=key: registry.add_participant(
                uow,
                participant_id=p,
                name=p.upper(),
                public_key=public_b64(k),
                callback_url=url_of(p),
                cap=cap,
            )
        )


def call(
    client: TestClient,
    method: str,
    path: str,
    body: Message | bytes | None = None,
    *,
    source: str = "provider-a",
    destination: str | None = None,
    key: Ed25519PrivateKey | None = None,
) -> Response:
    """A signed FSPIOP request to the switch app."""
    raw = body.wire() if isinstance(body, Message) else (body or b"")
    headers = signed_headers(
        key or KEYS[source], source=source, destination=destination, method=method,
        path=path, body=raw, now=datetime.now(UTC),
    )  # fmt: skip
    return client.request(method, path, headers=headers, content=raw or None)


@dataclass(frozen=True)
class Sent:
    to: str
    method: str
    path: str
    body: Any

    @property
    def code(self) -> str:
        return str(self.body["errorInformation"]["errorCode"])


def outbox(db: Database) -> list[Sent]:
    """Every interop message queued so far, in order."""
    with db.uow(readonly=True) as uow:
        rows = uow.session.execute(
            text("SELECT payload FROM platform_outbox WHERE topic = :t ORDER BY id"), {"t": TOPIC}
        ).all()
    sent = []
    for (payload,) in rows:
        data = json.loads(payload)
        assert data["source"] == "switch"
        assert data["url"] == url_of(data["destination"]) + data["path"]
        body = json.loads(data["body"]) if data["body"] else None
        sent.append(Sent(data["destination"], data["method"], data["path"], body))
    return sent


def positions(db: Database) -> dict[str, tuple[int, int]]:
    """participant → (position, reserved)."""
    with db.uow(readonly=True) as uow:
        return {p.id: (p.position, p.reserved) for p in registry.participants(uow)}


def transfer_state(db: Database, transfer_id: str) -> str | None:
    with db.uow(readonly=True) as uow:
        row = uow.session.execute(
            text("SELECT state FROM switch_transfers WHERE transfer_id = :id"), {"id": transfer_id}
        ).first()
    return row[0] if row is not None else None


def new_prepare(
    amount: int = 10_000,
    *,
    payer: str = "provider-a",
    payee: str = "provider-b",
    seconds: float = 60,
    fulfilment: str | None = None,
) -> tuple[TransferPrepare, str]:
    """A prepare and the fulfilment that fulfils its condition."""
    fulfilment = fulfilment or new_fulfilment()
    prepare = TransferPrepare(
        transfer_id=str(uuid.uuid4()), payer_fsp=payer, payee_fsp=payee,
        amount=Amount(amount=amount), ilp_condition=condition_of(fulfilment),
        expiration=datetime.now(UTC) + timedelta(seconds=seconds),
    )  # fmt: skip
    return prepare, fulfilment
