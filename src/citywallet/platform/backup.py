"""Backups of the database, and their restore: the mechanics only (docs/operations.md,
"Backups").

- SQLite: the online backup API (``sqlite3.Connection.backup`` in one step), which copies
  a consistent snapshot while the server keeps writing (WAL: readers never block writers).
  The copy is a single self-contained file (rollback-journal mode, no ``-wal`` beside it).
- PostgreSQL: ``pg_dump --format=custom`` (one repeatable-read snapshot) and ``pg_restore``
  into an empty database in one transaction, from the machine's PostgreSQL client tools.

Each backup has a manifest beside it (``<file>.manifest.json``): format, engine, creation
time, Alembic revision, the file's SHA-256 and size, and the last published ledger
checkpoint. What the backup is held to (``ledger verify`` and the checkpoint) is the
caller's: this module knows no ledger (cli_backup.py runs both).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url

from citywallet.platform.files import private_file

MANIFEST_FORMAT = "citywallet-backup/1"
MANIFEST_SUFFIX = ".manifest.json"
Engine = Literal["sqlite", "postgresql"]
SUFFIXES: dict[str, str] = {"sqlite": ".sqlite3", "postgresql": ".pgdump"}


class BackupError(Exception):
    """A backup or restore that cannot go on; the message says why, for an operator."""


@dataclass(frozen=True)
class Manifest:
    """What is written beside a backup file (JSON), and checked before it is restored."""

    database: str  # "sqlite" or "postgresql"
    file: str  # the backup file's name, in the manifest's directory
    sha256: str
    size: int
    created_at: str  # ISO 8601, UTC
    created_at_us: int
    alembic_revision: str | None
    checkpoint: dict[str, Any] | None  # tree_size, root_hash (hex), note (signed text)
    citywallet_version: str
    format: str = MANIFEST_FORMAT
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        """The manifest as indented JSON text."""
        return json.dumps(asdict(self), indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def engine_of(url: str) -> Engine:
    """``sqlite`` or ``postgresql`` from a SQLAlchemy URL; anything else is refused."""
    backend = make_url(url).get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise BackupError(f"cannot back up a {backend} database")
    return "sqlite" if backend == "sqlite" else "postgresql"


def manifest_path(backup: Path) -> Path:
    """Where the manifest of ``backup`` lives: beside it, ``<name>.manifest.json``."""
    return backup.with_name(backup.name + MANIFEST_SUFFIX)


def write_manifest(backup: Path, manifest: Manifest) -> Path:
    """Write the manifest beside ``backup`` (mode 0600); returns its path."""
    path = manifest_path(backup)
    private_file(path)
    path.write_text(manifest.to_json(), encoding="utf-8")
    return path


def read_manifest(backup: Path) -> Manifest:
    """The manifest beside ``backup``; :class:`BackupError` when missing or malformed."""
    path = manifest_path(backup)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != MANIFEST_FORMAT:
            raise BackupError(f"{path}: not a {MANIFEST_FORMAT} manifest")
        return Manifest(**data)
    except FileNotFoundError:
        raise BackupError(f"no manifest beside the backup ({path.name})") from None
    except (ValueError, TypeError) as exc:
        raise BackupError(f"{path}: unreadable manifest: {exc}") from None


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file, hex."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def check_file(backup: Path, manifest: Manifest) -> None:
    """The backup file is the one the manifest describes (size and SHA-256), else raise."""
    if not backup.is_file():
        raise BackupError(f"no backup file {backup}")
    if backup.name != manifest.file:
        raise BackupError(f"the manifest describes {manifest.file}, not {backup.name}")
    if backup.stat().st_size != manifest.size or file_sha256(backup) != manifest.sha256:
        raise BackupError(
            f"{backup.name} does not match its manifest's SHA-256 and size: the file is "
            "damaged or was changed after the backup"
        )


# --- SQLite -------------------------------------------------------------------------------


def sqlite_path(url: str) -> Path:
    """The file of a SQLite URL (URIs and in-memory databases are refused)."""
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        raise BackupError(f"not a SQLite file: {url}")
    return Path(database)


def sqlite_backup(source_url: str, target: Path) -> None:
    """Copy the SQLite database at ``source_url`` to ``target`` with the online backup API.

    One step (``pages=-1``) under one read transaction: a consistent snapshot however busy the
    writers are (a stepwise copy restarts whenever another connection writes, and under load
    it might never finish). The copy is switched to rollback-journal mode so that it is one
    self-contained file.
    """
    source = sqlite_path(source_url)
    if not source.is_file():
        raise BackupError(f"no SQLite database at {source}")
    private_file(target)
    with (
        closing(sqlite3.connect(f"file:{source}?mode=ro", uri=True)) as src,
        closing(sqlite3.connect(target)) as dst,
    ):
        src.execute("PRAGMA busy_timeout = 30000")
        src.backup(dst, pages=-1)
        dst.execute("PRAGMA journal_mode = DELETE")
        found = dst.execute("PRAGMA integrity_check").fetchone()
    if found is None or found[0] != "ok":
        raise BackupError(f"the copy failed SQLite's integrity check: {found}")


def sqlite_is_empty(url: str) -> bool:
    """True when the SQLite file does not exist, is empty, or holds no table."""
    path = sqlite_path(url)
    if not path.exists() or path.stat().st_size == 0:
        return True
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        tables = conn.execute("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'")
        return int(tables.fetchone()[0]) == 0


def sqlite_restore(backup: Path, target_url: str) -> None:
    """Copy the backup file into the SQLite database at ``target_url`` (created 0600) with
    the backup API, which also replaces an existing database correctly (its WAL included)."""
    target = sqlite_path(target_url)
    target.parent.mkdir(parents=True, exist_ok=True)
    private_file(target)
    with (
        closing(sqlite3.connect(f"file:{backup}?mode=ro", uri=True)) as src,
        closing(sqlite3.connect(target)) as dst,
    ):
        found = src.execute("PRAGMA integrity_check").fetchone()
        if found is None or found[0] != "ok":
            raise BackupError(f"the backup fails SQLite's integrity check: {found}")
        src.backup(dst, pages=-1)
        dst.execute("PRAGMA journal_mode = WAL")


# --- PostgreSQL ---------------------------------------------------------------------------


def libpq_target(url: str) -> tuple[str, dict[str, str]]:
    """A SQLAlchemy PostgreSQL URL as a libpq connection URI for the client tools, and the
    environment that carries its password (kept off the command line, which others see)."""
    parsed = make_url(url)
    env = dict(os.environ)
    if parsed.password is not None:
        env["PGPASSWORD"] = str(parsed.password)
    plain = URL.create(  # URL.set(password=None) would keep the password
        "postgresql",
        username=parsed.username,
        host=parsed.host,
        port=parsed.port,
        database=parsed.database,
        query=_libpq_hosts(dict(parsed.query)),
    )
    return plain.render_as_string(hide_password=False), env


def _libpq_hosts(query: dict[str, str | tuple[str, ...]]) -> dict[str, str | tuple[str, ...]]:
    """psycopg's multi-host form (``?host=A:P&host=B:Q``, docs/operations.md) as libpq's
    (``?host=A,B&port=P,Q``); other parameters pass through."""
    given = query.get("host")
    if given is None:
        return query
    entries = [given] if isinstance(given, str) else list(given)
    hosts, ports = [], []
    for entry in entries:
        host, sep, port = entry.rpartition(":")
        hosts.append(host if sep and port.isdigit() else entry)
        ports.append(port if sep and port.isdigit() else "")
    rest = {k: v for k, v in query.items() if k not in ("host", "port")}
    rest["host"] = ",".join(hosts)
    if any(ports):
        rest["port"] = ",".join(port or "5432" for port in ports)
    elif "port" in query:
        rest["port"] = query["port"]
    return rest


def _client_tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(
            f"{name} is not installed: install the PostgreSQL client tools "
            "(Debian: apt-get install postgresql-client), the same major version as the server "
            "or newer"
        )
    return found


def _run(command: list[str], env: dict[str, str], what: str) -> None:
    # the client tools found on PATH, with arguments built here (no shell)
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise BackupError(f"{what} failed ({done.returncode}): " + " | ".join(detail[-5:]))


def pg_dump(source_url: str, target: Path) -> None:
    """``pg_dump --format=custom`` of the database at ``source_url`` into ``target``."""
    uri, env = libpq_target(source_url)
    private_file(target)
    _run(
        [_client_tool("pg_dump"), "--format=custom", f"--file={target}", f"--dbname={uri}"],
        env,
        "pg_dump",
    )


def pg_restore(backup: Path, target_url: str) -> None:
    """``pg_restore`` the dump into the database at ``target_url`` in one transaction
    (all or nothing), stopping at the first error; owners and grants are the target's."""
    uri, env = libpq_target(target_url)
    _run(
        [
            _client_tool("pg_restore"),
            "--no-owner",
            "--no-privileges",
            "--exit-on-error",
            "--single-transaction",
            f"--dbname={uri}",
            str(backup),
        ],
        env,
        "pg_restore",
    )


def pg_table_count(url: str) -> int:
    """How many tables the database at ``url`` holds outside the system schemas."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    text(
                        "SELECT COUNT(*) FROM pg_catalog.pg_tables "
                        "WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
                    )
                ).scalar_one()
            )
    finally:
        engine.dispose()


def pg_clear(url: str) -> None:
    """Drop everything in the target's ``public`` schema (``restore --force``)."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    finally:
        engine.dispose()


@contextmanager
def pg_scratch_database(url: str, *, prefix: str = "cw_backup_check") -> Iterator[str]:
    """A new, empty database on the server of ``url`` for the life of the block (then
    dropped); needs the CREATEDB privilege."""
    name = f"{prefix}_{os.getpid()}_{os.urandom(4).hex()}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(url).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


# --- both ---------------------------------------------------------------------------------


def alembic_revision(url: str) -> str | None:
    """The database's Alembic revision, or None when it has no ``alembic_version`` table
    (a schema built from the models, as the tests do)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            try:
                rows = conn.execute(text("SELECT version_num FROM alembic_version")).all()
            except Exception:  # no such table: SQLite and PostgreSQL raise different errors
                return None
            return ",".join(sorted(str(row[0]) for row in rows)) or None
    finally:
        engine.dispose()


def dump(source_url: str, target: Path) -> None:
    """Write a backup of the database at ``source_url`` to ``target`` (either engine)."""
    if engine_of(source_url) == "sqlite":
        sqlite_backup(source_url, target)
    else:
        pg_dump(source_url, target)


def is_empty(url: str) -> bool:
    """True when the database at ``url`` holds no table (a fresh database)."""
    if engine_of(url) == "sqlite":
        return sqlite_is_empty(url)
    return pg_table_count(url) == 0


def restore(backup: Path, manifest: Manifest, target_url: str, *, force: bool = False) -> None:
    """Restore ``backup`` (already checked against ``manifest``) into ``target_url``.

    The target must be empty unless ``force`` (then a PostgreSQL target's ``public`` schema
    is dropped first; a SQLite target is overwritten).
    """
    kind = engine_of(target_url)
    if manifest.database != kind:
        raise BackupError(f"a {manifest.database} backup cannot be restored into {kind}")
    if not is_empty(target_url):
        if not force:
            raise BackupError(
                "the target database is not empty: restore into a fresh database, or pass "
                "--force to replace what it holds"
            )
        if kind == "postgresql":
            pg_clear(target_url)
    if kind == "sqlite":
        sqlite_restore(backup, target_url)
    else:
        pg_restore(backup, target_url)
