"""Helpers for the backup tests: a fresh database to restore into, a backup tampered with
(and its manifest made to match, as an attacker or a careless hand would), and the CLI."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from typer.testing import CliRunner, Result

from citywallet import cli
from citywallet.platform import backup as mechanics
from citywallet.platform.db import Database


@contextmanager
def fresh_database(db: Database, tmp_path: Path, name: str = "restored") -> Iterator[str]:
    """The URL of a new, empty database of ``db``'s engine (dropped afterwards)."""
    if db.dialect == "sqlite":
        yield f"sqlite:///{tmp_path / f'{name}.db'}"
        return
    with mechanics.pg_scratch_database(db.url, prefix=f"cw_test_{name}") as url:
        yield url


def the_backup(directory: Path) -> Path:
    """The one verified backup file in ``directory`` (the one with a manifest)."""
    found = [p for p in directory.iterdir() if mechanics.manifest_path(p).exists()]
    assert len(found) == 1, sorted(p.name for p in directory.iterdir())
    return found[0]


def run_backup(runner: CliRunner, output: Path, *extra: str) -> Result:
    """``citywallet backup --output OUTPUT``."""
    return runner.invoke(cli.app, ["backup", "--output", str(output), *extra])


def run_restore(runner: CliRunner, backup: Path, url: str, *extra: str) -> Result:
    """``citywallet restore BACKUP --database-url URL``."""
    return runner.invoke(cli.app, ["restore", str(backup), "--database-url", url, *extra])


def reseal_manifest(backup: Path) -> None:
    """Make the manifest's SHA-256 and size match the (changed) backup file again."""
    manifest = mechanics.read_manifest(backup)
    mechanics.write_manifest(
        backup,
        dataclasses.replace(
            manifest, sha256=mechanics.file_sha256(backup), size=backup.stat().st_size
        ),
    )


def tamper(backup: Path, db: Database, statement: str) -> None:
    """Run ``statement`` inside the backup file (a SQLite copy, or a dump restored, changed
    and dumped again), then fix its manifest's checksum."""
    if db.dialect == "sqlite":
        with closing(sqlite3.connect(backup)) as conn:
            conn.execute(statement)
            conn.commit()
    else:
        with mechanics.pg_scratch_database(db.url, prefix="cw_test_tamper") as url:
            mechanics.pg_restore(backup, url)
            engine = create_engine(url)
            try:
                with engine.begin() as conn:
                    conn.execute(text(statement))
            finally:
                engine.dispose()
            backup.unlink()
            mechanics.pg_dump(url, backup)
    reseal_manifest(backup)


def flip_byte(path: Path, at: int | None = None) -> None:
    """Invert one byte of a file (the middle one unless ``at`` says)."""
    data = bytearray(path.read_bytes())
    index = len(data) // 2 if at is None else at
    data[index] ^= 0xFF
    path.write_bytes(bytes(data))
