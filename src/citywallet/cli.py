"""The ``citywallet`` command: serve, demo, worker, db, ledger, keys, bench, sms, users, switch,
backup, restore."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.panel import Panel
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

import citywallet
from citywallet import cli_backup
from citywallet.cli_campaign import attributes_app, campaign_app, operators_app
from citywallet.cli_cells import cells_app
from citywallet.cli_interop import interop_app
from citywallet.cli_switch import switch_app
from citywallet.platform import crypto
from citywallet.platform.config import get_settings
from citywallet.platform.files import private_dir
from citywallet.platform.logging import configure_logging
from citywallet.runtime import Runtime, UnsafeStart, refuse_unsafe_start
from citywallet.schema import upgrade

if TYPE_CHECKING:
    from collections.abc import Callable

    from citywallet.demo import DemoInfo
    from citywallet.identity.service import UserView
    from citywallet.platform.db import UnitOfWork

app = typer.Typer(help="CityWallet: a city's digital wallet platform.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
ledger_app = typer.Typer(help="The ledger: verify, seal, prove, expire.", no_args_is_help=True)
keys_app = typer.Typer(help="Data-encryption keys.", no_args_is_help=True)
wallet_app = typer.Typer(help="Wallet operations.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks (print a table, write JSON).", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(ledger_app, name="ledger")
app.add_typer(keys_app, name="keys")
app.add_typer(bench_app, name="bench")
app.add_typer(wallet_app, name="wallet")
sms_app = typer.Typer(help="SMS (the sandbox outbox).", no_args_is_help=True)
users_app = typer.Typer(help="Residents: list, find, freeze.", no_args_is_help=True)
app.add_typer(sms_app, name="sms")
app.add_typer(users_app, name="users")
merchant_app = typer.Typer(help="Merchants: review, settle, statements.", no_args_is_help=True)
app.add_typer(merchant_app, name="merchant")
app.add_typer(campaign_app, name="campaign")
app.add_typer(interop_app, name="interop")
app.add_typer(operators_app, name="operators")
app.add_typer(switch_app, name="switch")
users_app.add_typer(attributes_app, name="attributes")
app.add_typer(cells_app, name="cells")
cli_backup.register(app)
console = Console()
REPO_ROOT = Path(citywallet.__file__).resolve().parents[2]


def _runtime(*, migrate: bool = True) -> Runtime:
    settings = get_settings()
    configure_logging(level=settings.log_level, json=settings.log_json, file=settings.log_file)
    runtime = Runtime.from_settings(settings)
    if migrate:
        upgrade(runtime.db.url)
    return runtime


@app.command()
def version() -> None:
    """Print the version."""
    console.print(citywallet.__version__)


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply migrations up to REVISION (default: the latest)."""
    settings = get_settings()
    private_dir(settings.var_dir)
    upgrade(settings.resolved_database_url, revision)
    console.print(f"[green]database at {revision}[/]")


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
    )


@ledger_app.command("verify")
def ledger_verify(
    checkpoint: Annotated[
        list[str] | None,
        typer.Option(
            "--checkpoint",
            help="A checkpoint kept elsewhere: a witness file (every line is checked), a "
            "file holding one signed note, or an http(s) URL serving one. Repeatable.",
        ),
    ] = None,
) -> None:
    """Check every invariant, block, signature, sealed transfer and checkpoint; exit 1 on damage."""
    from citywallet.ledger.audit import verify_ledger
    from citywallet.ledger.verifier import ProofError, verify_checkpoint

    runtime = _runtime()
    signer = runtime.ledger_signer()
    settings = runtime.settings
    outside = []
    for source in checkpoint or []:
        try:
            for note in _read_checkpoint_source(source):
                outside.append(verify_checkpoint(note, signer.public_key, origin=signer.origin))
        except (OSError, ValueError) as exc:  # ProofError is a ValueError
            kind = "bad signature or format" if isinstance(exc, ProofError) else "unreadable"
            console.print(f"[red]✗ checkpoint {source}: {kind}: {exc}[/]")
            raise typer.Exit(1) from None
    bound_us = int(
        settings.seal_interval_seconds * settings.ledger_unsealed_bound_intervals * 1_000_000
    )
    tasks: dict[str, TaskID] = {}
    with _progress() as progress:

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(f"checking {stage}", total=total)
            progress.update(tasks[stage], completed=done, total=total)

        with runtime.db.uow(readonly=True) as uow:
            result = verify_ledger(
                uow,
                public_key=signer.public_key,
                progress=report,
                outside=outside,
                max_unsealed_age_us=bound_us,
            )
    table = Table(title="ledger verify")
    table.add_column("checked")
    table.add_column("count", justify="right")
    for name, count in (
        ("accounts", result.accounts),
        ("transfers", result.transfers),
        ("blocks", result.blocks),
        ("sealed transfers", result.sealed_transfers),
        ("outside checkpoints", len(outside)),
    ):
        table.add_row(name, f"{count:,}")
    console.print(table)
    if result.ok:
        console.print(
            "[green]ledger verified: books balance, every block, seal and checkpoint intact[/]"
        )
        if not outside:
            console.print(
                "[yellow]no --checkpoint given: a rewrite resealed with the platform's own key "
                "is only caught against a checkpoint kept elsewhere[/]"
            )
        return
    for line in result.problems:
        console.print(f"[red]✗[/] {line}")
    raise typer.Exit(1)


def _read_checkpoint_source(source: str) -> list[str]:
    """The signed notes at a URL or in a file (a witness file, or one note)."""
    from citywallet.ledger.witness import is_url, read_checkpoints

    if is_url(source):
        import httpx2

        answer = httpx2.get(source, timeout=10.0, follow_redirects=False)
        if answer.status_code != 200:
            raise ValueError(f"HTTP {answer.status_code}")
        text = answer.text
    else:
        text = Path(source).read_text(encoding="utf-8")
    notes = read_checkpoints(text)
    if not notes:
        raise ValueError("no checkpoint in it")
    return notes


@ledger_app.command("seal")
def ledger_seal() -> None:
    """Seal every unsealed transfer into blocks now (and publish the checkpoint)."""
    from citywallet.ledger.blocks import seal_all

    runtime = _runtime()
    signer = runtime.ledger_signer()
    settings = runtime.settings
    sealed = runtime.db.transact(
        lambda uow: seal_all(
            uow,
            signer,
            max_transfers=settings.seal_max_transfers,
            witnesses=settings.ledger_witnesses,
        )
    )
    console.print(f"sealed {sealed:,} transfers")


@ledger_app.command("proof")
def ledger_proof(transfer_id: str) -> None:
    """Print a transfer's inclusion proof as JSON."""
    import json

    from citywallet.ledger.blocks import NotSealedYet, inclusion_proof

    runtime = _runtime()
    signer = runtime.ledger_signer()
    with runtime.db.uow(readonly=True) as uow:
        try:
            proof = inclusion_proof(uow, transfer_id=transfer_id, signer=signer)
        except LookupError:
            console.print(f"[red]no transfer {transfer_id}[/]")
            raise typer.Exit(1) from None
        except NotSealedYet:
            console.print("[yellow]not sealed yet: run `citywallet ledger seal`[/]")
            raise typer.Exit(1) from None
    print(json.dumps(proof, indent=2))


@ledger_app.command("expire")
def ledger_expire() -> None:
    """Void every pending transfer whose timeout has passed."""
    from citywallet.ledger.service import expire_pending

    runtime = _runtime()
    total = 0
    while voided := runtime.db.transact(lambda uow: expire_pending(uow)):
        total += voided
    console.print(f"expired {total:,} pending transfers")


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Make a new data-encryption key current and re-encrypt every stored secret with it."""
    settings = get_settings()
    kid = crypto.add_key(settings)
    runtime = _runtime()
    with _progress() as progress:
        task = progress.add_task("re-wrapping", total=len(crypto.ENCRYPTED_COLUMNS))

        def step(_table: str, _rows: int) -> None:
            progress.advance(task)

        changed = runtime.db.transact(
            lambda uow: crypto.rewrap_all(uow, runtime.encryptor, progress=step)
        )
    console.print(f"[green]key {kid} is current; {changed:,} values re-encrypted[/]")


@bench_app.command(
    "ledger", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
)
def bench_ledger(ctx: typer.Context) -> None:
    """Posting throughput on SQLite and PostgreSQL beside pgbench (see --help of bench)."""
    sys.path.insert(0, str(REPO_ROOT))
    from bench.ledger import main

    raise typer.Exit(main(list(ctx.args)))


@bench_app.command(
    "payments", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
)
def bench_payments(ctx: typer.Context) -> None:
    """Scan, payment-code and P2P payments/s over HTTP (wrk) beside GET /healthz; -- --help."""
    sys.path.insert(0, str(REPO_ROOT))
    from bench.payments import main

    raise typer.Exit(main(list(ctx.args)))


@bench_app.command(
    "redpackets", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
)
def bench_redpackets(ctx: typer.Context) -> None:
    """Red-packet grabs/s (in-process, HTTP, Redis Lua baseline) and a campaign; -- --help."""
    sys.path.insert(0, str(REPO_ROOT))
    from bench.redpackets import main

    raise typer.Exit(main(list(ctx.args)))


@bench_app.command(
    "interop", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
)
def bench_interop(ctx: typer.Context) -> None:
    """P2P through the switch (3 cells) beside in-provider P2P, same run; -- --help."""
    sys.path.insert(0, str(REPO_ROOT))
    from bench.interop import main

    raise typer.Exit(main(list(ctx.args)))


SERVERS = ("uvicorn", "granian")


@app.command()
def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: Annotated[int, typer.Option(help="Server processes.")] = 1,
    server: Annotated[
        str,
        typer.Option(
            help="HTTP server: uvicorn (default) or granian (pip install 'citywallet[granian]'); "
            "docs/operations.md compares them."
        ),
    ] = "uvicorn",
) -> None:
    """Run the HTTP server (migrates first)."""
    if server not in SERVERS:
        typer.echo(f"citywallet: --server is one of {', '.join(SERVERS)}", err=True)
        raise typer.Exit(2)
    _refuse_unsafe_start()
    trusted = _trusted_proxies()
    _runtime().close()
    if workers > 1:  # each process counts in its own files; /metrics sums them
        from citywallet.platform.metrics import prepare_multiprocess

        prepare_multiprocess(get_settings().var_dir / "metrics")
    if server == "granian":
        _serve_granian(host, port, workers)
        return
    import uvicorn

    uvicorn.run(
        "citywallet.api.app:create_app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        log_config=None,  # uvicorn's lines go through our masking handler, not its own
        proxy_headers=bool(trusted),
        forwarded_allow_ips=trusted,
    )


def _serve_granian(host: str, port: int, workers: int) -> None:
    """granian's ASGI interface on the same app; the forwarded headers are handled in the
    app (uvicorn's own middleware, the same trusted addresses), its log lines go through our
    masking handler like uvicorn's."""
    try:
        from granian.constants import Interfaces  # type: ignore[import-not-found,unused-ignore]
        from granian.log import LogLevels  # type: ignore[import-not-found,unused-ignore]
        from granian.server import Server  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        typer.echo(
            "citywallet: granian is not installed: pip install 'citywallet[granian]'", err=True
        )
        raise typer.Exit(78) from None
    quiet = {"handlers": [], "level": "WARNING", "propagate": True}
    Server(
        "citywallet.api.app:create_app_behind_proxies",
        factory=True,
        address=host,
        port=port,
        workers=workers,
        interface=Interfaces.ASGI,
        blocking_threads=1,  # the ASGI interface runs the event loop on one thread per worker
        log_level=LogLevels.warning,
        log_dictconfig={"loggers": {"_granian": quiet, "granian.access": quiet}},
        respawn_failed_workers=True,
    ).serve()


def _refuse_unsafe_start() -> None:
    """Exit non-zero, saying why, before a production process touches anything."""
    try:
        refuse_unsafe_start(get_settings())
    except UnsafeStart as exc:
        typer.echo(f"citywallet: {exc}", err=True)
        raise typer.Exit(78) from None  # EX_CONFIG


def _trusted_proxies() -> str:
    """uvicorn's ``forwarded_allow_ips`` from ``CITYWALLET_TRUSTED_PROXIES`` (validated);
    empty: forwarded headers are believed from no one (uvicorn's own default would trust
    loopback)."""
    import ipaddress

    spec = get_settings().trusted_proxies.strip()
    if not spec:
        return ""
    entries = [entry.strip() for entry in spec.split(",") if entry.strip()]
    for entry in entries:
        if entry == "*":
            continue
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            typer.echo(f"citywallet: CITYWALLET_TRUSTED_PROXIES: {entry!r} is no address", err=True)
            raise typer.Exit(78) from None
    return ",".join(entries)


@wallet_app.command("reconcile")
def wallet_reconcile() -> None:
    """Ask the bank about top-ups and withdrawals still waiting for an answer, and settle them."""
    from citywallet.wallet.funding import reconcile_fundings

    runtime = _runtime()
    report = reconcile_fundings(runtime.db, bank=runtime.bank, settings=runtime.settings)
    console.print(
        f"succeeded {report.succeeded}, failed {report.failed}, "
        f"still unresolved {report.unresolved}"
    )


@app.command()
def worker() -> None:
    """Run the background worker alone: expiry, sealing, outbox delivery, jobs."""
    import signal
    import threading

    from citywallet.tasks import build_worker

    _refuse_unsafe_start()
    runtime = _runtime()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    build_worker(runtime).run_forever(stop, poll_seconds=runtime.settings.worker_poll_seconds)


@app.command()
def demo(
    host: str = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to serve on (make demo PORT=8100).")] = 8000,
) -> None:
    """Seed demo residents (sandbox SMS, bank and ID checks), print URLs and logins, serve.

    Logs (migrations, seeding, the server and its worker) go to var/demo.log, so the
    terminal shows one panel: the apps, the logins and where to look next."""
    from citywallet.demo import seed

    settings = get_settings()
    log_file = settings.log_file or settings.var_dir / "demo.log"
    os.environ["CITYWALLET_LOG_FILE"] = str(log_file)  # the server process reads it too
    get_settings.cache_clear()
    with console.status("preparing the demo database (migrations, then demo data)…"):
        runtime = _runtime()
        if not runtime.settings.sandbox:
            console.print("[red]the demo needs CITYWALLET_SANDBOX=true (sandbox SMS and bank)[/]")
            raise typer.Exit(1)
        info = seed(runtime)
    database = runtime.db.url
    runtime.close()
    console.print(demo_panel(info, f"http://{host}:{port}", database, log_file))
    import uvicorn

    trusted = _trusted_proxies()
    try:
        uvicorn.run(
            "citywallet.api.app:create_app_from_env",
            factory=True,
            host=host,
            port=port,
            log_level="warning",
            log_config=None,  # uvicorn's lines go through our masking handler, not its own
            proxy_headers=bool(trusted),
            forwarded_allow_ips=trusted,
        )
    except SystemExit as exc:  # uvicorn exits when it cannot bind
        console.print(f"[red]could not serve on {host}:{port}; try: make demo PORT=8100[/]")
        raise typer.Exit(1) from exc


def demo_panel(info: DemoInfo, base: str, database: str, log_file: Path) -> Panel:
    """Everything a newcomer needs after ``citywallet demo``, in one panel."""
    from citywallet.demo import PIN, web_apps

    rows = Table.grid(padding=(0, 2))
    rows.add_column(style="bold", no_wrap=True)
    rows.add_column(overflow="fold")
    for name, url, login in web_apps(info, base):
        rows.add_row(name, f"[link={url}]{url}[/link]")
        rows.add_row("", f"[dim]sign in:[/] {login}")
    rows.add_row("", "")
    rows.add_row("Payment PIN", f"{PIN} (every demo resident)")
    rows.add_row("New resident", f"{base}/app/signup  (SMS codes: the sandbox outbox below)")
    rows.add_row("Sandbox SMS outbox", f"{base}/v1/dev/sms?phone=13900000001")
    rows.add_row("API docs", f"{base}/docs  (guide: docs/api.md)")
    if info.merchant_id:
        rows.add_row("Demo merchant", f"{info.merchant_id} · API key {info.api_key_id}")
        rows.add_row("  HMAC secret", f"{info.api_secret} (new at every start)")
    if info.sample_transfer:
        proof = f"{base}/v1/ledger/transfers/{info.sample_transfer}/proof"
        rows.add_row("A transfer's proof", proof)
    rows.add_row("Database", database)
    rows.add_row("Logs", str(log_file))
    state = "reused the demo data already in the database" if info.reused else "seeded demo data"
    return Panel(
        rows,
        title=f"CityWallet demo: {state}",
        subtitle="中文 / English · Ctrl+C to stop",
        expand=False,
    )


@sms_app.command("outbox")
def sms_outbox(
    phone: Annotated[str | None, typer.Option(help="Only messages to this number.")] = None,
    limit: int = 20,
) -> None:
    """Show what the sandbox SMS gateway sent (newest first; the phone is masked)."""
    from citywallet.identity.gateways import sandbox_messages
    from citywallet.identity.rules import normalize_phone
    from citywallet.platform.clock import to_datetime

    runtime = _runtime()
    if not runtime.settings.sandbox:
        console.print("[red]not in sandbox mode: messages go to the real SMS gateway[/]")
        raise typer.Exit(1)
    e164 = normalize_phone(phone) if phone else None
    with runtime.db.uow(readonly=True) as uow:
        messages = sandbox_messages(uow, runtime.encryptor, phone=e164, limit=limit)
    table = Table(title="sandbox SMS outbox")
    for column in ("sent at (UTC)", "to", "text"):
        table.add_column(column)
    for message in messages:
        sent = f"{to_datetime(message.created_at):%Y-%m-%d %H:%M:%S}"
        table.add_row(sent, message.phone_masked, message.text)
    console.print(table)


def _user_table(title: str, users: list[UserView]) -> Table:
    table = Table(title=title)
    for column in ("id", "phone", "status", "tier", "real name"):
        table.add_column(column)
    for user in users:
        table.add_row(
            user.id, user.phone_masked, user.status, str(user.tier), user.name_masked or "-"
        )
    return table


@users_app.command("list")
def users_list(limit: int = 50) -> None:
    """The newest residents (masked)."""
    from citywallet.identity import service

    runtime = _runtime()
    with runtime.db.uow(readonly=True) as uow:
        users, _next = service.list_users(uow, limit=limit)
    console.print(_user_table("residents", users))


@users_app.command("find")
def users_find(phone: str) -> None:
    """Find a resident by phone number (any common format)."""
    from citywallet.identity import service
    from citywallet.platform.errors import DomainError

    runtime = _runtime()
    with runtime.db.uow(readonly=True) as uow:
        try:
            user = service.find_user_by_phone(uow, phone=phone, encryptor=runtime.encryptor)
        except DomainError as exc:
            console.print(f"[red]{exc.detail}[/]")
            raise typer.Exit(1) from None
    if user is None:
        console.print("no resident with that phone number")
        raise typer.Exit(1)
    console.print(_user_table("resident", [user]))


def _operator() -> str:
    import getpass

    return f"operator:{getpass.getuser()}"


@users_app.command("freeze")
def users_freeze(
    user_id: str, reason: Annotated[str, typer.Option(help="Why (kept in the audit trail).")]
) -> None:
    """Freeze a resident: no login, no money movement; every session ends."""
    from citywallet.identity import service

    def freeze(uow: UnitOfWork) -> UserView:
        return service.freeze_user(uow, user_id=user_id, reason=reason, actor=_operator())

    _change_user(freeze)


@users_app.command("unfreeze")
def users_unfreeze(
    user_id: str, reason: Annotated[str, typer.Option(help="Why (kept in the audit trail).")]
) -> None:
    """Lift a freeze."""
    from citywallet.identity import service

    def unfreeze(uow: UnitOfWork) -> UserView:
        return service.unfreeze_user(uow, user_id=user_id, reason=reason, actor=_operator())

    _change_user(unfreeze)


def _change_user(change: Callable[[UnitOfWork], UserView]) -> None:
    from citywallet.platform.errors import DomainError

    runtime = _runtime()
    try:
        user = runtime.db.transact(change)
    except DomainError as exc:
        console.print(f"[red]{exc.code}: {exc.detail}[/]")
        raise typer.Exit(1) from None
    console.print(_user_table("resident", [user]))


@merchant_app.command("list")
def merchant_list(
    status: Annotated[str | None, typer.Option(help="Only merchants in this status.")] = None,
) -> None:
    """Merchants, oldest first (e.g. --status pending_review for the review queue)."""
    from citywallet.merchant.service import merchants_by_status

    runtime = _runtime()
    table = Table(title="merchants")
    for column in ("id", "name", "uscc", "mcc", "status", "fee (bp)", "T+n"):
        table.add_column(column)
    with runtime.db.uow(readonly=True) as uow:
        for m in merchants_by_status(uow, status=status or None, limit=None):
            table.add_row(
                m.id,
                m.name_zh,
                m.uscc,
                m.mcc,
                m.status,
                str(m.fee_rate_bp),
                str(m.settle_days),
            )
    console.print(table)


@merchant_app.command("review")
def merchant_review(
    merchant_id: str,
    action: Annotated[str, typer.Argument(help="approve, reject, suspend, reactivate or close.")],
    reason: Annotated[str, typer.Option(help="Why (kept with the merchant).")] = "",
) -> None:
    """An operator's decision on a merchant."""
    from citywallet.merchant.service import TRANSITIONS, review_merchant
    from citywallet.platform.errors import DomainError

    if action not in TRANSITIONS:
        console.print(f"[red]unknown action {action!r}: one of {', '.join(TRANSITIONS)}[/]")
        raise typer.Exit(2)
    runtime = _runtime()
    try:
        view = runtime.db.transact(
            lambda uow: review_merchant(
                uow,
                merchant_id=merchant_id,
                action=action,  # type: ignore[arg-type]
                reason=reason,
                actor=_operator(),
            )
        )
    except DomainError as exc:
        console.print(f"[red]{exc.code}: {exc.detail}[/]")
        raise typer.Exit(1) from None
    console.print(f"{view.id}: {view.status}")


@merchant_app.command("settle")
def merchant_settle(
    today: Annotated[
        str | None, typer.Option(help="Settle as if today were YYYY-MM-DD (default: today).")
    ] = None,
) -> None:
    """Pay merchants what is due (T+n) to their bank cards; safe to re-run."""
    from datetime import date

    from citywallet.merchant.service import run_settlements

    runtime = _runtime()
    with _progress() as progress:
        progress.add_task("settling merchants", total=None)
        report = run_settlements(
            runtime.db,
            bank=runtime.bank,
            settings=runtime.settings,
            encryptor=runtime.encryptor,
            today=date.fromisoformat(today) if today else None,
        )
    console.print(report)


@merchant_app.command("statement")
def merchant_statement(merchant_id: str, day: str) -> None:
    """Print a merchant's daily statement (CSV) for YYYY-MM-DD."""
    from datetime import date

    from citywallet.merchant.service import merchant_by_public_id, statement, statement_csv

    runtime = _runtime()
    with runtime.db.uow(readonly=True) as uow:
        merchant = merchant_by_public_id(uow, merchant_id)
        found = statement(
            uow, merchant_id=merchant.id, day=date.fromisoformat(day), settings=runtime.settings
        )
    typer.echo(statement_csv(found), nl=False)


if __name__ == "__main__":
    app()
