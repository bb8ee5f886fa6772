"""FSPIOP messages over HTTP: signed sending through the outbox, checked receiving.

Both sides of the switch speak through this module. A service that must tell another
participant something calls :func:`send` inside its unit of work: the message is an outbox
row, so it leaves if and only if the change that caused it committed. The process's
:class:`Courier` sends it the moment that transaction commits and keeps retrying what
failed with a short backoff, so a lost message costs a fraction of a second, not the
worker's 1 s poll.
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
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import httpx2
import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import Engine

from citywallet.interop import signing
from citywallet.interop.messages import ErrorCode, ErrorMessage, Message, error
from citywallet.platform import outbox
from citywallet.platform.clock import now_us
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
CLAIM_SECONDS = int(TIMEOUT_SECONDS * 2)  # a send's claim outlives its timeout
RECORD_DELAY_SECONDS = 0.02


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
    courier = _RUNNING.get(uow.session.get_bind().engine)
    if courier is not None:
        return courier.queue(uow, payload)
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
    """Delivers this process's interop messages the moment they commit, and retries.

    While a courier runs for a database, :func:`send` writes each message already claimed
    by it (its first attempt, for ``CLAIM_SECONDS``) and hands it over when the sender's
    transaction commits: a pool of ``SENDERS`` threads sends it at once, from memory, and the
    courier's thread records the outcomes of many sends in one transaction a moment later.
    So a message costs its own insert and a share of one update, and no claim round trip
    stands between a commit and the network. What failed is retried from the outbox on
    the topic's backoff; every ``POLL_SECONDS`` the thread delivers what is due (retries,
    messages of a process that stopped before sending, messages queued where no courier
    runs). Claims go through the outbox, so processes never deliver the same claim twice.
    """

    def __init__(
        self, db: Database, sender: Callable[[outbox.Message], None], *, poll: float = POLL_SECONDS
    ) -> None:
        self._db = db
        self._sender = sender
        self._handlers = {TOPIC: sender}
        # Messages go out side by side: one slow receiver must not hold up the rest, and the
        # protocol lets messages arrive in any order.
        self._pool: ThreadPoolExecutor | None = None
        self._poll = poll
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._outcomes: list[tuple[outbox.Message, str | None]] = []

    def start(self) -> None:
        """Start the delivery thread and take over this database's sends (idempotent)."""
        if self._thread is None:
            self._stop.clear()
            self._pool = ThreadPoolExecutor(max_workers=SENDERS, thread_name_prefix="interop-send")
            self._thread = threading.Thread(target=self._run, name="interop-courier", daemon=True)
            self._thread.start()
            _RUNNING[self._db.engine] = self

    def stop(self) -> None:
        """Stop sending; record what was sent (the rest is delivered after its claim)."""
        if _RUNNING.get(self._db.engine) is self:
            del _RUNNING[self._db.engine]
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._record()

    def queue(self, uow: UnitOfWork, payload: dict[str, Any]) -> int:
        """Write ``payload`` claimed by this courier; send it once ``uow`` commits."""
        message_id = outbox.enqueue(uow, topic=TOPIC, payload=payload, claim_seconds=CLAIM_SECONDS)
        message = outbox.Message(message_id, TOPIC, payload, 1, now_us())
        uow.after_commit(lambda: self._dispatch(message))
        return message_id

    def deliver(self) -> int:
        """Deliver what is due now (also the thread's poll); returns how many went out."""
        delivered = 0
        while True:
            batch = outbox.deliver_due(
                self._db,
                handlers=self._handlers,
                topics=(TOPIC,),
                limit=BATCH,
                max_age_seconds=MAX_AGE_SECONDS,
                claim_seconds=CLAIM_SECONDS,
                executor=self._pool,
            )
            delivered += batch
            if batch < BATCH:  # all due ones went out, or some failed and wait for a retry
                return delivered

    def _dispatch(self, message: outbox.Message) -> None:
        pool = self._pool
        if pool is None:
            return  # stopping: the claim runs out and whoever polls next delivers it
        try:
            pool.submit(self._send_now, message)
        except RuntimeError:  # the pool shut down meanwhile: as above
            return

    def _send_now(self, message: outbox.Message) -> None:
        error = outbox.call_handler(message, self._sender)
        with self._lock:
            self._outcomes.append((message, error))
        self._wake.set()

    def _record(self) -> None:
        with self._lock:
            done, self._outcomes = self._outcomes, []
        if done:
            outbox.record_outcomes(
                self._db, [m for m, _ in done], [e for _, e in done],
                max_age_seconds=MAX_AGE_SECONDS,
            )  # fmt: skip

    def _run(self) -> None:
        next_poll = time.monotonic() + self._poll
        while not self._stop.is_set():
            self._wake.wait(max(0.0, next_poll - time.monotonic()))
            self._wake.clear()
            if self._stop.wait(RECORD_DELAY_SECONDS):  # let a few more outcomes join this record
                return
            try:
                self._record()
                if time.monotonic() >= next_poll:
                    next_poll = time.monotonic() + self._poll
                    self.deliver()
            except Exception:  # a database hiccup: the next round tries again
                log.exception("interop courier round failed")


_RUNNING: dict[Engine, Courier] = {}  # the started courier of each database in this process


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
