"""Inline callbacks over HTTP, both sides (docs/interop.md, "Inline callbacks").

Receiving: an FSPIOP endpoint whose request asked ``Prefer: callback=inline`` opens a mailbox
(:func:`mailbox`) for the callbacks that answer it, runs its transaction inside
``courier.mailboxes.handling(box)`` and returns :func:`answer`: ``200`` with the caught
callbacks, signed now, or the endpoint's own response when none came (after holding it up to
``inline.WAIT_SECONDS`` if the handler forwarded a request whose answer comes back here).

Sending: :class:`LocalDispatch` runs a callback that came back inline through this app's own
FSPIOP endpoint, on the server's event loop, as the HTTP request would have run (the
endpoint checks the signature) but without the middleware of pages and API.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import Message

from citywallet.interop import inline
from citywallet.interop.inline import InlineMessage, Mailbox
from citywallet.interop.transport import TIMEOUT_SECONDS, Courier, inline_answer
from citywallet.platform import outbox


def mailbox(
    headers: Any, courier: Courier, *, base_url: str, resource: str
) -> Mailbox[outbox.Message] | None:
    """A mailbox for the callbacks answering ``resource`` (``/quotes/{id}``) at
    ``base_url``, if the request asked for them inline and our courier sends as it commits."""
    if not inline.prefers_inline(headers.get("prefer")) or not courier.running:
        return None
    return courier.mailboxes.open(inline.answer_urls(base_url, resource))


async def answer(
    courier: Courier,
    box: Mailbox[outbox.Message] | None,
    response: Response,
    *,
    key: Ed25519PrivateKey,
    now: Callable[[], datetime],
) -> Response:
    """What to answer a request handled with ``box``: its callbacks inline, or ``response``."""
    if box is None:
        return response
    try:
        if box.expecting and response.status_code == 202:
            await _arrival(courier, box, inline.WAIT_SECONDS)
    finally:
        caught = courier.mailboxes.close(box)  # from here on, its callbacks go over HTTP
    if not caught:
        return response
    return Response(
        inline_answer(key, caught, now()),
        status_code=200,
        media_type=inline.CONTENT_TYPE,
        headers={inline.APPLIED: inline.INLINE},
    )


async def _arrival(courier: Courier, box: Mailbox[outbox.Message], seconds: float) -> None:
    """Wait (without holding a thread) until a callback reaches ``box``, at most ``seconds``."""
    loop = asyncio.get_running_loop()
    arrived = asyncio.Event()

    def wake() -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(arrived.set)

    courier.mailboxes.on_arrival(box, wake)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(arrived.wait(), seconds)


class LocalDispatch:
    """Runs callbacks that came back inline through ``routes`` (this app's FSPIOP endpoints,
    each ``endpoint(request, **path params) -> Response``) on the loop it was made on: make
    it in the app's lifespan. Returns the endpoint's status (404: no such endpoint)."""

    def __init__(self, app: Any, routes: Sequence[BaseRoute], *, prefix: str = "") -> None:
        self._app = app
        self._routes = [r for r in routes if isinstance(r, Route)]
        self._prefix = prefix
        self._loop = asyncio.get_running_loop()

    def __call__(self, message: InlineMessage) -> int:
        future = asyncio.run_coroutine_threadsafe(self._run(message), self._loop)
        try:
            return future.result(timeout=TIMEOUT_SECONDS)
        except FutureTimeout:
            future.cancel()
            raise

    async def _run(self, message: InlineMessage) -> int:
        path = self._prefix + message.path
        scope: dict[str, Any] = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": message.method, "scheme": "http", "path": path,
            "raw_path": path.encode("utf-8"), "root_path": "", "query_string": b"",
            "headers": [(k.lower().encode("latin-1"), v.encode("latin-1"))
                        for k, v in message.headers.items()],
            "server": ("inline", 0), "client": None, "app": self._app,
        }  # fmt: skip
        for route in self._routes:
            match, child = route.matches(scope)
            if match is Match.FULL:
                break
        else:
            return 404
        scope.update(child)
        sent = False

        async def receive() -> Message:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": message.body, "more_body": False}

        response: Response = await route.endpoint(
            request=Request(scope, receive), **scope["path_params"]
        )
        return response.status_code
