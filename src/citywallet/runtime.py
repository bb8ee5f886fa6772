"""The composition root: settings, database, keys — built once per process, passed down."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from threading import Lock

from citywallet.identity.gateways import (
    IdentityVerifier,
    SmsGateway,
    make_identity_verifier,
    make_sms_gateway,
)
from citywallet.identity.keys import install_encryptor
from citywallet.ledger.blocks import LedgerSigner, load_signer
from citywallet.platform.config import Settings, get_settings
from citywallet.platform.crypto import Encryptor, load_keyring
from citywallet.platform.db import Database
from citywallet.platform.files import private_dir
from citywallet.wallet.bank import Bank, make_bank


@dataclass
class Runtime:
    """Built once per process (server, worker, CLI command) and passed down explicitly."""

    settings: Settings
    db: Database
    encryptor: Encryptor
    _signer: LedgerSigner | None = field(default=None, repr=False)
    _lock: Lock = field(default_factory=Lock, repr=False)

    def __post_init__(self) -> None:
        # Identity's uow-only contract (find_user_by_phone, confirm_payment_pin, ...) uses
        # the encryptor of the process's runtime.
        install_encryptor(self.encryptor)

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Runtime:
        """Open the database and load the keys named by ``settings`` (default: environment)."""
        settings = settings or get_settings()
        private_dir(settings.var_dir)
        database = Database(
            settings.resolved_database_url,
            pool_size=settings.db_pool_size,
            pre_ping=settings.db_pool_pre_ping,
        )
        return cls(settings, database, Encryptor(load_keyring(settings)))

    @cached_property
    def sms(self) -> SmsGateway:
        """The SMS gateway (the sandbox records messages in a dev outbox)."""
        return make_sms_gateway(self.settings, self.db, self.encryptor)

    @cached_property
    def identity_verifier(self) -> IdentityVerifier:
        """Real-name verification (the sandbox behaves like the real service)."""
        return make_identity_verifier(self.settings)

    @cached_property
    def bank(self) -> Bank:
        """The bank behind cards, top-ups, withdrawals and settlements."""
        return make_bank(self.settings)

    def ledger_signer(self) -> LedgerSigner:
        """The ledger signing key (created on first use, then cached)."""
        with self._lock:
            if self._signer is None:
                encryptor = self.encryptor
                self._signer = self.db.transact(lambda uow: load_signer(uow, encryptor))
            return self._signer

    def close(self) -> None:
        """Release the database connections."""
        self.db.dispose()
