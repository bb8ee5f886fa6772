"""FSPIOP messages over HTTP: signed sending through the outbox, checked receiving.

Both sides of the switch speak through this module. A service that must tell another
participant something calls :func:`send` inside its unit of work: the message is an outbox
row, so it leaves if and only if the change that caused it committed. After the commit the
process's :class:`Courier` delivers it at once (``kick``) and keeps retrying what failed with
a short backoff, so a lost message costs a fraction of a second, not the worker's 1 s poll.
The message is signed at delivery, not at enqueue, so the ``Date`` it carries is fresh on
every attempt (``signing.check_date`` allows 300 s of skew).

Receiving: :func:`check_request` verifies the ``FSPIOP-Signature`` of an incoming request
against the sender's registered key and returns the sender's id, or raises
:class:`Refused` with the FSPIOP error code to answer synchronously (HTTP 400 with an
``errorInformation`` body, as FSPIOP answers header and signature errors).

Delivery outcomes: a 2xx answer is delivered; a 4xx answer means the receiver refused the
message itself (a retry would be refused again), so it is logged and not retried; a 5xx, a
timeout or a refused connection is retried until the message's age passes
``MAX_AGE_SECONDS``, by which time every transfer it could concern has expired.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import httpx2
import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from citywallet.interop import signing
from citywallet.interop.messages import ErrorCode, ErrorMessage, Message, error
from citywallet.platform import outbox
from citywallet.platform.db import Database, UnitOfWork

log = structlog.get_logger(__name__)

TOPIC = "interop.send"
CONTENT_TYPE = "application/vnd.interoperability+json;version=1.1"
RETRY_BASE_SECONDS = 0.25
RETRY_CAP_SECONDS = 4.0
MAX_AGE_SECONDS = 600
POLL_SECONDS = 0.2
BATCH = 50
SENDERS = 16  # concurrent deliveries per process
TIMEOUT_SECONDS = 5.0


def http_date(moment: datetime) -> str:
    """The HTTP ``Date`` header for ``moment`` (IMF-fixdate, GMT)."""
    return format_datetime(moment.astimezone(UTC), usegmt=True)


def send(
    uow: UnitOfWork,
    *,
    base_url: str,
    method: str,
    path: str,
    source: str,
    destination: str | None,
    body: Message | None = None,
) -> int:
    """Queue one message to ``base_url + path`` in the caller's transaction; returns its id."""
    payload: dict[str, Any] = {
        "url": base_url.rstrip("/") + path,
        "method": method,
        "path": path,
        "source": source,
        "destination": destination,
        "body": body.wire().decode("utf-8") if body is not None else None,
    }
    return outbox.enqueue(uow, topic=TOPIC, payload=payload)


def scrub(uow: UnitOfWork, message_id: int) -> None:
    """Drop the body of a queued message that carried personal data (a resident's move
    package) once its receiver answered: it stays out of this database's outbox."""
    outbox.redact(uow, message_id=message_id, member="body", marker=None)


def signed_headers(
    key: Ed25519PrivateKey,
    *,
    source: str,
    destination: str | None,
    method: str,
    path: str,
    body: bytes,
    now: datetime,
) -> dict[str, str]:
    """The headers of one request: routing, date, content type and ``FSPIOP-Signature``."""
    date = http_date(now)
    protected = signing.SignedHeaders(
        source=source, destination=destination, uri=path, method=method, date=date
    )
    headers = {
        "Date": date,
        "FSPIOP-Source": source,
        "FSPIOP-URI": path,
        "FSPIOP-HTTP-Method": method,
        "Content-Type": CONTENT_TYPE,
        "Accept": CONTENT_TYPE,
        signing.HEADER: signing.sign(key, protected, body),
    }
    if destination is not None:
        headers["FSPIOP-Destination"] = destination
    return headers


class Sender:
    """The outbox handler of :data:`TOPIC`: signs with this process's key and sends."""

    def __init__(
        self,
        key: Ed25519PrivateKey,
        *,
        transport: httpx2.BaseTransport | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._key = key
        self._clock = clock
        self._client = httpx2.Client(timeout=TIMEOUT_SECONDS, transport=transport)

    def __call__(self, message: outbox.Message) -> None:
        payload = message.payload
        body = (payload["body"] or "").encode("utf-8")
        headers = signed_headers(
            self._key,
            source=payload["source"],
            destination=payload["destination"],
            method=payload["method"],
            path=payload["path"],
            body=body,
            now=self._clock(),
        )
        answer = self._client.request(
            payload["method"], payload["url"], headers=headers, content=body or None
        )
        if answer.status_code >= 500 or answer.status_code in (408, 429):
            raise ConnectionError(f"{payload['url']} answered {answer.status_code}")
        if answer.status_code >= 400:
            # The receiver refused the message itself; the same bytes would be refused again.
            log.warning(
                "interop message refused", url=payload["url"], status=answer.status_code,
                answer=answer.text[:300], outbox_id=message.id,
            )  # fmt: skip

    def close(self) -> None:
        self._client.close()


outbox.retry_policy(TOPIC, base_seconds=RETRY_BASE_SECONDS, cap_seconds=RETRY_CAP_SECONDS)


class Courier:
    """Delivers this process's interop messages as soon as they commit, and retries.

    One daemon thread per process: ``kick()`` after a commit wakes it; otherwise it looks
    for due messages every ``POLL_SECONDS`` (retries, and messages other processes queued
    before they stopped). Claims go through the outbox, so several processes never deliver
    the same claim twice.
    """

    def __init__(
        self, db: Database, sender: Callable[[outbox.Message], None], *, poll: float = POLL_SECONDS
    ) -> None:
        self._db = db
        self._handlers = {TOPIC: sender}
        # Messages go out side by side: one slow receiver must not hold up the rest, and the
        # protocol lets messages arrive in any order.
        self._pool: ThreadPoolExecutor | None = None
        self._poll = poll
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the delivery thread (idempotent)."""
        if self._thread is None:
            self._pool = ThreadPoolExecutor(max_workers=SENDERS, thread_name_prefix="interop-send")
            self._thread = threading.Thread(target=self._run, name="interop-courier", daemon=True)
            self._thread.start()

    def kick(self) -> None:
        """Something was queued and committed: deliver now."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None

    def deliver(self) -> int:
        """Deliver what is due now (also the thread's step); returns how many went out."""
        delivered = 0
        while True:
            batch = outbox.deliver_due(
                self._db,
                handlers=self._handlers,
                topics=(TOPIC,),
                limit=BATCH,
                max_age_seconds=MAX_AGE_SECONDS,
                claim_seconds=int(TIMEOUT_SECONDS * 2),
                executor=self._pool,
            )
            delivered += batch
            if batch < BATCH:  # all due ones went out, or some failed and wait for a retry
                return delivered

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._poll)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.deliver()
            except Exception:  # a database hiccup: the next round tries again
                log.exception("interop courier round failed")


class Refused(Exception):
    """An incoming message refused before it reaches a service: answer 400 with ``code``."""

    def __init__(self, code: ErrorCode, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail

    def body(self) -> ErrorMessage:
        return error(self.code, self.detail[:128])


def check_request(
    headers: Mapping[str, str],
    *,
    method: str,
    path: str,
    body: bytes,
    key_of: Callable[[str], Ed25519PublicKey | None],
    now: datetime,
) -> str:
    """The verified sender of an incoming request, or :class:`Refused`.

    ``headers`` is case-insensitive (Starlette's and httpx's are); ``path`` is the FSPIOP path
    without the receiver's mount prefix; ``key_of`` returns an active participant's key.
    """
    source = headers.get("fspiop-source")
    value = headers.get(signing.HEADER.lower())
    date = headers.get("date")
    if not source or not value or not date:
        raise Refused(ErrorCode.MISSING_MANDATORY_ELEMENT, "FSPIOP-Source, Date and signature")
    key = key_of(source)
    if key is None:
        raise Refused(ErrorCode.DESTINATION_FSP_ERROR, f"unknown participant {source}")
    protected = signing.SignedHeaders(
        source=source,
        destination=headers.get("fspiop-destination"),
        uri=path,
        method=method,
        date=date,
    )
    try:
        signing.verify(key, value, protected, body)
        signing.check_date(date, now)
    except signing.SignatureError as exc:
        raise Refused(ErrorCode.INVALID_SIGNATURE, f"{exc.reason}: {exc}") from None
    return source
