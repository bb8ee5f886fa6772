"""`citywallet cells up N`: a switch and N cells on the local PostgreSQL, until Ctrl-C.

Thin: the launcher is :class:`citywallet.interop.cells.Cells` (the tests and
``citywallet bench interop`` use the same code); this prints what it started.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table

from citywallet.interop.cells import PG_ADMIN_URL, PIN, Cells
from citywallet.interop.faultproxy import FaultRates
from citywallet.platform.config import get_settings

cells_app = typer.Typer(
    help="Cells: a switch and N deployments on one machine.", no_args_is_help=True
)
console = Console()


@cells_app.command("up")
def cells_up(
    n: Annotated[int, typer.Argument(min=1, max=99, help="How many cells.")],
    base_port: Annotated[
        int, typer.Option(help="The switch listens here, cell k on BASE+k, proxies on BASE+50+k.")
    ] = 8100,
    prefix: Annotated[
        str, typer.Option(help="Database names: PREFIX_switch, PREFIX_cell_1, … (dropped first).")
    ] = "cw",
    fault: Annotated[
        str | None,
        typer.Option(
            help="Put a fault proxy in front of every process, e.g. "
            "'drop_request=0.1,drop_response=0.05,duplicate=0.1,delay=0.5,delay_ms=200,seed=7'."
        ),
    ] = None,
    residents: Annotated[int, typer.Option(min=0, help="Verified residents per cell.")] = 5,
    merchants: Annotated[
        int, typer.Option(min=0, help="Approved merchants per cell (owner, API key, static code).")
    ] = 0,
    top_up: Annotated[int, typer.Option(min=0, help="Each resident's top-up (fen).")] = 100_000,
    cap: Annotated[int, typer.Option(min=0, help="Each cell's net debit cap (fen).")] = 100_000_000,
    pg_url: Annotated[str, typer.Option(help="An admin URL of the PostgreSQL cluster.")] = (
        PG_ADMIN_URL
    ),
    keep: Annotated[bool, typer.Option(help="Keep the databases after Ctrl-C.")] = True,
) -> None:
    """Create N+1 databases, start the switch and N cells, register and seed them; Ctrl-C stops."""
    try:
        rates = FaultRates.parse(fault) if fault else None
    except ValueError as exc:
        console.print(f"[red]--fault: {exc}[/]")
        raise typer.Exit(2) from None
    workdir = Path(get_settings().var_dir) / "cells" / prefix
    cells = Cells(
        n, base_port=base_port, prefix=prefix, proxy=rates, residents=residents, top_up=top_up,
        merchants=merchants, cap=cap, workdir=workdir, pg_url=pg_url, keep_databases=keep,
        echo=lambda line: console.print(f"[dim]{line}[/]"),
    )  # fmt: skip
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        with cells:
            console.print(_panel(cells))
            _wait(stop)
            console.print("stopping…")
    except (RuntimeError, ValueError) as exc:
        console.print(f"[red]cells up failed: {exc}[/]")
        raise typer.Exit(1) from None


def _wait(stop: threading.Event) -> None:
    """Until SIGTERM or Ctrl-C."""
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()


def _panel(cells: Cells) -> Panel:
    table = Table(show_header=True, box=None)
    for column in ("process", "API (direct)", "FSPIOP (as registered)", "database", "log"):
        table.add_column(column)
    if cells.switch is not None:
        table.add_row("switch", cells.switch.url, cells.switch_url, cells.switch_database_url,
                      str(cells.switch.log))  # fmt: skip
    for cell in cells.cells:
        table.add_row(cell.id, cell.url, cell.public_url, cell.database_url,
                      str(cell.process.log))  # fmt: skip
    logins = Table(show_header=True, box=None)
    for column in ("cell", "phone", "password", "PIN", "balance (fen)"):
        logins.add_column(column)
    for cell in cells.cells:
        for resident in cell.residents:
            logins.add_row(cell.id, resident.phone, resident.password, PIN, str(resident.top_up))
    shops = Table(show_header=True, box=None)
    for column in ("cell", "merchant", "owner phone", "API key id", "API key secret (HMAC)"):
        shops.add_column(column)
    for cell in cells.cells:
        for merchant in cell.merchants:
            shops.add_row(cell.id, merchant.merchant_id, merchant.owner.phone, merchant.key_id,
                          merchant.secret)  # fmt: skip
    faults = "none" if cells.rates is None else ", ".join(
        f"{k}={v}" for k, v in vars(cells.rates).items() if k != "exempt"
    )  # fmt: skip
    lines: list[RenderableType] = [
        table,
        f"\nswitch public key: {cells.switch_public_key or '-'}   faults: {faults}",
        "\nresidents (sign in at a cell's /app, or POST /v1/auth/login):",
        logins,
    ]
    if any(cell.merchants for cell in cells.cells):
        lines += [
            "\nmerchants (the owner signs in as a resident; the server signs with its key; "
            "the static code: GET /v1/merchants/ID/stores):",
            shops,
        ]
    lines.append("\nCtrl-C stops every process.")
    return Panel(Group(*lines), title=f"CityWallet cells ({cells.n} + switch)", expand=False)
