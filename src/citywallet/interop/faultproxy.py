"""A fault-injecting HTTP/1.1 proxy: what the network does to the switch protocol, on demand.

The multi-process tests and ``citywallet cells up --fault …`` put one in front of the switch
and of every cell. It reads each request whole (head and body, Content-Length or chunked),
then, drawing from a seeded random generator in arrival order, does one of:

- **drop the request**: close the client's connection without forwarding anything;
- **drop the response**: forward, wait for the answer, then close without answering — the
  nastiest case: the receiver acted, the sender does not know and will retry;
- **duplicate**: forward, answer with that answer, and forward the same bytes once more
  a little later (a retransmission the receiver must recognise);
- **pass** it on untouched.

Independently, a request may be **delayed** by a random time up to ``delay_ms`` before it is
forwarded, which also reorders requests that overlap. Upstream, every request goes over a
fresh connection with ``Connection: close``; an upstream that cannot be reached (a killed
switch) answers ``502`` as a reverse proxy would. :class:`Counts` says what happened.

It runs on its own event loop in a daemon thread (:meth:`FaultProxy.start`/``stop``, or as a
context manager), so tests and the launcher need no asyncio of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
from collections.abc import Coroutine
from dataclasses import asdict, dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 16 * 1024 * 1024
UPSTREAM_TIMEOUT_SECONDS = 30.0
DUPLICATE_LAG_SECONDS = 0.05  # the copy follows the original, as a retransmission would
HOP_BY_HOP = {b"connection", b"keep-alive", b"proxy-connection", b"te", b"upgrade"}


@dataclass(frozen=True)
class FaultRates:
    """How often each fault happens (probabilities per request) and the longest delay.

    ``drop_request + drop_response + duplicate`` must not exceed 1; ``delay`` is drawn
    independently of them. ``exempt`` path prefixes are always passed on untouched
    (health checks, say).
    """

    drop_request: float = 0.0
    drop_response: float = 0.0
    duplicate: float = 0.0
    delay: float = 0.0
    delay_ms: int = 0
    seed: int = 0
    exempt: tuple[str, ...] = ("/healthz",)

    def __post_init__(self) -> None:
        rates = (self.drop_request, self.drop_response, self.duplicate, self.delay)
        if any(r < 0 or r > 1 for r in rates):
            raise ValueError("fault rates are probabilities between 0 and 1")
        if self.drop_request + self.drop_response + self.duplicate > 1:
            raise ValueError("drop_request + drop_response + duplicate must not exceed 1")
        if self.delay_ms < 0:
            raise ValueError("delay_ms must not be negative")

    @classmethod
    def parse(cls, spec: str) -> FaultRates:
        """From ``drop_request=0.1,drop_response=0.05,duplicate=0.1,delay=0.5,delay_ms=200``."""
        values: dict[str, float | int] = {}
        names = {f for f in cls.__dataclass_fields__ if f != "exempt"}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            name, sep, value = part.partition("=")
            name = name.strip().replace("-", "_")
            if not sep or name not in names:
                raise ValueError(f"unknown fault {part!r}: one of {', '.join(sorted(names))}")
            values[name] = int(value) if name in ("delay_ms", "seed") else float(value)
        return cls(**values)  # type: ignore[arg-type]

    @property
    def active(self) -> bool:
        """Whether any fault can happen at all."""
        faults = self.drop_request + self.drop_response + self.duplicate
        return faults > 0 or (self.delay > 0 and self.delay_ms > 0)


@dataclass
class Counts:
    """What the proxy did, request by request (``requests`` = the sum of the four fates)."""

    requests: int = 0
    passed: int = 0
    dropped_requests: int = 0
    dropped_responses: int = 0
    duplicated: int = 0
    delayed: int = 0
    upstream_errors: int = 0  # forwards (copies included) that got no answer upstream
    forwarded: int = 0  # requests sent upstream, copies included

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class _Request:
    head: bytes  # request line + headers as they go upstream (Connection: close)
    body: bytes  # as received, framing included
    path: str
    keep_alive: bool


@dataclass
class _Fate:
    kind: str  # pass | drop_request | drop_response | duplicate
    delay: float = 0.0
    copy_delay: float = field(default=0.0)


class FaultProxy:
    """Listens on ``host:port`` (0: any free port) and forwards to ``target`` with faults."""

    def __init__(
        self,
        target: str,
        rates: FaultRates | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        parts = urlsplit(target)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"the target must be an http:// URL, not {target!r}")
        self.target = target
        self._upstream = (parts.hostname, parts.port or 80)
        self.rates = rates or FaultRates()
        self.host = host
        self.port = port
        self.counts = Counts()
        self._rng = random.Random(self.rates.seed)  # noqa: S311 - replayable faults, not secrets
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        """The proxy's base URL (after :meth:`start`)."""
        return f"http://{self.host}:{self.port}"

    def snapshot(self) -> dict[str, int]:
        """A copy of the counters now."""
        with self._lock:
            return self.counts.as_dict()

    def set_rates(self, rates: FaultRates) -> None:
        """Change the faults from now on (the random sequence goes on; its seed is kept)."""
        with self._lock:
            self.rates = rates

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> FaultProxy:
        """Bind and serve in a daemon thread; returns once the port is listening."""
        if self._thread is not None:
            return self
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._client, self.host, self.port, reuse_address=True)
                )
                self.port = self._server.sockets[0].getsockname()[1]
            except BaseException as exc:  # handed to the starting thread
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self._shutdown())
                loop.close()

        self._thread = threading.Thread(target=run, name=f"faultproxy-{self.port}", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread = None
            raise failure[0]
        return self

    def stop(self) -> None:
        """Stop listening, cut open connections and join the thread."""
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._thread = None

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- serving -------------------------------------------------------------------------

    def _track(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    return
                if not await self._handle(request, writer) or not request.keep_alive:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            return
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _decide(self, path: str) -> _Fate:
        with self._lock:
            rates = self.rates
            self.counts.requests += 1
            if any(path.startswith(prefix) for prefix in rates.exempt):
                self.counts.passed += 1
                return _Fate("pass")
            draw = self._rng.random()
            delayed = self._rng.random() < rates.delay and rates.delay_ms > 0
            delay = self._rng.uniform(0, rates.delay_ms / 1000) if delayed else 0.0
            copy_delay = DUPLICATE_LAG_SECONDS + self._rng.uniform(0, rates.delay_ms / 1000)
            if delayed:
                self.counts.delayed += 1
            if draw < rates.drop_request:
                self.counts.dropped_requests += 1
                return _Fate("drop_request", delay)
            draw -= rates.drop_request
            if draw < rates.drop_response:
                self.counts.dropped_responses += 1
                return _Fate("drop_response", delay)
            draw -= rates.drop_response
            if draw < rates.duplicate:
                self.counts.duplicated += 1
                return _Fate("duplicate", delay, copy_delay)
            self.counts.passed += 1
            return _Fate("pass", delay)

    async def _handle(self, request: _Request, writer: asyncio.StreamWriter) -> bool:
        """Forward one request with its fate; False: the client connection is to be cut."""
        fate = self._decide(request.path)
        if fate.delay:
            await asyncio.sleep(fate.delay)
        if fate.kind == "drop_request":
            return False
        answer = await self._forward(request)
        if fate.kind == "duplicate":
            self._track(self._copy(request, fate.copy_delay))
        if fate.kind == "drop_response":
            return False
        if answer is None:
            answer = _BAD_GATEWAY
            request.keep_alive = False
        writer.write(answer)
        await writer.drain()
        return True

    async def _copy(self, request: _Request, delay: float) -> None:
        await asyncio.sleep(delay)
        await self._forward(request)

    async def _forward(self, request: _Request) -> bytes | None:
        """The upstream's whole answer, re-framed for the client; None if it gave none."""
        with self._lock:
            self.counts.forwarded += 1
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(*self._upstream), UPSTREAM_TIMEOUT_SECONDS
            )
        except (OSError, TimeoutError):
            self._upstream_error()
            return None
        try:
            writer.write(request.head + request.body)
            await writer.drain()
            answer = await asyncio.wait_for(_read_response(reader), UPSTREAM_TIMEOUT_SECONDS)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError):
            answer = None
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        if answer is None:
            self._upstream_error()
        return answer

    def _upstream_error(self) -> None:
        with self._lock:
            self.counts.upstream_errors += 1


_BAD_GATEWAY = (
    b"HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/plain\r\ncontent-length: 21\r\n"
    b"connection: close\r\n\r\nupstream unreachable\n"
)


# --- HTTP/1.1 framing ----------------------------------------------------------------------


def _split_head(head: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    lines = head.rstrip(b"\r\n").split(b"\r\n")
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            raise ValueError("malformed header line")
        headers.append((name.strip().lower(), value.strip()))
    return lines[0], headers


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None


async def _read_head(reader: asyncio.StreamReader) -> bytes | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None  # the peer closed between messages
        raise
    except asyncio.LimitOverrunError:
        raise ValueError("head too large") from None
    if len(head) > MAX_HEAD_BYTES:
        raise ValueError("head too large")
    return head


async def _read_body(
    reader: asyncio.StreamReader, headers: list[tuple[bytes, bytes]], *, until_close: bool
) -> bytes:
    """The body as framed on the wire (chunked framing kept), per RFC 9112 §6."""
    encoding = (_header(headers, b"transfer-encoding") or b"").lower()
    if b"chunked" in encoding:
        parts = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            parts.append(size_line)
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                while True:  # trailers, then the empty line
                    line = await reader.readuntil(b"\r\n")
                    parts.append(line)
                    if line == b"\r\n":
                        return b"".join(parts)
            parts.append(await reader.readexactly(size + 2))
    length = _header(headers, b"content-length")
    if length is not None:
        size = int(length)
        if size < 0 or size > MAX_BODY_BYTES:
            raise ValueError("bad content-length")
        return await reader.readexactly(size)
    return await reader.read(MAX_BODY_BYTES) if until_close else b""


def _rebuild(start: bytes, headers: list[tuple[bytes, bytes]], connection: bytes) -> bytes:
    lines = [start]
    lines += [name + b": " + value for name, value in headers if name not in HOP_BY_HOP]
    lines.append(b"connection: " + connection)
    return b"\r\n".join(lines) + b"\r\n\r\n"


async def _read_request(reader: asyncio.StreamReader) -> _Request | None:
    head = await _read_head(reader)
    if head is None:
        return None
    start, headers = _split_head(head)
    method, target, version = start.split(b" ", 2)
    body = await _read_body(reader, headers, until_close=False)
    connection = (_header(headers, b"connection") or b"").lower()
    keep_alive = (
        b"close" not in connection if version == b"HTTP/1.1" else b"keep-alive" in connection
    )
    del method
    return _Request(
        head=_rebuild(start, headers, b"close"),
        body=body,
        path=target.decode("latin-1"),
        keep_alive=keep_alive,
    )


async def _read_response(reader: asyncio.StreamReader) -> bytes:
    """One whole response, its head re-built to keep the client's connection open."""
    while True:
        head = await _read_head(reader)
        if head is None:
            raise ValueError("no response")
        start, headers = _split_head(head)
        status = int(start.split(b" ", 2)[1])
        if status >= 200 or status == 101:
            break  # 1xx interim answers are skipped
    no_body = status in (204, 304)
    body = b"" if no_body else await _read_body(reader, headers, until_close=True)
    chunked = b"chunked" in (_header(headers, b"transfer-encoding") or b"").lower()
    if not no_body and not chunked and _header(headers, b"content-length") is None:
        headers.append((b"content-length", str(len(body)).encode()))
    return _rebuild(start, headers, b"keep-alive") + body
