"""Key rotation end to end: a new key file key, ``rewrap_all``, and the ledger signer survives."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import text

from citywallet.ledger.blocks import load_signer
from citywallet.platform.config import Settings
from citywallet.platform.crypto import (
    Encryptor,
    add_key,
    get_or_create_secret,
    load_keyring,
    rewrap_all,
)
from citywallet.platform.db import Database


def _stored_kids(db: Database, encryptor: Encryptor) -> dict[str, str]:
    with db.uow(readonly=True) as uow:
        rows = uow.session.execute(text("SELECT name, ciphertext FROM platform_secrets")).all()
    return {name: encryptor.key_id(token) for name, token in rows}


def test_rotation_rewraps_every_secret_and_keeps_the_signer(db: Database, tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path, master_keys="")
    first = Encryptor(load_keyring(settings))  # creates the dev key file with k1
    assert settings.resolved_key_file.exists()
    assert first.keyring.current == "k1"

    signer_before = db.transact(lambda uow: load_signer(uow, first))
    secrets_before = {
        f"webhook_secret_{i}": db.transact(
            lambda uow, i=i: get_or_create_secret(
                uow, first, name=f"webhook_secret_{i}", create=lambda i=i: (bytes([i]) * 32, None)
            )
        )[0]
        for i in range(3)
    }
    assert set(_stored_kids(db, first).values()) == {"k1"}

    new_kid = add_key(settings)
    assert new_kid == "k2"
    assert json.loads(settings.resolved_key_file.read_text())["current"] == "k2"
    rotated = Encryptor(load_keyring(settings))
    assert rotated.keyring.current == "k2"
    assert set(rotated.keyring.keys) == {"k1", "k2"}

    changed = db.transact(lambda uow: rewrap_all(uow, rotated))
    assert changed == 4  # the signing key and three webhook secrets
    assert set(_stored_kids(db, rotated).values()) == {"k2"}
    assert db.transact(lambda uow: rewrap_all(uow, rotated)) == 0  # nothing left to do

    # With only the new key, every secret still decrypts to the same bytes.
    only_new = Encryptor(type(rotated.keyring)({"k2": rotated.keyring.keys["k2"]}, "k2"))
    for name, value in secrets_before.items():
        stored = db.transact(
            lambda uow, n=name: get_or_create_secret(
                uow, only_new, name=n, create=lambda: (b"must not be created", None)
            )
        )
        assert stored[0] == value
    signer_after = db.transact(lambda uow: load_signer(uow, only_new))
    assert signer_after.public_key == signer_before.public_key
    assert signer_after.sign(b"header") == signer_before.sign(b"header")  # Ed25519: same key
