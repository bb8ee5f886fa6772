"""FSPIOP messages over HTTP: signed sending through the outbox, checked receiving.

Both sides of the switch speak through this module. A service that must tell another
participant something calls :func:`send` inside its unit of work: the message is an outbox
row, so it leaves if and only if the change that caused it committed. The process's
:class:`Courier` sends it the moment that transaction commits and keeps retrying what
failed with a short backoff, so a lost message costs a fraction of a second, not the
worker's 1 s poll.
The message is signed at delivery, not at enqueue, so the ``Date`` it carries is fresh on
every attempt (``signing.check_date`` allows 300 s of skew).

Inline callbacks (``interop/inline.py``): once the app's lifespan gave the courier a local
dispatcher (:meth:`Courier.take_inline`), requests go out with ``Prefer: callback=inline``
and the callbacks that come back in a ``200`` answer are run through this process's own
FSPIOP endpoints. On the receiving side, a message whose URL matches an open mailbox
(:attr:`Courier.mailboxes`) is caught when it commits instead of sent, and recorded delivered
like a sent one; if the answer carrying it is lost, the requester retries and the receiver,
seeing a duplicate, sends its answer again.

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

from citywallet.interop import inline, signing
from citywallet.interop.inline import InlineMessage, Mailboxes
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
RECORD_DELAY_SECONDS = 0.1  # outcomes of the sends of this long are recorded together


Dispatch = Callable[[InlineMessage], int]  # runs a callback through our endpoints: its status


def url_of(base_url: str, path: str) -> str:
    """Where a message to ``path`` at a participant reached at ``base_url`` goes."""
    return base_url.rstrip("/") + path


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
        "url": url_of(base_url, path),
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


def signed_message(key: Ed25519PrivateKey, payload: dict[str, Any], now: datetime) -> InlineMessage:
    """A queued message (its outbox payload) signed now, as its HTTP request would carry it."""
    body = (payload["body"] or "").encode("utf-8")
    headers = signed_headers(
        key, source=payload["source"], destination=payload["destination"],
        method=payload["method"], path=payload["path"], body=body, now=now,
    )  # fmt: skip
    return InlineMessage(payload["method"], payload["path"], headers, body)


def inline_answer(key: Ed25519PrivateKey, caught: list[outbox.Message], now: datetime) -> bytes:
    """The body of a ``200`` answer carrying the ``caught`` callbacks, signed with ``key``."""
    return inline.encode(signed_message(key, m.payload, now) for m in caught)


class Sender:
    """The outbox handler of :data:`TOPIC`: signs with this process's key and sends.

    With ``inline`` (a :data:`Dispatch`), requests ask for their callbacks inline and the
    ones that come back are run through it; a callback that fails there (5xx, an exception)
    fails the request, which is retried, and the receiver answers the duplicate again."""

    def __init__(
        self,
        key: Ed25519PrivateKey,
        *,
        transport: httpx2.BaseTransport | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        inline: Dispatch | None = None,
    ) -> None:
        self._key = key
        self._clock = clock
        self._client = httpx2.Client(timeout=TIMEOUT_SECONDS, transport=transport)
        self.inline = inline

    def __call__(self, message: outbox.Message) -> None:
        payload = message.payload
        signed = signed_message(self._key, payload, self._clock())
        headers = dict(signed.headers)
        dispatch = self.inline
        if dispatch is not None and payload["method"] in inline.INLINE_METHODS:
            headers[inline.PREFER] = inline.INLINE
        answer = self._client.request(
            payload["method"], payload["url"], headers=headers, content=signed.body or None
        )
        if answer.status_code >= 500 or answer.status_code in (408, 429):
            raise ConnectionError(f"{payload['url']} answered {answer.status_code}")
        if answer.status_code >= 400:
            # The receiver refused the message itself; the same bytes would be refused again.
            log.warning(
                "interop message refused", url=payload["url"], status=answer.status_code,
                answer=answer.text[:300], outbox_id=message.id,
            )  # fmt: skip
        elif dispatch is not None and inline.prefers_inline(answer.headers.get(inline.APPLIED)):
            self._take(dispatch, answer.content, payload["url"])

    def _take(self, dispatch: Dispatch, content: bytes, url: str) -> None:
        """Run the callbacks that came back inline through our own endpoints."""
        try:
            callbacks = inline.decode(content)
        except inline.InlineError as exc:
            raise ConnectionError(f"{url} answered a malformed inline body: {exc}") from exc
        for callback in callbacks:
            if callback.method != "PUT":  # only callbacks ride back; never a request
                log.warning("inline message refused", url=url, method=callback.method)
                continue
            status = dispatch(callback)
            if status >= 500:
                raise ConnectionError(f"inline {callback.path} from {url} failed here: {status}")
            if status >= 400:
                log.warning("inline message refused", url=url, path=callback.path, status=status)

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

    A message whose URL an open mailbox waits for (:attr:`mailboxes`, opened by the FSPIOP
    endpoints for requests that asked for inline callbacks) is caught instead of sent and
    recorded delivered like a sent one.
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
        self.mailboxes: Mailboxes[outbox.Message] = Mailboxes()

    @property
    def running(self) -> bool:
        """Whether this courier sends this database's messages as they commit."""
        return _RUNNING.get(self._db.engine) is self

    def take_inline(self, dispatch: Dispatch | None) -> None:
        """Ask for callbacks inline on the requests sent from now on and run them through
        ``dispatch`` (``None``: stop asking; the app's lifespan sets and clears it)."""
        if isinstance(self._sender, Sender):
            self._sender.inline = dispatch

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
        # Runs in the thread that committed the message (UnitOfWork.after_commit).
        if self.mailboxes.catch(message.payload["url"], message):
            self._done(message, None)  # it leaves in the answer being written: delivered
            return
        if message.payload["method"] in inline.INLINE_METHODS:
            self.mailboxes.forwarded()  # its answer is the answer to the request handled here
        pool = self._pool
        if pool is None:
            return  # stopping: the claim runs out and whoever polls next delivers it
        try:
            pool.submit(self._send_now, message)
        except RuntimeError:  # the pool shut down meanwhile: as above
            return

    def _send_now(self, message: outbox.Message) -> None:
        self._done(message, outbox.call_handler(message, self._sender))

    def _done(self, message: outbox.Message, error: str | None) -> None:
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
