"""`citywallet interop …`: this deployment as a participant of a switch (docs/interop.md).

`interop key` prints the public half of the FSPIOP signing key (what the switch's operator
registers); `interop aliases sync` registers every verified resident's mobile number with
the switch again (after connecting an existing deployment, or to repair a lost message).
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

import typer
from cryptography.hazmat.primitives import serialization

if TYPE_CHECKING:
    from citywallet.runtime import Runtime

interop_app = typer.Typer(
    help="Interoperability: this deployment's switch key and aliases.", no_args_is_help=True
)
aliases_app = typer.Typer(help="Residents' mobile numbers at the switch.", no_args_is_help=True)
interop_app.add_typer(aliases_app, name="aliases")


def _runtime(*, migrate: bool = True) -> Runtime:
    from citywallet import cli  # cli imports this module: import at call time

    runtime: Runtime = cli._runtime(migrate=migrate)
    return runtime


@interop_app.command("key")
def key() -> None:
    """Print this deployment's FSPIOP public key (base64, one line)."""
    runtime = _runtime(migrate=False)
    public = runtime.interop_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    typer.echo(base64.b64encode(public).decode())


@aliases_app.command("sync")
def sync() -> None:
    """Register every active verified resident's mobile number with the switch."""
    from citywallet.interop.provider import service as interop

    runtime = _runtime()
    if not interop.configured(runtime.settings):
        typer.echo("not connected: set CITYWALLET_INTEROP_PARTICIPANT_ID and _SWITCH_URL", err=True)
        raise typer.Exit(1)

    def progress(seen: int, queued: int) -> None:
        typer.echo(f"{seen} residents seen, {queued} aliases queued")

    queued = interop.sync_aliases(
        runtime.db, settings=runtime.settings, encryptor=runtime.encryptor, progress=progress
    )
    delivered = runtime.interop_courier.deliver()  # what fails is retried by the worker
    typer.echo(f"done: {queued} aliases queued, {delivered} delivered now (the rest retry)")


MOVE_STEPS = [
    "frozen", "sent", "accepted", "quoting", "transferring", "transferred", "alias_sent", "done",
]  # fmt: skip


@interop_app.command("move")
def move(
    phone: str = typer.Argument(..., help="The resident's mobile number at this cell."),
    to: str = typer.Option(..., "--to", help="The participant id of the new cell."),
    seconds: float = typer.Option(120.0, help="Give up (resumable) after this long."),
    stop_after: str | None = typer.Option(
        None, "--stop-after", hidden=True, help="Stop right after this state (crash drills)."
    ),
) -> None:
    """Move a resident (wallet, history, alias) from this cell to another; run it again to
    resume after a crash."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from citywallet.interop.provider import moving
    from citywallet.money import Money
    from citywallet.platform.errors import DomainError

    runtime = _runtime()
    console = Console()
    columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(f"moving {phone} to {to}", total=len(MOVE_STEPS))

        def progress(view: moving.MoveView) -> None:
            done = MOVE_STEPS.index(view.state) + 1 if view.state in MOVE_STEPS else 0
            bar.update(task, completed=done, description=f"{view.state:<12} {view.move_id}")

        try:
            view = moving.run_move(
                runtime.db, phone=phone, to=to, settings=runtime.settings,
                encryptor=runtime.encryptor, deliver=runtime.interop_courier.deliver,
                progress=progress, stop_after=stop_after, seconds=seconds,
            )  # fmt: skip
        except DomainError as refused:
            reason = refused.extra.get("reason", refused.code)
            console.print(f"[red]refused[/red] ({reason}): {refused.detail}")
            raise typer.Exit(2) from None
        except moving.MoveStalled as stalled:
            console.print(f"[yellow]not finished[/yellow]: {stalled}")
            raise typer.Exit(3) from None
    table = Table(title="move", show_header=False)
    for label, value in (
        ("move id", view.move_id), ("state", view.state), ("to", view.other_fsp),
        ("resident here", view.user_id), ("resident there", view.other_user_id or "-"),
        ("balance moved", str(Money(view.balance))), ("history lines", str(view.line_count)),
        ("switch transfer", view.transfer_id or "-"),
        ("refusal", f"{view.error_code} {view.reason}" if view.error_code else "-"),
    ):  # fmt: skip
        table.add_row(label, value)
    console.print(table)
    typer.echo(moving.moves_json(view))
    if view.state == "refused":
        raise typer.Exit(2)
    if view.state not in ("done", stop_after):
        raise typer.Exit(3)
