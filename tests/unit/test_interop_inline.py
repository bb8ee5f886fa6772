"""Inline callbacks' pure parts (interop/inline.py): the Prefer header, the mailboxes (which
message goes where, closing against catching from other threads) and the response envelope
(round trip; a signature checked on receipt as for an HTTP request)."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from citywallet.interop import inline
from citywallet.interop.inline import InlineError, InlineMessage, Mailboxes
from citywallet.interop.messages import ErrorCode
from citywallet.interop.transport import Refused, check_request, inline_answer
from citywallet.platform import outbox

BASE = "http://provider-a.test/fspiop"
QUOTE = "/quotes/7c23e80c-d078-4077-8263-2c047876fcf6"
KEY = Ed25519PrivateKey.from_private_bytes(bytes([7]) * 32)


@pytest.mark.parametrize(
    ("value", "inline_asked"),
    [
        ("callback=inline", True),
        ('respond-async, Callback="inline"; wait=2', True),
        ("wait=5,callback=inline", True),
        ("callback=later", False),
        ("inline", False),
        ("", False),
        (None, False),
    ],
)
def test_the_prefer_header(value: str | None, inline_asked: bool) -> None:
    assert inline.prefers_inline(value) is inline_asked


def test_a_request_is_answered_at_its_resource_and_its_error() -> None:
    assert inline.answer_urls(BASE + "/", QUOTE) == {BASE + QUOTE, BASE + QUOTE + "/error"}


# --- mailboxes ---------------------------------------------------------------------------------


def in_thread(fn: object) -> None:
    thread = threading.Thread(target=fn)  # type: ignore[arg-type]
    thread.start()
    thread.join()


def test_a_handler_catches_what_its_own_transaction_sends_back_and_nothing_else() -> None:
    boxes: Mailboxes[str] = Mailboxes()
    box = boxes.open(inline.answer_urls(BASE, QUOTE))
    with boxes.handling(box):
        assert boxes.catch(BASE + QUOTE, "terms")
        assert not boxes.catch(BASE + "/quotes/other", "someone else's")
        assert not boxes.catch("http://provider-b.test/fspiop/quotes", "forwarded")
    assert not boxes.catch(BASE + QUOTE + "/error", "outside the transaction")
    caught: list[bool] = []
    in_thread(lambda: caught.append(boxes.catch(BASE + QUOTE, "from another thread")))
    assert caught == [False]  # it forwarded nothing: it waits for nobody else's message
    assert boxes.close(box) == ["terms"]


def test_a_forwarding_handler_catches_the_answer_from_another_thread_oldest_first() -> None:
    boxes: Mailboxes[str] = Mailboxes()
    first, second = (boxes.open(inline.answer_urls(BASE, QUOTE)) for _ in range(2))
    for box in (first, second):
        with boxes.handling(box):
            boxes.forwarded()
    arrivals: list[str] = []
    boxes.on_arrival(first, lambda: arrivals.append("first"))
    caught: list[bool] = []
    in_thread(lambda: caught.append(boxes.catch(BASE + QUOTE, "answer")))
    assert caught == [True]
    assert arrivals == ["first"]
    assert boxes.close(first) == ["answer"]
    in_thread(lambda: caught.append(boxes.catch(BASE + QUOTE + "/error", "refusal")))
    assert boxes.close(second) == ["refusal"]
    assert not boxes.catch(BASE + QUOTE, "late")  # both closed: it goes over HTTP
    late: list[str] = []
    boxes.on_arrival(first, lambda: late.append("called"))
    assert late == ["called"]  # a listener after the arrival is called at once


def test_a_message_after_the_close_is_not_caught() -> None:
    boxes: Mailboxes[str] = Mailboxes()
    box = boxes.open(inline.answer_urls(BASE, QUOTE))
    with boxes.handling(box):
        assert boxes.close(box) == []
        assert not boxes.catch(BASE + QUOTE, "after")  # not even its own thread's
        boxes.forwarded()  # a closed box waits for nothing
    assert not box.is_open
    assert not box.expecting
    in_thread(lambda: boxes.catch(BASE + QUOTE, "from another thread"))
    assert boxes.close(box) == []


def _close_while_catching() -> tuple[list[int], list[int]]:
    """Four threads catch 400 messages while the handler closes its box: (caught, sent)."""
    boxes: Mailboxes[int] = Mailboxes()
    box = boxes.open(inline.answer_urls(BASE, QUOTE))
    with boxes.handling(box):
        boxes.forwarded()
    sent: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(5)

    def catcher(k: int) -> None:
        start.wait()
        for n in range(k * 100, k * 100 + 100):
            if not boxes.catch(BASE + QUOTE, n):
                with lock:
                    sent.append(n)

    threads = [threading.Thread(target=catcher, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    start.wait()
    caught = boxes.close(box)
    for thread in threads:
        thread.join()
    return caught, sent


def test_closing_while_others_catch_never_loses_or_doubles_a_message() -> None:
    """Each message is either in what the close returned or reported not caught (sent)."""
    for _round in range(20):
        caught, sent = _close_while_catching()
        assert sorted(caught + sent) == list(range(400))


# --- the envelope ------------------------------------------------------------------------------

texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


@given(
    st.lists(
        st.builds(
            InlineMessage,
            method=st.sampled_from(["PUT", "POST"]),
            path=texts.map(lambda t: "/" + t),
            headers=st.dictionaries(texts, texts, max_size=4),
            body=texts.map(lambda t: t.encode("utf-8")),
        ),
        max_size=inline.MAX_MESSAGES,
    )
)
def test_encoding_round_trips(messages: list[InlineMessage]) -> None:
    assert inline.decode(inline.encode(messages)) == messages


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"messages": [], "more": 1}',
        b'{"messages": {}}',
        b'{"messages": [{"method": "PUT", "path": "/x", "headers": {}}]}',
        b'{"messages": [{"method": "PUT", "path": "x", "headers": {}, "body": ""}]}',
        b'{"messages": [{"method": "PUT", "path": "/x", "headers": {"a": 1}, "body": ""}]}',
        b'{"messages": [{"method": 1, "path": "/x", "headers": {}, "body": ""}]}',
        json.dumps(
            {"messages": [{"method": "PUT", "path": "/", "headers": {}, "body": ""}] * 17}
        ).encode(),
    ],
)
def test_anything_else_is_refused(body: bytes) -> None:
    with pytest.raises(InlineError):
        inline.decode(body)


def _payload(body: str) -> dict[str, object]:
    return {
        "url": BASE + QUOTE, "method": "PUT", "path": QUOTE, "source": "switch",
        "destination": "provider-a", "body": body,
    }  # fmt: skip


def test_a_callback_carried_inline_is_checked_as_a_request_would_be() -> None:
    now = datetime.now(UTC)
    caught = [outbox.Message(1, "interop.send", _payload('{"a":"文"}'), 1, 0)]
    [message] = inline.decode(inline_answer(KEY, caught, now))
    assert (message.method, message.path, message.body) == ("PUT", QUOTE, '{"a":"文"}'.encode())

    def check(m: InlineMessage) -> str:
        return check_request(
            {k.lower(): v for k, v in m.headers.items()}, method=m.method, path=m.path,
            body=m.body, key_of=lambda s: KEY.public_key() if s == "switch" else None, now=now,
        )  # fmt: skip

    assert check(message) == "switch"
    forged = InlineMessage(message.method, message.path, message.headers, b'{"a":"b"}')
    with pytest.raises(Refused) as refused:
        check(forged)
    assert refused.value.code == ErrorCode.INVALID_SIGNATURE
    elsewhere = InlineMessage(message.method, "/quotes/other", message.headers, message.body)
    with pytest.raises(Refused):
        check(elsewhere)
