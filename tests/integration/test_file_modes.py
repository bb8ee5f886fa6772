"""``var/`` is created 0700, the database, its WAL files, the key file and the sandbox bank
0600, whatever the umask (issue 12, item 11). SQLite files only: PostgreSQL keeps its own."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from citywallet.platform.config import Settings
from citywallet.runtime import Runtime
from citywallet.schema import upgrade


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """The usual umask (files 0644, directories 0755 unless the code says otherwise)."""
    before = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(before)


def test_var_the_database_and_the_keys_are_private(tmp_path: Path, loose_umask: None) -> None:
    var = tmp_path / "var"
    runtime = Runtime.from_settings(Settings(var_dir=var))
    try:
        upgrade(runtime.db.url)
        with runtime.db.uow() as uow:  # a write: SQLite makes its -wal and -shm files
            uow.session.execute(text("CREATE TABLE probe (x INTEGER)"))
            uow.commit()
        runtime.bank  # noqa: B018 — opening the sandbox bank creates its file
        assert mode(var) == 0o700
        files = ["citywallet.db", "citywallet.db-wal", "citywallet.db-shm", "keys.json"]
        files.append("sandbox-bank.sqlite3")
        for name in files:
            assert mode(var / name) == 0o600, name
        assert sorted(p.name for p in var.iterdir() if mode(p) & 0o077) == []
    finally:
        runtime.close()


def test_an_existing_key_file_is_tightened_an_existing_directory_left(
    tmp_path: Path, loose_umask: None
) -> None:
    var = tmp_path / "shared"
    var.mkdir(mode=0o755)
    first = Runtime.from_settings(Settings(var_dir=var))
    first.close()
    keys, database = var / "keys.json", var / "citywallet.db"
    keys.chmod(0o644)
    database.chmod(0o644)
    again = Runtime.from_settings(Settings(var_dir=var))
    again.close()
    assert mode(keys) == 0o600
    assert mode(database) == 0o600
    assert mode(var) == 0o755  # a directory someone else chose: reported, not changed
