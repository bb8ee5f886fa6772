"""Demo data: residents with verified names, bound cards, money and some activity, a
restaurant they have paid by QR code, and an operator account for the operator console.

Residents are created through the real HTTP routes (in-process), exactly as a newcomer
would: SMS code from the sandbox outbox, sign-up, real-name verification, payment PIN,
card binding, top-up, a transfer and a split bill. Seeding is idempotent: a second run finds
the residents and leaves them alone.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from stdnum.cn import ric

from citywallet.api.app import create_app
from citywallet.campaign import service as campaigns
from citywallet.campaign.rules import Eligibility
from citywallet.identity import attributes, consent
from citywallet.identity.service import find_user_by_phone
from citywallet.ledger.blocks import seal_all
from citywallet.merchant import onboarding, payments
from citywallet.merchant.models import Merchant
from citywallet.platform.clock import now_us
from citywallet.platform.db import UnitOfWork
from citywallet.redpacket import service as redpackets
from citywallet.runtime import Runtime
from citywallet.wallet.bank import sandbox_card_number

PASSWORD = "Demo-wallet-2026"  # noqa: S105 - printed demo login, sandbox only
PIN = "502817"


@dataclass(frozen=True)
class DemoResident:
    """A demo login."""

    name: str
    phone: str
    sequence: str
    top_up: int  # fen


RESIDENTS = (
    DemoResident("王小明", "13900000001", "101", 500_000),
    DemoResident("李华", "13900000002", "102", 200_000),
    DemoResident("张伟", "13900000003", "103", 100_000),
)


OPERATOR = DemoResident("运营员", "13900000009", "109", 0)  # holds the operator role
# a second operator: funding, issuing, reclaiming and freezing take two (dual control)
APPROVER = DemoResident("复核员", "13900000008", "108", 0)
WEB_APPS = (  # (app, path, who signs in)
    ("Residents' wallet", "/app", "any demo resident"),
    ("Merchant console", "/merchant", "张伟 (owner of the demo restaurant)"),
    ("Operator console", "/operator", "运营员 (operator), 复核员 (a second operator, approvals)"),
)

MERCHANT = {
    "name_zh": "罗湖好味道餐厅",
    "name_en": "Luohu Good Taste",
    "uscc": "91440300708461136T",
    "mcc": "5812",
    "district": "罗湖区",
    "address": "深圳市罗湖区东门中路1号",
    "contact_name": "张伟",
    "city_zh": "深圳",
    "city_en": "Shenzhen",
}


@dataclass
class DemoInfo:
    """What the demo seeded, for printing."""

    residents: list[dict[str, str]] = field(default_factory=list)
    operator: dict[str, str] = field(default_factory=dict)
    sample_transfer: str | None = None
    merchant_id: str | None = None
    store_id: str | None = None
    api_key_id: str | None = None
    api_secret: str | None = None
    reused: bool = False  # the database held the demo already: nothing was seeded again


def _id_number(sequence: str) -> str:
    body = "440303" + "19900307" + sequence
    return body + ric.calc_check_digit(body + "0")


class _Resident:
    """One resident driven through the API."""

    def __init__(self, client: TestClient, person: DemoResident, serial: int) -> None:
        self.client = client
        sent = client.post("/v1/auth/sms-codes", json={"phone": person.phone})
        _ok(sent)
        sms = client.get("/v1/dev/sms", params={"phone": person.phone}).json()["items"][0]
        code = re.search(r"\d{6}", sms["text"])
        assert code is not None
        signed = _ok(
            client.post(
                "/v1/auth/register",
                json={
                    "phone": person.phone,
                    "code": code.group(),
                    "password": PASSWORD,
                    "consent": consent.signup_body(("wallet", "offers")),
                },
            )
        )
        self.user_id: str = signed["user"]["id"]
        self.headers = {"Authorization": f"Bearer {signed['session']['token']}"}
        _ok(
            self.post(
                "/v1/me/real-name", {"name": person.name, "id_number": _id_number(person.sequence)}
            )
        )
        _ok(self.post("/v1/me/payment-pin", {"pin": PIN, "password": PASSWORD}))
        card = _ok(
            self.post(
                "/v1/wallet/cards",
                {"card_number": sandbox_card_number("0000", serial=serial), "phone": person.phone},
            )
        )
        self.card_id: str = card["id"]
        _ok(self.post("/v1/wallet/topups", {"card_id": self.card_id, "amount": person.top_up,
                                           "pin": PIN}, money=True))  # fmt: skip

    def post(self, path: str, body: dict[str, Any], *, money: bool = False) -> Any:
        headers = dict(self.headers)
        if money:
            headers["Idempotency-Key"] = uuid.uuid4().hex
        return self.client.post(path, json=body, headers=headers)


def _ok(response: Any) -> Any:
    if response.status_code >= 300:
        raise RuntimeError(f"demo seeding failed: {response.status_code} {response.text}")
    return response.json() if response.content else None


def _seed_merchant(runtime: Runtime, owner: _Resident, payers: list[_Resident]) -> None:
    """张伟 opens a restaurant; the others pay it by its static code and an order's code."""
    body = {**MERCHANT, "contact_phone": RESIDENTS[2].phone, "settlement_card_id": owner.card_id}
    merchant = _ok(owner.post("/v1/merchants", body))
    runtime.db.transact(
        lambda uow: onboarding.review_merchant(
            uow, merchant_id=merchant["id"], action="approve", actor="demo"
        )
    )
    stores = owner.client.get(f"/v1/merchants/{merchant['id']}/stores", headers=owner.headers)
    store_id = _ok(stores)["items"][0]["id"]
    static = owner.client.get(
        f"/v1/merchants/{merchant['id']}/stores/{store_id}/code", headers=owner.headers
    )
    payload = _ok(static)["payload"]
    _ok(payers[1].post("/v1/payments/scan", {"payload": payload, "amount": 3_800, "pin": PIN},
                       money=True))  # fmt: skip
    with runtime.db.uow() as uow:
        pk = onboarding.merchant_by_public_id(uow, merchant["id"]).id
    order, _ = runtime.db.transact(
        lambda uow: payments.create_order(
            uow, merchant_pk=pk, out_trade_no="DEMO-000001", amount=12_800,
            description="两碗牛肉面", encryptor=runtime.encryptor,
            settings=runtime.settings,
        )
    )  # fmt: skip
    _ok(payers[0].post("/v1/payments/scan", {"payload": order.qr_payload, "pin": PIN},
                       money=True))  # fmt: skip


HOUR_US = 3_600 * 1_000_000
DAY_US = 24 * HOUR_US


def _seed_social(runtime: Runtime, people: list[_Resident]) -> None:
    """A family group; 王小明 sends it a lucky red packet that 李华 opens."""
    alice, bob, carol = people
    enc, cfg = runtime.encryptor, runtime.settings
    group = runtime.db.transact(
        lambda uow: redpackets.create_group(
            uow, user_id=alice.user_id, name="一家人",
            members=[RESIDENTS[1].phone, RESIDENTS[2].phone], encryptor=enc, settings=cfg,
        )
    )  # fmt: skip
    packet = runtime.db.transact(
        lambda uow: redpackets.send_packet(
            uow, user_id=alice.user_id, amount=8_88, group_id=group.id, kind="lucky",
            shares=3, greeting="恭喜发财", encryptor=enc, settings=cfg,
        )
    )  # fmt: skip
    runtime.db.transact(
        lambda uow: redpackets.claim_packet(
            uow, user_id=bob.user_id, packet_id=packet.id, settings=cfg
        )
    )
    del carol  # hers is still waiting in the app


def _seed_campaigns(runtime: Runtime, people: list[_Resident]) -> None:
    """Two campaigns: one drawn and issued (王小明 and 李华 won a red packet usable at
    restaurants, the demo merchant's MCC), one open for registration."""
    now, enc = now_us(), runtime.encryptor
    funder = sandbox_card_number("0000", serial=9)
    drawn_spec = campaigns.CampaignSpec(
        name="罗湖区餐饮消费红包", funder_name="深圳市罗湖区人民政府",
        funder_bank_account=funder, budget=2 * 50_00, prizes=[(50_00, 2)],
        registration_opens_at=now - 3 * HOUR_US, registration_closes_at=now - 2 * HOUR_US,
        draw_at=now - HOUR_US, valid_from=now - HOUR_US, valid_until=now + 30 * DAY_US,
        eligibility=Eligibility(min_tier=1), mccs=("5812",),
        description="罗湖区餐饮消费红包（演示）：已摇号发放，每份 50 元，限在餐厅（MCC 5812）使用，"
        "可分多次使用，到期未用完的金额退回出资方。",
    )  # fmt: skip
    cid = runtime.db.transact(
        lambda uow: campaigns.create_campaign(uow, spec=drawn_spec, actor="demo", encryptor=enc)
    ).id
    runtime.db.transact(lambda uow: campaigns.open_registration(uow, campaign_id=cid, actor="demo"))
    for person in people[:2]:

        def register(uow: UnitOfWork, user_id: str = person.user_id) -> None:
            campaigns.register(uow, campaign_id=cid, user_id=user_id, now=now - 2 * HOUR_US - 1)

        runtime.db.transact(register)
    runtime.db.transact(
        lambda uow: campaigns.close_registration(uow, campaign_id=cid, actor="demo", now=now)
    )
    campaigns.fund_campaign(runtime.db, campaign_id=cid, bank=runtime.bank, encryptor=enc)
    runtime.db.transact(
        lambda uow: campaigns.draw(uow, campaign_id=cid, actor="demo", encryptor=enc, now=now)
    )
    while runtime.db.transact(lambda uow: campaigns.issue_batch(uow, campaign_id=cid)):
        pass
    open_spec = campaigns.CampaignSpec(
        name="深圳市数字消费券", funder_name="深圳市商务局", funder_bank_account=funder,
        budget=100 * 20_00 + 50 * 88_00, prizes=[(88_00, 50), (20_00, 100)],
        registration_opens_at=now - HOUR_US, registration_closes_at=now + 7 * DAY_US,
        draw_at=now + 7 * DAY_US + HOUR_US, valid_from=now + 7 * DAY_US + HOUR_US,
        valid_until=now + 37 * DAY_US, eligibility=Eligibility(min_tier=1),
        description="深圳市数字消费券（演示）：正在报名，摇号后发放 88 元和 20 元两种面额，"
        "在参与活动的深圳商户使用，不可转让、不可提现。",
    )  # fmt: skip
    oid = runtime.db.transact(
        lambda uow: campaigns.create_campaign(uow, spec=open_spec, actor="demo", encryptor=enc)
    ).id
    runtime.db.transact(lambda uow: campaigns.open_registration(uow, campaign_id=oid, actor="demo"))


def _demo_key(runtime: Runtime, info: DemoInfo) -> None:
    """A fresh API key for the demo merchant on every start (earlier demo keys revoked)."""

    def make(uow: UnitOfWork) -> None:
        merchant = onboarding.merchant_by_public_id(uow, _merchant_id(uow))
        for key in onboarding.list_api_keys(uow, merchant_pk=merchant.id):
            if key.label == "demo" and key.status == "active":
                onboarding.revoke_api_key(uow, merchant_pk=merchant.id, key_id=key.id)
        new = onboarding.create_api_key(
            uow, merchant_pk=merchant.id, scheme="hmac-sha256", label="demo",
            encryptor=runtime.encryptor,
        )  # fmt: skip
        info.merchant_id = merchant.public_id
        info.store_id = onboarding.list_stores(uow, merchant_pk=merchant.id)[0].id
        info.api_key_id, info.api_secret = new.key.id, new.secret

    runtime.db.transact(make)


def _merchant_id(uow: UnitOfWork) -> str:
    found = uow.session.scalar(select(Merchant.public_id).where(Merchant.uscc == MERCHANT["uscc"]))
    if found is None:
        raise RuntimeError("the demo merchant is missing: start from an empty database")
    return str(found)


def _seed_operator(runtime: Runtime, client: TestClient, who: DemoResident = OPERATOR) -> None:
    """An operator: a verified resident (no card, no money) holding the operator role."""
    sent = client.post("/v1/auth/sms-codes", json={"phone": who.phone})
    _ok(sent)
    sms = client.get("/v1/dev/sms", params={"phone": who.phone}).json()["items"][0]
    code = re.search(r"\d{6}", sms["text"])
    assert code is not None
    signed = _ok(
        client.post(
            "/v1/auth/register",
            json={
                "phone": who.phone,
                "code": code.group(),
                "password": PASSWORD,
                "consent": consent.signup_body(),
            },
        )
    )
    headers = {"Authorization": f"Bearer {signed['session']['token']}"}
    body = {"name": who.name, "id_number": _id_number(who.sequence)}
    _ok(client.post("/v1/me/real-name", json=body, headers=headers))
    user_id = signed["user"]["id"]
    runtime.db.transact(lambda uow: attributes.grant_operator(uow, user_id=user_id, actor="demo"))


def web_apps(info: DemoInfo, base: str) -> list[tuple[str, str, str]]:
    """The three web apps: (name, URL, who signs in there with which phone and password)."""
    del info  # one password for every demo account
    logins = {
        "/app": f"{RESIDENTS[0].phone} / {PASSWORD}",
        "/merchant": f"{RESIDENTS[2].phone} / {PASSWORD}",
        "/operator": f"{OPERATOR.phone} / {PASSWORD}, {APPROVER.phone} / {PASSWORD}",
    }
    return [(name, base + path, f"{who}: {logins[path]}") for name, path, who in WEB_APPS]


def seed(runtime: Runtime) -> DemoInfo:
    """Create the demo residents and their activity (once), then seal the ledger."""
    info = DemoInfo(
        residents=[
            {"name": r.name, "phone": r.phone, "password": PASSWORD, "payment_pin": PIN}
            for r in RESIDENTS
        ],
        operator={"name": OPERATOR.name, "phone": OPERATOR.phone, "password": PASSWORD},
    )
    with runtime.db.uow(readonly=True) as uow:
        exists = find_user_by_phone(uow, phone=RESIDENTS[0].phone, encryptor=runtime.encryptor)
    info.reused = exists is not None
    if exists is None:
        with TestClient(create_app(runtime), raise_server_exceptions=True) as client:
            people = [_Resident(client, r, n) for n, r in enumerate(RESIDENTS, start=1)]
            alice, bob, carol = people
            sent = _ok(alice.post("/v1/wallet/transfers", {
                "to": RESIDENTS[1].phone, "amount": 12_345, "note": "晚饭", "pin": PIN},
                money=True))  # fmt: skip
            info.sample_transfer = str(sent["id"])
            _ok(alice.post("/v1/wallet/splits", {
                "note": "周末 KTV 唱歌", "total": 30_000,
                "shares": [{"to": bob.user_id, "amount": 15_000},
                           {"to": carol.user_id, "amount": 15_000}]}))  # fmt: skip
            _seed_merchant(runtime, carol, [alice, bob])
            _seed_social(runtime, people)
            _seed_campaigns(runtime, people)
    with runtime.db.uow(readonly=True) as uow:
        operator = find_user_by_phone(uow, phone=OPERATOR.phone, encryptor=runtime.encryptor)
        approver = find_user_by_phone(uow, phone=APPROVER.phone, encryptor=runtime.encryptor)
    if operator is None or approver is None:  # also added to an older demo database
        with TestClient(create_app(runtime), raise_server_exceptions=True) as client:
            for who, found in ((OPERATOR, operator), (APPROVER, approver)):
                if found is None:
                    _seed_operator(runtime, client, who)
    _demo_key(runtime, info)
    signer = runtime.ledger_signer()
    runtime.db.transact(lambda uow: seal_all(uow, signer))
    return info
