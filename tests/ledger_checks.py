"""The check every money-moving test ends with."""

from __future__ import annotations

from sqlalchemy import text

from citywallet.ledger.audit import verify_ledger
from citywallet.ledger.blocks import load_signer, seal_all
from citywallet.platform.crypto import Encryptor, Keyring
from citywallet.platform.db import Database

TEST_KEYRING = Keyring({"t1": bytes(range(32))}, "t1")


def test_encryptor() -> Encryptor:
    """A fixed-key encryptor for tests."""
    return Encryptor(TEST_KEYRING)


test_encryptor.__test__ = False  # type: ignore[attr-defined]


def assert_ledger_clean(db: Database, *, seal: bool = True) -> None:
    """Seal what is unsealed, then assert every ledger invariant and every block holds."""
    encryptor = test_encryptor()
    if seal:
        db.transact(lambda uow: seal_all(uow, load_signer(uow, encryptor)))
    with db.uow() as uow:
        signer = load_signer(uow, encryptor)
        report = verify_ledger(uow, public_key=signer.public_key)
        uow.commit()
    assert report.ok, "ledger verify found:\n" + "\n".join(report.problems)


def stamp_schema(db: Database, revision: str | None) -> None:
    """Stamp the test schema (made from the models, not by migrations) as ``revision``;
    ``None``: no stamp at all (PostgreSQL keeps the table between tests: not a model's)."""
    with db.uow() as uow:
        uow.session.execute(text("DROP TABLE IF EXISTS alembic_version"))
        if revision is not None:
            uow.session.execute(
                text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
            )
            uow.session.execute(text("INSERT INTO alembic_version VALUES (:v)"), {"v": revision})
        uow.commit()
