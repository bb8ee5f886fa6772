"""Helpers for merchant tests: a merchant owned by a resident, and its signed API client."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from fastapi.testclient import TestClient
from httpx2 import Response

from citywallet.merchant import onboarding, signing
from citywallet.merchant import service as merchants
from citywallet.merchant.models import Merchant
from citywallet.merchant.payments import pay_scan  # a resident's payment: not on the face yet
from citywallet.platform.config import Settings
from citywallet.platform.crypto import Encryptor
from citywallet.platform.db import Database
from citywallet.runtime import Runtime
from citywallet.wallet import service as wallet
from citywallet.wallet.bank import SandboxBank
from tests.wallet_support import PIN as PIN  # the tests import it from here too
from tests.wallet_support import Person, Resident, make_resident

# Valid unified social credit codes (check digit computed by python-stdnum's algorithm).
USCCS = [
    "91110108551385082Q",
    "91440300708461136T",
    "91310000717866186P",
    "914403001922038216",
]


class SignedClient:
    """A merchant's server: every request signed with one API key."""

    def __init__(self, client: TestClient, key_id: str, secret: str, scheme: str) -> None:
        self.client, self.key_id, self.secret, self.scheme = client, key_id, secret, scheme

    def authorization(
        self,
        method: str,
        path: str,
        body: bytes,
        *,
        timestamp: int | None = None,
        nonce: str | None = None,
    ) -> str:
        ts = int(time.time()) if timestamp is None else timestamp
        once = nonce or secrets.token_urlsafe(16)
        message = signing.canonical_request(method, path, ts, once, body)
        if self.scheme == "hmac-sha256":
            signature = signing.sign_hmac(self.secret, message)
            name = "CW1-HMAC-SHA256"
        else:
            signature = signing.sign_ed25519(self.secret, message)
            name = "CW1-ED25519"
        return signing.format_authorization(name, self.key_id, ts, once, signature)

    def request(
        self, method: str, path: str, body: dict[str, Any] | None = None, **sign: Any
    ) -> Response:
        raw = b"" if body is None else json.dumps(body).encode()
        headers = {"Authorization": self.authorization(method, path, raw, **sign)}
        if body is not None:
            headers["Content-Type"] = "application/json"
        return self.client.request(method, path, content=raw, headers=headers)

    def post(self, path: str, body: dict[str, Any] | None = None, **sign: Any) -> Response:
        return self.request("POST", path, body if body is not None else {}, **sign)

    def get(self, path: str, **sign: Any) -> Response:
        return self.request("GET", path, **sign)


def application(owner: Person, n: int = 0, **overrides: Any) -> dict[str, Any]:
    """A merchant application body for ``owner``."""
    body: dict[str, Any] = {
        "name_zh": "罗湖好味道餐厅",
        "name_en": "Luohu Good Taste",
        "uscc": USCCS[n],
        "mcc": "5812",
        "district": "罗湖区",
        "address": "深圳市罗湖区东门中路1号",
        "contact_name": "张三丰",
        "contact_phone": owner.phone,
        "settlement_card_id": owner.card_id,
    }
    body.update(overrides)
    return body


def register(
    db: Database,
    settings: Settings,
    encryptor: Encryptor,
    owner: Resident,
    n: int = 0,
    *,
    approve: bool = False,
) -> merchants.MerchantView:
    """Merchant number ``n`` (``USCCS[n]``) owned by ``owner``, through the service;
    approved by an operator if asked."""
    assert owner.card_id is not None
    application = merchants.MerchantApplication(
        name_zh="东门小吃",
        name_en="Dongmen Snacks",
        city_zh="深圳",
        city_en="Shenzhen",
        uscc=USCCS[n],
        mcc="5814",
        district="罗湖区",
        address="东门路1号",
        contact_name="张三",
        contact_phone=owner.phone,
        settlement_card_id=owner.card_id,
    )
    view = db.transact(
        lambda uow: merchants.register_merchant(
            uow,
            user_id=owner.user_id,
            application=application,
            encryptor=encryptor,
            settings=settings,
        )
    )
    if not approve:
        return view
    return db.transact(
        lambda uow: merchants.review_merchant(uow, merchant_id=view.id, action="approve")
    )


def paid_order(
    db: Database,
    settings: Settings,
    encryptor: Encryptor,
    bank: SandboxBank,
    *,
    merchant_pk: int,
    top_up: int,
    amount: int,
    out_trade_no: str,
) -> tuple[Resident, merchants.OrderView]:
    """A new resident (number 1) topped up with ``top_up`` fen who paid a new order of
    ``amount`` fen at the merchant through its dynamic code, through the services."""
    payer = make_resident(db, settings, encryptor, bank, 1)
    wallet.top_up(
        db, bank=bank, user_id=payer.user_id, card_id=str(payer.card_id), amount=top_up,
        pin=PIN, encryptor=encryptor, settings=settings,
    )  # fmt: skip
    order, _ = db.transact(
        lambda uow: merchants.create_order(
            uow,
            merchant_pk=merchant_pk,
            out_trade_no=out_trade_no,
            amount=amount,
            encryptor=encryptor,
            settings=settings,
        )
    )
    payload = order.qr_payload
    assert payload is not None
    db.transact(
        lambda uow: pay_scan(
            uow, user_id=payer.user_id, payload=payload, encryptor=encryptor, settings=settings
        )
    )
    return payer, order


def merchant_row(db: Database, merchant_id: str) -> Merchant:
    """The merchant's row, detached: its id and ledger accounts, for tests that look at them."""
    with db.uow(readonly=True) as uow:
        row = merchants.merchant_by_public_id(uow, merchant_id)
        uow.session.expunge(row)
    return row


class ShopOwner:
    """A resident who owns an approved merchant, with an API key for its server."""

    def __init__(
        self, client: TestClient, runtime: Runtime, n: int, *, scheme: str = "hmac-sha256"
    ) -> None:
        self.person = Person(client, n)
        made = self.person.post("/v1/merchants", application(self.person, n % len(USCCS)))
        assert made.status_code == 201, made.text
        self.merchant_id: str = made.json()["id"]
        runtime.db.transact(
            lambda uow: onboarding.review_merchant(
                uow, merchant_id=self.merchant_id, action="approve"
            )
        )
        key = self.person.post(f"/v1/merchants/{self.merchant_id}/api-keys", {"scheme": scheme})
        assert key.status_code == 201, key.text
        self.api = SignedClient(client, key.json()["key"]["id"], key.json()["secret"], scheme)
        stores = self.person.get(f"/v1/merchants/{self.merchant_id}/stores").json()["items"]
        self.store_id: str = stores[0]["id"]

    def order(self, amount: int, out_trade_no: str | None = None, **extra: Any) -> dict[str, Any]:
        """Create an order through the signed API."""
        body = {"out_trade_no": out_trade_no or f"T{secrets.token_hex(8)}", "amount": amount}
        body.update(extra)
        made = self.api.post("/v1/merchant/orders", body)
        assert made.status_code == 201, made.text
        data: dict[str, Any] = made.json()
        return data

    def balance(self) -> dict[str, Any]:
        """The merchant's balance (owner's console)."""
        got = self.person.get(f"/v1/merchants/{self.merchant_id}/balance")
        assert got.status_code == 200, got.text
        data: dict[str, Any] = got.json()
        return data


def fund(person: Person, amount: int) -> None:
    """Top up ``person``'s wallet from their bound card."""
    person.money("/v1/wallet/topups", {"card_id": person.card_id, "amount": amount, "pin": PIN})
