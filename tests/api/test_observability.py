"""Observability (docs/operations.md, "Observability"): the business metrics count money
when it commits and refusals by their code, the database's state is a gauge at scrape
time, /readyz says when a process should not get traffic, and the alert rules and the
dashboard name only metrics the server exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import text

from citywallet.api.app import create_app
from citywallet.platform.db import Database
from citywallet.platform.migrations import head_revision
from citywallet.runtime import Runtime
from tests.ledger_checks import assert_ledger_clean, stamp_schema, test_encryptor
from tests.wallet_support import PIN, Person, wallet_settings

UNSEALED = "block_height IS NULL"
OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "operations"
SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][\w:]*)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$")


@pytest.fixture
def runtime(db: Database, tmp_path: Path) -> Runtime:
    return Runtime(wallet_settings(tmp_path, db), db, test_encryptor())


@pytest.fixture
def client(runtime: Runtime) -> TestClient:
    with TestClient(create_app(runtime), raise_server_exceptions=False) as test_client:
        yield test_client


def samples(client: TestClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of /metrics: (name, labels) → value."""
    answer = client.get("/metrics")
    assert answer.status_code == 200
    found: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for line in answer.text.splitlines():
        match = SAMPLE.match(line)
        if line.startswith("#") or match is None:
            continue
        labels = frozenset(re.findall(r'(\w+)="([^"]*)"', match["labels"] or ""))
        found[(match["name"], labels)] = float(match["value"])
    return found


def value(
    found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def test_money_counts_once_committed_and_refusals_by_code(
    client: TestClient, runtime: Runtime, db: Database
) -> None:
    alice, bob = Person(client, 1), Person(client, 2)
    alice.money("/v1/wallet/topups", {"card_id": alice.card_id, "amount": 500, "pin": PIN})
    before = samples(client)
    alice.money("/v1/wallet/transfers", {"to": bob.phone, "amount": 123, "pin": PIN})
    refused = alice.post(
        "/v1/wallet/transfers", {"to": bob.phone, "amount": 10_000, "pin": PIN}, key="k-1"
    )
    assert refused.status_code == 409
    code = refused.json()["code"]
    after = samples(client)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("citywallet_ledger_transfers_total", code="p2p", phase="single") == 1
    assert grew("citywallet_ledger_amount_fen_total", code="p2p", phase="single") == 123
    assert grew("citywallet_refusals_total", code=code) == 1
    routes = {dict(k[1]).get("route") for k in after if k[0] == "citywallet_http_requests_total"}
    assert "/v1/wallet/transfers" in routes
    assert value(after, "citywallet_database_up") == 1
    for gauge in ("pending_money_fen", "ledger_seal_lag_seconds", "outbox_backlog", "jobs_due"):
        assert ("citywallet_" + gauge, frozenset()) in after
    assert_ledger_clean(db)


def test_pending_money_is_a_gauge_of_the_books(client: TestClient, db: Database) -> None:
    alice = Person(client, 3)
    alice.money("/v1/wallet/topups", {"card_id": alice.card_id, "amount": 900, "pin": PIN})
    with db.uow(readonly=True) as uow:
        held = uow.session.execute(
            text("SELECT COALESCE(SUM(debits_pending), 0) FROM ledger_accounts")
        ).scalar_one()
    assert value(samples(client), "citywallet_pending_money_fen") == float(held)
    assert_ledger_clean(db)


def test_readiness_follows_the_schema_and_the_seal(
    client: TestClient, runtime: Runtime, db: Database
) -> None:
    stamp_schema(db, None)
    unstamped = client.get("/readyz")  # a schema no migration made: not one we know
    assert unstamped.status_code == 503
    assert unstamped.json()["checks"]["migrations"]["database"] is None
    stamp_schema(db, head_revision())
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "ready"
    checks = ready.json()["checks"]
    assert checks["migrations"]["database"] == checks["migrations"]["code"]

    stamp_schema(db, "0001")  # a database many migrations behind the code
    behind = client.get("/readyz")
    assert behind.status_code == 503
    assert behind.json()["status"] == "not_ready"
    assert behind.json()["checks"]["migrations"]["database"] == "0001"
    assert client.get("/healthz").status_code == 200  # alive all the same


def test_an_unsealed_transfer_past_the_bound_makes_the_process_not_ready(
    client: TestClient, runtime: Runtime, db: Database
) -> None:
    stamp_schema(db, head_revision())
    assert client.get("/readyz").status_code == 200
    alice = Person(client, 4)
    alice.money("/v1/wallet/topups", {"card_id": alice.card_id, "amount": 100, "pin": PIN})
    bound = (
        runtime.settings.seal_interval_seconds * runtime.settings.ledger_unsealed_bound_intervals
    )
    with db.uow() as uow:  # as if the sealer had stopped long ago
        uow.session.execute(
            text(f"UPDATE ledger_transfers SET timestamp = timestamp - :age WHERE {UNSEALED}"),
            {"age": int((bound + 60) * 1_000_000)},
        )
        uow.commit()
    answer = client.get("/readyz")
    assert answer.status_code == 503
    assert answer.json()["checks"]["seal_lag_seconds"]["value"] > bound


def _exported(client: TestClient) -> set[str]:
    names = {name for name, _ in samples(client)}
    # a histogram's series share its base name; counters are written with _total
    return names | {re.sub(r"_(bucket|sum|count|created)$", "", n) for n in names}


def test_alert_rules_and_dashboard_name_only_exported_metrics(client: TestClient) -> None:
    alice = Person(client, 5)  # so that every labelled series exists at least once
    alice.money("/v1/wallet/topups", {"card_id": alice.card_id, "amount": 100, "pin": PIN})
    alice.post("/v1/wallet/transfers", {"to": "13800000000", "amount": 1, "pin": PIN}, key="x")
    exported = _exported(client)
    rules = yaml.safe_load((OPERATIONS / "alerts.yml").read_text(encoding="utf-8"))
    alerts = [r for group in rules["groups"] for r in group["rules"]]
    expressions = [a["expr"] for a in alerts]
    assert {a["alert"] for a in alerts} >= {
        "LedgerSealLag", "OutboxBacklog", "SettlementFailures", "ServerErrors",
        "RefusalsSpike", "PendingMoneyOverdue",
    }  # fmt: skip
    dashboard = json.loads((OPERATIONS / "grafana-dashboard.json").read_text(encoding="utf-8"))
    expressions += [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    used = {n for e in expressions for n in re.findall(r"\bcitywallet_\w+", e)}
    assert used
    missing = {n for n in used if n not in exported}
    assert not missing, f"named in docs/operations but not exported: {sorted(missing)}"
