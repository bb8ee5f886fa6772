"""A provider connected to a scripted switch: signed switch messages in, outbox messages out.

``FakeSwitch`` is both the switch and the other provider, as the provider under test sees
them: the courier's HTTP goes to its ``MockTransport`` (recorded in ``seen``), and it answers
through the provider's FSPIOP endpoints with requests signed by the switch's test key.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from sqlalchemy import text

from citywallet.interop import conditions, transport
from citywallet.interop.messages import (
    Amount,
    ErrorCode,
    Message,
    PartyLookupResult,
    QuoteRequest,
    QuoteResponse,
    TransferFulfil,
    error,
)
from citywallet.interop.transport import Courier, Sender
from citywallet.platform.config import Settings
from citywallet.platform.db import Database
from citywallet.runtime import Runtime
from tests.ledger_checks import test_encryptor
from tests.wallet_support import wallet_settings

ME = "provider-a"
OTHER = "provider-b"
SWITCH_URL = "http://switch.test"
SWITCH_KEY = Ed25519PrivateKey.from_private_bytes(bytes([7]) * 32)
PROVIDER_SEED = bytes([9]) * 32


def switch_public_key() -> str:
    raw = SWITCH_KEY.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return base64.b64encode(raw).decode()


def interop_settings(tmp_path: Path, db: Database, **overrides: object) -> Settings:
    """Wallet test settings, connected as ``provider-a`` to the fake switch."""
    values: dict[str, object] = {
        "interop_participant_id": ME,
        "interop_switch_url": SWITCH_URL,
        "interop_switch_public_key": switch_public_key(),
        "interop_key": base64.b64encode(PROVIDER_SEED).decode(),
        "interop_public_url": "http://provider-a.test/fspiop",
    }
    values.update(overrides)
    return wallet_settings(tmp_path, db, **values)


def connected_runtime(
    db: Database, tmp_path: Path, fake: FakeSwitch, **overrides: object
) -> Runtime:
    """A runtime connected as ``provider-a`` whose courier sends to ``fake``."""
    runtime = Runtime(interop_settings(tmp_path, db, **overrides), db, test_encryptor())
    runtime.__dict__["interop_courier"] = Courier(
        db, Sender(runtime.interop_key, transport=fake.transport()), poll=0.05
    )
    return runtime


def signed(method: str, path: str, body: bytes, *, key: Ed25519PrivateKey = SWITCH_KEY,
           source: str = "switch", destination: str | None = ME) -> dict[str, str]:  # fmt: skip
    """Headers of a request from the switch to this provider."""
    return transport.signed_headers(
        key, source=source, destination=destination, method=method, path=path, body=body,
        now=datetime.now(UTC),
    )  # fmt: skip


def outbox(db: Database) -> list[dict[str, Any]]:
    """Every interop message this provider queued, oldest first (body parsed)."""
    with db.uow(readonly=True) as uow:
        rows = uow.session.execute(
            text("SELECT payload FROM platform_outbox WHERE topic = :t ORDER BY id"),
            {"t": transport.TOPIC},
        ).all()
    messages = []
    for (payload,) in rows:
        message = json.loads(payload)
        message["json"] = json.loads(message["body"]) if message["body"] else None
        messages.append(message)
    return messages


def sent(db: Database, *, within: float = 10.0) -> None:
    """Wait until every interop message queued so far went out (or failed once): the courier
    sends each the moment its transaction commits, on its own threads."""

    def settled() -> bool:
        with db.uow(readonly=True) as uow:
            left = uow.session.execute(
                text(
                    "SELECT count(*) FROM platform_outbox WHERE topic = :t AND delivered_at IS "
                    "NULL AND dead = :dead AND last_error IS NULL"
                ),
                {"t": transport.TOPIC, "dead": False},
            ).scalar_one()
        return int(left) == 0

    eventually(settled, within=within)


def new_quote(quote_id: str, amount: int, *, phone: str, seconds: int = 60) -> QuoteRequest:
    """A quote request from ``provider-b``'s resident to ``phone`` at this provider."""
    return QuoteRequest.model_validate_json(
        json.dumps(
            {
                "quoteId": quote_id,
                "transactionId": "00000000-0000-4000-8000-000000000001",
                "payer": {
                    "partyIdType": "MSISDN",
                    "partyIdentifier": "13700137000",
                    "fspId": OTHER,
                },
                "payee": {"partyIdType": "MSISDN", "partyIdentifier": phone, "fspId": ME},
                "amountType": "SEND",
                "amount": {"amount": amount, "currency": "CNY"},
                "expiration": (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat(),
            }
        )
    )


@dataclass
class FakeSwitch:
    """The switch (and the other provider behind it), scripted per test."""

    client: TestClient | None = None
    seen: list[tuple[str, str, Any]] = field(default_factory=list)
    aliases: dict[str, str] = field(default_factory=dict)  # phone → masked name
    directory: dict[str, tuple[str, str]] = field(default_factory=dict)  # phone → fsp, name
    # fsp → display name, as the switch's registry has it: named in lookups and quote terms
    names: dict[str, str] = field(default_factory=dict)
    fulfilments: dict[str, str] = field(default_factory=dict)  # condition → fulfilment
    on_prepare: str = "commit"  # "commit" | "reject" | "silent"
    answers: list[httpx2.Response] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def transport(self) -> httpx2.MockTransport:
        return httpx2.MockTransport(self._handle)

    def send(self, method: str, path: str, body: Message | None = None) -> httpx2.Response:
        """A signed request from the switch to this provider's FSPIOP endpoints."""
        assert self.client is not None
        raw = body.wire() if body is not None else b""
        return self.client.request(
            method, "/fspiop" + path, content=raw, headers=signed(method, path, raw)
        )

    def _handle(self, request: httpx2.Request) -> httpx2.Response:
        path = request.url.path
        body = json.loads(request.content) if request.content else None
        with self.lock:
            self.seen.append((request.method, path, body))
        reply: Callable[[], None] | None = None
        if request.method == "POST" and path.startswith("/participants/MSISDN/"):
            self.aliases[path.rsplit("/", 1)[1]] = body["maskedName"]
            return httpx2.Response(200, json={})
        if request.method == "DELETE" and path.startswith("/participants/MSISDN/"):
            self.aliases.pop(path.rsplit("/", 1)[1], None)
            return httpx2.Response(200, json={})
        if request.method == "GET" and path.startswith("/parties/MSISDN/"):
            reply = lambda: self._party(path.rsplit("/", 1)[1])  # noqa: E731
        elif request.method == "POST" and path == "/quotes":
            reply = lambda: self._quote(body)  # noqa: E731
        elif request.method == "POST" and path == "/transfers":
            reply = lambda: self._prepare(body)  # noqa: E731
        if reply is not None:
            reply()  # the callback goes out before the 202 comes back: order does not matter
        return httpx2.Response(202)

    def _party(self, phone: str) -> None:
        if phone in self.directory:
            fsp, name = self.directory[phone]
            party = {"partyIdType": "MSISDN", "partyIdentifier": phone, "fspId": fsp,
                     "maskedName": name}  # fmt: skip
            if fsp in self.names:
                party["fspName"] = self.names[fsp]
            body = {"party": party}
            result = PartyLookupResult.model_validate_json(json.dumps(body))
            self.send("PUT", f"/parties/MSISDN/{phone}", result)
        else:
            self.send("PUT", f"/parties/MSISDN/{phone}/error", error(ErrorCode.PARTY_NOT_FOUND))

    def _quote(self, body: dict[str, Any]) -> None:
        fulfilment = conditions.new_fulfilment()
        condition = conditions.condition_of(fulfilment)
        self.fulfilments[condition] = fulfilment
        amount = body["amount"]["amount"]
        response = QuoteResponse(
            transfer_amount=Amount(amount=amount), payee_receive_amount=Amount(amount=amount),
            payer_fee=Amount(amount=0), payee_fee=Amount(amount=0),
            expiration=datetime.now(UTC) + timedelta(seconds=60), ilp_condition=condition,
            payee_fsp_name=self.names.get(body["payee"]["fspId"]),
        )  # fmt: skip
        self.send("PUT", f"/quotes/{body['quoteId']}", response)

    def _prepare(self, body: dict[str, Any]) -> None:
        transfer_id = body["transferId"]
        if self.on_prepare == "commit":
            fulfil = TransferFulfil(
                fulfilment=self.fulfilments[body["ilpCondition"]],
                completed_timestamp=datetime.now(UTC), transfer_state="COMMITTED",
            )  # fmt: skip
            self.send("PUT", f"/transfers/{transfer_id}", fulfil)
        elif self.on_prepare == "reject":
            self.send(
                "PUT", f"/transfers/{transfer_id}/error",
                error(ErrorCode.PAYEE_FSP_REJECTED_TRANSACTION),
            )  # fmt: skip


def eventually(check: Callable[[], bool], *, within: float = 10.0) -> None:
    """Wait for the courier's thread to make ``check`` true (fails after ``within`` s)."""
    import time

    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "the courier did not deliver in time"
        time.sleep(0.01)
