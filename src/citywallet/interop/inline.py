"""Callbacks that ride back on the response: ``Prefer: callback=inline`` (docs/interop.md).

FSPIOP answers every request ``202`` and sends the real answer later as a request of its own
(a callback). When the requester sends ``Prefer: callback=inline`` (an RFC 7240 preference),
the receiver opens a :class:`Mailbox` for the callback URLs that answer that request while it
handles it: a message to one of those URLs that commits meanwhile is caught instead of sent,
and the receiver answers ``200`` with ``Preference-Applied: callback=inline`` and the messages
in its body (:func:`encode`), each as it would have been sent (method, path, the signed
FSPIOP headers, the body). The requester runs each through its own FSPIOP endpoint, the
signature checked as for any request (:func:`decode` only reads the envelope).

Which message goes into which mailbox (:meth:`Mailboxes.catch`): a message committed by the
thread that handles a request goes into that request's own mailbox (its answer); a message
committed elsewhere goes into the oldest open mailbox for its URL whose handler forwarded a
request on and now waits for the answer to come back (:meth:`Mailboxes.forwarded`, the
switch's ``POST /quotes`` and ``POST /transfers``). A handler that forwarded nothing (a
duplicate while the first is still in flight) never catches another thread's message: the
answer it would catch might be meant for a response nobody reads. Closing is atomic: a
message after the close is not caught and goes out over HTTP as any other.

Pure: threads only; no database, no web.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

PREFER = "Prefer"
APPLIED = "Preference-Applied"
INLINE = "callback=inline"
CONTENT_TYPE = "application/json"
WAIT_SECONDS = 2.0  # how long a forwarding handler holds its answer (senders time out at 5 s)
MAX_MESSAGES = 16
INLINE_METHODS = frozenset({"GET", "POST"})  # requests that are answered by callbacks

T = TypeVar("T")


class InlineError(ValueError):
    """A body that claims inline callbacks but is not the envelope :func:`encode` writes."""


@dataclass(frozen=True, slots=True)
class InlineMessage:
    """One callback carried in a response: what its HTTP request would have carried."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


def prefers_inline(value: str | None) -> bool:
    """Whether a ``Prefer`` (or ``Preference-Applied``) header value holds ``callback=inline``
    (RFC 7240: preferences separated by commas, parameters after ``;``, values maybe quoted)."""
    if not value:
        return False
    for preference in value.split(","):
        name, _, token = preference.split(";", 1)[0].partition("=")
        if name.strip().lower() == "callback" and token.strip().strip('"').lower() == "inline":
            return True
    return False


def answer_urls(base_url: str, resource: str) -> frozenset[str]:
    """The callback URLs that answer a request about ``resource`` (``/quotes/{id}``): the
    resource itself and its ``/error``, under the requester's ``base_url``."""
    base = base_url.rstrip("/")
    return frozenset({base + resource, base + resource + "/error"})


def encode(messages: Iterable[InlineMessage]) -> bytes:
    """The response body carrying ``messages`` (the body as the text that was signed)."""
    return json.dumps(
        {
            "messages": [
                {
                    "method": m.method,
                    "path": m.path,
                    "headers": m.headers,
                    "body": m.body.decode("utf-8"),
                }
                for m in messages
            ]
        },
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode("utf-8")


def _text(item: dict[str, Any], name: str) -> str:
    value = item.get(name)
    if not isinstance(value, str):
        raise InlineError(f"{name} must be a string")
    return value


def decode(content: bytes) -> list[InlineMessage]:
    """The messages of a response body written by :func:`encode`, or :class:`InlineError`."""
    try:
        envelope = json.loads(content)
    except ValueError as exc:
        raise InlineError("the body is not JSON") from exc
    if not isinstance(envelope, dict) or set(envelope) != {"messages"}:
        raise InlineError("the body must be an object of messages")
    items = envelope["messages"]
    if not isinstance(items, list) or len(items) > MAX_MESSAGES:
        raise InlineError(f"messages must be a list of at most {MAX_MESSAGES}")
    messages = []
    for item in items:
        if not isinstance(item, dict) or set(item) != {"method", "path", "headers", "body"}:
            raise InlineError("a message is an object of method, path, headers and body")
        headers = item["headers"]
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            raise InlineError("headers must map names to strings")
        path = _text(item, "path")
        if not path.startswith("/"):
            raise InlineError("path must start with /")
        body = _text(item, "body").encode("utf-8")
        messages.append(InlineMessage(_text(item, "method"), path, dict(headers), body))
    return messages


class Mailbox(Generic[T]):
    """The callbacks answering one request, caught on their way out (see the module)."""

    def __init__(self, urls: frozenset[str]) -> None:
        self.urls = urls
        self.is_open = True
        self.expecting = False  # its handler forwarded a request: the answer comes back here
        self._items: list[T] = []
        self._listeners: list[Callable[[], None]] = []


class Mailboxes(Generic[T]):
    """The open mailboxes of one process, by URL, oldest first; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_url: dict[str, list[Mailbox[T]]] = {}
        self._local = threading.local()

    def open(self, urls: Iterable[str]) -> Mailbox[T]:
        """A new open mailbox for ``urls``."""
        box: Mailbox[T] = Mailbox(frozenset(urls))
        with self._lock:
            for url in box.urls:
                self._by_url.setdefault(url, []).append(box)
        return box

    @contextmanager
    def handling(self, box: Mailbox[T] | None) -> Iterator[None]:
        """While the current thread handles the request of ``box`` (its transaction and
        commit), what this thread commits for the box's URLs goes into it."""
        previous = getattr(self._local, "box", None)
        self._local.box = box
        try:
            yield
        finally:
            self._local.box = previous

    def catch(self, url: str, item: T) -> bool:
        """Put ``item``, a message to ``url`` that just committed, into the mailbox that
        waits for it; ``False``: none does, send it."""
        with self._lock:
            box = self._own()
            if box is None or not box.is_open or url not in box.urls:
                box = next((b for b in self._by_url.get(url, ()) if b.expecting), None)
            if box is None:
                return False
            box._items.append(item)
            listeners = list(box._listeners)
        for listener in listeners:
            listener()
        return True

    def forwarded(self) -> None:
        """The current thread's transaction sent a request on (and it committed): the
        answer to it comes back for the request this thread handles, so its mailbox takes
        it from another thread too."""
        with self._lock:
            box = self._own()
            if box is not None and box.is_open:
                box.expecting = True

    def on_arrival(self, box: Mailbox[T], listener: Callable[[], None]) -> None:
        """Call ``listener`` (from the catching thread) when a message reaches ``box``; at
        once if one already has."""
        with self._lock:
            box._listeners.append(listener)
            arrived = bool(box._items)
        if arrived:
            listener()

    def close(self, box: Mailbox[T]) -> list[T]:
        """Close ``box`` (nothing is caught in it any more) and return what it caught."""
        with self._lock:
            if box.is_open:
                box.is_open = False
                for url in box.urls:
                    boxes = self._by_url.get(url, [])
                    if box in boxes:
                        boxes.remove(box)
                    if not boxes:
                        self._by_url.pop(url, None)
            return list(box._items)

    def _own(self) -> Mailbox[T] | None:
        box: Mailbox[T] | None = getattr(self._local, "box", None)
        return box
