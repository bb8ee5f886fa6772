"""platform/backup.py without a database: the manifest round trip and its checks, and the
client tools' connection target (the password never on their command line)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from citywallet.platform import backup as mechanics
from citywallet.platform.backup import BackupError, Manifest


def _manifest(path: Path) -> Manifest:
    return Manifest(
        database="sqlite",
        file=path.name,
        sha256=mechanics.file_sha256(path),
        size=path.stat().st_size,
        created_at="2026-12-07T21:00:00Z",
        created_at_us=1_796_677_200_000_000,
        alembic_revision="0016",
        checkpoint={"tree_size": 3, "root_hash": "00" * 32, "note": "x\n"},
        citywallet_version="0.1.0",
    )


def test_a_manifest_round_trips_and_guards_its_file(tmp_path: Path) -> None:
    backup = tmp_path / "citywallet-1.sqlite3"
    backup.write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 8)
    manifest = _manifest(backup)
    written = mechanics.write_manifest(backup, manifest)
    assert written == tmp_path / "citywallet-1.sqlite3.manifest.json"
    assert written.stat().st_mode & 0o777 == 0o600
    assert mechanics.read_manifest(backup) == manifest
    mechanics.check_file(backup, manifest)  # intact: no error

    data = bytearray(backup.read_bytes())
    data[100] ^= 0x01
    backup.write_bytes(bytes(data))
    with pytest.raises(BackupError, match="does not match its manifest"):
        mechanics.check_file(backup, manifest)
    with pytest.raises(BackupError, match="describes"):
        mechanics.check_file(backup, dataclasses.replace(manifest, file="other.sqlite3"))


def test_a_missing_or_foreign_manifest_is_refused(tmp_path: Path) -> None:
    backup = tmp_path / "b.pgdump"
    backup.write_bytes(b"PGDMP")
    with pytest.raises(BackupError, match="no manifest"):
        mechanics.read_manifest(backup)
    mechanics.manifest_path(backup).write_text('{"format": "something/2"}', encoding="utf-8")
    with pytest.raises(BackupError, match="not a citywallet-backup/1 manifest"):
        mechanics.read_manifest(backup)
    mechanics.manifest_path(backup).write_text("{", encoding="utf-8")
    with pytest.raises(BackupError, match="unreadable"):
        mechanics.read_manifest(backup)


def test_the_client_tools_get_the_password_through_the_environment() -> None:
    uri, env = mechanics.libpq_target("postgresql+psycopg://cw:s3cr%40t@db.internal:5433/wallet")
    assert uri == "postgresql://cw@db.internal:5433/wallet"
    assert env["PGPASSWORD"] == "s3cr@t"
    uri, env = mechanics.libpq_target("postgresql+psycopg://cw@db/wallet")
    assert "s3cr" not in uri


def test_a_multi_host_url_becomes_libpqs_host_and_port_lists() -> None:
    uri, _env = mechanics.libpq_target(
        "postgresql+psycopg://cw@/wallet?host=10.0.0.1:5432&host=10.0.0.2:5433"
        "&target_session_attrs=read-write"
    )
    assert uri == (
        "postgresql://cw@/wallet?host=10.0.0.1%2C10.0.0.2&port=5432%2C5433"
        "&target_session_attrs=read-write"
    )


def test_only_sqlite_and_postgresql_are_backed_up() -> None:
    assert mechanics.engine_of("sqlite:///var/citywallet.db") == "sqlite"
    assert mechanics.engine_of("postgresql+psycopg://u@h/d") == "postgresql"
    with pytest.raises(BackupError):
        mechanics.engine_of("mysql://u@h/d")
    with pytest.raises(BackupError):
        mechanics.sqlite_path("sqlite://")
