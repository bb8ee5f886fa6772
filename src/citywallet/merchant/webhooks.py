"""Webhooks: signed notifications to a merchant's server, delivered at least once.

:func:`emit` runs in the business transaction: it fixes the event's JSON body and enqueues
an outbox message, so an event exists if and only if the payment, refund or closing
committed. The outbox calls :func:`webhook_handler`'s function outside any transaction;
each attempt re-checks the URL with the network guard, connects only to the addresses it
approved, signs the body afresh (``CityWallet-Signature``, Stripe's scheme, see
``signing``) and records what the server answered in a short transaction of its own.
A 2xx answer acknowledges the event; anything else is retried with the outbox's backoff
for up to a day, after which the event is marked ``failed``. Merchants read the log and
can ask for a redelivery; receivers dedupe by the event id.
"""

from __future__ import annotations

import ipaddress
import json
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

import httpx2
import structlog
from sqlalchemy import func, select, update

from citywallet.merchant import netguard, signing
from citywallet.merchant.errors import EventNotFound
from citywallet.merchant.lookup import one_row, page_limit
from citywallet.merchant.models import Merchant, WebhookDelivery, WebhookEvent
from citywallet.platform import outbox, ratelimit
from citywallet.platform.clock import now_us
from citywallet.platform.config import Settings
from citywallet.platform.crypto import CryptoError, Encryptor
from citywallet.platform.db import Database, UnitOfWork
from citywallet.platform.outbox import SECOND_US
from citywallet.wallet.people import new_id

WEBHOOK_TOPIC = "merchant.webhook"
PAYMENT_SUCCEEDED = "payment.succeeded"
REFUND_SUCCEEDED = "refund.succeeded"
ORDER_CLOSED = "order.closed"
EVENT_TYPES = (PAYMENT_SUCCEEDED, REFUND_SUCCEEDED, ORDER_CLOSED)
USER_AGENT = "CityWallet-Webhooks/1"
ERROR_MAX = 200
DELIVERIES_SHOWN = 100
# A merchant asks for at most 60 redeliveries an hour (the API and the console alike).
REDELIVERIES = ratelimit.Rule("webhook_redeliver", 60, 3600, "redeliver_rate_limited")
# outbox._record_failure spreads each retry by up to this share of its backoff.
_OUTBOX_JITTER = 0.2

log = structlog.get_logger(__name__)


class WebhookNotAcknowledged(Exception):
    """The merchant's server did not answer 2xx (the outbox will try again)."""


@dataclass(frozen=True)
class EventView:
    """A webhook event as its merchant sees it."""

    id: str
    type: str
    object_id: str
    url: str
    status: str  # pending, delivered, failed
    attempts: int
    created_at: int
    delivered_at: int | None


@dataclass(frozen=True)
class DeliveryView:
    """One attempt to deliver an event and what the merchant's server answered."""

    attempted_at: int
    status_code: int | None  # None: no answer (timeout, refused, forbidden URL)
    error: str
    duration_ms: int
    manual: bool


@dataclass(frozen=True)
class EventDetail(EventView):
    """An event with the exact body sent and its latest delivery attempts, oldest first."""

    body: str
    deliveries: tuple[DeliveryView, ...]


# --- emitting -----------------------------------------------------------------------------


class EventSource(Protocol):
    """The merchant an event belongs to: a row, or a payment's cached facts."""

    @property
    def id(self) -> int: ...

    @property
    def notify_url(self) -> str | None: ...


def emit(
    uow: UnitOfWork,
    *,
    merchant: EventSource,
    type: str,
    object_id: str,
    data: dict[str, Any],
    url: str | None,
) -> str | None:
    """Record an event for the merchant and enqueue its delivery; None if it has no URL."""
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {type!r}")
    target = url or merchant.notify_url
    if not target:
        return None
    moment = now_us()
    public_id = new_id("evt")
    body = json.dumps(
        {"id": public_id, "type": type, "created": moment // SECOND_US, "data": data},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    uow.session.add(
        WebhookEvent(
            public_id=public_id,
            merchant_id=merchant.id,
            type=type,
            object_id=object_id,
            url=target,
            body=body,
            status="pending",
            attempts=0,
            created_at=moment,
        )
    )
    uow.session.flush()
    outbox.enqueue(uow, topic=WEBHOOK_TOPIC, payload={"event_id": public_id})
    return public_id


# --- delivering ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    """What one delivery attempt needs from the database (the secret still sealed)."""

    pk: int
    public_id: str
    type: str
    url: str
    body: bytes
    secret_enc: str
    merchant_public_id: str


@dataclass(frozen=True)
class _Outcome:
    status_code: int | None
    error: str
    duration_ms: int

    @property
    def acknowledged(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def webhook_handler(
    db: Database,
    encryptor: Encryptor,
    settings: Settings,
    *,
    transport: httpx2.BaseTransport | None = None,
    resolve: netguard.Resolver = netguard.system_resolve,
    clock: Callable[[], int] = now_us,
    max_age_seconds: int = outbox.MAX_AGE_SECONDS,
) -> outbox.OutboxHandler:
    """The outbox handler of :data:`WEBHOOK_TOPIC` (``clock`` in microseconds; tests move it)."""

    def deliver(message: outbox.Message) -> None:
        event_id = str(message.payload["event_id"])
        manual = bool(message.payload.get("manual", False))
        with db.uow(readonly=True) as uow:
            job = _load_job(uow, event_id, manual=manual)
        if job is None:
            return
        moment = clock()
        outcome = _attempt(job, moment, encryptor, settings, transport, resolve)
        give_up = not outcome.acknowledged and _outbox_gives_up(message, moment, max_age_seconds)
        db.transact(lambda uow: _record(uow, job.pk, moment, outcome, manual, give_up))
        log.info(
            "webhook attempt", event_id=job.public_id, type=job.type, manual=manual,
            attempt=message.attempt, status_code=outcome.status_code, error=outcome.error,
            duration_ms=outcome.duration_ms, acknowledged=outcome.acknowledged, gave_up=give_up,
        )  # fmt: skip
        if not outcome.acknowledged and not give_up:
            raise WebhookNotAcknowledged(f"{job.public_id}: {outcome.error}")

    return deliver


def _load_job(uow: UnitOfWork, event_id: str, *, manual: bool) -> _Job | None:
    """The event to send, or None when there is nothing to do."""
    row = uow.session.execute(
        select(WebhookEvent, Merchant.webhook_secret_enc, Merchant.public_id)
        .join(Merchant, Merchant.id == WebhookEvent.merchant_id)
        .where(WebhookEvent.public_id == event_id)
    ).first()
    if row is None:
        return None
    event, secret_enc, merchant_public_id = row
    # A retry of an automatic message stops once the event is settled either way; a manual
    # redelivery is sent even to a delivered event because the merchant asked for it.
    if not manual and event.status != "pending":
        return None
    return _Job(
        event.id, event.public_id, event.type, event.url, event.body.encode("utf-8"),
        secret_enc, merchant_public_id,
    )  # fmt: skip


def _attempt(
    job: _Job,
    moment: int,
    encryptor: Encryptor,
    settings: Settings,
    transport: httpx2.BaseTransport | None,
    resolve: netguard.Resolver,
) -> _Outcome:
    """Check, sign and POST once; never raises."""
    started = time.perf_counter()

    def outcome(status_code: int | None, error: str) -> _Outcome:
        elapsed = round((time.perf_counter() - started) * 1000)
        return _Outcome(status_code, error[:ERROR_MAX], elapsed)

    try:
        secret = encryptor.decrypt(job.secret_enc, aad=job.merchant_public_id.encode()).decode()
    except (CryptoError, ValueError):
        return outcome(None, "the merchant's signing secret cannot be read")
    headers = {
        "CityWallet-Event-Id": job.public_id,
        "CityWallet-Event-Type": job.type,
        signing.WEBHOOK_HEADER: signing.webhook_signature(secret, moment // SECOND_US, job.body),
    }
    try:
        status_code = post_guarded(
            job.url,
            job.body,
            content_type="application/json",
            headers=headers,
            settings=settings,
            transport=transport,
            resolve=resolve,
        )
    except netguard.NetguardError as exc:
        return outcome(None, f"{exc.code}: {exc}")
    except Exception as exc:  # whatever went wrong is the merchant's to read in the log
        name = exc.__class__.__name__
        return outcome(None, f"{name}: {exc}" if str(exc) else name)
    return outcome(status_code, "" if 200 <= status_code < 300 else f"HTTP {status_code}")


def post_guarded(
    url: str,
    body: bytes,
    *,
    content_type: str,
    settings: Settings,
    headers: dict[str, str] | None = None,
    transport: httpx2.BaseTransport | None = None,
    resolve: netguard.Resolver = netguard.system_resolve,
) -> int:
    """POST to a URL the SSRF guard approves (addresses pinned, no redirects); the status.
    ``headers`` go beside ``Content-Type`` and our ``User-Agent`` (webhook deliveries
    add the event's and its signature).

    Raises :class:`netguard.NetguardError` for a refused URL and httpx errors on failure.
    """
    destination = netguard.resolve_url(
        url, allow_hosts=settings.webhook_allow_hosts, resolve=resolve
    )
    sent = {"Content-Type": content_type, "User-Agent": USER_AGENT, **(headers or {})}
    return _post(destination, body, sent, settings, transport)


def _post(
    destination: netguard.Destination,
    body: bytes,
    headers: dict[str, str],
    settings: Settings,
    transport: httpx2.BaseTransport | None,
) -> int:
    """POST to the approved addresses in turn (the next only if connecting failed)."""
    url = httpx2.URL(destination.url)
    host_header = _authority(destination)
    extensions: dict[str, Any] = {}
    if destination.scheme == "https" and not _is_ip(destination.host):
        extensions["sni_hostname"] = destination.host  # certificate checked for the name
    # One client per delivery and no kept-alive connections: a pooled connection is keyed by
    # address, and reusing one made for another merchant's host would skip its TLS check.
    with httpx2.Client(
        transport=transport,
        verify=_ssl_context() if transport is None else True,
        trust_env=False,  # a proxy from the environment would resolve names itself
        follow_redirects=False,
        timeout=httpx2.Timeout(settings.webhook_timeout_seconds),
        limits=httpx2.Limits(max_keepalive_connections=0),
    ) as client:
        last: httpx2.ConnectError | None = None
        for address in destination.addresses:
            try:
                with client.stream(
                    "POST",
                    url.copy_with(host=address),
                    content=body,
                    headers={**headers, "Host": host_header},
                    extensions=extensions,
                ) as response:
                    return response.status_code  # the body is not read: nothing in it counts
            except httpx2.ConnectError as exc:
                last = exc
        assert last is not None  # netguard never approves an empty list
        raise last


def _authority(destination: netguard.Destination) -> str:
    host = f"[{destination.host}]" if ":" in destination.host else destination.host
    default = 443 if destination.scheme == "https" else 80
    return host if destination.port == default else f"{host}:{destination.port}"


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@lru_cache(maxsize=1)
def _ssl_context() -> ssl.SSLContext:
    """Built once per process: loading the trust store takes milliseconds."""
    return httpx2.create_ssl_context()  # honours SSL_CERT_FILE for a private CA bundle


def _outbox_gives_up(message: outbox.Message, moment: int, max_age_seconds: int) -> bool:
    """Whether the outbox may drop the message if this attempt fails: its next try would
    come later than ``max_age_seconds`` after the message was written."""
    latest_retry = moment + int(outbox.backoff_us(message.attempt) * (1 + _OUTBOX_JITTER)) + 1
    return latest_retry - message.created_at > max_age_seconds * SECOND_US


def _record(
    uow: UnitOfWork, pk: int, moment: int, outcome: _Outcome, manual: bool, give_up: bool
) -> None:
    uow.session.add(
        WebhookDelivery(
            event_id=pk,
            attempted_at=moment,
            status_code=outcome.status_code,
            error=outcome.error,
            duration_ms=outcome.duration_ms,
            manual=manual,
        )
    )
    uow.session.flush()
    by_id = update(WebhookEvent).where(WebhookEvent.id == pk)
    uow.session.execute(by_id.values(attempts=WebhookEvent.attempts + 1))
    if outcome.acknowledged:
        uow.session.execute(
            by_id.values(
                status="delivered", delivered_at=func.coalesce(WebhookEvent.delivered_at, moment)
            )
        )
    elif give_up:
        # An event delivered once (then redelivered by hand) stays delivered.
        uow.session.execute(by_id.where(WebhookEvent.status == "pending").values(status="failed"))


# --- the merchant's view ------------------------------------------------------------------


def list_events(
    uow: UnitOfWork, *, merchant_id: int, limit: int = 20, before: str | None = None
) -> list[EventView]:
    """The merchant's events, newest first; ``before`` is the last id of the previous page."""
    query = select(WebhookEvent).where(WebhookEvent.merchant_id == merchant_id)
    if before is not None:
        anchor = _event_row(uow, merchant_id, before)
        query = query.where(WebhookEvent.id < anchor.id)
    rows = uow.session.scalars(query.order_by(WebhookEvent.id.desc()).limit(page_limit(limit)))
    return [_view(r) for r in rows]


def get_event(uow: UnitOfWork, *, merchant_id: int, event_id: str) -> EventDetail:
    """One event of the merchant with its body and delivery log (``event_not_found``)."""
    row = _event_row(uow, merchant_id, event_id)
    latest = uow.session.scalars(
        select(WebhookDelivery)
        .where(WebhookDelivery.event_id == row.id)
        .order_by(WebhookDelivery.id.desc())
        .limit(DELIVERIES_SHOWN)
    ).all()
    deliveries = tuple(
        DeliveryView(d.attempted_at, d.status_code, d.error, d.duration_ms, d.manual)
        for d in reversed(latest)
    )
    return EventDetail(**vars(_view(row)), body=row.body, deliveries=deliveries)


def redeliver(uow: UnitOfWork, *, merchant_id: int, event_id: str) -> EventView:
    """Send an event again (also a delivered one); a failed event becomes pending."""
    row = _event_row(uow, merchant_id, event_id, for_update=True)
    if row.status == "failed":
        row.status = "pending"
        uow.session.flush()
    outbox.enqueue(uow, topic=WEBHOOK_TOPIC, payload={"event_id": row.public_id, "manual": True})
    return _view(row)


def _event_row(
    uow: UnitOfWork, merchant_id: int, event_id: str, *, for_update: bool = False
) -> WebhookEvent:
    return one_row(
        uow,
        select(WebhookEvent).where(
            WebhookEvent.public_id == event_id, WebhookEvent.merchant_id == merchant_id
        ),
        EventNotFound("No such webhook event."),
        for_update=for_update,
    )


def _view(row: WebhookEvent) -> EventView:
    return EventView(
        id=row.public_id,
        type=row.type,
        object_id=row.object_id,
        url=row.url,
        status=row.status,
        attempts=row.attempts,
        created_at=row.created_at,
        delivered_at=row.delivered_at,
    )
