"""`citywallet campaign …`, `citywallet operators …` and `citywallet users attributes …`.

Thin: parse, call one service per step (one transaction each; issue and reclaim loop over
batches with a progress bar), print. Domain refusals print their stable code and exit 1.
The spec file of `campaign create` is documented in docs/campaigns.md.
"""

from __future__ import annotations

import csv
import json
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.table import Table

from citywallet.money import Money
from citywallet.wallet.accounts import CURRENCY

if TYPE_CHECKING:
    from citywallet.campaign.reports import CampaignReport
    from citywallet.campaign.service import CampaignView
    from citywallet.platform.db import UnitOfWork
    from citywallet.runtime import Runtime

campaign_app = typer.Typer(
    help="Government red-packet campaigns: create, open, close, draw, issue, reclaim, report.",
    no_args_is_help=True,
)
operators_app = typer.Typer(help="The operator role: grant, revoke.", no_args_is_help=True)
attributes_app = typer.Typer(
    help="Residents' attributes (district, social insurance, …).", no_args_is_help=True
)

T = TypeVar("T")
BatchOption = Annotated[int, typer.Option(min=1, max=100_000, help="Per transaction.")]


def _base() -> Any:
    from citywallet import cli

    return cli


def _runtime() -> Runtime:
    runtime: Runtime = _base()._runtime()
    return runtime


def _print(text: str) -> None:
    _base().console.print(text)


def _yuan(fen: int) -> str:
    return Money(fen, CURRENCY).format()


@contextmanager
def _refusals() -> Iterator[None]:
    """Domain refusals (and bad input) print their code and exit 1."""
    from pydantic import ValidationError

    from citywallet.platform.errors import DomainError

    try:
        yield
    except DomainError as exc:
        _print(f"[red]{exc.code}: {exc.detail}[/]")
        raise typer.Exit(1) from None
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"])
            _print(f"[red]{where}: {error['msg']}[/]")
        raise typer.Exit(1) from None


def _transact(runtime: Runtime, work: Callable[[UnitOfWork], T]) -> T:
    with _refusals():
        return runtime.db.transact(work)


def _show(view: CampaignView) -> None:
    table = Table(title=f"campaign {view.id}", show_header=False)
    table.add_row("name", view.name)
    table.add_row("status", view.status)
    table.add_row("funding", view.funding_status)
    table.add_row("budget", _yuan(view.budget))
    table.add_row("prizes", ", ".join(f"{c} × {_yuan(a)}" for a, c in view.prizes))
    table.add_row("registrations", str(view.registrations))
    table.add_row("winners", str(view.winners))
    table.add_row("issued", str(view.issued))
    table.add_row("seed commitment", view.seed_commitment)
    table.add_row("list hash", view.list_hash or "—")
    table.add_row("seed", view.seed or "— (revealed at the draw)")
    _base().console.print(table)


def load_spec(path: Path) -> dict[str, Any]:
    """A campaign spec file: TOML (``.toml``) or JSON (anything else)."""
    raw = path.read_bytes()
    if path.suffix.lower() == ".toml":
        return tomllib.loads(raw.decode("utf-8"))
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise typer.BadParameter("the spec file holds one JSON object")
    return data


# --- campaign -----------------------------------------------------------------------------


@campaign_app.command("create")
def create(
    spec: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="TOML or JSON.")],
) -> None:
    """Create a campaign (a draft) from a spec file (docs/campaigns.md)."""
    from citywallet.campaign import service
    from citywallet.campaign.schemas import CampaignCreate

    with _refusals():
        body = CampaignCreate.model_validate(load_spec(spec))
    runtime = _runtime()
    view = _transact(
        runtime,
        lambda uow: service.create_campaign(
            uow, spec=body.spec(), actor=_base()._operator(), encryptor=runtime.encryptor
        ),
    )
    _show(view)


@campaign_app.command("list")
def list_all() -> None:
    """Every campaign, drafts included, newest first."""
    from citywallet.campaign import service

    runtime = _runtime()
    with runtime.db.uow(readonly=True) as uow:
        views = service.list_campaigns(uow, include_draft=True)
    table = Table(title="campaigns")
    for column in ("id", "name", "status", "funding", "budget", "registered", "winners", "issued"):
        table.add_column(column)
    for view in views:
        table.add_row(
            view.id,
            view.name,
            view.status,
            view.funding_status,
            _yuan(view.budget),
            str(view.registrations),
            str(view.winners),
            str(view.issued),
        )
    _base().console.print(table)


@campaign_app.command("show")
def show(campaign_id: str) -> None:
    """One campaign."""
    from citywallet.campaign import service

    runtime = _runtime()
    with _refusals(), runtime.db.uow(readonly=True) as uow:
        view = service.get_campaign(uow, campaign_id=campaign_id, include_draft=True)
    _show(view)


@campaign_app.command("fund")
def fund(campaign_id: str) -> None:
    """Collect the budget from the funder's bank account (repeat while ``pending``)."""
    from citywallet.campaign import service

    runtime = _runtime()
    with _refusals():
        outcome = service.fund_campaign(
            runtime.db, campaign_id=campaign_id, bank=runtime.bank, encryptor=runtime.encryptor
        )
    _print(f"funding: {outcome}")
    if outcome != "funded":
        raise typer.Exit(1)


@campaign_app.command("open")
def open_registration(campaign_id: str) -> None:
    """Open registration (draft → open)."""
    from citywallet.campaign import service

    runtime = _runtime()
    view = _transact(
        runtime,
        lambda uow: service.open_registration(
            uow, campaign_id=campaign_id, actor=_base()._operator()
        ),
    )
    _show(view)


@campaign_app.command("close")
def close_registration(campaign_id: str) -> None:
    """Close registration (after its window) and publish the list hash."""
    from citywallet.campaign import service

    runtime = _runtime()
    view = _transact(
        runtime,
        lambda uow: service.close_registration(
            uow, campaign_id=campaign_id, actor=_base()._operator()
        ),
    )
    _show(view)


@campaign_app.command("draw")
def draw(campaign_id: str) -> None:
    """Draw the winners (funded, at or after the draw time); reveals the seed."""
    from citywallet.campaign import service

    runtime = _runtime()
    view = _transact(
        runtime,
        lambda uow: service.draw(
            uow, campaign_id=campaign_id, actor=_base()._operator(), encryptor=runtime.encryptor
        ),
    )
    _show(view)


@campaign_app.command("verify-draw")
def verify_draw(
    file: Annotated[Path | None, typer.Argument(help="A published draw file (JSON).")] = None,
    campaign: Annotated[
        str | None, typer.Option("--campaign", help="Take the draw file from the database.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="With --campaign: write the draw file here.")
    ] = None,
) -> None:
    """Recompute the winners from a draw file's seed and registrations; exit 1 and list
    the problems when it does not check out."""
    from citywallet.campaign import lottery, service

    if (file is None) == (campaign is None):
        raise typer.BadParameter("give a FILE or --campaign ID (not both)")
    if out is not None and campaign is None:
        raise typer.BadParameter("--out goes with --campaign")
    document: Any
    if campaign is not None:
        runtime = _runtime()
        with _refusals(), runtime.db.uow(readonly=True) as uow:
            data = service.published_draw(uow, campaign_id=campaign)
        document = json.loads(data)  # check exactly the bytes that are published
        if out is not None:
            out.write_bytes(data)
            _print(f"wrote {out}")
    else:
        assert file is not None
        try:
            document = json.loads(file.read_bytes())
        except (OSError, ValueError) as exc:
            _print(f"[red]cannot read {file}: {exc}[/]")
            raise typer.Exit(1) from None
    problems = (
        lottery.verify_draw(document) if isinstance(document, dict) else ["not a JSON object"]
    )
    if problems:
        _print(f"[red]the draw does NOT verify ({len(problems)} problems):[/]")
        for problem in problems:
            _print(f"  - {problem}")
        raise typer.Exit(1)
    _print(
        f"[green]the draw verifies[/]: campaign {document['campaign_id']}, "
        f"{document['registrant_count']} registrations, {len(document['winners'])} winners, "
        f"list hash {document['list_hash']}"
    )


def _batches(title: str, total: int, step: Callable[[], int]) -> tuple[int, int]:
    processed = batches = 0
    with _base()._progress() as progress:
        task = progress.add_task(title, total=total)
        while True:
            with _refusals():
                count = step()
            batches += 1
            if count == 0:
                break
            processed += count
            progress.update(task, advance=count)
    return processed, batches


@campaign_app.command("issue")
def issue(campaign_id: str, batch_size: BatchOption = 10_000) -> None:
    """Give every winner their red packet (in batches, with a progress bar) and queue the
    winners' SMS."""
    from citywallet.campaign import service

    runtime = _runtime()
    with _refusals(), runtime.db.uow(readonly=True) as uow:
        view = service.get_campaign(uow, campaign_id=campaign_id, include_draft=True)
    done, _ = _batches(
        "issuing",
        max(view.winners - view.issued, 0),
        lambda: runtime.db.transact(
            lambda uow: service.issue_batch(uow, campaign_id=campaign_id, limit=batch_size)
        ),
    )
    _print(f"issued {done} red packets; campaign {campaign_id} is issued")


@campaign_app.command("reclaim")
def reclaim(campaign_id: str, batch_size: BatchOption = 10_000) -> None:
    """After the validity window, return every unused balance to the campaign account."""
    from sqlalchemy import func, select

    from citywallet.campaign import service
    from citywallet.wallet import restricted
    from citywallet.wallet.models import RestrictedBalance

    runtime = _runtime()
    with _refusals(), runtime.db.uow(readonly=True) as uow:
        service.get_campaign(uow, campaign_id=campaign_id, include_draft=True)
        source = restricted.source_by_ref(uow, campaign_id)
        active = 0
        if source is not None:
            active = int(
                uow.session.scalar(
                    select(func.count())
                    .select_from(RestrictedBalance)
                    .where(
                        RestrictedBalance.source_id == source.id,
                        RestrictedBalance.status == "active",
                    )
                )
                or 0
            )
    done, _ = _batches(
        "reclaiming",
        active,
        lambda: runtime.db.transact(
            lambda uow: service.reclaim_batch(uow, campaign_id=campaign_id, limit=batch_size)
        ),
    )
    _print(f"reclaimed {done} balances; campaign {campaign_id} has ended")


def _report_tables(data: CampaignReport) -> list[Table]:
    summary = Table(title=f"{data.name} ({data.campaign_id}, {data.status})", show_header=False)
    money = {
        "budget",
        "issued_amount",
        "spent_gross",
        "refunded",
        "returned_to_funder",
        "spent",
        "reclaimed",
        "outstanding",
        "own_spending",
    }
    from citywallet.campaign.reports import SUMMARY_METRICS

    for metric in SUMMARY_METRICS:
        value = getattr(data, metric)
        if metric == "redemption_rate":
            text = f"{value:.2%}"
        elif metric in money:
            text = _yuan(value)
        else:
            text = str(value)
        summary.add_row(metric, text)
    tables = [summary]
    for title, items in (("by category (MCC)", data.by_mcc), ("by district", data.by_district)):
        table = Table(title=title)
        for column in ("key", "payments", "spent", "own money"):
            table.add_column(column)
        for item in items:
            table.add_row(item.key, str(item.payments), _yuan(item.spent), _yuan(item.own_amount))
        tables.append(table)
    residents = Table(title="by district of residence")
    for column in ("district", "registrations", "winners"):
        residents.add_column(column)
    for resident in data.by_resident_district:
        residents.add_row(
            resident.district or "—", str(resident.registrations), str(resident.winners)
        )
    tables.append(residents)
    daily = Table(title="per day (Asia/Shanghai)")
    for column in ("day", "registrations", "payments", "spent"):
        daily.add_column(column)
    for day in data.daily:
        daily.add_row(day.day, str(day.registrations), str(day.payments), _yuan(day.spent))
    tables.append(daily)
    return tables


@campaign_app.command("report")
def report(
    campaign_id: str,
    csv_file: Annotated[
        Path | None, typer.Option("--csv", help="Also write the CSV export here.")
    ] = None,
) -> None:
    """The campaign's figures as tables (and ``--csv FILE``: section,key,metric,value)."""
    from citywallet.campaign import reports

    runtime = _runtime()
    with _refusals(), runtime.db.uow(readonly=True) as uow:
        data = reports.report(uow, campaign_id=campaign_id)
    for table in _report_tables(data):
        _base().console.print(table)
    if csv_file is not None:
        csv_file.write_text(reports.report_csv(data), encoding="utf-8", newline="")
        _print(f"wrote {csv_file}")


# --- operators and attributes -------------------------------------------------------------


def _resolve_user(runtime: Runtime, who: str) -> str:
    """A user id from a user id (``usr_…``) or a phone number."""
    from citywallet.identity import service

    if who.startswith("usr_"):
        return who
    with _refusals(), runtime.db.uow(readonly=True) as uow:
        user = service.find_user_by_phone(uow, phone=who, encryptor=runtime.encryptor)
    if user is None:
        _print("[red]user_not_found: no resident with that phone number[/]")
        raise typer.Exit(1)
    return user.id


@operators_app.command("grant")
def operators_grant(who: Annotated[str, typer.Argument(help="PHONE or USER_ID")]) -> None:
    """Let a resident account into the operator API and console (audited)."""
    from citywallet.identity import attributes

    runtime = _runtime()
    user_id = _resolve_user(runtime, who)
    _transact(
        runtime,
        lambda uow: attributes.grant_operator(uow, user_id=user_id, actor=_base()._operator()),
    )
    _print(f"{user_id} is an operator")


@operators_app.command("revoke")
def operators_revoke(who: Annotated[str, typer.Argument(help="PHONE or USER_ID")]) -> None:
    """Take the operator role away (audited)."""
    from citywallet.identity import attributes

    runtime = _runtime()
    user_id = _resolve_user(runtime, who)
    _transact(
        runtime,
        lambda uow: attributes.revoke_operator(uow, user_id=user_id, actor=_base()._operator()),
    )
    _print(f"{user_id} is no longer an operator")


@operators_app.command("reset-totp")
def operators_reset_totp(who: Annotated[str, typer.Argument(help="PHONE or USER_ID")]) -> None:
    """Remove an operator's authenticator (lost phone): they set up a new one at their next
    sign-in to the console. Their open sessions keep the second factor they passed; revoke
    them too if the phone was stolen."""
    from citywallet.identity import totp

    runtime = _runtime()
    user_id = _resolve_user(runtime, who)
    removed = _transact(runtime, lambda uow: totp.reset(uow, user_id=user_id))
    _print(f"{user_id}: authenticator {'removed' if removed else 'was not set up'}")


@attributes_app.command("set")
def attributes_set(
    user_id: str,
    pairs: Annotated[list[str], typer.Argument(help="name=value (empty value removes).")],
) -> None:
    """Set a resident's attributes (audited), e.g. ``district=罗湖区``."""
    from citywallet.identity import attributes

    values: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise typer.BadParameter(f"{pair!r} is not name=value")
        values[name.strip()] = value
    runtime = _runtime()
    result = _transact(
        runtime,
        lambda uow: attributes.set_attributes(
            uow, user_id=user_id, values=values, source=_base()._operator()
        ),
    )
    table = Table(title=f"attributes of {user_id}")
    table.add_column("name")
    table.add_column("value")
    for name, value in sorted(result.items()):
        table.add_row(name, value)
    _base().console.print(table)


@attributes_app.command("import")
def attributes_import(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV file.")],
    source: Annotated[
        str | None, typer.Option(help="Who vouches for the list (audit trail).")
    ] = None,
) -> None:
    """Set attributes from an authority's CSV: rows ``id_number,name,value`` (a header row
    ``id_number,name,value`` is skipped), matched to verified residents by ID number."""
    from citywallet.identity import attributes

    by_number: dict[str, dict[str, str]] = {}
    with file.open(encoding="utf-8-sig", newline="") as handle:
        for line, row in enumerate(csv.reader(handle), start=1):
            if not row or (line == 1 and [c.strip().lower() for c in row[:1]] == ["id_number"]):
                continue
            if len(row) != 3:
                _print(f"[red]line {line}: expected id_number,name,value[/]")
                raise typer.Exit(1)
            number, name, value = (cell.strip() for cell in row)
            by_number.setdefault(number, {})[name] = value
    runtime = _runtime()
    actor = source or _base()._operator()
    updated, unknown = _transact(
        runtime,
        lambda uow: attributes.import_by_id_number(
            uow, rows=list(by_number.items()), source=actor, encryptor=runtime.encryptor
        ),
    )
    _print(f"updated {updated} residents; {unknown} ID numbers match no verified resident")
