"""Red packets over HTTP on SQLite and PostgreSQL: groups, sending with PIN and
Idempotency-Key, claiming (replays, duplicates, refusals with stable codes), the views, the
wallet history and receipts, expiry, and outsiders answered 404."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response

from citywallet.platform.db import Database
from citywallet.redpacket import service as redpacket
from citywallet.runtime import Runtime
from tests.ledger_checks import assert_ledger_clean, test_encryptor
from tests.wallet_support import PIN, Person, count, wallet_settings

YUAN = 100


@pytest.fixture
def runtime(db: Database, tmp_path: Path) -> Runtime:
    """A runtime whose sandbox bank answers at once."""
    return Runtime(wallet_settings(tmp_path, db), db, test_encryptor())


def _problem(response: Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    return body


def _json(response: Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def _claim(who: Person, packet_id: str, key: str | None = None) -> Response:
    return who.post(f"/v1/redpackets/{packet_id}/claims", key=key or str(uuid.uuid4()))


def _topped_up(client: TestClient, n: int, amount: int) -> Person:
    who = Person(client, n)
    who.money("/v1/wallet/topups", {"card_id": who.card_id, "amount": amount, "pin": PIN})
    return who


def test_a_group_red_packet_from_sending_to_best_luck(client: TestClient, runtime: Runtime) -> None:
    alice = _topped_up(client, 1, 300 * YUAN)
    bob, carol, dave = (Person(client, n, card_ending=None) for n in (2, 3, 4))

    members = [bob.phone, carol.user_id]
    made = _json(alice.post("/v1/redpacket-groups", {"name": "家人群", "members": members}), 201)
    group_id = made["id"]
    assert (made["role"], made["member_count"], made["owner_id"]) == ("owner", 3, alice.user_id)
    assert made["members"][0]["user_id"] == alice.user_id
    assert {m["user_id"] for m in made["members"][1:]} == {bob.user_id, carol.user_id}
    listed = _json(bob.get("/v1/redpacket-groups"))
    assert [(g["id"], g["role"], g["members"]) for g in listed["items"]] == [
        (group_id, "member", None)
    ]
    assert listed["next_cursor"] is None
    _problem(dave.get(f"/v1/redpacket-groups/{group_id}"), 404, "redpacket_group_not_found")

    body = {"group_id": group_id, "amount": 88_88, "shares": 3, "greeting": "新年快乐", "pin": PIN}
    _problem(alice.post("/v1/redpackets", body), 400, "idempotency_key_required")
    _problem(
        alice.post("/v1/redpackets", {**body, "pin": "000000"}, key="k0"), 403, "pin_incorrect"
    )
    first = alice.post("/v1/redpackets", body, key="send-1")
    packet = _json(first, 201)
    assert packet["id"].startswith("rpk_")
    assert (packet["kind"], packet["status"], packet["total"], packet["shares"]) == (
        "lucky",
        "active",
        88_88,
        3,
    )
    assert (packet["group_id"], packet["target_label"], packet["claims"]) == (
        group_id,
        "家人群",
        [],
    )
    again = alice.post("/v1/redpackets", body, key="send-1")
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.content == first.content
    reused = alice.post("/v1/redpackets", {**body, "amount": 1_00}, key="send-1")
    _problem(reused, 422, "idempotency_key_reused")
    assert alice.wallet()["balance"] == 300 * YUAN - 88_88
    assert count(runtime.db, "SELECT COUNT(*) FROM redpackets") == 1

    packet_id = packet["id"]
    _problem(bob.post(f"/v1/redpackets/{packet_id}/claims"), 400, "idempotency_key_required")
    _problem(_claim(dave, packet_id), 404, "redpacket_not_found")
    _problem(dave.get(f"/v1/redpackets/{packet_id}"), 404, "redpacket_not_found")
    opened = bob.post(f"/v1/redpackets/{packet_id}/claims", key="open-1")
    got = _json(opened, 201)
    assert (got["claim"]["user_id"], got["claim"]["position"], got["packet_status"]) == (
        bob.user_id,
        1,
        "active",
    )
    assert (got["claimed_count"], got["shares"], got["currency"]) == (1, 3, "CNY")
    replay = bob.post(f"/v1/redpackets/{packet_id}/claims", key="open-1")
    assert replay.content == opened.content
    assert replay.headers["Idempotent-Replayed"] == "true"
    _problem(_claim(bob, packet_id), 409, "redpacket_already_claimed")
    available = _json(carol.get("/v1/redpackets", role="available"))["items"]
    assert [p["id"] for p in available] == [packet_id]
    amounts = [got["claim"]["amount"]]
    for who in (carol, alice):  # the sender opens a share too
        amounts.append(_json(_claim(who, packet_id), 201)["claim"]["amount"])
    assert sum(amounts) == 88_88

    dave_added = alice.post(f"/v1/redpacket-groups/{group_id}/members", {"members": [dave.phone]})
    assert _json(dave_added)["member_count"] == 4
    _problem(_claim(dave, packet_id), 409, "redpacket_empty")

    view = _json(dave.get(f"/v1/redpackets/{packet_id}"))
    assert (view["status"], view["claimed_count"], view["claimed_amount"]) == ("finished", 3, 88_88)
    assert [c["user_id"] for c in view["claims"]] == [bob.user_id, carol.user_id, alice.user_id]
    assert [c["amount"] for c in view["claims"]] == amounts
    best = amounts.index(max(amounts))
    assert view["best_luck_claim_id"] == view["claims"][best]["id"]
    assert [c["best_luck"] for c in view["claims"]] == [i == best for i in range(3)]
    assert view["my_claim"] is None
    assert _json(bob.get(f"/v1/redpackets/{packet_id}"))["my_claim"]["amount"] == amounts[0]
    assert [p["id"] for p in _json(alice.get("/v1/redpackets", role="sent"))["items"]] == [
        packet_id
    ]
    received = _json(carol.get("/v1/redpackets", role="received"))["items"]
    assert [(p["id"], p["claims"], p["my_claim"]["amount"]) for p in received] == [
        (packet_id, None, amounts[1])
    ]
    in_group = _json(carol.get(f"/v1/redpacket-groups/{group_id}/redpackets"))["items"]
    assert [p["id"] for p in in_group] == [packet_id]
    _problem(alice.get("/v1/redpackets", role="mine"), 422, "validation_failed")

    # The wallet history shows each side, and each line has a receipt with its transfer.
    bob_lines = _json(bob.get("/v1/wallet/transactions", kind="redpacket_received"))["items"]
    assert [(t["amount"], t["direction"], t["reference"]) for t in bob_lines] == [
        (amounts[0], "in", packet_id)
    ]
    receipt = _json(bob.get(f"/v1/wallet/transactions/{bob_lines[0]['id']}"))
    assert [t["id"] for t in receipt["transfers"]] == [f"{packet_id}.claim.1"]
    alice_kinds = [t["kind"] for t in _json(alice.get("/v1/wallet/transactions"))["items"]]
    assert alice_kinds[:2] == ["redpacket_received", "redpacket_sent"]
    assert alice.wallet()["balance"] == 300 * YUAN - 88_88 + amounts[2]
    assert_ledger_clean(runtime.db)


def test_a_packet_to_one_person_and_its_expiry(client: TestClient, runtime: Runtime) -> None:
    alice = _topped_up(client, 1, 100 * YUAN)
    bob, carol = Person(client, 2, card_ending=None), Person(client, 3, card_ending=None)
    body = {"to": bob.phone, "amount": 52_00, "greeting": "", "pin": PIN}
    sent = _json(alice.post("/v1/redpackets", body, key="to-bob"), 201)
    assert (sent["kind"], sent["recipient_id"], sent["greeting"]) == (
        "single",
        bob.user_id,
        "恭喜发财，大吉大利",
    )
    _problem(_claim(alice, sent["id"]), 403, "redpacket_not_claimable")
    _problem(_claim(carol, sent["id"]), 404, "redpacket_not_found")
    assert [p["id"] for p in _json(bob.get("/v1/redpackets", role="available"))["items"]] == [
        sent["id"]
    ]
    expired = runtime.db.transact(
        lambda uow: redpacket.expire_packets(uow, now=redpacket_deadline(sent))
    )
    assert expired == 1
    _problem(_claim(bob, sent["id"]), 409, "redpacket_expired")
    view = _json(bob.get(f"/v1/redpackets/{sent['id']}"))
    assert (view["status"], view["refund_amount"], view["claims"]) == ("refunded", 52_00, [])
    assert alice.wallet()["balance"] == 100 * YUAN
    refund = _json(alice.get("/v1/wallet/transactions", kind="redpacket_refund"))["items"]
    assert [(t["id"], t["amount"], t["direction"]) for t in refund] == [
        (f"{sent['id']}.return", 52_00, "in")
    ]
    assert _json(bob.get("/v1/redpackets", role="available"))["items"] == []
    assert_ledger_clean(runtime.db)


def redpacket_deadline(packet: dict[str, Any]) -> int:
    """A packet's ``expires_at`` in microseconds."""
    from datetime import datetime

    return int(datetime.fromisoformat(packet["expires_at"]).timestamp() * 1_000_000)


def test_twenty_concurrent_identical_claims_claim_once(
    client: TestClient, runtime: Runtime
) -> None:
    alice = _topped_up(client, 1, 100 * YUAN)
    bob = Person(client, 2, card_ending=None)
    group = _json(alice.post("/v1/redpacket-groups", {"name": "两人", "members": [bob.phone]}), 201)
    body = {"group_id": group["id"], "amount": 10_00, "shares": 2, "kind": "equal", "pin": PIN}
    packet = _json(alice.post("/v1/redpackets", body, key="eq"), 201)
    barrier = threading.Barrier(20)

    def claim(_: int) -> tuple[int, bytes]:
        barrier.wait()
        response = bob.post(f"/v1/redpackets/{packet['id']}/claims", key="same-claim")
        return response.status_code, response.content

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(claim, range(20)))
    assert {status for status, _ in results} == {201}
    assert len({content for _, content in results}) == 1
    assert bob.wallet()["balance"] == 5_00
    assert count(runtime.db, "SELECT COUNT(*) FROM redpacket_shares WHERE user_id IS NOT NULL") == 1
    assert_ledger_clean(runtime.db)


def test_managing_members(client: TestClient, runtime: Runtime) -> None:
    alice, bob, carol = (Person(client, n, card_ending=None) for n in (1, 2, 3))
    group = _json(alice.post("/v1/redpacket-groups", {"name": "同事"}), 201)
    base = f"/v1/redpacket-groups/{group['id']}"
    assert group["member_count"] == 1
    _problem(
        bob.post(f"{base}/members", {"members": [bob.phone]}), 404, "redpacket_group_not_found"
    )
    added = _json(alice.post(f"{base}/members", {"members": [bob.phone, carol.phone]}))
    assert added["member_count"] == 3
    _problem(
        bob.post(f"{base}/members", {"members": [bob.phone]}), 403, "redpacket_group_owner_only"
    )
    _problem(
        alice.post(f"{base}/members", {"members": ["13912345678"]}), 404, "recipient_not_found"
    )
    _problem(alice.post(f"{base}/members", {"members": []}), 422, "validation_failed")
    delete = client.delete
    gone = delete(f"{base}/members/{carol.user_id}", headers=bob.headers)
    _problem(gone, 403, "redpacket_group_owner_only")
    assert delete(f"{base}/members/{carol.user_id}", headers=alice.headers).status_code == 204
    _problem(carol.get(base), 404, "redpacket_group_not_found")
    assert delete(f"{base}/members/{bob.user_id}", headers=bob.headers).status_code == 204
    _problem(bob.get(base), 404, "redpacket_group_not_found")
    mine = delete(f"{base}/members/{alice.user_id}", headers=alice.headers)
    _problem(mine, 409, "redpacket_group_owner_cannot_leave")
    _problem(
        delete(f"{base}/members/{bob.user_id}", headers=alice.headers),
        404,
        "redpacket_group_member_not_found",
    )
    assert _json(alice.get(base))["member_count"] == 1


def test_bad_requests_are_problems_and_change_nothing(client: TestClient, runtime: Runtime) -> None:
    alice = _topped_up(client, 1, 300 * YUAN)
    bob = Person(client, 2, card_ending=None)
    group = _json(alice.post("/v1/redpacket-groups", {"name": "g", "members": [bob.phone]}), 201)
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"to": bob.phone, "amount": 200 * YUAN + 1}, 422, "packet_too_large"),
        ({"group_id": group["id"], "amount": 100, "shares": 3}, 422, "too_many_shares"),
        ({"group_id": group["id"], "amount": 1, "shares": 2}, 422, "share_too_small"),
        ({"amount": 100}, 422, "redpacket_target_required"),
        ({"to": bob.phone, "amount": 100, "kind": "lucky"}, 422, "invalid_redpacket_kind"),
        ({"to": bob.phone, "amount": 100, "extra": 1}, 422, "validation_failed"),
        ({"to": bob.phone, "amount": 1.5}, 422, "validation_failed"),
        ({"to": bob.phone, "amount": 100, "kind": "big"}, 422, "validation_failed"),
        ({"group_id": "rpg_nope", "amount": 100, "shares": 1}, 404, "redpacket_group_not_found"),
    ]
    for body, status, code in cases:
        _problem(
            alice.post("/v1/redpackets", {**body, "pin": PIN}, key=str(uuid.uuid4())), status, code
        )
    _problem(alice.post("/v1/redpacket-groups", {"name": " "}), 422, "invalid_group_name")
    _problem(alice.get("/v1/redpacket-groups", cursor="bm9wZQ"), 422, "invalid_cursor")
    _problem(_claim(alice, "rpk_nope"), 404, "redpacket_not_found")
    body = {"group_id": group["id"], "amount": 100, "shares": 1, "pin": PIN}
    packet = _json(alice.post("/v1/redpackets", body, key="one"), 201)
    bad_body = alice.client.post(
        f"/v1/redpackets/{packet['id']}/claims",
        json={"amount": 100},
        headers={**bob.headers, "Idempotency-Key": "x"},
    )
    _problem(bad_body, 422, "validation_failed")
    assert count(runtime.db, "SELECT COUNT(*) FROM redpacket_shares WHERE user_id IS NOT NULL") == 0
    assert alice.wallet()["balance"] == 300 * YUAN - 100
    assert_ledger_clean(runtime.db)


def test_red_packet_routes_need_a_session(client: TestClient) -> None:
    for method, path in [
        ("GET", "/v1/redpacket-groups"),
        ("POST", "/v1/redpacket-groups"),
        ("GET", "/v1/redpackets"),
        ("POST", "/v1/redpackets"),
        ("GET", "/v1/redpackets/rpk_x"),
        ("POST", "/v1/redpackets/rpk_x/claims"),
    ]:
        _problem(client.request(method, path), 401, "unauthorized")
