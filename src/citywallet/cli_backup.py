"""``citywallet backup`` and ``citywallet restore``: backups that are proven to restore.

The database mechanics are platform/backup.py's (SQLite's online backup API, pg_dump and
pg_restore). Here each command ends the way docs/operations.md ("Backups") promises: the
copy is restored (backup: into a scratch database; restore: the target itself) and held to
``ledger verify`` (every invariant, block, signature and stored checkpoint) and to the last
ledger checkpoint published before the backup began — its tree size and root hash must be a
prefix of the restored log. Any failure exits 1 saying what is wrong.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

import citywallet
from citywallet.ledger.audit import verify_ledger
from citywallet.ledger.log import latest_checkpoint, log_size
from citywallet.ledger.types import VerifyReport
from citywallet.ledger.verifier import Checkpoint, ProofError, verify_checkpoint
from citywallet.platform import backup as mechanics
from citywallet.platform.backup import BackupError, Manifest
from citywallet.platform.clock import now_us
from citywallet.platform.config import Settings, get_settings
from citywallet.platform.crypto import MissingKeys
from citywallet.platform.files import private_dir
from citywallet.runtime import Runtime

console = Console()


@dataclass
class Verification:
    """What the end-of-command check found."""

    report: VerifyReport
    log_size: int = 0
    checkpoint_size: int | None = None
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No problem found by ``ledger verify`` nor by the checkpoint check."""
        return self.report.ok and not self.problems


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def _runtime_on(settings: Settings, url: str) -> Runtime:
    return Runtime.from_settings(settings.model_copy(update={"database_url": url}))


def verify_database(
    runtime: Runtime,
    *,
    public_key: bytes,
    origin: str,
    checkpoint_note: str | None,
    witness_notes: Sequence[str] = (),
    progress: Progress | None = None,
) -> Verification:
    """``ledger verify`` on ``runtime``'s database, held to the backup's checkpoint (it must
    be in the log) and to checkpoints kept elsewhere (those newer than the log only warn:
    the backup is older than them)."""
    outside: list[Checkpoint] = []
    problems: list[str] = []
    warnings: list[str] = []
    checkpoint_size = None
    if checkpoint_note is None:
        warnings.append("no ledger checkpoint was published before the backup: nothing sealed")
    else:
        try:
            published = verify_checkpoint(checkpoint_note, public_key, origin=origin)
            outside.append(published)
            checkpoint_size = published.tree_size
        except ProofError as exc:
            problems.append(f"the backup's checkpoint does not verify with the ledger key: {exc}")
    with runtime.db.uow(readonly=True) as uow:
        size = log_size(uow)
    for note in witness_notes:
        try:
            kept = verify_checkpoint(note, public_key, origin=origin)
        except ProofError as exc:
            problems.append(f"a --checkpoint note does not verify with the ledger key: {exc}")
            continue
        if kept.tree_size > size:
            warnings.append(
                f"checkpoint {kept.tree_size} kept elsewhere is newer than the restored log "
                f"({size} sealed transfers): what was sealed after the backup is not in it"
            )
        else:
            outside.append(kept)
    tasks: dict[str, TaskID] = {}

    def report_progress(stage: str, done: int, total: int) -> None:
        if progress is None:
            return
        if stage not in tasks:
            tasks[stage] = progress.add_task(f"verifying {stage}", total=total)
        progress.update(tasks[stage], completed=done, total=total)

    with runtime.db.uow(readonly=True) as uow:
        report = verify_ledger(
            uow, public_key=public_key, progress=report_progress, outside=outside
        )
    return Verification(report, size, checkpoint_size, problems, warnings)


def _show(title: str, verification: Verification, rows: list[tuple[str, str]]) -> None:
    table = Table(title=title, show_header=False)
    for name, value in rows:
        table.add_row(name, value)
    report = verification.report
    table.add_row("accounts checked", f"{report.accounts:,}")
    table.add_row("transfers checked", f"{report.transfers:,}")
    table.add_row("blocks checked", f"{report.blocks:,}")
    table.add_row("log size", f"{verification.log_size:,}")
    held = verification.checkpoint_size
    table.add_row("held to checkpoint", "-" if held is None else f"tree size {held:,}")
    console.print(table)
    for line in verification.warnings:
        console.print(f"[yellow]! {line}[/]", soft_wrap=True)
    for line in [*verification.problems, *report.problems]:
        console.print(f"[red]✗[/] {line}", soft_wrap=True)


def _signer_key(runtime: Runtime) -> tuple[bytes, str]:
    signer = runtime.ledger_signer()
    return signer.public_key, signer.origin


def run_backup(settings: Settings, *, url: str, output: Path) -> tuple[Path, Verification]:
    """Back up the database at ``url`` into ``output`` (a directory), verify the copy in a
    scratch database, then write the manifest; returns the backup file and the check.

    A copy that fails its check keeps no manifest (restore refuses it) and is renamed
    ``….unverified``.
    """
    kind = mechanics.engine_of(url)
    private_dir(output)
    source = _runtime_on(settings, url)
    try:
        public_key, origin = _signer_key(source)
        with source.db.uow(readonly=True) as uow:
            note = latest_checkpoint(uow)  # published before the copy began: it must be in it
    finally:
        source.db.dispose()
    revision = mechanics.alembic_revision(url)
    started = now_us()
    moment = datetime.fromtimestamp(started / 1_000_000, UTC)
    target = output / f"citywallet-{moment:%Y%m%dT%H%M%S%fZ}{mechanics.SUFFIXES[kind]}"
    with _progress() as progress:
        task = progress.add_task(f"copying the {kind} database", total=None)
        try:
            mechanics.dump(url, target)
        except BackupError:
            target.unlink(missing_ok=True)  # a partial file is no backup
            raise
        progress.update(task, total=1, completed=1)
        try:
            verification = _verify_copy(settings, target, url, public_key, origin, note, progress)
        except (BackupError, SQLAlchemyError):
            target.rename(target.with_name(target.name + ".unverified"))
            raise
    if not verification.ok:
        target.rename(target.with_name(target.name + ".unverified"))
        return target, verification
    manifest = Manifest(
        database=kind,
        file=target.name,
        sha256=mechanics.file_sha256(target),
        size=target.stat().st_size,
        created_at=moment.isoformat().replace("+00:00", "Z"),
        created_at_us=started,
        alembic_revision=revision,
        checkpoint=_checkpoint_fields(note, public_key),
        citywallet_version=citywallet.__version__,
        extra={"ledger_public_key": public_key.hex(), "ledger_origin": origin},
    )
    mechanics.write_manifest(target, manifest)
    return target, verification


def _checkpoint_fields(note: str | None, public_key: bytes) -> dict[str, object] | None:
    if note is None:
        return None
    checkpoint = verify_checkpoint(note, public_key)
    return {
        "tree_size": checkpoint.tree_size,
        "root_hash": checkpoint.root_hash.hex(),
        "note": note,
    }


def _verify_copy(
    settings: Settings,
    target: Path,
    source_url: str,
    public_key: bytes,
    origin: str,
    note: str | None,
    progress: Progress,
) -> Verification:
    """Restore the fresh copy into a scratch database and verify that."""
    kind = mechanics.engine_of(source_url)
    probe = Manifest(
        database=kind,
        file=target.name,
        sha256="",
        size=0,
        created_at="",
        created_at_us=0,
        alembic_revision=None,
        checkpoint=None,
        citywallet_version=citywallet.__version__,
    )
    task = progress.add_task("restoring the copy into a scratch database", total=None)
    if kind == "sqlite":
        scratch_dir = Path(tempfile.mkdtemp(prefix=".verify-", dir=target.parent))
        try:
            scratch_url = f"sqlite:///{scratch_dir / 'scratch.db'}"
            mechanics.restore(target, probe, scratch_url)
            progress.update(task, total=1, completed=1)
            return _verify_at(settings, scratch_url, public_key, origin, note, progress)
        finally:
            shutil.rmtree(scratch_dir, ignore_errors=True)
    with mechanics.pg_scratch_database(source_url) as scratch_url:
        mechanics.restore(target, probe, scratch_url)
        progress.update(task, total=1, completed=1)
        return _verify_at(settings, scratch_url, public_key, origin, note, progress)


def _verify_at(
    settings: Settings,
    url: str,
    public_key: bytes,
    origin: str,
    note: str | None,
    progress: Progress,
) -> Verification:
    runtime = _runtime_on(settings, url)
    try:
        return verify_database(
            runtime, public_key=public_key, origin=origin, checkpoint_note=note, progress=progress
        )
    finally:
        runtime.db.dispose()


def run_restore(
    settings: Settings,
    *,
    backup: Path,
    url: str,
    force: bool = False,
    witness_notes: Sequence[str] = (),
) -> tuple[Manifest, Verification]:
    """Check the backup against its manifest, restore it into ``url`` (empty unless
    ``force``), then verify the restored database; :class:`BackupError` before any change
    when the backup or the target is not fit."""
    manifest = mechanics.read_manifest(backup)
    mechanics.check_file(backup, manifest)
    note = manifest.checkpoint["note"] if manifest.checkpoint else None
    with _progress() as progress:
        task = progress.add_task(f"restoring into the {manifest.database} database", total=None)
        mechanics.restore(backup, manifest, url, force=force)
        progress.update(task, total=1, completed=1)
        runtime = _runtime_on(settings, url)
        try:
            public_key, origin = _signer_key(runtime)
            verification = verify_database(
                runtime,
                public_key=public_key,
                origin=origin,
                checkpoint_note=note,
                witness_notes=witness_notes,
                progress=progress,
            )
        finally:
            runtime.db.dispose()
    return manifest, verification


# --- the commands -------------------------------------------------------------------------

DatabaseUrlOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="The database (SQLAlchemy URL); default: CITYWALLET_DATABASE_URL.",
    ),
]


def backup_command(
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", help="Directory for the backup and its manifest (default: VAR_DIR/backups)."
        ),
    ] = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Back up the database while it serves, then prove the copy restores and verifies."""
    settings = get_settings()
    url = database_url or settings.resolved_database_url
    try:
        target, verification = run_backup(
            settings, url=url, output=output or settings.var_dir / "backups"
        )
    except (BackupError, MissingKeys, SQLAlchemyError) as exc:
        console.print(f"[red]backup failed: {_reason(exc)}[/]", soft_wrap=True)
        raise typer.Exit(1) from None
    _show("backup", verification, [("file", str(target))])
    if not verification.ok:
        console.print(
            f"[red]the copy failed verification: kept as {target.name}.unverified, no manifest "
            "(restore refuses it); the live database needs `citywallet ledger verify`[/]",
            soft_wrap=True,
        )
        raise typer.Exit(1)
    console.print(
        f"[green]backup verified: restored into a scratch database, books balance, every block "
        f"and checkpoint intact[/]\nmanifest: {mechanics.manifest_path(target)}",
        soft_wrap=True,
    )


def restore_command(
    backup: Annotated[Path, typer.Argument(help="The backup file (its manifest beside it).")],
    database_url: DatabaseUrlOption = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Replace what a non-empty target database holds (destructive)."
        ),
    ] = False,
    checkpoint: Annotated[
        list[str] | None,
        typer.Option(
            "--checkpoint",
            help="A checkpoint kept elsewhere (witness file, note file or URL) the restored "
            "log must agree with; repeatable.",
        ),
    ] = None,
) -> None:
    """Restore a backup into an empty database, then verify the ledger and its checkpoint."""
    settings = get_settings()
    url = database_url or settings.resolved_database_url
    try:
        notes = [note for source in checkpoint or [] for note in _checkpoint_notes(source)]
        manifest, verification = run_restore(
            settings, backup=backup, url=url, force=force, witness_notes=notes
        )
    except (BackupError, MissingKeys, SQLAlchemyError, OSError, ValueError) as exc:
        console.print(f"[red]restore refused: {_reason(exc)}[/]", soft_wrap=True)
        raise typer.Exit(1) from None
    _show(
        "restore",
        verification,
        [
            ("backup", backup.name),
            ("taken at", manifest.created_at),
            ("schema revision", manifest.alembic_revision or "-"),
        ],
    )
    if not verification.ok:
        console.print(
            "[red]the restored database failed verification: do not serve from it[/]",
            soft_wrap=True,
        )
        raise typer.Exit(1)
    held = (
        "the log agrees with the last checkpoint published before the backup"
        if verification.checkpoint_size is not None
        else "no checkpoint to hold the log to"
    )
    console.print(
        f"[green]restored and verified: books balance, every block intact, {held}[/]\n"
        "`citywallet serve` applies any newer migrations at start.",
        soft_wrap=True,
    )


def _reason(exc: Exception) -> str:
    """One line for an operator (a database error without its SQL and parameters)."""
    if isinstance(exc, SQLAlchemyError):
        original = getattr(exc, "orig", None)
        first = str(original or exc).strip().splitlines()
        return f"the database: {first[0] if first else exc.__class__.__name__}"
    return str(exc)


def _checkpoint_notes(source: str) -> list[str]:
    from citywallet.cli import _read_checkpoint_source  # cli imports this module

    return _read_checkpoint_source(source)


def register(app: typer.Typer) -> None:
    """Add ``backup`` and ``restore`` to the ``citywallet`` command."""
    app.command("backup")(backup_command)
    app.command("restore")(restore_command)
