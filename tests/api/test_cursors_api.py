"""Every list that pages by cursor refuses a bad one with 422 (issue 12 item 2)."""

from __future__ import annotations

import base64

from fastapi.testclient import TestClient

from citywallet.platform.cursors import MAX_POSITION
from citywallet.runtime import Runtime
from tests.ledger_checks import assert_ledger_clean
from tests.wallet_support import Person

CURSOR_LISTS = {
    "/v1/me/sessions",
    "/v1/wallet/transactions",
    "/v1/wallet/restricted",
    "/v1/redpacket-groups",
    "/v1/redpacket-groups/{group_id}/redpackets",
    "/v1/redpackets",
    "/v1/messages",
}


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


BAD = [
    "é",  # GET /v1/me/sessions?cursor=%C3%A9 answered 500
    "\x00",
    "😀",
    "!!",
    _b64(b"\xff\xfe"),
    _b64("s1:١".encode()),
    _b64(f"s1:{MAX_POSITION + 1}".encode()),  # PostgreSQL: integer out of range
    _b64(f"h1:{MAX_POSITION + 1}".encode()),
    _b64(f"g1:{MAX_POSITION + 1}".encode()),
    _b64(f"pg:{MAX_POSITION + 1}".encode()),
    _b64(f"p1:{MAX_POSITION + 1}".encode()),
]


def test_the_list_is_every_operation_with_a_cursor(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    with_cursor = {
        path
        for path, operations in paths.items()
        for operation in operations.values()
        if any(p["name"] == "cursor" for p in operation.get("parameters", []))
    }
    assert with_cursor == CURSOR_LISTS


def test_bad_cursors_are_422_everywhere(client: TestClient, runtime: Runtime) -> None:
    alice = Person(client, 1, card_ending=None)
    group = alice.post("/v1/redpacket-groups", {"name": "家人群", "members": []})
    assert group.status_code == 201, group.text
    lists = [p.replace("{group_id}", group.json()["id"]) for p in sorted(CURSOR_LISTS)]
    roles = [{"role": r} for r in ("sent", "received", "available")]
    for cursor in BAD:
        for path in lists:
            for params in roles if path == "/v1/redpackets" else [{}]:
                answer = alice.get(path, cursor=cursor, **params)
                assert answer.status_code == 422, (path, cursor, answer.text)
                assert answer.headers["content-type"] == "application/problem+json"
                assert answer.json()["code"] == "invalid_cursor", (path, cursor)
    assert_ledger_clean(runtime.db)
