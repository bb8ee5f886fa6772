"""The operator console's pages over the real app: residents (search, freeze/unfreeze),
merchants (review queue), campaigns (form errors, every step, dashboard, CSV), the ledger
(totals, verify now, a transfer's proof) and the audit log, where every action lands."""

from __future__ import annotations

import csv
import io
import re
import time
from datetime import datetime

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response

from citywallet.campaign import service as campaigns
from citywallet.identity import attributes, audit
from citywallet.identity import service as identity
from citywallet.identity.audit import Actor
from citywallet.ledger import service as ledger
from citywallet.ledger.blocks import seal_all
from citywallet.merchant import onboarding
from citywallet.platform.clock import now_us
from citywallet.runtime import Runtime
from citywallet.wallet import funding
from citywallet.wallet.accounts import find_wallet
from citywallet.wallet.bank import sandbox_card_number
from citywallet.web.templating import TIMEZONE
from tests.identity_support import PASSWORD, resident_id
from tests.ledger_checks import assert_ledger_clean
from tests.merchant_support import USCCS
from tests.wallet_support import PIN, Resident, make_resident, sandbox_bank

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def token_of(page: Response) -> str:
    found = TOKEN.search(page.text)
    assert found is not None, page.text[:500]
    return found.group(1)


def resident(runtime: Runtime, n: int, **options: object) -> Resident:
    return make_resident(
        runtime.db,
        runtime.settings,
        runtime.encryptor,
        sandbox_bank(),
        n,
        **options,  # type: ignore[arg-type]
    )


def sign_in_operator(client: TestClient, runtime: Runtime, n: int = 90) -> Resident:
    """A resident with the operator role, signed in on ``client``."""
    person = resident(runtime, n, card_ending=None)
    runtime.db.transact(
        lambda uow: attributes.grant_operator(uow, user_id=person.user_id, actor="test")
    )
    form = client.get("/login")
    answer = client.post(
        "/login",
        data={"phone": person.phone, "password": PASSWORD, "csrf_token": token_of(form),
              "next": "/operator"},
    )  # fmt: skip
    assert answer.status_code == 303, answer.text
    assert client.get("/operator").status_code == 200
    return person


def post(client: TestClient, page: str, action: str, data: dict[str, str]) -> Response:
    """Open ``page`` for its CSRF token, then post ``data`` to ``action``."""
    return client.post(action, data={**data, "csrf_token": token_of(client.get(page))})


def entries(runtime: Runtime, **filters: str) -> list[audit.AuditEntry]:
    with runtime.db.uow(readonly=True) as uow:
        found, _ = audit.list_entries(uow, **filters)  # type: ignore[arg-type]
    return found


def test_residents_are_found_by_exact_number_and_frozen_with_a_reason(
    client: TestClient, runtime: Runtime
) -> None:
    operator = sign_in_operator(client, runtime)
    person = resident(runtime, 3, card_ending=None)

    def search(q: str) -> Response:
        return post(client, "/operator/residents", "/operator/residents/search", {"q": q})

    by_phone = search(person.phone)
    assert by_phone.status_code == 200
    assert f"/operator/residents/{person.user_id}" in by_phone.text
    assert person.phone not in by_phone.text  # masked
    assert person.phone[:3] + "****" + person.phone[-4:] in by_phone.text
    number = resident_id(sequence="004", birth="19900415")  # make_resident's for n=3
    by_id = search(number.lower())
    assert f"/operator/residents/{person.user_id}" in by_id.text
    assert number not in by_id.text
    nobody = search("13900009999")
    assert "/operator/residents/usr_" not in nobody.text
    bad = search("1380")
    assert bad.status_code == 422
    assert 'id="e-q"' in bad.text
    assert 'data-code="invalid_search"' in bad.text

    page = f"/operator/residents/{person.user_id}"
    shown = client.get(page)
    assert shown.status_code == 200
    assert 'data-status="active"' in shown.text
    assert "1990" not in shown.text

    no_token = client.post(f"{page}/freeze", data={"reason": "fraud"})
    assert no_token.status_code == 403
    missing = post(client, page, f"{page}/freeze", {"reason": "  "})
    assert missing.status_code == 422
    assert 'id="e-reason"' in missing.text
    assert 'data-code="reason_required"' in missing.text
    with runtime.db.uow(readonly=True) as uow:
        assert identity.get_user(uow, user_id=person.user_id).status == "active"
    assert entries(runtime) == []

    frozen = post(client, page, f"{page}/freeze", {"reason": "reported stolen phone"})
    assert frozen.status_code == 303
    assert frozen.headers["location"].startswith(page + "?done=")
    after = client.get(frozen.headers["location"])
    assert 'data-status="frozen"' in after.text
    assert "reported stolen phone" in after.text
    again = post(client, page, f"{page}/freeze", {"reason": "twice"})
    assert again.status_code == 409
    assert 'data-code="already_frozen"' in again.text

    unfrozen = post(client, page, f"{page}/unfreeze", {"reason": "owner confirmed by phone"})
    assert unfrozen.status_code == 303
    with runtime.db.uow(readonly=True) as uow:
        assert identity.get_user(uow, user_id=person.user_id).status == "active"
    logged = entries(runtime, target_id=person.user_id)
    assert [(e.action, e.reason, e.actor_user_id) for e in logged] == [
        ("resident.unfreeze", "owner confirmed by phone", operator.user_id),
        ("resident.freeze", "reported stolen phone", operator.user_id),
    ]
    log = client.get("/operator/audit", params={"action": "resident.freeze"})
    assert "reported stolen phone" in log.text
    assert "owner confirmed by phone" not in log.text
    by_target = client.get("/operator/audit", params={"target": person.user_id})
    assert by_target.text.count('data-action="resident.') == 2
    assert client.get("/operator/residents/usr_nobody").status_code == 404


def test_merchants_are_reviewed_and_suspended_with_reasons(
    client: TestClient, runtime: Runtime
) -> None:
    sign_in_operator(client, runtime)
    made = []
    for n in (1, 2):
        owner = resident(runtime, n)
        assert owner.card_id is not None
        application = onboarding.MerchantApplication(
            name_zh=f"好味道{n}", name_en=f"Good Taste {n}", city_zh="深圳", city_en="Shenzhen",
            uscc=USCCS[n], mcc="5812", district="罗湖区", address="东门中路1号",
            contact_name="张三", contact_phone=owner.phone, settlement_card_id=owner.card_id,
        )  # fmt: skip
        made.append(
            runtime.db.transact(
                lambda uow, a=application, o=owner: onboarding.register_merchant(
                    uow,
                    user_id=o.user_id,
                    application=a,
                    encryptor=runtime.encryptor,
                    settings=runtime.settings,
                )
            ).id
        )
    first, second = made
    queue = client.get("/operator/merchants")
    assert first in queue.text
    assert second in queue.text
    page = "/operator/merchants"
    approved = post(client, page, f"/operator/merchants/{first}/approve", {})
    assert approved.status_code == 303
    unexplained = post(client, page, f"/operator/merchants/{second}/reject", {"reason": ""})
    assert unexplained.status_code == 422
    assert f'id="e-{second}-reject"' in unexplained.text
    rejected = post(
        client, page, f"/operator/merchants/{second}/reject", {"reason": "licence expired"}
    )
    assert rejected.status_code == 303
    assert first not in client.get("/operator/merchants").text
    active = client.get("/operator/merchants", params={"status": "active"})
    assert first in active.text
    twice = post(client, page, f"/operator/merchants/{first}/approve", {})
    assert twice.status_code == 409
    assert 'data-code="merchant_status_conflict"' in twice.text
    suspended = post(
        client, page, f"/operator/merchants/{first}/suspend", {"reason": "complaints",
                                                                 "status": "active"},
    )  # fmt: skip
    assert suspended.status_code == 303
    assert suspended.headers["location"].startswith("/operator/merchants?status=active")
    with runtime.db.uow(readonly=True) as uow:
        assert onboarding.merchant_by_public_id(uow, first).status == "suspended"
        assert onboarding.merchant_by_public_id(uow, second).status_reason == "licence expired"
    assert [e.action for e in entries(runtime)] == [
        "merchant.suspend", "merchant.reject", "merchant.approve",
    ]  # fmt: skip
    assert post(client, page, "/operator/merchants/mch_nope/approve", {}).status_code == 404


def local(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, TIMEZONE).strftime("%Y-%m-%dT%H:%M:%S")


def campaign_form(t0: int, closes: int, **overrides: str) -> dict[str, str]:
    form = {
        "name": "罗湖区消费红包",
        "funder_name": "深圳市罗湖区人民政府",
        "funder_bank_account": sandbox_card_number("0000", serial=9),
        "budget": "466",
        "prize_amount_1": "200",
        "prize_count_1": "2",
        "prize_amount_2": "66",
        "prize_count_2": "1",
        "registration_opens_at": local(t0 - 3_600_000_000),
        "registration_closes_at": local(closes),
        "draw_at": local(closes),
        "valid_from": local(closes),
        "valid_until": local(closes + 86_400_000_000),
        "min_tier": "1",
    }
    form.update(overrides)
    return form


def test_a_campaign_runs_through_the_console(client: TestClient, runtime: Runtime) -> None:
    operator = sign_in_operator(client, runtime)
    people = [resident(runtime, n, card_ending=None) for n in range(4)]
    t0 = now_us()
    closes = (t0 // 1_000_000 + 8) * 1_000_000
    new = "/operator/campaigns/new"
    mismatch = post(client, new, "/operator/campaigns", campaign_form(t0, closes, budget="500"))
    assert mismatch.status_code == 422
    assert 'id="e-budget"' in mismatch.text
    assert 'data-code="budget_mismatch"' in mismatch.text
    assert 'value="罗湖区消费红包"' in mismatch.text  # the form keeps what was typed
    late = campaign_form(t0, closes, draw_at=local(closes - 60_000_000))
    order = post(client, new, "/operator/campaigns", late)
    assert 'id="e-windows"' in order.text
    assert 'data-code="windows_out_of_order"' in order.text
    bad_amount = post(client, new, "/operator/campaigns", campaign_form(t0, closes, budget="4x"))
    assert 'id="e-budget"' in bad_amount.text
    assert 'data-code="invalid_amount"' in bad_amount.text
    bad_card = campaign_form(t0, closes, funder_bank_account="6222020000000001")
    card = post(client, new, "/operator/campaigns", bad_card)
    assert 'id="e-funder_bank_account"' in card.text
    no_time = post(client, new, "/operator/campaigns", campaign_form(t0, closes, draw_at=""))
    assert 'id="e-draw_at"' in no_time.text
    with runtime.db.uow(readonly=True) as uow:
        assert campaigns.list_campaigns(uow, include_draft=True) == []

    created = post(client, new, "/operator/campaigns", campaign_form(t0, closes))
    assert created.status_code == 303, created.text
    page = created.headers["location"].split("?")[0]
    cid = page.rsplit("/", 1)[1]
    shown = client.get(created.headers["location"])
    assert 'data-status="draft"' in shown.text
    assert "¥466.00" in shown.text

    def step(name: str) -> Response:
        return post(client, page, f"{page}/{name}", {})

    assert step("fund").status_code == 303
    assert step("open").status_code == 303
    early = step("close")
    assert early.status_code == 409
    assert 'data-code="registration_window_open"' in early.text
    for person in people:  # registered "at t0", however slow this machine is
        runtime.db.transact(
            lambda uow, p=person: campaigns.register(
                uow, campaign_id=cid, user_id=p.user_id, now=t0
            )
        )
    time.sleep(max(0.0, (closes - now_us()) / 1e6) + 0.05)
    assert step("close").status_code == 303
    assert step("draw").status_code == 303
    issued = step("issue")
    assert issued.status_code == 303
    dashboard = client.get(page)
    assert 'data-status="issued"' in dashboard.text
    assert 'id="fig-registrations">4<' in dashboard.text
    assert 'id="fig-winners">3<' in dashboard.text
    assert 'id="fig-issued">¥466.00<' in dashboard.text
    assert "<svg" in dashboard.text
    still = step("reclaim")
    assert still.status_code == 409
    assert 'data-code="still_valid"' in still.text

    exported = client.get(f"{page}/report.csv")
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(exported.text)))
    assert rows[0] == ["section", "key", "metric", "value"]
    assert ["summary", "", "issued_amount", "46600"] in rows

    actions = [e.action for e in entries(runtime, target_id=cid)]
    assert actions[-3:] == ["campaign.open", "campaign.fund", "campaign.create"]
    assert set(actions) == {
        "campaign.create", "campaign.fund", "campaign.open", "campaign.close", "campaign.draw",
        "campaign.issue",
    }  # fmt: skip
    assert all(e.actor_user_id == operator.user_id for e in entries(runtime, target_id=cid))
    listing = client.get("/operator/campaigns")
    assert cid in listing.text
    assert_ledger_clean(runtime.db)


def test_ledger_totals_verification_and_a_transfers_proof(
    client: TestClient, runtime: Runtime
) -> None:
    operator = sign_in_operator(client, runtime)
    payer = resident(runtime, 1)
    topped = funding.top_up(
        runtime.db, bank=runtime.bank, user_id=payer.user_id, card_id=payer.card_id or "",
        amount=50_000, pin=PIN, settings=runtime.settings, encryptor=runtime.encryptor,
    )  # fmt: skip
    assert topped.status == "succeeded"
    with runtime.db.uow(readonly=True) as uow:
        wallet_account = find_wallet(uow, user_id=payer.user_id)
        assert wallet_account is not None
        [(_seq, transfer), *_] = ledger.account_transfers(uow, account_id=wallet_account)
    transfer_id = transfer.id
    shown = client.get("/operator/ledger")
    assert shown.status_code == 200
    assert "CUSTOMER_WALLET" in shown.text
    assert "¥500.00" in shown.text

    unsealed = client.get("/operator/ledger/transfer", params={"id": transfer_id})
    assert 'data-status="unsealed"' in unsealed.text or 'data-status="valid"' in unsealed.text
    signer = runtime.ledger_signer()
    runtime.db.transact(lambda uow: seal_all(uow, signer))
    proof = client.get("/operator/ledger/transfer", params={"id": transfer_id})
    assert proof.status_code == 200
    assert 'data-status="valid"' in proof.text
    assert "¥500.00" in proof.text
    assert client.get("/operator/ledger/transfer", params={"id": "txf_nope"}).status_code == 404

    started = post(client, "/operator/ledger", "/operator/ledger/verify", {})
    assert started.status_code == 303
    result = client.get(started.headers["location"])
    for _ in range(100):
        if 'data-finished="yes"' in result.text:
            break
        assert '<meta http-equiv="refresh"' in result.text
        time.sleep(0.1)
        result = client.get(started.headers["location"])
    assert 'id="verify-result" data-ok="yes"' in result.text
    logged = entries(runtime, action="ledger.verify")
    assert len(logged) == 1
    assert logged[0].actor_user_id == operator.user_id
    assert logged[0].detail.startswith("ok;")
    assert client.get("/operator/ledger/verify/nope").status_code == 404
    assert_ledger_clean(runtime.db)


def test_the_audit_log_pages_and_filters(client: TestClient, runtime: Runtime) -> None:
    sign_in_operator(client, runtime)
    someone = Actor("usr_someone", "139****0001")
    for n in range(55):
        runtime.db.transact(
            lambda uow, n=n: audit.record(
                uow, actor=someone, action="campaign.open", target_id=f"cmp_{n}"
            )
        )
    first = client.get("/operator/audit")
    assert first.status_code == 200
    assert first.text.count('data-action="campaign.open"') == 50
    older = re.search(r'href="(/operator/audit\?[^"]*before=\d+)"', first.text)
    assert older is not None
    rest = client.get(older.group(1).replace("&amp;", "&"))
    assert rest.text.count('data-action="campaign.open"') == 5
    assert (
        client.get("/operator/audit", params={"actor": "usr_other"}).text.count('data-action="')
        == 0
    )
    assert (
        client.get("/operator/audit", params={"action": "campaign."}).text.count(
            'data-action="campaign.open"'
        )
        == 50
    )
    with pytest.raises(ValueError, match="unknown audited action"):
        runtime.db.transact(
            lambda uow: audit.record(uow, actor=someone, action="nope", target_id="x")
        )


def test_reclaim_after_the_validity_window_ends_the_campaign(
    client: TestClient, runtime: Runtime
) -> None:
    operator = sign_in_operator(client, runtime)
    people = [resident(runtime, n, card_ending=None) for n in range(2)]
    t0 = now_us()
    closes = (t0 // 1_000_000 + 2) * 1_000_000
    spec = campaign_form_spec(t0, closes, valid_until=closes + 1_000_000)
    actor = Actor(operator.user_id, "138****0090")
    cid = runtime.db.transact(
        lambda uow: campaigns.create_campaign(
            uow, spec=spec, actor=actor.ref, encryptor=runtime.encryptor
        )
    ).id
    assert (
        campaigns.fund_campaign(
            runtime.db, campaign_id=cid, bank=runtime.bank, encryptor=runtime.encryptor
        )
        == "funded"
    )
    runtime.db.transact(lambda uow: campaigns.open_registration(uow, campaign_id=cid, actor="t"))
    for person in people:
        runtime.db.transact(
            lambda uow, p=person: campaigns.register(
                uow, campaign_id=cid, user_id=p.user_id, now=t0
            )
        )
    time.sleep(max(0.0, (closes + 1_000_000 - now_us()) / 1e6) + 0.05)
    page = f"/operator/campaigns/{cid}"
    for name in ("close", "draw", "issue"):
        assert post(client, page, f"{page}/{name}", {}).status_code == 303
    issued = client.get(page)
    assert 'id="fig-issued">¥400.00<' in issued.text
    reclaimed = post(client, page, f"{page}/reclaim", {})
    assert reclaimed.status_code == 303
    ended = client.get(page)
    assert 'data-status="ended"' in ended.text
    assert 'id="reclaim-progress"' in ended.text
    with runtime.db.uow(readonly=True) as uow:
        assert campaigns.campaign_balance(uow, campaign_id=cid) == 40_000
    logged = entries(runtime, action="campaign.reclaim")
    assert [(e.target_id, e.detail) for e in logged] == [(cid, "batch of 2")]
    assert_ledger_clean(runtime.db)


def campaign_form_spec(t0: int, closes: int, *, valid_until: int) -> campaigns.CampaignSpec:
    """The form's campaign as the service's spec (for tests that start past creation)."""
    from citywallet.web.operator.campaign_form import parse_campaign

    return parse_campaign(
        campaign_form(t0, closes, prize_amount_2="", prize_count_2="", budget="400",
                      valid_until=local(valid_until))
    )  # fmt: skip
