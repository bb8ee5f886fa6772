"""The operator console with dual control and the second factor on (the defaults), over
the real app on SQLite and PostgreSQL: TOTP enrolment and the code step at sign-in (wrong,
replayed and right codes), a freeze proposed by one operator and approved by another (the
proposer's own approval refused), funding proposed from the campaign page, the pickers of
the campaign form, and the audit log's date filter and CSV export."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from citywallet.campaign import service as campaigns
from citywallet.identity import attributes, totp_rules
from citywallet.identity import service as identity
from citywallet.platform.clock import now_us
from citywallet.platform.db import Database
from citywallet.runtime import Runtime
from citywallet.web.templating import TIMEZONE
from tests.identity_support import PASSWORD
from tests.ledger_checks import assert_ledger_clean, test_encryptor
from tests.wallet_support import Resident, wallet_settings
from tests.web.test_operator_pages import campaign_form, post, resident, token_of

SECRET = re.compile(r'id="totp-secret">([A-Z2-7 ]+)<')


@pytest.fixture
def runtime(db: Database, tmp_path: Path) -> Runtime:
    settings = wallet_settings(
        tmp_path, db, operator_dual_control=True, operator_second_factor=True
    )
    return Runtime(settings, db, test_encryptor())


@pytest.fixture
def second(client: TestClient) -> Iterator[TestClient]:
    """Another browser on the same app (the second operator)."""
    with TestClient(client.app, raise_server_exceptions=False, follow_redirects=False) as other:
        yield other


def _now_code(secret: str, offset: int = 0) -> str:
    return totp_rules.code_at(secret, step=totp_rules.step_of(now_us() / 1e6) + offset)


def _log_in(client: TestClient, person: Resident) -> None:
    form = client.get("/login")
    data = {"phone": person.phone, "password": PASSWORD, "csrf_token": token_of(form)}
    answer = client.post("/login", data={**data, "next": "/operator"})
    assert answer.status_code == 303, answer.text


def operator_with_totp(client: TestClient, runtime: Runtime, n: int) -> tuple[Resident, str]:
    """An operator signed in on ``client`` who set up TOTP and passed it; and the secret."""
    person = resident(runtime, n, card_ending=None)
    runtime.db.transact(
        lambda uow: attributes.grant_operator(uow, user_id=person.user_id, actor="test")
    )
    _log_in(client, person)
    gate = client.get("/operator/campaigns")
    assert gate.status_code == 303
    assert gate.headers["location"] == "/operator/second-factor?next=/operator/campaigns"
    page = client.get(gate.headers["location"])
    assert page.status_code == 200
    assert "<svg" in page.text  # the enrolment QR
    found = SECRET.search(page.text)
    assert found is not None
    secret = found.group(1).replace(" ", "")
    right = _now_code(secret)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    refused = post(client, "/operator/second-factor", "/operator/second-factor",
                   {"code": wrong, "next": "/operator/campaigns"})  # fmt: skip
    assert refused.status_code == 422
    assert 'data-code="totp_code_wrong"' in refused.text
    assert client.get("/operator").status_code == 303  # still not through
    passed = post(client, "/operator/second-factor", "/operator/second-factor",
                  {"code": right, "next": "/operator/campaigns"})  # fmt: skip
    assert passed.status_code == 303
    assert passed.headers["location"] == "/operator/campaigns"
    assert client.get("/operator/campaigns").status_code == 200
    return person, secret


def test_operators_sign_in_with_a_totp_code_once_enrolled(
    client: TestClient, second: TestClient, runtime: Runtime
) -> None:
    person, secret = operator_with_totp(client, runtime, 90)
    # a new session asks again; the code already used is not taken twice, the next one is
    _log_in(second, person)
    assert second.get("/operator").status_code == 303
    page = second.get("/operator/second-factor")
    assert "<svg" not in page.text  # enrolled: no new secret shown
    assert SECRET.search(page.text) is None
    used = _now_code(secret)
    replay = post(second, "/operator/second-factor", "/operator/second-factor", {"code": used})
    assert replay.status_code == 422
    later = post(second, "/operator/second-factor", "/operator/second-factor",
                 {"code": _now_code(secret, 1)})  # fmt: skip
    assert later.status_code == 303
    assert later.headers["location"] == "/operator"
    assert second.get("/operator").status_code == 200
    # a resident is refused before any second factor
    someone = resident(runtime, 5, card_ending=None)
    with TestClient(client.app, raise_server_exceptions=False, follow_redirects=False) as third:
        _log_in(third, someone)
        assert third.get("/operator").status_code == 403
        assert third.get("/operator/second-factor").status_code == 403


def test_a_freeze_takes_two_operators_and_the_audit_log_names_both(
    client: TestClient, second: TestClient, runtime: Runtime
) -> None:
    alice, _ = operator_with_totp(client, runtime, 90)
    bob, _ = operator_with_totp(second, runtime, 91)
    target = resident(runtime, 3, card_ending=None)
    page = f"/operator/residents/{target.user_id}"
    missing = post(client, page, f"{page}/freeze", {"reason": " "})
    assert missing.status_code == 422
    assert 'data-code="reason_required"' in missing.text
    proposed = post(client, page, f"{page}/freeze", {"reason": "stolen phone"})
    assert proposed.status_code == 303
    location = proposed.headers["location"].split("?")[0]
    assert location.startswith("/operator/proposals/prp_")
    with runtime.db.uow(readonly=True) as uow:
        assert identity.get_user(uow, user_id=target.user_id).status == "active"
    assert location in client.get(page).text  # the resident's page shows what waits
    assert '<span class="amount big">1</span>' in client.get("/operator").text  # the tile
    own = client.get(location)
    assert 'id="own-proposal"' in own.text
    assert 'id="approve"' not in own.text
    refused = post(client, location, f"{location}/approve", {})
    assert refused.status_code == 403
    assert 'data-code="self_approval_refused"' in refused.text
    with runtime.db.uow(readonly=True) as uow:
        assert identity.get_user(uow, user_id=target.user_id).status == "active"

    queue = second.get("/operator/proposals")
    assert location in queue.text
    approved = post(second, location, f"{location}/approve", {})
    assert approved.status_code == 303
    with runtime.db.uow(readonly=True) as uow:
        assert identity.get_user(uow, user_id=target.user_id).status == "frozen"
    shown = second.get(location)
    assert 'data-status="approved"' in shown.text
    assert 'id="proposal-decider"' in shown.text
    assert location not in second.get("/operator/proposals").text  # out of the queue

    today = datetime.now(TIMEZONE).date()
    listed = client.get(f"/operator/audit?action=resident.&since={today}&until={today}")
    assert listed.text.count('data-action="resident.') == 3
    tomorrow = today + timedelta(days=1)
    assert 'data-action="resident.' not in client.get(f"/operator/audit?since={tomorrow}").text
    exported = client.get(f"/operator/audit.csv?action=resident.&since={today}&until={today}")
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    assert exported.content.startswith(b"\xef\xbb\xbf")  # the BOM: Excel reads UTF-8
    rows = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig"))))
    assert rows[0][0] == "时间（北京）"  # headers in the page's language (Chinese by default)
    assert [(r[4], r[2]) for r in rows[1:]] == [
        ("resident.propose", alice.user_id),
        ("resident.approve", bob.user_id),
        ("resident.freeze", bob.user_id),
    ]
    assert all(r[1] and "*" in r[1] for r in rows[1:])  # the operator, masked
    assert rows[3][7] == "stolen phone"


def test_funding_is_proposed_from_the_campaign_page_and_the_pickers_post_lists(
    client: TestClient, second: TestClient, runtime: Runtime
) -> None:
    operator_with_totp(client, runtime, 90)
    operator_with_totp(second, runtime, 91)
    t0 = now_us()
    closes = (t0 // 1_000_000 + 3600) * 1_000_000
    new = client.get("/operator/campaigns/new")
    assert 'name="mccs" value="5812"' in new.text  # the MCC picker
    assert 'id="picker-districts"' in new.text
    data: dict[str, str | list[str]] = {**campaign_form(t0, closes), "mccs": ["5812", "5411"]}
    data["csrf_token"] = token_of(new)
    created = client.post("/operator/campaigns", data=data)
    assert created.status_code == 303, created.text
    cid = created.headers["location"].split("?")[0].rsplit("/", 1)[1]
    with runtime.db.uow(readonly=True) as uow:
        assert campaigns.get_campaign(uow, campaign_id=cid, include_draft=True).mccs == [
            "5411", "5812",
        ]  # fmt: skip

    page = f"/operator/campaigns/{cid}"
    proposed = post(client, page, f"{page}/fund", {})
    assert proposed.status_code == 303
    location = proposed.headers["location"].split("?")[0]
    with runtime.db.uow(readonly=True) as uow:
        assert campaigns.get_campaign(uow, campaign_id=cid, include_draft=True).funding_status == (
            "unfunded"
        )
        assert campaigns.campaign_balance(uow, campaign_id=cid) == 0
    rejected = post(second, location, f"{location}/reject", {"note": "wrong account"})
    assert rejected.status_code == 303
    with runtime.db.uow(readonly=True) as uow:
        assert campaigns.campaign_balance(uow, campaign_id=cid) == 0
    again = post(client, page, f"{page}/fund", {})
    location = again.headers["location"].split("?")[0]
    assert post(second, location, f"{location}/approve", {}).status_code == 303
    with runtime.db.uow(readonly=True) as uow:
        view = campaigns.get_campaign(uow, campaign_id=cid, include_draft=True)
        assert view.funding_status == "funded"
        assert campaigns.campaign_balance(uow, campaign_id=cid) == view.budget
    assert_ledger_clean(runtime.db)
