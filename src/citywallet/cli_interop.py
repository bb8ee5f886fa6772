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
