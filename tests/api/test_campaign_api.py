"""The campaign API on SQLite and PostgreSQL: an operator runs a campaign from creation to
issuance through /v1/operator/campaigns, residents register and read their outcome, and an
outsider checks the published draw file with both verifiers."""

from __future__ import annotations

import csv
import io
import json
import time
from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient
from httpx2 import Response

from citywallet.api.deps import session_cache_of
from citywallet.campaign import drawcheck, lottery
from citywallet.identity import attributes, audit
from citywallet.platform.clock import now_us
from citywallet.runtime import Runtime
from citywallet.wallet.bank import sandbox_card_number
from tests import statement_count
from tests.ledger_checks import assert_ledger_clean
from tests.wallet_support import Person

WINDOW_SECONDS = 3.0


def _iso(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, tz=UTC).astimezone().isoformat()


def _body(t0: int, **overrides: Any) -> dict[str, Any]:
    closes = t0 + int(WINDOW_SECONDS * 1_000_000)
    body: dict[str, Any] = {
        "name": "罗湖区消费红包",
        "funder_name": "深圳市罗湖区人民政府",
        "funder_bank_account": sandbox_card_number("0000", serial=9),
        "budget": 2 * 20_000 + 6_600,
        "prizes": [{"amount": 20_000, "count": 2}, {"amount": 6_600, "count": 1}],
        "registration_opens_at": _iso(t0 - 3_600_000_000),
        "registration_closes_at": _iso(closes),
        "draw_at": _iso(closes),
        "valid_from": _iso(closes),
        "valid_until": int((closes + 3_600_000_000) // 1_000_000),  # epoch seconds work too
        "eligibility": {"min_tier": 1, "districts": ["罗湖区"]},
        "districts": ["罗湖区"],
    }
    body.update(overrides)
    return body


def _problem(response: Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code, response.text


def _ok(response: Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def _put(person: Person, path: str, body: dict[str, Any]) -> Response:
    return person.client.put(path, json=body, headers=person.headers)


def _operator(client: TestClient, runtime: Runtime) -> Person:
    operator = Person(client, 90, card_ending=None)
    runtime.db.transact(
        lambda uow: attributes.grant_operator(uow, user_id=operator.user_id, actor="test")
    )
    return operator


def test_campaign_through_the_api(client: TestClient, runtime: Runtime) -> None:
    operator = _operator(client, runtime)
    people = [Person(client, n, card_ending=None) for n in range(5)]
    for person in people[:4]:
        _ok(
            _put(
                operator,
                f"/v1/operator/residents/{person.user_id}/attributes",
                {"values": {"district": "罗湖区"}},
            )
        )
    _problem(
        _put(operator, "/v1/operator/residents/usr_nobody/attributes", {"values": {"a": "b"}}),
        404,
        "user_not_found",
    )
    _problem(
        operator.post("/v1/operator/campaigns", _body(now_us(), budget=1)), 422, "budget_mismatch"
    )
    naive = _body(now_us(), draw_at="2030-01-01T00:00:00")
    assert operator.post("/v1/operator/campaigns", naive).status_code == 422

    t0 = now_us()
    made = _ok(operator.post("/v1/operator/campaigns", _body(t0)), 201)
    cid = made["id"]
    assert made["status"] == "draft"
    assert made["seed"] is None
    assert made["valid_until"].startswith(
        datetime.fromtimestamp(t0 / 1e6 + WINDOW_SECONDS + 3600, tz=UTC).strftime("%Y-%m-%dT%H")
    )
    resident = people[0]
    _problem(resident.get(f"/v1/campaigns/{cid}"), 404, "campaign_not_found")
    assert _ok(resident.get("/v1/campaigns"))["items"] == []
    assert [c["id"] for c in _ok(operator.get("/v1/operator/campaigns"))["items"]] == [cid]
    _problem(resident.post(f"/v1/campaigns/{cid}/registrations"), 404, "campaign_not_found")

    _ok(operator.post(f"/v1/operator/campaigns/{cid}/open"))
    assert _ok(resident.get(f"/v1/campaigns/{cid}"))["status"] == "open"
    regs: dict[str, str] = {}
    for person in people[:4]:
        reg = _ok(person.post(f"/v1/campaigns/{cid}/registrations"), 201)
        assert reg["status"] == "registered"
        regs[person.user_id] = reg["id"]
    again = _ok(resident.post(f"/v1/campaigns/{cid}/registrations"), 200)
    assert again["id"] == regs[resident.user_id]
    _problem(people[4].post(f"/v1/campaigns/{cid}/registrations"), 403, "district_not_eligible")
    _problem(people[4].get(f"/v1/campaigns/{cid}/registration"), 404, "registration_not_found")
    _problem(resident.get(f"/v1/campaigns/{cid}/draw"), 409, "not_drawn")

    _problem(operator.post(f"/v1/operator/campaigns/{cid}/close"), 409, "registration_window_open")
    time.sleep(max(0.0, (t0 + WINDOW_SECONDS * 1_000_000 - now_us()) / 1e6) + 0.05)
    closed = _ok(operator.post(f"/v1/operator/campaigns/{cid}/close"))
    assert closed["list_hash"] == lottery.list_hash(regs.values())
    assert closed["registrations"] == 4
    _problem(operator.post(f"/v1/operator/campaigns/{cid}/draw"), 409, "campaign_not_funded")
    funded = _ok(operator.post(f"/v1/operator/campaigns/{cid}/fund"))
    assert funded["funding_status"] == "funded"
    drawn = _ok(operator.post(f"/v1/operator/campaigns/{cid}/draw"))
    assert drawn["status"] == "drawn"
    assert drawn["winners"] == 3
    seed = bytes.fromhex(drawn["seed"])
    assert lottery.commitment(seed) == made["seed_commitment"]

    # an outsider takes the published file and checks it with both verifiers
    raw = resident.get(f"/v1/campaigns/{cid}/draw")
    document = _ok(raw)
    assert lottery.verify_draw(document) == []
    assert drawcheck.check_draw(json.loads(json.dumps(document))) == []
    assert sorted(document["registrations"]) == sorted(regs.values())
    winner_ids = [w["registration_id"] for w in document["winners"]]
    loser = next(r for r in regs.values() if r not in winner_ids)
    tampered = json.loads(json.dumps(document))
    tampered["winners"][0]["registration_id"] = loser
    assert lottery.verify_draw(tampered) != []
    assert drawcheck.check_draw(tampered) != []
    reseeded = json.loads(json.dumps(document))
    reseeded["seed"] = "00" * 32
    assert lottery.verify_draw(reseeded) != []

    mine = {p.user_id: _ok(p.get(f"/v1/campaigns/{cid}/registration")) for p in people[:4]}
    for user_id, reg in mine.items():
        assert reg["ticket"] == lottery.ticket(seed, regs[user_id]).hex()
        assert reg["status"] == ("won" if reg["id"] in winner_ids else "lost")
    for winner in document["winners"]:
        entry = next(r for r in mine.values() if r["id"] == winner["registration_id"])
        assert (entry["rank"], entry["prize"]) == (winner["rank"], winner["prize"])
        assert winner["ticket"] == entry["ticket"]

    first = _ok(operator.post(f"/v1/operator/campaigns/{cid}/issue?batch_size=2&max_batches=1"))
    assert (first["processed"], first["batches"], first["done"]) == (2, 1, False)
    rest = _ok(operator.post(f"/v1/operator/campaigns/{cid}/issue?batch_size=2"))
    assert (rest["processed"], rest["done"]) == (1, True)
    assert rest["campaign"]["status"] == "issued"
    assert all(
        _ok(p.get(f"/v1/campaigns/{cid}/registration"))["issued"]
        for p in people[:4]
        if mine[p.user_id]["status"] == "won"
    )
    _problem(operator.post(f"/v1/operator/campaigns/{cid}/reclaim"), 409, "still_valid")

    report = _ok(operator.get(f"/v1/operator/campaigns/{cid}/report"))
    assert (report["registrations"], report["winners"]) == (4, 3)
    assert (report["issued_count"], report["issued_amount"]) == (3, 46_600)
    assert (report["spent"], report["claimed"], report["redemption_rate"]) == (0, 0, 0.0)
    assert report["outstanding"] == 46_600
    assert report["by_resident_district"] == [
        {"district": "罗湖区", "registrations": 4, "winners": 3}
    ]
    exported = operator.get(f"/v1/operator/campaigns/{cid}/report.csv")
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(exported.text)))
    assert rows[0] == ["section", "key", "metric", "value"]
    assert ["summary", "", "issued_amount", "46600"] in rows
    _problem(resident.get(f"/v1/operator/campaigns/{cid}/report"), 403, "operator_required")

    # every operator action through the API is in the audit log, refusals are not
    with runtime.db.uow(readonly=True) as uow:
        entries, _ = audit.list_entries(uow, limit=200)
    logged = [(e.action, e.target_id) for e in reversed(entries)]
    assert logged == [
        *[("resident.attributes", p.user_id) for p in people[:4]],
        ("campaign.create", cid),
        ("campaign.open", cid),
        ("campaign.close", cid),
        ("campaign.fund", cid),
        ("campaign.draw", cid),
        ("campaign.issue", cid),
        ("campaign.issue", cid),
    ]
    assert {e.actor_user_id for e in entries} == {operator.user_id}
    assert_ledger_clean(runtime.db)


def test_operator_routes_refuse_residents_and_revoked_operators(
    client: TestClient, runtime: Runtime
) -> None:
    operator = _operator(client, runtime)
    resident = Person(client, 1, card_ending=None)
    _problem(resident.get("/v1/operator/campaigns"), 403, "operator_required")
    _problem(resident.post("/v1/operator/campaigns", _body(now_us())), 403, "operator_required")
    _problem(client.get("/v1/operator/campaigns"), 401, "unauthorized")
    assert _ok(operator.get("/v1/operator/campaigns"))["items"] == []
    runtime.db.transact(
        lambda uow: attributes.revoke_operator(uow, user_id=operator.user_id, actor="test")
    )
    _problem(operator.get("/v1/operator/campaigns"), 403, "operator_required")


def test_a_registration_is_one_transaction_of_two_or_three_statements(
    client: TestClient, runtime: Runtime
) -> None:
    """The registration route: one write transaction of exactly two statements on PostgreSQL,
    three on SQLite (a count, not a timing): the campaign row's lock, the resident's three
    reads and the duplicate check are one statement, no live count of the registrations,
    the counter is one upsert, and no second write transaction for the session's
    last_seen_at (batched per process)."""
    operator = _operator(client, runtime)
    people = [Person(client, n, card_ending=None) for n in range(3)]
    t0 = now_us()
    hour, two = _iso(t0 + 3_600_000_000), _iso(t0 + 7_200_000_000)  # a window, whatever the load
    body = _body(
        t0,
        eligibility={},
        registration_closes_at=hour,
        draw_at=hour,
        valid_from=hour,
        valid_until=two,
    )
    cid = _ok(operator.post("/v1/operator/campaigns", body), 201)["id"]
    _ok(operator.post(f"/v1/operator/campaigns/{cid}/open"))
    _ok(people[0].post(f"/v1/campaigns/{cid}/registrations"), 201)  # warm the caches
    session_cache_of(runtime).drop(lambda _entry: True)  # the session lookup: counted
    with statement_count.counted(runtime.db) as tally:
        _ok(people[1].post(f"/v1/campaigns/{cid}/registrations"), 201)

    assert len(tally.read) == 1  # the session lookup (fresh: no last_seen_at touch due)
    assert len(tally.write) == 1
    statements = [s.lstrip().upper() for s in tally.write[0].statements]
    # The campaign row (FOR KEY SHARE) with the resident and the duplicate check (one
    # statement: identity's resident_select), then the registration and the counter's
    # stripe: one statement on PostgreSQL (a data-modifying CTE), two on SQLite.
    if runtime.db.engine.dialect.name == "postgresql":
        assert len(statements) == 2, statements
        assert statements[0].endswith("FOR KEY SHARE OF CAMPAIGN_CAMPAIGNS")
        assert statements[1].startswith("WITH ENTRY AS (INSERT INTO CAMPAIGN_REGISTRATIONS")
    else:
        assert len(statements) == 3, statements
        assert statements[1].startswith("INSERT INTO CAMPAIGN_REGISTRATIONS")
    assert not any("COUNT(" in s for s in statements)
    assert sum("CAMPAIGN_REGISTRATION_COUNTS" in s for s in statements) == 1
    assert _ok(people[2].get(f"/v1/campaigns/{cid}"))["registrations"] == 2
