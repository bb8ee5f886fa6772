"""External systems of identity: the SMS gateway and real-name verification.

Each is a narrow interface; the sandbox adapters behave like the real services (latency,
failures, declines) and say they are sandboxes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from citywallet.platform.config import Settings
from citywallet.platform.db import Database


class SmsGateway(Protocol):
    """Sends a text message to a mainland mobile number."""

    def send(self, phone: str, text: str) -> str:
        """Send; returns the gateway's message id or raises on failure."""
        ...


@dataclass(frozen=True)
class IdentityCheck:
    """The answer of a real-name verification."""

    matched: bool
    reason: str  # "ok", "name_mismatch", "id_not_found", "unavailable", ...
    provider_ref: str


class IdentityVerifier(Protocol):
    """Checks a name against a resident ID number with the authoritative source."""

    def verify(self, name: str, id_number: str) -> IdentityCheck:
        """One external identity check."""
        ...


def make_sms_gateway(settings: Settings, db: Database) -> SmsGateway:
    """The configured SMS gateway."""
    raise NotImplementedError("being built in this session")


def make_identity_verifier(settings: Settings) -> IdentityVerifier:
    """The configured identity verifier."""
    raise NotImplementedError("being built in this session")
