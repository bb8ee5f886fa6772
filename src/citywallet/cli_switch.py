"""`citywallet switch …`: run the interoperability switch and manage its participants and
settlement windows (docs/interop.md, docs/operations.md). Thin: parse, one transaction,
print; refusals print their code and exit 1."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.table import Table

from citywallet.money import Money

if TYPE_CHECKING:
    from citywallet.interop.switch.windows import WindowView
    from citywallet.platform.db import UnitOfWork
    from citywallet.runtime import Runtime

switch_app = typer.Typer(
    help="The interoperability switch: serve, key, participants, settlement windows.",
    no_args_is_help=True,
)
participants_app = typer.Typer(help="The switch's participants.", no_args_is_help=True)
windows_app = typer.Typer(help="Settlement windows.", no_args_is_help=True)
operators_app = typer.Typer(help="Operators of the switch's console.", no_args_is_help=True)
switch_app.add_typer(participants_app, name="participants")
switch_app.add_typer(windows_app, name="windows")
switch_app.add_typer(operators_app, name="operators")

T = TypeVar("T")


def _base() -> Any:
    from citywallet import cli

    return cli


def _print(text: str) -> None:
    _base().console.print(text)


def _runtime() -> Runtime:
    runtime: Runtime = _base()._runtime()
    return runtime


def _yuan(fen: int) -> str:
    return Money(fen, "CNY").format()


@contextmanager
def _refusals() -> Iterator[None]:
    from citywallet.platform.errors import DomainError

    try:
        yield
    except DomainError as exc:
        _print(f"[red]{exc.code}: {exc.detail}[/]")
        raise typer.Exit(1) from None


def _transact(work: Callable[[UnitOfWork], T]) -> T:
    runtime = _runtime()
    try:
        with _refusals():
            return runtime.db.transact(work)
    finally:
        runtime.db.dispose()


@switch_app.command("serve")
def serve(host: str = "127.0.0.1", port: int = 9000) -> None:
    """Run the switch's HTTP server (migrates first)."""
    import uvicorn

    _runtime().db.dispose()
    uvicorn.run(
        "citywallet.api.switch:create_switch_app_from_env",
        factory=True,
        host=host,
        port=port,
        log_level="warning",
        log_config=None,
    )


@switch_app.command("key")
def key() -> None:
    """Print the switch's Ed25519 public key (base64 of 32 bytes), one line."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from citywallet.platform.config import get_settings
    from citywallet.platform.crypto import interop_seed
    from citywallet.platform.files import private_dir

    settings = get_settings()
    private_dir(settings.var_dir)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.from_private_bytes(interop_seed(settings))
    raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    typer.echo(base64.b64encode(raw).decode("ascii"))


@participants_app.command("add")
def participants_add(
    participant_id: Annotated[str, typer.Argument(metavar="ID")],
    name: Annotated[str, typer.Option(help="Display name.")],
    public_key: Annotated[str, typer.Option(help="Ed25519 public key, base64 of 32 bytes.")],
    callback_url: Annotated[str, typer.Option(help="Base URL of its FSPIOP endpoints.")],
    cap: Annotated[int, typer.Option(help="Net debit cap in fen.")],
) -> None:
    """Register a participant (the same values again change nothing)."""
    from citywallet.interop.switch.registry import add_participant

    outcome = _transact(
        lambda uow: add_participant(
            uow,
            participant_id=participant_id,
            name=name,
            public_key=public_key,
            callback_url=callback_url,
            cap=cap,
        )
    )
    _print(f"[green]{participant_id}: {outcome}[/]")


@participants_app.command("list")
def participants_list() -> None:
    """The participants with their positions and headroom."""
    from citywallet.interop.switch.registry import participants

    rows = _transact(participants)
    table = Table(title="switch participants")
    for column in ("id", "name", "callback URL", "cap", "position", "reserved", "headroom"):
        table.add_column(column, justify="right" if column in {"cap", "position"} else "left")
    table.add_column("active")
    for p in rows:
        table.add_row(
            p.id, p.name, p.callback_url, _yuan(p.cap), _yuan(p.position), _yuan(p.reserved),
            _yuan(p.headroom), "yes" if p.active else "[red]no[/]",
        )  # fmt: skip
    _print("")
    _base().console.print(table)


@participants_app.command("cap")
def participants_cap(
    participant_id: Annotated[str, typer.Argument(metavar="ID")],
    fen: Annotated[int, typer.Argument(metavar="FEN")],
) -> None:
    """Set a participant's net debit cap (fen)."""
    from citywallet.interop.switch.registry import set_cap

    view = _transact(lambda uow: set_cap(uow, participant_id=participant_id, cap=fen))
    _print(f"[green]{view.id}: cap {_yuan(view.cap)}, headroom {_yuan(view.headroom)}[/]")


@participants_app.command("deactivate")
def participants_deactivate(participant_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Refuse a participant's new messages (its transfers in flight still finish or expire)."""
    from citywallet.interop.switch.registry import deactivate

    view = _transact(lambda uow: deactivate(uow, participant_id=participant_id))
    _print(f"[yellow]{view.id}: deactivated[/]")


def _window_table(title: str, views: list[WindowView]) -> Table:
    table = Table(title=title)
    for column in ("window", "state", "opened", "closed", "transfers", "total", "nets"):
        table.add_column(column)
    for w in views:
        report = w.report or {}
        nets = ", ".join(f"{p} {_yuan(n)}" for p, n in sorted(report.get("positions", {}).items()))
        table.add_row(
            w.id, w.state, f"{w.opened_at:%Y-%m-%d %H:%M:%S}",
            f"{w.closed_at:%Y-%m-%d %H:%M:%S}" if w.closed_at else "",
            str(report.get("transfer_count", "")),
            _yuan(report["total_amount"]) if report else "", nets,
        )  # fmt: skip
    return table


@windows_app.command("close")
def windows_close() -> None:
    """Close the open window now: net it, settle the positions, notify, open the next."""
    from citywallet.interop.switch.windows import close_window

    closed = _transact(lambda uow: close_window(uow, now=datetime.now(UTC)))
    _base().console.print(_window_table("closed window", [closed]))


@windows_app.command("list")
def windows_list(limit: int = 20) -> None:
    """The most recent settlement windows with their reports."""
    from citywallet.interop.switch.windows import windows

    views = _transact(lambda uow: windows(uow, limit=limit))
    _base().console.print(_window_table("settlement windows", views))


@operators_app.command("add")
def operators_add(
    phone: Annotated[str, typer.Argument(metavar="PHONE")],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)],
) -> None:
    """Create an operator account of the switch's console (signs in at /login)."""
    from citywallet.identity.attributes import grant_operator
    from citywallet.identity.service import provision_account

    runtime = _runtime()
    try:
        with _refusals():
            user = provision_account(
                runtime.db, phone=phone, password=password, encryptor=runtime.encryptor
            )
            runtime.db.transact(
                lambda uow: grant_operator(uow, user_id=user.id, actor="cli:switch")
            )
    finally:
        runtime.db.dispose()
    _print(f"[green]operator {user.phone_masked} ({user.id}) may sign in at /console[/]")
