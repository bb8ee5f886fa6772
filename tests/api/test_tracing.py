"""Traces (docs/operations.md, "Observability"): off by default; when on, one trace holds
a payment's request and every SQL statement it ran, with placeholders, not values."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from citywallet.api import tracing
from citywallet.api.app import create_app
from citywallet.platform.db import Database
from citywallet.runtime import Runtime
from tests.ledger_checks import assert_ledger_clean, test_encryptor
from tests.wallet_support import PIN, Person, wallet_settings


@pytest.fixture
def runtime(db: Database, tmp_path: Path) -> Runtime:
    return Runtime(wallet_settings(tmp_path, db), db, test_encryptor())


def test_traces_are_off_unless_asked_for(runtime: Runtime) -> None:
    assert runtime.settings.traces == ""
    assert create_app(runtime).state.tracer_provider is None
    with pytest.raises(ValueError, match="otlp, console"):
        tracing.exporter_for("jaeger")


@pytest.fixture
def traced(runtime: Runtime) -> Iterator[tuple[TestClient, InMemorySpanExporter]]:
    spans = InMemorySpanExporter()
    app = create_app(runtime)
    provider = tracing.install(app, runtime.db.engine, processor=SimpleSpanProcessor(spans))
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            yield client, spans
    finally:
        SQLAlchemyInstrumentor().uninstrument()
        provider.shutdown()


def test_one_trace_shows_a_payments_statements(
    traced: tuple[TestClient, InMemorySpanExporter], db: Database
) -> None:
    client, spans = traced
    alice, bob = Person(client, 1), Person(client, 2)
    alice.money("/v1/wallet/topups", {"card_id": alice.card_id, "amount": 500, "pin": PIN})
    spans.clear()
    alice.money("/v1/wallet/transfers", {"to": bob.phone, "amount": 123, "pin": PIN})
    finished = spans.get_finished_spans()
    servers = [s for s in finished if s.attributes and s.attributes.get("http.route")]
    assert [s.attributes["http.route"] for s in servers if s.parent is None] == [
        "/v1/wallet/transfers"
    ]
    request = next(s for s in servers if s.parent is None)
    assert request.context is not None
    trace_id = request.context.trace_id
    statements = [s for s in finished if s.attributes and "db.statement" in s.attributes]
    ours = [s for s in statements if s.context is not None and s.context.trace_id == trace_id]
    assert ours, "the payment's statements are in its trace"
    assert len(ours) == len(statements)  # nothing of it outside the trace
    sql = [str(s.attributes["db.statement"]) for s in ours if s.attributes]
    assert any("INSERT INTO ledger_transfers" in q for q in sql)
    assert not any(bob.phone in q or "123" in q.split("VALUES")[-1] for q in sql)
    assert_ledger_clean(db)
