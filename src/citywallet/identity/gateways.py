"""External systems of identity: the SMS gateway and real-name verification.

Each is a narrow interface; the sandbox adapters behave like the real services (latency,
failures, declines) and say they are sandboxes.

Sandbox identity verifier — magic values (documented in docs/identity.md):

* ID numbers whose sequence digits (positions 15–17) are ``999`` → ``id_not_found``;
* ``998`` → ``unavailable`` (the authority did not answer), every time;
* names containing ``假`` ("fake") → ``name_mismatch``;
* otherwise a share ``sandbox_verifier_failure_rate`` of calls → ``unavailable``, the rest
  match. Every call waits ``sandbox_verifier_latency_ms`` (±50 %).

Sandbox SMS gateway: records each message in ``identity_sandbox_sms`` (the phone encrypted)
for ``citywallet sms outbox`` and ``GET /v1/dev/sms``; a share ``sandbox_sms_failure_rate``
of sends fails (the outbox retries them).
"""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, cast

from sqlalchemy import select

from citywallet.identity import keys
from citywallet.identity.models import SandboxSms
from citywallet.identity.rules import mask_phone
from citywallet.platform.adapters import load_adapter
from citywallet.platform.clock import now_us
from citywallet.platform.config import Settings
from citywallet.platform.crypto import Encryptor
from citywallet.platform.db import Database, UnitOfWork
from citywallet.platform.errors import AdapterUnavailable


class SmsDeliveryFailed(Exception):
    """The gateway did not accept the message; the caller retries later."""


class SmsGateway(Protocol):
    """Sends a text message to a mainland mobile number."""

    def send(self, phone: str, text: str, *, idempotency_key: str | None = None) -> str:
        """Send to an E.164 ``phone``; returns the gateway's message id or raises on failure.

        The same ``idempotency_key`` sends at most once (delivery is retried at least once).
        """
        ...


@dataclass(frozen=True)
class IdentityCheck:
    """The answer of a real-name verification."""

    matched: bool
    reason: str  # "ok", "name_mismatch", "id_not_found", "unavailable"
    provider_ref: str


class IdentityVerifier(Protocol):
    """Checks a name against a resident ID number with the authoritative source."""

    def verify(self, name: str, id_number: str) -> IdentityCheck:
        """One external identity check."""
        ...


@dataclass(frozen=True)
class SandboxMessage:
    """A message in the sandbox outbox (the text holds the code; the phone is masked)."""

    message_id: str
    phone_masked: str
    text: str
    created_at: int


class SandboxSmsGateway:
    """Records messages in the database instead of sending them (development, tests, demo)."""

    def __init__(
        self,
        db: Database,
        encryptor: Encryptor,
        *,
        failure_rate: float = 0.0,
        rng: random.Random | None = None,
    ) -> None:
        self.db = db
        self.encryptor = encryptor
        self.failure_rate = failure_rate
        self.rng = rng or random.Random()  # noqa: S311 — simulating failures, not security

    def send(self, phone: str, text: str, *, idempotency_key: str | None = None) -> str:
        """Record the message (once per idempotency key); may fail like a real carrier."""
        if self.failure_rate and self.rng.random() < self.failure_rate:
            raise SmsDeliveryFailed("sandbox: simulated gateway failure")
        return self.db.transact(lambda uow: self._record(uow, phone, text, idempotency_key))

    def _record(self, uow: UnitOfWork, phone: str, text: str, key: str | None) -> str:
        if key is not None:
            existing = uow.session.scalar(
                select(SandboxSms.message_id).where(SandboxSms.idempotency_key == key)
            )
            if existing is not None:
                return existing
        message_id = "sms_" + secrets.token_urlsafe(12)
        uow.session.add(
            SandboxSms(
                message_id=message_id,
                idempotency_key=key,
                phone_hash=keys.phone_hash(self.encryptor, phone),
                phone_enc=self.encryptor.encrypt(phone.encode()),
                phone_masked=mask_phone(phone),
                text=text,
                created_at=now_us(),
            )
        )
        uow.session.flush()
        return message_id


def sandbox_messages(
    uow: UnitOfWork, encryptor: Encryptor, *, phone: str | None = None, limit: int = 20
) -> list[SandboxMessage]:
    """The newest sandbox messages, to one E.164 phone or to anyone."""
    query = select(SandboxSms).order_by(SandboxSms.id.desc()).limit(limit)
    if phone is not None:
        query = query.where(SandboxSms.phone_hash == keys.phone_hash(encryptor, phone))
    return [
        SandboxMessage(row.message_id, row.phone_masked, row.text, row.created_at)
        for row in uow.session.scalars(query)
    ]


class SandboxIdentityVerifier:
    """Answers like the national real-name service would, with the magic values above."""

    def __init__(
        self,
        *,
        latency_ms: int = 0,
        failure_rate: float = 0.0,
        rng: random.Random | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.latency_ms = latency_ms
        self.failure_rate = failure_rate
        self.rng = rng or random.Random()  # noqa: S311 — simulating failures, not security
        self.sleep = sleep

    def verify(self, name: str, id_number: str) -> IdentityCheck:
        """One check: waits like the real service, then answers."""
        if self.latency_ms:
            self.sleep(self.latency_ms * self.rng.uniform(0.5, 1.5) / 1000)
        ref = "sbx_" + secrets.token_hex(8)
        sequence = id_number[14:17]
        if sequence == "998" or (self.failure_rate and self.rng.random() < self.failure_rate):
            return IdentityCheck(False, "unavailable", ref)
        if sequence == "999":
            return IdentityCheck(False, "id_not_found", ref)
        if "假" in name:
            return IdentityCheck(False, "name_mismatch", ref)
        return IdentityCheck(True, "ok", ref)


class NotConfigured(AdapterUnavailable):
    """Production mode without a real adapter configured (503 ``adapter_unavailable``)."""


def make_sms_gateway(
    settings: Settings, db: Database, encryptor: Encryptor | None = None
) -> SmsGateway:
    """The configured SMS gateway: ``CITYWALLET_SMS_ADAPTER``, else the sandbox (sandbox
    mode only)."""
    if settings.sms_adapter:
        return cast(SmsGateway, load_adapter(settings.sms_adapter, settings, what="SMS gateway"))
    if settings.sandbox:
        return SandboxSmsGateway(
            db,
            keys.encryptor_or_default(encryptor),
            failure_rate=settings.sandbox_sms_failure_rate,
        )
    raise NotConfigured(
        "No SMS gateway is configured: set CITYWALLET_SMS_ADAPTER (production) or "
        "CITYWALLET_SANDBOX=true (development)."
    )


def make_identity_verifier(settings: Settings) -> IdentityVerifier:
    """The configured identity verifier: ``CITYWALLET_IDENTITY_ADAPTER``, else the sandbox
    (sandbox mode only)."""
    if settings.identity_adapter:
        verifier = load_adapter(settings.identity_adapter, settings, what="identity verifier")
        return cast(IdentityVerifier, verifier)
    if settings.sandbox:
        return SandboxIdentityVerifier(
            latency_ms=settings.sandbox_verifier_latency_ms,
            failure_rate=settings.sandbox_verifier_failure_rate,
        )
    raise NotConfigured(
        "No identity verifier is configured: set CITYWALLET_IDENTITY_ADAPTER (production) or "
        "CITYWALLET_SANDBOX=true (development)."
    )
