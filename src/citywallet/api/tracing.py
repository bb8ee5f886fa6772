"""OpenTelemetry traces, off unless ``CITYWALLET_TRACES`` names an exporter.

``otlp``: spans go to an OpenTelemetry collector over OTLP/HTTP, configured by the standard
``OTEL_EXPORTER_OTLP_*`` variables (endpoint, headers); ``console``: printed to stdout (a
look while developing). Each request is a server span (the maintained FastAPI
instrumentation) and each SQL statement a child span of it (the SQLAlchemy
instrumentation), so one trace shows a payment's statements and where its time went.
Statements are recorded with their placeholders, never the values (no PII in spans).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

import citywallet

if TYPE_CHECKING:
    from fastapi import FastAPI
    from sqlalchemy.engine import Engine

EXPORTERS = ("otlp", "console")


def exporter_for(name: str) -> SpanExporter:
    """The span exporter ``CITYWALLET_TRACES`` names."""
    if name == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if name == "console":
        return ConsoleSpanExporter()
    raise ValueError(f"CITYWALLET_TRACES is one of {', '.join(EXPORTERS)}, not {name!r}")


def install(
    app: FastAPI, engine: Engine, *, processor: SpanProcessor, service: str = "citywallet"
) -> TracerProvider:
    """Trace ``app``'s requests and ``engine``'s statements through ``processor``; the
    provider (its ``shutdown`` flushes what is left)."""
    provider = TracerProvider(
        resource=Resource.create(
            {"service.name": service, "service.version": citywallet.__version__}
        )
    )
    provider.add_span_processor(processor)
    FastAPIInstrumentor.instrument_app(
        app, tracer_provider=provider, excluded_urls="/healthz,/readyz,/metrics"
    )
    # The instrumentation declares SQLAlchemy < 2.1 but only uses the engine events 2.1
    # keeps (tests/api/test_tracing.py proves the spans on the version we lock).
    SQLAlchemyInstrumentor().instrument(
        engine=engine, tracer_provider=provider, enable_commenter=False, skip_dep_check=True
    )
    return provider


def install_from_settings(app: FastAPI, engine: Engine, traces: str) -> TracerProvider | None:
    """:func:`install` with the exporter ``traces`` names, batched; ``None`` when off."""
    if not traces:
        return None
    return install(app, engine, processor=BatchSpanProcessor(exporter_for(traces)))
