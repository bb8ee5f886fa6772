"""The message centre's routes (``/v1/messages``) and its server-sent event stream.

Thin adapters over :mod:`citywallet.inbox.service`. ``GET /v1/messages/stream`` (an
``EventSource`` in the web app, the session cookie; or a bearer token) sends the caller's
live state (unread count, payment-code charges waiting for confirmation) at once and again
whenever something for them commits: the services ring :data:`citywallet.inbox.bell.BELL`
after their commit (other processes through PostgreSQL's NOTIFY), so the stream never
polls the database in a loop; it looks again every ``RECHECK_SECONDS`` as a safety net and
ends after ``STREAM_SECONDS`` (the browser reconnects by itself, ``retry: 2000``).
``GET /v1/messages/state`` answers the same state once: the pages' fallback poll where
``EventSource`` fails.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from citywallet.api.deps import CurrentUser, RuntimeDep
from citywallet.inbox import bell
from citywallet.inbox import service as inbox
from citywallet.inbox.schemas import (
    LiveState,
    MessageList,
    MessagePublic,
    ReadAll,
    UnreadCount,
    WaitingCharge,
)
from citywallet.merchant import service as merchants
from citywallet.runtime import Runtime

router = APIRouter(tags=["messages"])
Cursor = Annotated[str | None, Query(max_length=200)]
Limit = Annotated[int, Query(ge=1, le=100)]
STREAM_SECONDS = 300.0
NOT_FOUND: dict[int | str, dict[str, str]] = {
    404: {"description": "message_not_found (no such message, or not yours)."}
}


@router.get("/v1/messages")
def list_messages(
    auth: CurrentUser,
    runtime: RuntimeDep,
    cursor: Cursor = None,
    limit: Limit = 20,
    unread: bool = False,
) -> MessageList:
    """Your messages, newest first (``unread=true``: only unread ones), with the unread count."""
    with runtime.db.uow(readonly=True) as uow:
        page = inbox.list_messages(
            uow, user_id=auth.user_id, cursor=cursor, limit=limit, unread_only=unread
        )
    return MessageList.of(page)


@router.get("/v1/messages/unread-count")
def unread_count(auth: CurrentUser, runtime: RuntimeDep) -> UnreadCount:
    """How many of your messages are unread (the badge)."""
    with runtime.db.uow(readonly=True) as uow:
        return UnreadCount(unread=inbox.unread_count(uow, user_id=auth.user_id))


@router.post("/v1/messages/read-all")
def read_all(auth: CurrentUser, runtime: RuntimeDep) -> ReadAll:
    """Mark every message read."""
    marked = runtime.db.transact(lambda uow: inbox.mark_all_read(uow, user_id=auth.user_id))
    return ReadAll(marked=marked)


@router.post("/v1/messages/{message_id}/read", responses=NOT_FOUND)
def read_one(
    message_id: Annotated[str, Path(max_length=60)],
    auth: CurrentUser,
    runtime: RuntimeDep,
) -> MessagePublic:
    """Mark one message read (already read: unchanged)."""
    view = runtime.db.transact(
        lambda uow: inbox.mark_read(uow, user_id=auth.user_id, message_id=message_id)
    )
    return MessagePublic.of(view)


def live_state(runtime: Runtime, user_id: str) -> LiveState:
    """The unread count and the charges waiting for ``user_id``, in one read."""
    with runtime.db.uow(readonly=True) as uow:
        unread = inbox.unread_count(uow, user_id=user_id)
        waiting = merchants.pending_confirmations(uow, user_id=user_id)
    return LiveState(
        unread=unread,
        charges=[
            WaitingCharge(
                order_id=p.order_id,
                merchant=p.merchant_name,
                amount=p.amount,
                currency=p.currency,
                link=f"/app/paycode/confirm/{p.order_id}",
            )
            for p in waiting
        ],
    )


@router.get("/v1/messages/state")
def state(auth: CurrentUser, runtime: RuntimeDep) -> LiveState:
    """The unread count and the charges waiting for your confirmation (what the stream
    sends; for clients without server-sent events)."""
    return live_state(runtime, auth.user_id)


@router.get("/v1/messages/stream", include_in_schema=False)
async def stream(request: Request, auth: CurrentUser, runtime: RuntimeDep) -> StreamingResponse:
    """Server-sent events: ``event: state`` with :class:`LiveState` now and after each
    change (documented in docs/api.md; left out of the OpenAPI document, an endless body)."""
    return StreamingResponse(
        _events(request, runtime, auth.user_id),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _events(request: Request, runtime: Runtime, user_id: str) -> AsyncIterator[str]:
    loop = asyncio.get_running_loop()
    ends = loop.time() + STREAM_SECONDS
    bell.listen(runtime.db.url)  # PostgreSQL: other processes' commits ring here too
    sub = bell.BELL.subscribe(user_id)  # before the first read: no change slips between
    try:
        yield "retry: 2000\n\n"
        sent = None
        while True:
            now = await run_in_threadpool(live_state, runtime, user_id)
            body = json.dumps(now.model_dump(), ensure_ascii=False, separators=(",", ":"))
            yield f"event: state\ndata: {body}\n\n" if body != sent else ": still here\n\n"
            sent = body
            left = ends - loop.time()
            if left <= 0 or await request.is_disconnected():
                return
            await sub.wait(min(bell.RECHECK_SECONDS, left))
    finally:
        bell.BELL.unsubscribe(sub)
