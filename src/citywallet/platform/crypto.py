"""Field encryption (AES-256-GCM with key ids), keyed lookup hashes, and stored secrets.

Ciphertexts are envelopes ``v1.<kid>.<base64(nonce || ciphertext+tag)>`` so a key can be
rotated: a new key becomes current, old ones stay for decryption until ``rewrap_all`` has
re-encrypted every registered column. Keys come from ``CITYWALLET_MASTER_KEYS`` or a key file
(``CITYWALLET_KEY_FILE``); only in sandbox mode is a missing key file created (under ``var/``)
on first start. Production never generates a key itself.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import text

from citywallet.platform.clock import now_us
from citywallet.platform.config import Settings
from citywallet.platform.db import UnitOfWork
from citywallet.platform.files import PRIVATE_FILE, private_dir, private_file

ENVELOPE_VERSION = "v1"


class CryptoError(Exception):
    """A ciphertext names a key we do not have, or does not authenticate."""


class MissingKeys(RuntimeError):
    """Production mode without the keys it must be given (it never generates them)."""


@dataclass(frozen=True)
class Keyring:
    """Data-encryption keys by id; ``current`` encrypts, all decrypt.

    ``lookup_key`` keys the lookup hashes (find a user by phone). It is separate from the data
    keys and never rotates with them: rotating it would orphan every stored lookup hash.
    """

    keys: dict[str, bytes]
    current: str
    lookup_key: bytes | None = None

    def __post_init__(self) -> None:
        if self.current not in self.keys:
            raise ValueError("the current key id is not in the key ring")
        for kid, key in self.keys.items():
            if len(key) != 32 or "." in kid:
                raise ValueError(f"key {kid!r} must be 32 bytes with a dot-free id")


def parse_keyring(spec: str, lookup_key: str = "") -> Keyring:
    """Parse ``kid:base64key,kid2:base64key`` (the first is current) and a base64 lookup key."""
    keys: dict[str, bytes] = {}
    for item in spec.split(","):
        kid, _, value = item.strip().partition(":")
        keys[kid] = base64.b64decode(value)
    return Keyring(keys, next(iter(keys)), base64.b64decode(lookup_key) if lookup_key else None)


def load_keyring(settings: Settings) -> Keyring:
    """The key ring from the environment, else the key file (created if missing, in sandbox
    mode only)."""
    if settings.master_keys:
        return parse_keyring(settings.master_keys, settings.lookup_key)
    path = settings.resolved_key_file
    if not path.exists():
        if not settings.sandbox:
            raise MissingKeys(
                f"no master keys: set CITYWALLET_MASTER_KEYS or CITYWALLET_KEY_FILE ({path} "
                "does not exist; production never generates keys)"
            )
        _write_key_file(path, {"current": "k1", "keys": {"k1": _new_key()}, "lookup": _new_key()})
    private_file(path)  # tightens a key file made by hand or by an older version
    data = json.loads(path.read_text())
    keys = {kid: base64.b64decode(value) for kid, value in data["keys"].items()}
    lookup = data.get("lookup")
    return Keyring(keys, data["current"], base64.b64decode(lookup) if lookup else None)


def ledger_seed(settings: Settings) -> bytes | None:
    """The ledger signing key's 32-byte Ed25519 seed from ``CITYWALLET_LEDGER_KEY`` or the key
    file's ``ledger`` entry; ``None`` when neither gives one."""
    value = settings.ledger_key
    if not value and settings.key_file is not None and settings.key_file.exists():
        value = str(json.loads(settings.key_file.read_text()).get("ledger", ""))
    if not value:
        return None
    seed = base64.b64decode(value, validate=True)
    if len(seed) != 32:
        raise ValueError("the ledger key must be base64 of a 32-byte Ed25519 seed")
    return seed


def interop_seed(settings: Settings) -> bytes:
    """The FSPIOP signing key's 32-byte Ed25519 seed: ``CITYWALLET_INTEROP_KEY``, else the key
    file's ``interop`` entry, else (sandbox only) a new one written into the key file."""
    value = settings.interop_key
    path = settings.resolved_key_file
    if not value and path.exists():
        value = str(json.loads(path.read_text()).get("interop", ""))
    if not value:
        if not settings.sandbox:
            raise MissingKeys(
                "no interop key: set CITYWALLET_INTEROP_KEY or an 'interop' entry in "
                "CITYWALLET_KEY_FILE (base64 of a 32-byte Ed25519 seed)"
            )
        load_keyring(settings)  # creates the key file in sandbox mode
        data = json.loads(path.read_text())
        value = data.setdefault("interop", _new_key())
        _write_key_file(path, data)
    seed = base64.b64decode(value, validate=True)
    if len(seed) != 32:
        raise ValueError("the interop key must be base64 of a 32-byte Ed25519 seed")
    return seed


def add_key(settings: Settings) -> str:
    """Create a new current key in the key file; returns its id (rotation, step 1)."""
    if settings.master_keys:
        raise ValueError(
            "keys come from CITYWALLET_MASTER_KEYS: put the new key first there, then rewrap"
        )
    ring = load_keyring(settings)
    number = 1 + max(int(k[1:]) for k in ring.keys if k[1:].isdigit())
    kid = f"k{number}"
    stored = {k: base64.b64encode(v).decode() for k, v in ring.keys.items()}
    stored[kid] = _new_key()
    data: dict[str, object] = {"current": kid, "keys": stored}
    if ring.lookup_key is not None:
        data["lookup"] = base64.b64encode(ring.lookup_key).decode()
    _write_key_file(settings.resolved_key_file, data)
    return kid


def _new_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def _write_key_file(path: Path, data: dict[str, object]) -> None:
    private_dir(path.parent)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
    os.fchmod(fd, PRIVATE_FILE)  # a leftover .tmp keeps its old mode through O_CREAT
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2)
    tmp.replace(path)


class Encryptor:
    """Encrypts and decrypts fields with the key ring; computes keyed lookup hashes."""

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring
        # Lookup hashes must not change on rotation. Without a dedicated lookup key (a ring
        # given as CITYWALLET_MASTER_KEYS alone) it derives from the oldest key, which must
        # then stay in the ring.
        root = keyring.lookup_key or keyring.keys[min(keyring.keys)]
        self._lookup_key = hmac.new(root, b"lookup-hash", hashlib.sha256).digest()

    def encrypt(self, plaintext: bytes, *, aad: bytes = b"") -> str:
        """Encrypt with the current key."""
        kid = self.keyring.current
        nonce = secrets.token_bytes(12)
        sealed = AESGCM(self.keyring.keys[kid]).encrypt(nonce, plaintext, aad)
        return f"{ENVELOPE_VERSION}.{kid}.{base64.b64encode(nonce + sealed).decode()}"

    def decrypt(self, token: str, *, aad: bytes = b"") -> bytes:
        """Decrypt an envelope made by any key in the ring."""
        version, kid, body = token.split(".", 2)
        if version != ENVELOPE_VERSION or kid not in self.keyring.keys:
            raise CryptoError(f"no key {kid!r} for this ciphertext")
        raw = base64.b64decode(body)
        try:
            return AESGCM(self.keyring.keys[kid]).decrypt(raw[:12], raw[12:], aad)
        except Exception as exc:
            raise CryptoError("ciphertext does not authenticate") from exc

    def key_id(self, token: str) -> str:
        """Which key encrypted this envelope."""
        return token.split(".", 2)[1]

    def rewrap(self, token: str, *, aad: bytes = b"") -> str:
        """Re-encrypt with the current key (no-op if already current)."""
        if self.key_id(token) == self.keyring.current:
            return token
        return self.encrypt(self.decrypt(token, aad=aad), aad=aad)

    def keyed_hash(self, purpose: str, value: str, *, key_id: str | None = None) -> tuple[str, str]:
        """HMAC-SHA256 of ``value`` under a per-purpose key derived from key ``key_id``
        (default: current). Returns (key id, hex digest); store both so a later rotation can
        re-hash on the next successful check (used for payment PINs)."""
        kid = key_id or self.keyring.current
        if kid not in self.keyring.keys:
            raise CryptoError(f"no key {kid!r}")
        derived = hmac.new(self.keyring.keys[kid], purpose.encode(), hashlib.sha256).digest()
        return kid, hmac.new(derived, value.encode(), hashlib.sha256).hexdigest()

    def lookup_hash(self, value: str) -> str:
        """A keyed hash for finding a row by an encrypted value (e.g. a phone number)."""
        return hmac.new(self._lookup_key, value.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class EncryptedColumn:
    """A column holding envelopes, so rotation knows what to re-wrap.

    ``aad_is_key``: the envelope was sealed with the row's key value as associated data.
    """

    table: str
    key_column: str
    column: str
    aad_is_key: bool = False


ENCRYPTED_COLUMNS: list[EncryptedColumn] = [
    EncryptedColumn("platform_secrets", "name", "ciphertext", aad_is_key=True),
]


def register_encrypted_column(
    table: str, key_column: str, column: str, *, aad_is_key: bool = False
) -> None:
    """Declare a column of envelopes (features call this at import)."""
    entry = EncryptedColumn(table, key_column, column, aad_is_key)
    if entry not in ENCRYPTED_COLUMNS:
        ENCRYPTED_COLUMNS.append(entry)


def rewrap_all(
    uow: UnitOfWork,
    encryptor: Encryptor,
    *,
    progress: Callable[[str, int], None] | None = None,
) -> int:
    """Re-encrypt every registered column under the current key; returns rows changed."""
    conn = uow.session.connection()
    changed = 0
    for col in ENCRYPTED_COLUMNS:
        rows = conn.execute(
            text(
                f"SELECT {col.key_column}, {col.column} FROM {col.table} "
                f"WHERE {col.column} IS NOT NULL"
            )
        ).all()
        for key, token in rows:
            new = encryptor.rewrap(token, aad=str(key).encode() if col.aad_is_key else b"")
            if new != token:
                conn.execute(
                    text(f"UPDATE {col.table} SET {col.column} = :v WHERE {col.key_column} = :k"),
                    {"v": new, "k": key},
                )
                changed += 1
        if progress:
            progress(col.table, len(rows))
    return changed


def get_or_create_secret(
    uow: UnitOfWork,
    encryptor: Encryptor,
    *,
    name: str,
    create: Callable[[], tuple[bytes, str | None]],
) -> tuple[bytes, str | None]:
    """A named secret (and its public counterpart), created and stored encrypted on first use."""
    conn = uow.session.connection()
    row = conn.execute(
        text("SELECT ciphertext, public FROM platform_secrets WHERE name = :n"), {"n": name}
    ).first()
    if row is not None:
        return encryptor.decrypt(row[0], aad=name.encode()), row[1]
    secret, public = create()
    conn.execute(
        text(
            "INSERT INTO platform_secrets (name, ciphertext, public, created_at) "
            "VALUES (:n, :c, :p, :t)"
        ),
        {"n": name, "c": encryptor.encrypt(secret, aad=name.encode()), "p": public, "t": now_us()},
    )
    return secret, public
