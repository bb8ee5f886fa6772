"""The composition root: settings, database, keys — built once per process, passed down."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from threading import Lock

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from citywallet.identity.codes import sms_outbox_handler
from citywallet.identity.gateways import (
    IdentityVerifier,
    SmsGateway,
    make_identity_verifier,
    make_sms_gateway,
)
from citywallet.identity.keys import install_encryptor
from citywallet.identity.sessions import flush_touches
from citywallet.interop.transport import Courier, Sender
from citywallet.ledger.blocks import LedgerSigner, load_signer
from citywallet.platform import failpoints
from citywallet.platform.adapters import load_adapter
from citywallet.platform.config import Settings, get_settings
from citywallet.platform.crypto import (
    Encryptor,
    MissingKeys,
    interop_seed,
    ledger_seed,
    load_keyring,
)
from citywallet.platform.db import Database
from citywallet.platform.errors import AdapterUnavailable
from citywallet.platform.files import private_dir
from citywallet.platform.outbox import OutboxHandler
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
        failpoints.arm(settings.failpoints)
        private_dir(settings.var_dir)
        database = Database(
            settings.resolved_database_url,
            pool_size=settings.db_pool_size,
            pre_ping=settings.db_pool_pre_ping,
            recycle_seconds=settings.db_pool_recycle_seconds,
            ping_idle_seconds=settings.db_ping_idle_seconds,
        )
        return cls(settings, database, Encryptor(load_keyring(settings)))

    @cached_property
    def sms(self) -> SmsGateway:
        """The SMS gateway (the sandbox records messages in a dev outbox)."""
        return make_sms_gateway(self.settings, self.db, self.encryptor)

    def sms_handler(self) -> OutboxHandler:
        """The SMS outbox handler; resolve it before writing anything a request's message
        needs (no gateway → 503 ``adapter_unavailable``, nothing stored)."""
        return sms_outbox_handler(self.sms, self.encryptor)

    @cached_property
    def identity_verifier(self) -> IdentityVerifier:
        """Real-name verification (the sandbox behaves like the real service)."""
        return make_identity_verifier(self.settings)

    @cached_property
    def bank(self) -> Bank:
        """The bank behind cards, top-ups, withdrawals and settlements."""
        return make_bank(self.settings)

    def ledger_signer(self) -> LedgerSigner:
        """The ledger signing key: the configured one, else (sandbox only) one generated and
        stored encrypted in the database on first use; then cached."""
        with self._lock:
            if self._signer is None:
                seed = ledger_seed(self.settings)
                origin = self.settings.ledger_origin
                if seed is not None:
                    key = Ed25519PrivateKey.from_private_bytes(seed)
                    self._signer = LedgerSigner(key, origin=origin)
                elif not self.settings.sandbox:
                    raise MissingKeys(LEDGER_KEY_MISSING)
                else:
                    encryptor = self.encryptor
                    self._signer = self.db.transact(
                        lambda uow: load_signer(uow, encryptor, origin=origin)
                    )
            return self._signer

    @cached_property
    def interop_key(self) -> Ed25519PrivateKey:
        """This process's FSPIOP signing key (a provider's or the switch's)."""
        return Ed25519PrivateKey.from_private_bytes(interop_seed(self.settings))

    @cached_property
    def interop_courier(self) -> Courier:
        """This process's interop courier: sends FSPIOP messages the moment they commit
        (the app's lifespan starts it)."""
        return Courier(self.db, Sender(self.interop_key))

    def close(self) -> None:
        """Write the sessions' pending touches, then release the database connections."""
        flush_touches(self.db)
        self.db.dispose()


LEDGER_KEY_MISSING = (
    "no ledger key: set CITYWALLET_LEDGER_KEY or a 'ledger' entry in CITYWALLET_KEY_FILE "
    "(base64 of a 32-byte Ed25519 seed)"
)


def unsafe_start_reasons(settings: Settings) -> list[str]:
    """Why a production process (``CITYWALLET_SANDBOX=false``) must not start; empty when
    it may, and always empty in sandbox mode. Production never generates keys: the master
    keys (which also key the payment-PIN hashes and the lookup hashes) and the ledger key
    must be given, and real SMS, identity and bank adapters configured."""
    if settings.sandbox:
        return []
    reasons: list[str] = []
    if settings.failpoints:
        reasons.append("CITYWALLET_FAILPOINTS is set: failpoints are for crash tests only")
    if not settings.master_keys and settings.key_file is None:
        reasons.append(
            "no master keys (they also key the payment-PIN hashes): set CITYWALLET_MASTER_KEYS "
            "or CITYWALLET_KEY_FILE"
        )
    else:
        try:
            load_keyring(settings)
        except Exception as exc:  # any unreadable key material
            reasons.append(f"master keys unusable: {exc}")
    try:
        if ledger_seed(settings) is None:
            reasons.append(LEDGER_KEY_MISSING)
    except Exception as exc:  # a malformed key or key file
        reasons.append(f"ledger key unusable: {exc}")
    if settings.interop_participant_id:
        try:
            interop_seed(settings)
        except Exception as exc:  # missing or malformed
            reasons.append(f"interop key unusable: {exc}")
    adapters = (
        ("CITYWALLET_SMS_ADAPTER", "SMS gateway", settings.sms_adapter),
        ("CITYWALLET_IDENTITY_ADAPTER", "identity verifier", settings.identity_adapter),
        ("CITYWALLET_BANK_ADAPTER", "bank adapter", settings.bank_adapter),
    )
    for variable, what, spec in adapters:
        if not spec:
            reasons.append(f"no {what}: set {variable}=package.module:factory")
            continue
        try:
            load_adapter(spec, settings, what=what)
        except AdapterUnavailable as exc:
            reasons.append(exc.detail)
    return reasons


class UnsafeStart(RuntimeError):
    """A production process was asked to start without its keys or adapters."""


def refuse_unsafe_start(settings: Settings) -> None:
    """Raise ``UnsafeStart`` listing every reason a production start is unsafe (the server,
    the worker and the app factory call this before anything else)."""
    reasons = unsafe_start_reasons(settings)
    if reasons:
        raise UnsafeStart(
            "refusing to start with CITYWALLET_SANDBOX=false:\n"
            + "\n".join(f"  - {reason}" for reason in reasons)
        )
