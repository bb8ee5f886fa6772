"""The residents' red-packet, group and campaign pages (TestClient): send with the PIN (once
per form), field errors, open a packet, details with best luck, groups; campaigns: register,
eligibility refusals, the draw result and its check, restricted balances; another
resident's objects answer 404."""

from __future__ import annotations

import hashlib
import hmac
import re

from fastapi.testclient import TestClient

from citywallet.campaign import service as campaigns
from citywallet.campaign.rules import Eligibility
from citywallet.identity import attributes
from citywallet.platform.clock import now_us
from citywallet.platform.db import Database
from citywallet.runtime import Runtime
from citywallet.wallet.bank import sandbox_card_number
from tests.ledger_checks import assert_ledger_clean
from tests.statement_count import counted
from tests.wallet_support import balance, make_resident, sandbox_bank
from tests.web.test_app_pay_pages import hidden, resident, sign_in

HOUR = 3_600_000_000


def test_send_a_single_packet_by_phone_and_the_recipient_opens_it(
    client: TestClient, runtime: Runtime, db: Database
) -> None:
    sender = resident(runtime, 1)
    friend = resident(runtime, 2, 0)
    sign_in(client, sender.phone)
    page = client.get("/app/redpackets/send")
    assert page.status_code == 200
    form = {
        "csrf_token": hidden(page.text, "csrf_token"),
        "key": hidden(page.text, "key"),
        "target": "person",
        "to": "13900000000",
        "amount": "8.88",
        "greeting": "恭喜发财",
        "pin": "502817",
    }
    unknown = client.post("/app/redpackets/send", data=form)
    assert unknown.status_code == 404
    assert 'id="e-to"' in unknown.text
    assert 'data-code="recipient_not_found"' in unknown.text
    form["to"] = friend.phone
    form["amount"] = "abc"
    bad = client.post("/app/redpackets/send", data=form)
    assert bad.status_code == 422
    assert 'id="e-amount"' in bad.text
    form["amount"] = "8.88"
    form["pin"] = "123123"
    with counted(db) as tally:
        wrong = client.post("/app/redpackets/send", data=form)
    assert wrong.status_code == 403
    assert 'id="e-pin"' in wrong.text
    _send, _counting = tally.write  # the send with its PIN check (rolled back), the count
    form["pin"] = "502817"
    with counted(db) as tally:
        sent = client.post("/app/redpackets/send", data=form)
    assert sent.status_code == 303
    [_one] = tally.write  # the form key, the PIN check and the send: one transaction
    assert (
        client.post("/app/redpackets/send", data=form).headers["location"]
        == (sent.headers["location"])
    )  # a double submit sends once
    assert balance(db, sender.user_id)[0] == 100_000 - 888
    packet_url = sent.headers["location"].split("?")[0]
    assert "¥8.88" in client.get("/app/redpackets?tab=sent").text

    sign_in(client, friend.phone)
    listed = client.get("/app/redpackets")
    assert packet_url.rsplit("/", 1)[1] in listed.text
    page = client.get(packet_url)
    assert "data-open" in page.text
    opened = client.post(packet_url + "/open", data={"csrf_token": hidden(page.text, "csrf_token")})
    assert opened.status_code == 303
    shown = client.get(opened.headers["location"])
    assert "envelope-open" in shown.text
    assert "¥8.88" in shown.text
    again = client.post(packet_url + "/open", data={"csrf_token": hidden(page.text, "csrf_token")})
    assert again.status_code == 303  # opened already: shows the share
    assert balance(db, friend.user_id)[0] == 888

    stranger = resident(runtime, 3, 0)
    sign_in(client, stranger.phone)
    assert client.get(packet_url).status_code == 404
    assert_ledger_clean(db)


def test_groups_and_a_lucky_packet_with_best_luck(
    client: TestClient, runtime: Runtime, db: Database
) -> None:
    owner = resident(runtime, 1)
    a, b = resident(runtime, 2, 0), resident(runtime, 3, 0)
    sign_in(client, owner.phone)
    page = client.get("/app/redpackets/groups")
    token = hidden(page.text, "csrf_token")
    empty = client.post("/app/redpackets/groups", data={"csrf_token": token, "name": " "})
    assert empty.status_code == 422
    assert 'id="e-name"' in empty.text
    made = client.post(
        "/app/redpackets/groups",
        data={"csrf_token": token, "name": "家人群", "members": a.phone},
    )
    assert made.status_code == 303
    group_url = made.headers["location"].split("?")[0]
    group_id = group_url.rsplit("/", 1)[1]
    nobody = client.post(
        group_url + "/members", data={"csrf_token": token, "members": "13900000000"}
    )
    assert 'id="e-members"' in nobody.text
    added = client.post(group_url + "/members", data={"csrf_token": token, "members": b.phone})
    assert added.status_code == 303
    assert client.get(group_url).text.count("data-member=") == 3

    send = client.get(f"/app/redpackets/send?group={group_id}")
    form = {
        "csrf_token": token,
        "key": hidden(send.text, "key"),
        "target": "group",
        "group": group_id,
        "kind": "lucky",
        "shares": "2",
        "amount": "10.00",
        "greeting": "大吉大利",
        "pin": "502817",
    }
    sent = client.post("/app/redpackets/send", data=form)
    assert sent.status_code == 303, sent.text
    packet_url = sent.headers["location"].split("?")[0]
    assert packet_url.rsplit("/", 1)[1] in client.get(group_url).text

    for who in (a, b):
        sign_in(client, who.phone)
        page = client.get(packet_url)
        opened = client.post(
            packet_url + "/open", data={"csrf_token": hidden(page.text, "csrf_token")}
        )
        assert opened.status_code == 303
    details = client.get(packet_url).text
    assert details.count("data-claim=") == 2
    assert details.count("data-best-luck") == 1
    assert 'data-status="finished"' in details
    assert balance(db, a.user_id)[0] + balance(db, b.user_id)[0] == 1_000

    outsider = resident(runtime, 4, 0)
    sign_in(client, outsider.phone)
    assert client.get(group_url).status_code == 404
    assert client.get(packet_url).status_code == 404
    token = hidden(client.get("/app/redpackets").text, "csrf_token")
    assert (
        client.post(group_url + "/members", data={"csrf_token": token, "members": "1"}).status_code
        == 404
    )
    assert_ledger_clean(db)


def _campaign(runtime: Runtime, t0: int) -> str:
    spec = campaigns.CampaignSpec(
        name="罗湖区消费红包",
        funder_name="深圳市罗湖区人民政府",
        funder_bank_account=sandbox_card_number("0000", serial=9),
        budget=2 * 5_000,
        prizes=[(5_000, 2)],
        registration_opens_at=t0 - HOUR,
        registration_closes_at=t0 + HOUR,
        draw_at=t0 + 2 * HOUR,
        valid_from=t0 + 2 * HOUR,
        valid_until=t0 + 30 * HOUR,
        eligibility=Eligibility(min_tier=1, districts=("罗湖区",)),
        districts=("罗湖区",),
        min_spend=1_000,
    )
    enc = runtime.encryptor
    view = runtime.db.transact(
        lambda uow: campaigns.create_campaign(uow, spec=spec, actor="operator:test", encryptor=enc)
    )
    assert (
        campaigns.fund_campaign(runtime.db, campaign_id=view.id, bank=sandbox_bank(), encryptor=enc)
        == "funded"
    )
    runtime.db.transact(
        lambda uow: campaigns.open_registration(uow, campaign_id=view.id, actor="op")
    )
    return view.id


def test_register_for_a_campaign_see_the_draw_and_check_it(
    client: TestClient, runtime: Runtime, db: Database
) -> None:
    t0 = now_us()
    people = [resident(runtime, n, 0) for n in (1, 2, 3)]
    elsewhere = resident(runtime, 4, 0)
    unverified = make_resident(
        db, runtime.settings, runtime.encryptor, sandbox_bank(), 5, verify=False
    )
    for person in [*people, elsewhere]:
        district = "罗湖区" if person in people else "福田区"
        db.transact(
            lambda uow, p=person, d=district: attributes.set_attributes(
                uow, user_id=p.user_id, values={"district": d}, source="operator:test"
            )
        )
    cid = _campaign(runtime, t0)

    for who, code in ((elsewhere, "district_not_eligible"), (unverified, "real_name_required")):
        sign_in(client, who.phone)
        page = client.get(f"/app/campaigns/{cid}")
        refused = client.post(
            f"/app/campaigns/{cid}/register", data={"csrf_token": hidden(page.text, "csrf_token")}
        )
        assert refused.status_code == 403
        assert f'data-code="{code}"' in refused.text

    for who in people:
        sign_in(client, who.phone)
        listed = client.get("/app/campaigns")
        assert f'data-campaign="{cid}"' in listed.text
        page = client.get(f"/app/campaigns/{cid}")
        registered = client.post(
            f"/app/campaigns/{cid}/register", data={"csrf_token": hidden(page.text, "csrf_token")}
        )
        assert registered.status_code == 303
        assert 'data-result="registered"' in client.get(f"/app/campaigns/{cid}").text
    assert client.get(f"/app/campaigns/{cid}/draw.json").status_code == 409

    enc = runtime.encryptor
    db.transact(
        lambda uow: campaigns.close_registration(uow, campaign_id=cid, actor="op", now=t0 + HOUR)
    )
    drawn = db.transact(
        lambda uow: campaigns.draw(
            uow, campaign_id=cid, actor="op", encryptor=enc, now=t0 + 2 * HOUR
        )
    )
    while db.transact(lambda uow: campaigns.issue_batch(uow, campaign_id=cid)):
        pass
    assert drawn.seed is not None
    seed = bytes.fromhex(drawn.seed)

    results = {}
    for who in people:
        sign_in(client, who.phone)
        page = client.get(f"/app/campaigns/{cid}").text
        registration = re.search(r'data-registration-id="([^"]+)"', page)
        assert registration is not None
        ticket = hmac.new(seed, registration.group(1).encode(), hashlib.sha256).hexdigest()
        assert f'data-expected="{ticket}"' in page
        assert f'data-commitment="{hashlib.sha256(seed).hexdigest()}"' in page
        assert drawn.list_hash is not None
        assert drawn.list_hash in page
        position = re.search(r"data-position>第 (\d+) 名，共 3 人", page)
        assert position is not None
        results[who.user_id] = ('data-result="won"' in page, ticket, position)
        balances = client.get("/app/campaigns").text
        if 'data-result="won"' in page:
            assert "¥50.00" in balances
            assert 'data-until="' in balances
            assert "罗湖区" in balances
            assert "¥10.00" in balances  # the minimum spend
    winners = sorted(t for won, t, _ in results.values() if won)
    assert len(winners) == 2
    assert sorted(int(p.group(1)) for _, _, p in results.values() if p) == [1, 2, 3]
    assert all(int(p.group(1)) <= 2 for won, _, p in results.values() if won and p)
    assert max(winners) < min(t for won, t, _ in results.values() if not won)
    draw_file = client.get(f"/app/campaigns/{cid}/draw.json")
    assert draw_file.status_code == 200
    assert draw_file.json()["seed"] == drawn.seed
    assert client.get("/app/campaigns/cmp_nope").status_code == 404
    assert_ledger_clean(db)
