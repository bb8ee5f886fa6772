"""The bank behind cards, top-ups and withdrawals: a narrow interface and a sandbox."""

from __future__ import annotations

from typing import Protocol

from citywallet.platform.config import Settings


class Bank(Protocol):
    """Card checks, debits (top-up) and credits (withdrawal, settlement) at a bank."""


def make_bank(settings: Settings) -> Bank:
    """The configured bank adapter."""
    raise NotImplementedError("being built in this session")
