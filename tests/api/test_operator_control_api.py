"""Dual control through /v1/operator/proposals on SQLite and PostgreSQL: the direct steps
refuse to act alone, a proposal is approved once by another operator (the proposer's own
approval refused), rejected proposals change nothing, and the ledger stays clean."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response

from citywallet.campaign import service as campaigns
from citywallet.identity import attributes, audit
from citywallet.identity import service as identity
from citywallet.platform.clock import now_us
from citywallet.platform.config import Settings
from citywallet.platform.db import Database
from citywallet.runtime import Runtime
from tests.integration.test_campaign_bulk import HOUR, PRIZES, _campaign, _people
from tests.ledger_checks import assert_ledger_clean, test_encryptor
from tests.wallet_support import Person

BUDGET = sum(amount * count for amount, count in PRIZES)


@pytest.fixture
def runtime(db: Database, tmp_path: Path) -> Runtime:
    settings = Settings(var_dir=tmp_path, database_url=db.url, operator_dual_control=True)
    return Runtime(settings, db, test_encryptor())


def _problem(response: Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code, response.text


def _ok(response: Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def _operator(client: TestClient, runtime: Runtime, n: int) -> Person:
    person = Person(client, n, card_ending=None)
    runtime.db.transact(
        lambda uow: attributes.grant_operator(uow, user_id=person.user_id, actor="test")
    )
    return person


def _balance(runtime: Runtime, cid: str) -> int:
    with runtime.db.uow(readonly=True) as uow:
        return campaigns.campaign_balance(uow, campaign_id=cid)


def test_two_operators_fund_and_issue_a_campaign(client: TestClient, runtime: Runtime) -> None:
    alice, bob = _operator(client, runtime, 90), _operator(client, runtime, 91)
    resident = Person(client, 1, card_ending=None)
    t0 = now_us()
    cid = _campaign(runtime.db, t0)
    runtime.db.transact(
        lambda uow: campaigns.register_many(uow, campaign_id=cid, applicants=_people(0, 30), now=t0)
    )

    _problem(alice.post(f"/v1/operator/campaigns/{cid}/fund"), 409, "dual_control_required")
    _problem(
        resident.post("/v1/operator/proposals", {"kind": "campaign.fund", "target_id": cid}),
        403,
        "operator_required",
    )
    _problem(
        alice.post("/v1/operator/proposals", {"kind": "campaign.fund", "target_id": "cmp_x"}),
        404,
        "campaign_not_found",
    )
    made = _ok(
        alice.post("/v1/operator/proposals", {"kind": "campaign.fund", "target_id": cid}), 201
    )
    assert (made["state"], made["proposer_user_id"]) == ("pending", alice.user_id)
    same = _ok(bob.post("/v1/operator/proposals", {"kind": "campaign.fund", "target_id": cid}))
    assert same["id"] == made["id"]
    queue = _ok(bob.get("/v1/operator/proposals"))["items"]
    assert [p["id"] for p in queue] == [made["id"]]
    pid = made["id"]
    _problem(alice.post(f"/v1/operator/proposals/{pid}/approve"), 403, "self_approval_refused")
    assert _balance(runtime, cid) == 0
    approved = _ok(bob.post(f"/v1/operator/proposals/{pid}/approve"))
    assert (approved["state"], approved["outcome"]) == ("approved", "funded")
    assert approved["decided_by_user_id"] == bob.user_id
    assert _ok(bob.post(f"/v1/operator/proposals/{pid}/approve"))["state"] == "approved"
    _problem(bob.post(f"/v1/operator/proposals/{pid}/reject", {}), 409, "proposal_not_pending")
    assert _balance(runtime, cid) == BUDGET
    _problem(bob.get("/v1/operator/proposals/prp_nothing"), 404, "proposal_not_found")
    assert_ledger_clean(runtime.db)

    enc = runtime.encryptor
    runtime.db.transact(
        lambda uow: campaigns.close_registration(uow, campaign_id=cid, actor="op", now=t0 + HOUR)
    )
    runtime.db.transact(
        lambda uow: campaigns.draw(
            uow, campaign_id=cid, actor="op", encryptor=enc, now=t0 + 2 * HOUR
        )
    )
    _problem(alice.post(f"/v1/operator/campaigns/{cid}/issue"), 409, "dual_control_required")
    issue = _ok(
        alice.post("/v1/operator/proposals", {"kind": "campaign.issue", "target_id": cid}), 201
    )
    done = _ok(bob.post(f"/v1/operator/proposals/{issue['id']}/approve"))
    assert (done["state"], done["outcome"]) == ("approved", "20")
    rest = _ok(alice.post(f"/v1/operator/campaigns/{cid}/issue"))  # goes on under the approval
    assert (rest["processed"], rest["done"], rest["campaign"]["status"]) == (0, True, "issued")
    assert _balance(runtime, cid) == 0
    assert_ledger_clean(runtime.db)
    with runtime.db.uow(readonly=True) as uow:
        entries, _ = audit.list_entries(uow, target_id=cid, action="campaign.", limit=50)
    assert [(e.action, e.actor_user_id) for e in reversed(entries)] == [
        ("campaign.propose", alice.user_id),
        ("campaign.approve", bob.user_id),
        ("campaign.fund", bob.user_id),
        ("campaign.propose", alice.user_id),
        ("campaign.approve", bob.user_id),
        ("campaign.issue", bob.user_id),
    ]


def test_a_rejected_freeze_changes_nothing(client: TestClient, runtime: Runtime) -> None:
    alice, bob = _operator(client, runtime, 90), _operator(client, runtime, 91)
    resident = Person(client, 1, card_ending=None)
    body = {"kind": "resident.freeze", "target_id": resident.user_id}
    _problem(alice.post("/v1/operator/proposals", body), 422, "reason_required")
    _problem(
        alice.post("/v1/operator/proposals", {**body, "kind": "ledger.wipe"}),
        422,
        "validation_failed",
    )
    made = _ok(alice.post("/v1/operator/proposals", {**body, "reason": "stolen phone"}), 201)
    _problem(alice.post(f"/v1/operator/proposals/{made['id']}/reject", {}), 403,
             "self_approval_refused")  # fmt: skip
    rejected = _ok(bob.post(f"/v1/operator/proposals/{made['id']}/reject", {"note": "no proof"}))
    assert (rejected["state"], rejected["note"]) == ("rejected", "no proof")
    _problem(bob.post(f"/v1/operator/proposals/{made['id']}/approve"), 409, "proposal_not_pending")
    with runtime.db.uow(readonly=True) as uow:
        assert identity.get_user(uow, user_id=resident.user_id).status == "active"
    assert _ok(resident.get("/v1/me"))["id"] == resident.user_id  # still signed in
    assert _ok(bob.get("/v1/operator/proposals", state="rejected"))["items"][0]["id"] == made["id"]
    assert _ok(bob.get("/v1/operator/proposals"))["items"] == []
