"""Stand-ins for a deployment's own adapters, named as ``tests.production_adapters:…`` in
``CITYWALLET_*_ADAPTER`` (the production-start tests)."""

from __future__ import annotations

from citywallet.identity.gateways import IdentityCheck
from citywallet.platform.config import Settings


class RecordingSms:
    """An SMS gateway that keeps what it was asked to send."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def send(self, phone: str, text: str, *, idempotency_key: str | None = None) -> str:
        """Record the message; returns a message id."""
        self.sent.append((phone, text))
        return idempotency_key or f"msg{len(self.sent)}"


class AlwaysMatches:
    """An identity verifier that confirms everyone."""

    def verify(self, name: str, id_number: str) -> IdentityCheck:
        """Every name matches."""
        return IdentityCheck(True, "ok", "test")


def sms(settings: Settings) -> RecordingSms:
    """Factory for CITYWALLET_SMS_ADAPTER."""
    return RecordingSms()


def identity(settings: Settings) -> AlwaysMatches:
    """Factory for CITYWALLET_IDENTITY_ADAPTER."""
    return AlwaysMatches()


def bank(settings: Settings) -> object:
    """Factory for CITYWALLET_BANK_ADAPTER (the start check only loads it)."""
    return object()


def broken(settings: Settings) -> object:
    """A factory that cannot build its adapter."""
    raise ConnectionError("gateway unreachable")
