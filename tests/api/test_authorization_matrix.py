"""The authorization matrix, over every route of the OpenAPI document, on both databases.

Every route (path and method) is classified explicitly, so a route added later fails
`test_every_route_is_classified` until someone decides who may call it:

- PUBLIC: answers without credentials (health, ledger proofs, sign-up/login/SMS, dev SMS);
- SESSION: needs a resident's session, no user-owned object in the path;
- OWNED: needs a session and names a user's object in the path (card, top-up, withdrawal,
  receipt, split, session, merchant, store, API key, payment-code device, payment). Another
  signed-in, verified user (Bob, who owns a merchant of his own) who sends the owner's real
  id gets 404 (never 403, never 200) and the owner's objects are unchanged afterwards;
- SIGNED: the merchant server API under `/v1/merchant/` (signed requests,
  docs/merchant-signing.md). A route naming an object (order, refund, event, settlement) is
  checked like OWNED, merchant against merchant: Bob's merchant, with its own valid key,
  gets 404 for Alice's merchant's ids and nothing moves. The daily statement names no
  object: each merchant gets its own, which holds none of another merchant's orders.
- CAMPAIGN: a resident's session on a campaign named in the path (campaigns are public
  objects, not anyone's: a draft answers 404 `campaign_not_found` to residents; the
  resident's own registration is found through the session, never by an id in the path);
- OPERATOR: the operator API under `/v1/operator/` (a session whose account holds the
  operator role): a plain resident gets 403 `operator_required`, anonymous callers 401.

- LOOKUP: a resident's session on a mobile number in the path (`/v1/interop/parties/{phone}`:
  who holds an alias at another provider, anyone's number, as a payer must ask it).

Without credentials (or with wrong ones) session routes answer 401 problem+json
`unauthorized`, and signed routes 401 with the signature code of what was wrong: a
resident's Bearer session opens no signed route, and a merchant's signature no session route.

The app is connected to a (scripted) switch, so the residents' `/v1/interop` routes are in
the document and classified like every other route; Alice's cross-provider transfer is one
of her objects. The FSPIOP endpoints the switch calls (`/fspiop/*`) are not in the OpenAPI
document (`include_in_schema=False`) and take no session: they accept only messages signed
by the switch's key, which tests/api/test_interop_api.py
(`test_fspiop_refuses_bad_signatures_and_bodies`) and tests/unit/test_interop_transport.py
check.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import secrets
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response

from citywallet.api import interop as interop_api
from citywallet.api.app import create_app
from citywallet.campaign import service as campaigns
from citywallet.campaign.rules import Eligibility
from citywallet.identity import attributes
from citywallet.interop.transport import Courier, Sender
from citywallet.merchant.settlement import run_settlements
from citywallet.platform.clock import now_us
from citywallet.platform.db import Database
from citywallet.runtime import Runtime
from citywallet.wallet.bank import sandbox_card_number
from tests.identity_support import PASSWORD
from tests.interop_support import OTHER, FakeSwitch, interop_settings
from tests.ledger_checks import assert_ledger_clean, test_encryptor
from tests.merchant_support import ShopOwner, SignedClient, application
from tests.passkey_support import SoftAuthenticator
from tests.wallet_support import PIN, Person, count

YUAN = 100
FAR_PHONE = "13700137001"  # a resident of provider-b, behind the scripted switch
HOOKS = "127.0.0.1"  # webhook receivers the tests may name (nothing delivers: no worker runs)
ALICE_HOOK = f"https://{HOOKS}/hooks/alice"

Route = tuple[str, str]  # (METHOD, path template as in the OpenAPI document)
Ref = str | tuple[str, ...]  # an id, or one id per path parameter in order

PUBLIC: frozenset[Route] = frozenset(
    {
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/v1/ledger/public-key"),
        ("GET", "/v1/ledger/transfers/{transfer_id}/proof"),
        ("GET", "/v1/ledger/checkpoint"),
        ("GET", "/v1/ledger/consistency"),
        ("POST", "/v1/auth/sms-codes"),
        ("POST", "/v1/auth/register"),
        ("POST", "/v1/auth/login"),
        ("POST", "/v1/auth/password-reset"),
        ("POST", "/v1/auth/passkey/options"),
        ("POST", "/v1/auth/passkey"),
        ("GET", "/v1/dev/sms"),  # sandbox only (the default, and the tests' setting)
        ("GET", "/v1/legal/documents"),  # read before signing up
        ("GET", "/v1/legal/documents/{name}"),
    }
)

SESSION: frozenset[Route] = frozenset(
    {
        ("POST", "/v1/auth/logout"),
        ("GET", "/v1/messages"),
        ("GET", "/v1/messages/state"),
        ("GET", "/v1/messages/unread-count"),
        ("POST", "/v1/messages/read-all"),
        ("GET", "/v1/auth/session"),
        ("GET", "/v1/me"),
        ("PUT", "/v1/me/password"),
        ("GET", "/v1/me/sessions"),
        ("GET", "/v1/me/consents"),
        ("PUT", "/v1/me/consents"),
        ("GET", "/v1/me/export"),
        ("POST", "/v1/me/real-name"),
        ("POST", "/v1/me/tier/upgrade"),
        ("PUT", "/v1/me/payment-pin"),
        ("POST", "/v1/me/payment-pin"),
        ("POST", "/v1/me/payment-pin/reset-code"),
        ("POST", "/v1/me/payment-pin/reset"),
        ("GET", "/v1/wallet"),
        ("GET", "/v1/passkeys"),
        ("POST", "/v1/passkeys"),
        ("POST", "/v1/passkeys/registration-options"),
        ("POST", "/v1/passkeys/payment-options"),
        ("POST", "/v1/step-up/sms-codes"),
        ("GET", "/v1/wallet/restricted"),
        ("GET", "/v1/campaigns"),
        ("POST", "/v1/wallet/close"),
        ("GET", "/v1/wallet/cards"),
        ("POST", "/v1/wallet/cards"),
        ("POST", "/v1/wallet/topups"),
        ("GET", "/v1/wallet/withdrawals/quote"),
        ("POST", "/v1/wallet/withdrawals"),
        ("POST", "/v1/wallet/transfers"),
        ("GET", "/v1/wallet/transfers/recipient"),
        ("GET", "/v1/wallet/transfers/recent-recipients"),
        ("GET", "/v1/wallet/receive-code"),
        ("GET", "/v1/wallet/receive-codes/scanned"),
        ("POST", "/v1/wallet/splits"),
        ("GET", "/v1/wallet/splits"),
        ("GET", "/v1/wallet/transactions"),
        ("POST", "/v1/payments/scan/preview"),
        ("POST", "/v1/payments/scan"),
        ("GET", "/v1/payments/pending"),
        ("GET", "/v1/paycode/devices"),
        ("POST", "/v1/paycode/devices"),
        ("GET", "/v1/paycode/prefs"),
        ("PUT", "/v1/paycode/prefs"),
        ("GET", "/v1/merchants"),
        ("POST", "/v1/merchants"),
        ("POST", "/v1/redpacket-groups"),
        ("GET", "/v1/redpacket-groups"),
        ("POST", "/v1/redpackets"),
        ("GET", "/v1/redpackets"),
        ("POST", "/v1/interop/quotes"),
        ("POST", "/v1/interop/transfers"),
    }
)

# Session routes naming a mobile number: an alias at another provider, anyone's to look up.
LOOKUP: frozenset[Route] = frozenset({("GET", "/v1/interop/parties/{phone}")})

# Session routes that name a campaign (a public object), tested in test_campaign_api.py and
# by `test_campaign_routes_hide_drafts_from_residents`.
CAMPAIGN: frozenset[Route] = frozenset(
    {
        ("GET", "/v1/campaigns/{campaign_id}"),
        ("POST", "/v1/campaigns/{campaign_id}/registrations"),
        ("GET", "/v1/campaigns/{campaign_id}/registration"),
        ("GET", "/v1/campaigns/{campaign_id}/draw"),
    }
)

# The operator API: an operator session (identity.attributes.is_operator) or 403.
OPERATOR: frozenset[Route] = frozenset(
    {
        ("POST", "/v1/operator/campaigns"),
        ("GET", "/v1/operator/campaigns"),
        ("GET", "/v1/operator/campaigns/{campaign_id}"),
        ("POST", "/v1/operator/campaigns/{campaign_id}/fund"),
        ("POST", "/v1/operator/campaigns/{campaign_id}/open"),
        ("POST", "/v1/operator/campaigns/{campaign_id}/close"),
        ("POST", "/v1/operator/campaigns/{campaign_id}/draw"),
        ("POST", "/v1/operator/campaigns/{campaign_id}/issue"),
        ("POST", "/v1/operator/campaigns/{campaign_id}/reclaim"),
        ("GET", "/v1/operator/campaigns/{campaign_id}/report"),
        ("GET", "/v1/operator/campaigns/{campaign_id}/report.csv"),
        ("PUT", "/v1/operator/residents/{user_id}/attributes"),
        ("POST", "/v1/operator/proposals"),
        ("GET", "/v1/operator/proposals"),
        ("GET", "/v1/operator/proposals/{proposal_id}"),
        ("POST", "/v1/operator/proposals/{proposal_id}/approve"),
        ("POST", "/v1/operator/proposals/{proposal_id}/reject"),
    }
)
OPERATOR_PREFIX = "/v1/operator/"

# Route → the kinds of the owner's ids to try in its path parameters (see `World.ids`).
# "payment": orders Alice paid or must confirm (Bob's merchant charged them, so Bob knows
# their ids); "order": orders of Alice's merchant (Carol paid them).
OWNED: dict[Route, tuple[str, ...]] = {
    ("POST", "/v1/messages/{message_id}/read"): ("message",),
    ("PATCH", "/v1/passkeys/{passkey_id}"): ("passkey",),
    ("DELETE", "/v1/passkeys/{passkey_id}"): ("passkey",),
    ("GET", "/v1/wallet/cards/{card_id}"): ("card", "funding"),
    ("DELETE", "/v1/wallet/cards/{card_id}"): ("card",),
    ("GET", "/v1/wallet/topups/{topup_id}"): ("funding", "transaction"),
    ("GET", "/v1/wallet/withdrawals/{withdrawal_id}"): ("funding", "transaction"),
    ("GET", "/v1/wallet/transactions/{transaction_id}"): (
        "transaction",
        "funding",
        "payment",
        "order",
    ),
    ("GET", "/v1/wallet/splits/{split_id}"): ("split",),
    ("POST", "/v1/wallet/splits/{split_id}/pay"): ("split",),
    ("POST", "/v1/wallet/splits/{split_id}/remind"): ("split",),
    ("POST", "/v1/wallet/splits/{split_id}/cancel"): ("split",),
    ("DELETE", "/v1/me/sessions/{session_id}"): ("session",),
    ("GET", "/v1/payments/{order_id}"): ("payment", "order"),
    ("POST", "/v1/payments/{order_id}/confirm"): ("payment", "order"),
    ("POST", "/v1/payments/{order_id}/decline"): ("payment", "order"),
    ("DELETE", "/v1/paycode/devices/{device_id}"): ("device",),
    ("GET", "/v1/paycode/devices/{device_id}/code"): ("device",),
    ("GET", "/v1/paycode/devices/{device_id}/code/barcode.svg"): ("device",),
    ("GET", "/v1/paycode/devices/{device_id}/code/qr.svg"): ("device",),
    ("GET", "/v1/merchants/{merchant_id}"): ("merchant",),
    ("PATCH", "/v1/merchants/{merchant_id}"): ("merchant",),
    ("GET", "/v1/merchants/{merchant_id}/balance"): ("merchant",),
    ("GET", "/v1/merchants/{merchant_id}/webhook-secret"): ("merchant",),
    ("POST", "/v1/merchants/{merchant_id}/webhook-secret"): ("merchant",),
    ("GET", "/v1/merchants/{merchant_id}/stores"): ("merchant",),
    ("POST", "/v1/merchants/{merchant_id}/stores"): ("merchant",),
    ("POST", "/v1/merchants/{merchant_id}/stores/{store_id}/terminals"): ("store",),
    ("GET", "/v1/merchants/{merchant_id}/stores/{store_id}/code"): ("store",),
    ("GET", "/v1/merchants/{merchant_id}/stores/{store_id}/code.png"): ("store",),
    ("GET", "/v1/merchants/{merchant_id}/stores/{store_id}/code.svg"): ("store",),
    ("GET", "/v1/merchants/{merchant_id}/api-keys"): ("merchant",),
    ("POST", "/v1/merchants/{merchant_id}/api-keys"): ("merchant",),
    ("DELETE", "/v1/merchants/{merchant_id}/api-keys/{key_id}"): ("api_key",),
    ("GET", "/v1/redpacket-groups/{group_id}"): ("redpacket_group",),
    ("POST", "/v1/redpacket-groups/{group_id}/members"): ("redpacket_group",),
    ("DELETE", "/v1/redpacket-groups/{group_id}/members/{user_id}"): ("redpacket_member",),
    ("GET", "/v1/redpacket-groups/{group_id}/redpackets"): ("redpacket_group",),
    ("GET", "/v1/redpackets/{packet_id}"): ("redpacket",),
    ("POST", "/v1/redpackets/{packet_id}/claims"): ("redpacket",),
    ("GET", "/v1/interop/transfers/{transfer_id}"): ("interop_transfer", "transaction"),
}

# The merchant server API (signed requests) → the kinds of Alice's merchant's ids to try as
# Bob's merchant; () for a route that names nothing. "day" names no other merchant's object:
# see `test_a_merchant_statement_holds_only_its_own_orders`.
SIGNED: dict[Route, tuple[str, ...]] = {
    ("POST", "/v1/merchant/orders"): (),
    ("GET", "/v1/merchant/orders"): (),
    ("GET", "/v1/merchant/orders/by-out-trade-no/{out_trade_no}"): ("out_trade_no",),
    ("GET", "/v1/merchant/orders/{order_id}"): ("order",),
    ("POST", "/v1/merchant/orders/{order_id}/close"): ("order",),
    ("POST", "/v1/merchant/payments/code"): (),
    ("POST", "/v1/merchant/orders/{order_id}/refunds"): ("order",),
    ("GET", "/v1/merchant/orders/{order_id}/refunds"): ("order",),
    ("GET", "/v1/merchant/refunds/{refund_id}"): ("refund",),
    ("GET", "/v1/merchant/events"): (),
    ("GET", "/v1/merchant/events/{event_id}"): ("event",),
    ("POST", "/v1/merchant/events/{event_id}/redeliver"): ("event",),
    ("GET", "/v1/merchant/settlements"): (),
    ("GET", "/v1/merchant/settlements/{settlement_id}"): ("settlement",),
    ("GET", "/v1/merchant/statements/{day}.csv"): ("day",),
}
SIGNED_PREFIX = "/v1/merchant/"

# Every kind of id the world makes (`World.ids` has exactly these keys).
KINDS = (
    "card",
    "funding",
    "transaction",
    "split",
    "session",
    "merchant",
    "store",
    "api_key",
    "device",
    "payment",
    "order",
    "out_trade_no",
    "refund",
    "event",
    "settlement",
    "redpacket_group",
    "redpacket_member",
    "redpacket",
    "interop_transfer",
    "passkey",
    "message",
)

# Money-moving POSTs: they need an Idempotency-Key (sent on every call here).
MONEY: frozenset[Route] = frozenset(
    {
        ("POST", "/v1/wallet/topups"),
        ("POST", "/v1/wallet/withdrawals"),
        ("POST", "/v1/wallet/transfers"),
        ("POST", "/v1/wallet/splits/{split_id}/pay"),
        ("POST", "/v1/wallet/close"),
        ("POST", "/v1/payments/scan"),
        ("POST", "/v1/payments/{order_id}/confirm"),
        ("POST", "/v1/redpackets"),
        ("POST", "/v1/redpackets/{packet_id}/claims"),
        ("POST", "/v1/interop/transfers"),
    }
)

# Signed routes that create orders or move money are idempotent by the merchant's own
# number instead: a required field of the request body.
SIGNED_IDEMPOTENT: dict[Route, str] = {
    ("POST", "/v1/merchant/orders"): "out_trade_no",
    ("POST", "/v1/merchant/payments/code"): "out_trade_no",
    ("POST", "/v1/merchant/orders/{order_id}/refunds"): "out_refund_no",
}

# What a signed route answers to credentials that do not authenticate a merchant.
SIGNATURE_CODES = frozenset(
    {
        "signature_missing",
        "signature_malformed",
        "signature_scheme_unsupported",
        "signature_expired",
        "signature_mismatch",
        "api_key_invalid",
    }
)

PARAM = re.compile(r"\{[^}]+\}")
PARAM_NAME = re.compile(r"\{([^}]+)\}")


@pytest.fixture
def fake() -> FakeSwitch:
    """The switch (and provider-b behind it), scripted: it holds FAR_PHONE and commits."""
    return FakeSwitch(directory={FAR_PHONE: (OTHER, "*明")})


@pytest.fixture
def runtime(db: Database, tmp_path: Path, fake: FakeSwitch) -> Runtime:
    """A runtime connected to the scripted switch whose sandbox bank answers at once (as in
    test_wallet_api.py); notify URLs may name the loopback host (no worker runs, so nothing
    is delivered), and a payment-code charge waits for confirmation long enough for any
    test here."""
    settings = interop_settings(
        tmp_path,
        db,
        bank_timeout_seconds=0.05,
        webhook_allow_hosts=[HOOKS],
        paycode_confirm_seconds=3600,
    )
    runtime = Runtime(settings, db, test_encryptor())
    courier = Courier(db, Sender(runtime.interop_key, transport=fake.transport()), poll=0.05)
    runtime.__dict__["interop_courier"] = courier
    return runtime


@pytest.fixture
def client(
    runtime: Runtime, fake: FakeSwitch, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    """The connected app; the scripted switch answers through it."""
    monkeypatch.setattr(interop_api, "WAIT_SECONDS", 30.0)  # a loaded machine: no 504
    with TestClient(create_app(runtime), raise_server_exceptions=False) as test_client:
        fake.client = test_client
        yield test_client


def _openapi_routes(client: TestClient) -> set[Route]:
    paths = client.get("/openapi.json").json()["paths"]
    return {(method.upper(), path) for path, operations in paths.items() for method in operations}


def _problem(response: Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, (response.request.method, response.url, response.text)
    assert response.headers["content-type"].startswith("application/problem+json"), response
    body: dict[str, Any] = response.json()
    if code is not None:
        assert body["code"] == code, (response.request.method, response.url, body)
    return body


def _json(response: Response, status: int = 200) -> Any:
    assert response.status_code == status, (response.request.method, response.url, response.text)
    return response.json()


def _not_found(response: Response) -> bool:
    return (
        response.status_code == 404
        and response.headers["content-type"].startswith("application/problem+json")
        and str(response.json().get("code", "")).endswith("not_found")
    )


def _url(template: str, ref: Ref) -> str:
    """The path with one id per parameter (a single id fills every parameter)."""
    values = [ref] * len(PARAM.findall(template)) if isinstance(ref, str) else list(ref)
    assert len(values) == len(PARAM.findall(template)), (template, ref)
    filled = iter(values)
    return PARAM.sub(lambda _m: next(filled), template)


def _pay(person: Person, payload: str, amount: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"payload": payload, "pin": PIN}
    if amount is not None:
        body["amount"] = amount
    paid: dict[str, Any] = _json(person.post("/v1/payments/scan", body, key=str(uuid.uuid4())), 201)
    assert paid["status"] == "paid", paid
    return paid


@dataclass
class World:
    """Alice's real objects (and the people around her), made through the API."""

    alice: Person
    bob: Person  # signed in, verified, own card, own merchant: must not see Alice's things
    carol: Person  # Alice's counterparty, and a customer of Alice's merchant
    second_token: str  # Alice's second session (a login), for the session route
    ids: dict[str, list[Ref]]
    alice_shop: ShopOwner  # Alice's merchant; `alice_shop.api` reads its orders for the state
    bob_shop: ShopOwner  # Bob's merchant, with its own valid key
    alice_keys: dict[str, SignedClient]  # "hmac" (the reader), "ed25519", "revoked"

    def alice_state(self) -> dict[str, Any]:
        """Everything Alice (and Carol) can see of the objects; compared before and after."""
        alice, headers = self.alice, self.alice.headers
        state: dict[str, Any] = {
            "wallet": alice.wallet(),
            "restricted": _json(alice.get("/v1/wallet/restricted")),
            "carol_wallet": self.carol.wallet(),
            "cards": _json(alice.get("/v1/wallet/cards")),
            "splits": _json(alice.get("/v1/wallet/splits")),
            "history": _json(alice.get("/v1/wallet/transactions")),
            "carol_history": _json(self.carol.get("/v1/wallet/transactions")),
            "me": _json(alice.get("/v1/me")),
            "messages": _json(alice.get("/v1/messages")),
        }
        for card_id in self.ids["card"]:
            state[str(card_id)] = _json(alice.get(f"/v1/wallet/cards/{card_id}"))
        for funding_id in self.ids["funding"]:
            kind = "topups" if str(funding_id).startswith("top_") else "withdrawals"
            state[str(funding_id)] = _json(alice.get(f"/v1/wallet/{kind}/{funding_id}"))
        for transaction_id in self.ids["transaction"]:
            receipt = _json(alice.get(f"/v1/wallet/transactions/{transaction_id}"))
            state[f"receipt {transaction_id}"] = receipt
        for split_id in self.ids["split"]:
            state[str(split_id)] = _json(alice.get(f"/v1/wallet/splits/{split_id}"))
        state["redpacket groups"] = _json(alice.get("/v1/redpacket-groups"))
        for role in ("sent", "received", "available"):
            state[f"redpackets {role}"] = _json(alice.get("/v1/redpackets", role=role))
            state[f"carol redpackets {role}"] = _json(self.carol.get("/v1/redpackets", role=role))
        for group_id in self.ids["redpacket_group"]:
            base = f"/v1/redpacket-groups/{group_id}"
            state[str(group_id)] = _json(alice.get(base))
            state[f"packets of {group_id}"] = _json(alice.get(f"{base}/redpackets"))
        for packet_id in self.ids["redpacket"]:
            state[str(packet_id)] = _json(alice.get(f"/v1/redpackets/{packet_id}"))
        for crossed_id in self.ids["interop_transfer"]:
            state[str(crossed_id)] = _json(alice.get(f"/v1/interop/transfers/{crossed_id}"))
        # Sessions: ids only (last_seen_at moves with every request); both still work.
        sessions = _json(self.alice.client.get("/v1/me/sessions", headers=headers))["items"]
        state["sessions"] = sorted(s["id"] for s in sessions)
        second = {"Authorization": f"Bearer {self.second_token}"}
        state["second session works"] = alice.client.get("/v1/me", headers=second).status_code

        # Payment codes and payments: devices, password-free limits, charges waiting for her.
        state["devices"] = _json(alice.get("/v1/paycode/devices"))
        state["prefs"] = _json(alice.get("/v1/paycode/prefs"))
        state["pending"] = _json(alice.get("/v1/payments/pending"))
        for order_id in self.ids["payment"]:
            state[f"payment {order_id}"] = _json(alice.get(f"/v1/payments/{order_id}"))

        # Her merchants in the console (the reader key's last use moves as it reads below).
        reader = self.alice_keys["hmac"].key_id
        state["merchants"] = _json(alice.get("/v1/merchants"))
        for merchant_id in self.ids["merchant"]:
            base = f"/v1/merchants/{merchant_id}"
            keys = _json(alice.get(f"{base}/api-keys"))["items"]
            state[f"merchant {merchant_id}"] = {
                "merchant": _json(alice.get(base)),
                "balance": _json(alice.get(f"{base}/balance")),
                "webhook secret": _json(alice.get(f"{base}/webhook-secret")),
                "stores": _json(alice.get(f"{base}/stores")),
                "api keys": [k | {"last_used_at": "…"} if k["id"] == reader else k for k in keys],
            }
        for merchant_id, store_id in self._own_stores():
            code = _json(alice.get(f"/v1/merchants/{merchant_id}/stores/{store_id}/code"))
            state[f"static code {store_id}"] = code

        # Her merchant's orders, refunds and webhook events, as its server sees them.
        api = self.alice_keys["hmac"]
        state["orders"] = _json(api.get("/v1/merchant/orders"))
        state["events"] = _json(api.get("/v1/merchant/events"))
        for order_id in self.ids["order"]:
            state[f"order {order_id}"] = _json(api.get(f"/v1/merchant/orders/{order_id}"))
            refunds = _json(api.get(f"/v1/merchant/orders/{order_id}/refunds"))
            state[f"refunds of {order_id}"] = refunds
        for refund_id in self.ids["refund"]:
            state[f"refund {refund_id}"] = _json(api.get(f"/v1/merchant/refunds/{refund_id}"))
        for event_id in self.ids["event"]:
            state[f"event {event_id}"] = _json(api.get(f"/v1/merchant/events/{event_id}"))
        state["settlements"] = _json(api.get("/v1/merchant/settlements"))
        for settlement_id in self.ids["settlement"]:
            settled = _json(api.get(f"/v1/merchant/settlements/{settlement_id}"))
            state[f"settlement {settlement_id}"] = settled
        return state

    def _own_stores(self) -> list[tuple[str, str]]:
        """(merchant, store) pairs of the "store" kind that are both Alice's."""
        merchants, theirs = set(self.ids["merchant"]), self.bob_shop.store_id
        pairs = [ref for ref in self.ids["store"] if isinstance(ref, tuple)]
        return [(m, s) for m, s in pairs if m in merchants and s != theirs]


def _build_world(client: TestClient, runtime: Runtime) -> World:
    alice_shop, bob_shop = ShopOwner(client, runtime, 1), ShopOwner(client, runtime, 2)
    alice, bob = alice_shop.person, bob_shop.person
    carol = Person(client, 3, card_ending=None)
    login = client.post("/v1/auth/login", json={"phone": alice.phone, "password": PASSWORD})
    assert login.status_code == 200, login.text
    second_token = login.json()["session"]["token"]

    # --- Alice's wallet ---
    topup = alice.money(
        "/v1/wallet/topups", {"card_id": alice.card_id, "amount": 300 * YUAN, "pin": PIN}
    )
    withdrawal = alice.money(
        "/v1/wallet/withdrawals", {"card_id": alice.card_id, "amount": 10 * YUAN, "pin": PIN}
    )
    sent = alice.money(
        "/v1/wallet/transfers", {"to": carol.user_id, "amount": 50 * YUAN, "pin": PIN}
    )
    shares = [
        {"to": alice.user_id, "amount": 10 * YUAN},
        {"to": carol.user_id, "amount": 10 * YUAN},
    ]
    settled = alice.post("/v1/wallet/splits", {"total": 20 * YUAN, "shares": shares})
    assert settled.status_code == 201, settled.text
    carol.money(f"/v1/wallet/splits/{settled.json()['id']}/pay", {"pin": PIN})
    still_open = alice.post("/v1/wallet/splits", {"total": 20 * YUAN, "shares": shares})
    assert still_open.status_code == 201, still_open.text

    # --- Alice's merchant: a second store with a terminal, a notify URL (so events are
    # written), an Ed25519 key and a revoked key; and a second merchant, still in review ---
    merchant_id = alice_shop.merchant_id
    base = f"/v1/merchants/{merchant_id}"
    patched = alice.client.patch(base, json={"notify_url": ALICE_HOOK}, headers=alice.headers)
    assert patched.status_code == 200, patched.text
    store2 = _json(alice.post(f"{base}/stores", {"name": "东门分店"}), 201)["id"]
    till = _json(alice.post(f"{base}/stores/{store2}/terminals", {"label": "TILL-01"}), 201)
    terminal_id = till["terminals"][0]["id"]
    ed = _json(alice.post(f"{base}/api-keys", {"scheme": "ed25519", "label": "pos"}), 201)
    pos = SignedClient(client, ed["key"]["id"], ed["secret"], "ed25519")
    old = _json(alice.post(f"{base}/api-keys", {"label": "old"}), 201)
    old_api = SignedClient(client, old["key"]["id"], old["secret"], "hmac-sha256")
    pending_merchant = _json(alice.post("/v1/merchants", application(alice, 3)), 201)["id"]
    assert pending_merchant != merchant_id
    pending_store = _json(alice.get(f"/v1/merchants/{pending_merchant}/stores"))["items"][0]

    # --- Carol pays Alice's merchant (its dynamic and static codes); a partial refund; two
    # orders made with the Ed25519 key: one still open, one on the till that Alice closed ---
    paid = alice_shop.order(20 * YUAN, out_trade_no="ALICE-0001", description="两碗牛肉面")
    _pay(carol, paid["qr_payload"])
    counter = _json(alice.get(f"{base}/stores/{store2}/code"))["payload"]
    at_counter = _pay(carol, counter, 8 * YUAN)
    refund = alice_shop.api.post(
        f"/v1/merchant/orders/{paid['id']}/refunds",
        {"out_refund_no": "ALICE-RF-0001", "amount": 5 * YUAN, "reason": "少了一碗"},
    )
    assert refund.status_code == 201, refund.text
    still_payable = pos.post(
        "/v1/merchant/orders",
        {"out_trade_no": "ALICE-0003", "amount": 3 * YUAN, "store_id": store2},
    )
    assert still_payable.status_code == 201, still_payable.text
    on_till = pos.post(
        "/v1/merchant/orders",
        {
            "out_trade_no": "ALICE-0004",
            "amount": 4 * YUAN,
            "store_id": store2,
            "terminal_id": terminal_id,
        },
    )
    assert on_till.status_code == 201, on_till.text
    closed = alice_shop.api.post(f"/v1/merchant/orders/{on_till.json()['id']}/close")
    assert closed.status_code == 200, closed.text
    assert closed.json()["status"] == "closed"
    # Today's takings go to Alice's bank (T+1: settled as if tomorrow had come); then Carol
    # pays once more, so the receivable holds money that a wrong refund could take.
    today = datetime.now(ZoneInfo(runtime.settings.business_timezone)).date()
    report = run_settlements(
        runtime.db,
        bank=runtime.bank,
        settings=runtime.settings,
        encryptor=runtime.encryptor,
        today=today + timedelta(days=1),
    )
    assert (report.paid, report.failed, report.unknown, report.errors) == (1, 0, 0, 0), report
    after_settlement = alice_shop.order(6 * YUAN, out_trade_no="ALICE-0005")
    _pay(carol, after_settlement["qr_payload"])
    used_then_revoked = old_api.get("/v1/merchant/orders")
    assert used_then_revoked.status_code == 200, used_then_revoked.text
    revoked = alice.client.delete(f"{base}/api-keys/{old_api.key_id}", headers=alice.headers)
    assert revoked.status_code == 200, revoked.text
    order_ids = [
        paid["id"],
        at_counter["order_id"],
        still_payable.json()["id"],
        on_till.json()["id"],
        after_settlement["id"],
    ]
    orders = {o["id"]: o for o in _json(alice_shop.api.get("/v1/merchant/orders"))["items"]}
    assert set(orders) == set(order_ids)
    events = _json(alice_shop.api.get("/v1/merchant/events"))["items"]
    settlements = _json(alice_shop.api.get("/v1/merchant/settlements"))["items"]
    assert [s["status"] for s in settlements] == ["paid"]
    assert alice_shop.balance()["receivable"] > 0
    assert {e["type"] for e in events} == {"payment.succeeded", "refund.succeeded", "order.closed"}

    # --- Alice pays Bob's merchant: its dynamic code, and payment codes shown on her devices
    # (one paid without the PIN, one waiting for her, one she declined) ---
    alice_paid = _pay(alice, bob_shop.order(12_34)["qr_payload"])
    prefs = {"enabled": True, "per_payment": 10 * YUAN, "per_day": 20 * YUAN, "pin": PIN}
    assert alice.client.put("/v1/paycode/prefs", json=prefs, headers=alice.headers).is_success
    devices = [
        _json(alice.post("/v1/paycode/devices", {"label": label}), 201)["device"]["id"]
        for label in ("phone", "watch", "lost phone")
    ]
    lost = alice.client.delete(f"/v1/paycode/devices/{devices[2]}", headers=alice.headers)
    assert lost.status_code == 200, lost.text

    def charge(device_id: str, amount: int, out_trade_no: str) -> dict[str, Any]:
        code = _json(alice.get(f"/v1/paycode/devices/{device_id}/code"))["code"]
        body = {"code": code, "amount": amount, "out_trade_no": out_trade_no}
        charged: dict[str, Any] = _json(bob_shop.api.post("/v1/merchant/payments/code", body))
        return charged

    small = charge(devices[0], 5 * YUAN, "BOB-POS-0001")
    large = charge(devices[0], 30 * YUAN, "BOB-POS-0002")
    refused = charge(devices[1], 15 * YUAN, "BOB-POS-0003")
    assert (small["status"], large["status"]) == ("paid", "awaiting_confirmation")
    assert refused["status"] == "awaiting_confirmation"
    declined = alice.post(f"/v1/payments/{refused['id']}/decline")
    assert declined.status_code == 200, declined.text

    # --- red packets: Alice's group with Carol, a lucky packet to it with one share still
    # unclaimed, a packet to Carol she has not opened; Carol's group with Alice, and a packet
    # Carol sent Alice, which she opened ---
    group = _json(
        alice.post("/v1/redpacket-groups", {"name": "家人", "members": [carol.phone]}), 201
    )
    carol_group = _json(
        carol.post("/v1/redpacket-groups", {"name": "同学", "members": [alice.phone]}), 201
    )
    to_group = {"group_id": group["id"], "amount": 6 * YUAN, "shares": 2, "pin": PIN}
    lucky = _json(alice.post("/v1/redpackets", to_group, key=str(uuid.uuid4())), 201)
    _json(carol.post(f"/v1/redpackets/{lucky['id']}/claims", key=str(uuid.uuid4())), 201)
    to_carol = {"to": carol.phone, "amount": 2 * YUAN, "pin": PIN}
    unopened = _json(alice.post("/v1/redpackets", to_carol, key=str(uuid.uuid4())), 201)
    to_alice = {"group_id": carol_group["id"], "amount": 1 * YUAN, "shares": 1, "pin": PIN}
    from_carol = _json(carol.post("/v1/redpackets", to_alice, key=str(uuid.uuid4())), 201)
    _json(alice.post(f"/v1/redpackets/{from_carol['id']}/claims", key=str(uuid.uuid4())), 201)

    # --- Alice pays provider-b's resident through the switch (committed) ---
    quote = _json(alice.post("/v1/interop/quotes", {"phone": FAR_PHONE, "amount": 3 * YUAN}), 201)
    crossed = _json(
        alice.post(
            "/v1/interop/transfers",
            {"quote_id": quote["quote_id"], "pin": PIN},
            key=str(uuid.uuid4()),
        ),
        201,
    )
    assert crossed["state"] == "committed", crossed

    device = SoftAuthenticator()
    options = _json(alice.post("/v1/passkeys/registration-options"))
    passkey = _json(
        alice.post("/v1/passkeys", {"credential": device.create(options), "pin": PIN}), 201
    )

    history = _json(alice.get("/v1/wallet/transactions"))["items"]
    sessions = _json(alice.get("/v1/me/sessions"))["items"]
    keys = _json(alice.get(f"{base}/api-keys"))["items"]
    stores = [s["id"] for s in _json(alice.get(f"{base}/stores"))["items"]]
    ids: dict[str, list[Ref]] = {
        "card": [alice.card_id],
        "funding": [topup["id"], withdrawal["id"]],
        "transaction": sorted({sent["id"], *(item["id"] for item in history)}),
        "split": [settled.json()["id"], still_open.json()["id"]],
        "session": sorted(s["id"] for s in sessions),
        "merchant": [merchant_id, pending_merchant],
        # Alice's merchant with her stores; Bob's merchant with her stores; her merchant
        # with Bob's store.
        "store": [
            *((merchant_id, s) for s in stores),
            (pending_merchant, pending_store["id"]),
            *((bob_shop.merchant_id, s) for s in [*stores, pending_store["id"]]),
            (merchant_id, bob_shop.store_id),
        ],
        "api_key": [(m, k["id"]) for m in (merchant_id, bob_shop.merchant_id) for k in keys],
        "device": devices,
        "payment": [alice_paid["order_id"], small["id"], large["id"], refused["id"]],
        "order": order_ids,
        "out_trade_no": [orders[o]["out_trade_no"] for o in order_ids],
        "refund": [refund.json()["id"]],
        "event": [e["id"] for e in events],
        "settlement": [s["id"] for s in settlements],
        "redpacket_group": [group["id"], carol_group["id"]],
        "redpacket_member": [
            (group["id"], carol.user_id),
            (group["id"], alice.user_id),
            (carol_group["id"], alice.user_id),
        ],
        "redpacket": [lucky["id"], unopened["id"], from_carol["id"]],
        "interop_transfer": [crossed["id"]],
        "passkey": [passkey["id"]],
        # the message centre: at least the charge waiting for her confirmation
        "message": [m["id"] for m in _json(alice.get("/v1/messages"))["items"]],
    }
    assert ids["message"], "Alice has messages"
    assert set(ids) == set(KINDS)
    assert len(ids["session"]) == 2
    assert len(stores) == 2
    assert len(keys) == 3
    assert {k["status"] for k in keys} == {"active", "revoked"}
    assert len(events) == 5
    assert {i["kind"] for i in history} >= {"topup", "withdrawal", "transfer_out"}
    assert {"split_collection", "merchant_payment"} <= {i["kind"] for i in history}
    keyring = {"hmac": alice_shop.api, "ed25519": pos, "revoked": old_api}
    return World(alice, bob, carol, second_token, ids, alice_shop, bob_shop, keyring)


def _raw(method: str, body: dict[str, Any] | None) -> bytes:
    return b"" if method in {"GET", "DELETE"} or body is None else json.dumps(body).encode()


def _send(
    client: TestClient, route: Route, url: str, headers: dict[str, str], raw: bytes
) -> Response:
    method, _path = route
    headers = dict(headers)
    if route in MONEY:
        headers["Idempotency-Key"] = str(uuid.uuid4())
    if raw:
        headers["Content-Type"] = "application/json"
    response: Response = client.request(method, url, headers=headers, content=raw or None)
    return response


def _call(
    client: TestClient,
    route: Route,
    url: str,
    headers: dict[str, str],
    body: dict[str, Any] | None = None,
) -> Response:
    return _send(client, route, url, headers, _raw(route[0], body))


# Well-formed bodies for the owned POST routes (so only ownership can refuse them).
OWNED_BODIES: dict[Route, dict[str, Any]] = {
    ("PATCH", "/v1/passkeys/{passkey_id}"): {"name": "Bob's now"},
    ("POST", "/v1/wallet/splits/{split_id}/pay"): {"pin": PIN},
    ("POST", "/v1/wallet/splits/{split_id}/cancel"): {"share_ids": []},
    ("POST", "/v1/payments/{order_id}/confirm"): {"pin": PIN},
    ("PATCH", "/v1/merchants/{merchant_id}"): {"notify_url": f"https://{HOOKS}/hooks/bob"},
    ("POST", "/v1/merchants/{merchant_id}/stores"): {"name": "Bob's corner"},
    ("POST", "/v1/merchants/{merchant_id}/stores/{store_id}/terminals"): {"label": "BOB-01"},
    ("POST", "/v1/merchants/{merchant_id}/api-keys"): {"scheme": "hmac-sha256"},
    ("POST", "/v1/redpacket-groups/{group_id}/members"): {"members": ["13900130002"]},
}

# Well-formed bodies for the signed POST routes.
SIGNED_BODIES: dict[Route, dict[str, Any]] = {
    ("POST", "/v1/merchant/orders"): {"out_trade_no": "RIVAL-0001", "amount": 1 * YUAN},
    ("POST", "/v1/merchant/payments/code"): {
        "code": "8800000000000000000",
        "amount": 1 * YUAN,
        "out_trade_no": "RIVAL-0002",
    },
    ("POST", "/v1/merchant/orders/{order_id}/close"): {},
    ("POST", "/v1/merchant/orders/{order_id}/refunds"): {
        "out_refund_no": "RIVAL-RF-0001",
        "amount": 1 * YUAN,
    },
    ("POST", "/v1/merchant/events/{event_id}/redeliver"): {},
}


def _writes_last(route: Route) -> tuple[bool, str, str]:
    """Reads first, then the routes that change things (a wrong success shows in the state)."""
    return route[0] != "GET", route[1], route[0]


def _today(runtime: Runtime) -> str:
    return datetime.now(ZoneInfo(runtime.settings.business_timezone)).date().isoformat()


# --- the classification itself -----------------------------------------------------------


def test_every_route_is_classified(client: TestClient) -> None:
    """A new route fails here until it is put in PUBLIC, SESSION, OWNED or SIGNED (with a
    test)."""
    documented = _openapi_routes(client)
    groups: dict[str, set[Route]] = {
        "PUBLIC": set(PUBLIC),
        "SESSION": set(SESSION),
        "OWNED": set(OWNED),
        "SIGNED": set(SIGNED),
        "CAMPAIGN": set(CAMPAIGN),
        "OPERATOR": set(OPERATOR),
        "LOOKUP": set(LOOKUP),
    }
    for (name, routes), (other, others) in itertools.combinations(groups.items(), 2):
        assert not routes & others, (name, other, routes & others)
    classified = set().union(*groups.values())
    assert documented - classified == set(), "unclassified routes: add them to the matrix"
    assert classified - documented == set(), "the matrix names routes that no longer exist"
    assert classified == documented
    for route in documented - PUBLIC:
        named = bool(PARAM.search(route[1]))
        # Signed routes are exactly the merchant server API; the rest take a session.
        assert (route in SIGNED) == route[1].startswith(SIGNED_PREFIX), route
        assert (route in OPERATOR) == route[1].startswith(OPERATOR_PREFIX), route
        # Every private route naming something in its path is tested with real ids, and back.
        if route in OPERATOR or route in CAMPAIGN or route in LOOKUP:
            continue
        if route in SIGNED:
            assert bool(SIGNED[route]) == named, route
        else:
            assert (route in OWNED) == named, route
    for kinds in (*OWNED.values(), *SIGNED.values()):
        assert set(kinds) <= {*KINDS, "day"}, kinds
    paths = client.get("/openapi.json").json()["paths"]
    # Every money-moving route documents its Idempotency-Key.
    for method, path in MONEY:
        names = [p["name"] for p in paths[path][method.lower()].get("parameters", [])]
        assert "Idempotency-Key" in names, (method, path)
    # The signed API's writes are idempotent by the merchant's number, a required field.
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    for (method, path), field in SIGNED_IDEMPOTENT.items():
        content = paths[path][method.lower()]["requestBody"]["content"]["application/json"]
        schema = schemas[content["schema"]["$ref"].rsplit("/", 1)[-1]]
        assert field in schema.get("required", []), (method, path, field)
    # Every signed route documents its 401 answers.
    for method, path in SIGNED:
        assert "401" in paths[path][method.lower()]["responses"], (method, path)


def test_public_routes_answer_without_credentials(client: TestClient, runtime: Runtime) -> None:
    world = _build_world(client, runtime)
    receipt = _json(world.alice.get(f"/v1/wallet/transactions/{world.ids['funding'][0]}"))
    transfer_id = receipt["transfers"][0]["id"]
    calls: dict[Route, Response] = {
        ("GET", "/healthz"): client.get("/healthz"),
        ("GET", "/readyz"): client.get("/readyz"),  # 503 here: the test schema is unstamped
        ("GET", "/v1/ledger/public-key"): client.get("/v1/ledger/public-key"),
        ("GET", "/v1/ledger/transfers/{transfer_id}/proof"): client.get(
            f"/v1/ledger/transfers/{transfer_id}/proof"
        ),
        ("GET", "/v1/ledger/checkpoint"): client.get("/v1/ledger/checkpoint"),
        ("GET", "/v1/ledger/consistency"): client.get(
            "/v1/ledger/consistency", params={"from": 0, "to": 0}
        ),
        ("POST", "/v1/auth/sms-codes"): client.post("/v1/auth/sms-codes", json={}),
        ("POST", "/v1/auth/register"): client.post("/v1/auth/register", json={}),
        ("POST", "/v1/auth/login"): client.post("/v1/auth/login", json={}),
        ("POST", "/v1/auth/password-reset"): client.post("/v1/auth/password-reset", json={}),
        ("POST", "/v1/auth/passkey/options"): client.post("/v1/auth/passkey/options"),
        ("POST", "/v1/auth/passkey"): client.post("/v1/auth/passkey", json={}),
        ("GET", "/v1/dev/sms"): client.get("/v1/dev/sms", params={"phone": world.bob.phone}),
        ("GET", "/v1/legal/documents"): client.get("/v1/legal/documents"),
        ("GET", "/v1/legal/documents/{name}"): client.get("/v1/legal/documents/privacy_policy"),
    }
    assert set(calls) == PUBLIC
    for route, response in calls.items():
        assert response.status_code != 401, (route, response.text)
        if route == ("GET", "/readyz"):
            assert response.json()["status"] in ("ready", "not_ready")
            continue
        assert response.status_code < 500, (route, response.text)
    assert calls[("GET", "/healthz")].status_code == 200
    assert calls[("GET", "/v1/ledger/public-key")].status_code == 200
    # Not sealed yet (409 not_sealed_yet) or sealed (200): either way no session is asked.
    assert calls[("GET", "/v1/ledger/transfers/{transfer_id}/proof")].status_code in {200, 409}
    assert calls[("GET", "/v1/ledger/checkpoint")].status_code in {200, 404}
    assert calls[("GET", "/v1/ledger/consistency")].status_code == 200
    assert calls[("POST", "/v1/auth/passkey/options")].status_code == 200  # takes no body
    for route in PUBLIC - {("POST", "/v1/auth/passkey/options")}:
        if route[0] == "POST":
            _problem(calls[route], 422, "validation_failed")
    assert_ledger_clean(runtime.db)


def _ed25519_seed() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def _signed_refusals(world: World, method: str, url: str, raw: bytes) -> list[tuple[str, str]]:
    """(expected code, Authorization) pairs that must not authenticate a merchant here."""
    client = world.alice.client
    hmac_key, ed_key = world.alice_keys["hmac"], world.alice_keys["ed25519"]
    revoked = world.alice_keys["revoked"]

    def forged(key_id: str, secret: str, scheme: str) -> str:
        return SignedClient(client, key_id, secret, scheme).authorization(method, url, raw)

    ed_signature = base64.b64encode(bytes(64)).decode()
    return [
        ("signature_missing", ""),
        ("signature_scheme_unsupported", "Bearer not-a-token"),
        ("signature_scheme_unsupported", "Basic dXNlcjpwYXNz"),
        # Residents' sessions, Alice's (who owns the merchant) and Bob's: no signed route.
        ("signature_scheme_unsupported", world.alice.headers["Authorization"]),
        ("signature_scheme_unsupported", world.bob.headers["Authorization"]),
        ("signature_scheme_unsupported", f"Bearer {hmac_key.secret}"),
        ("signature_malformed", "CW1-HMAC-SHA256 garbage"),
        (
            "signature_malformed",
            f"CW1-ED25519 key_id={ed_key.key_id},timestamp={int(time.time())},"
            f"nonce=short,signature={ed_signature}",
        ),
        # Well formed, for Alice's real keys, but not signed with them.
        ("signature_mismatch", forged(hmac_key.key_id, "cwsk_" + "forged" * 8, "hmac-sha256")),
        ("signature_mismatch", forged(ed_key.key_id, _ed25519_seed(), "ed25519")),
        ("signature_mismatch", forged(hmac_key.key_id, _ed25519_seed(), "ed25519")),
        # Signed with Alice's real key, for another request: another path, another body.
        (
            "signature_mismatch",
            hmac_key.authorization("GET", "/v1/merchant/orders/ord_another_request", b""),
        ),
        ("signature_mismatch", hmac_key.authorization(method, url, raw + b" ")),
        # Signed right, but too late, or with a key that is unknown or revoked.
        ("signature_expired", hmac_key.authorization(method, url, raw, timestamp=1_700_000_000)),
        ("api_key_invalid", forged("key_" + "0" * 20, "cwsk_unknown", "hmac-sha256")),
        ("api_key_invalid", revoked.authorization(method, url, raw)),
    ]


def test_every_private_route_answers_401_without_credentials(
    client: TestClient, runtime: Runtime
) -> None:
    world = _build_world(client, runtime)
    before = world.alice_state()
    # Every route of the document that is not PUBLIC (a new one too, classified or not),
    # with Alice's real ids in the path, a plausible body and an Idempotency-Key.
    private = sorted(_openapi_routes(client) - PUBLIC)
    assert len(private) >= len(SESSION) + len(OWNED) + len(SIGNED) + len(OPERATOR)
    first_id = {
        "card_id": world.ids["card"][0],
        "topup_id": world.ids["funding"][0],
        "withdrawal_id": world.ids["funding"][1],
        "transaction_id": world.ids["transaction"][0],
        "split_id": world.ids["split"][1],
        "session_id": world.ids["session"][0],
        "merchant_id": world.alice_shop.merchant_id,
        "store_id": world.alice_shop.store_id,
        "key_id": world.alice_keys["hmac"].key_id,
        "device_id": world.ids["device"][0],
        "order_id": world.ids["payment"][2],  # waiting for Alice's confirmation
        "refund_id": world.ids["refund"][0],
        "event_id": world.ids["event"][0],
        "settlement_id": world.ids["settlement"][0],
        "out_trade_no": world.ids["out_trade_no"][0],
        "day": _today(runtime),
        "group_id": world.ids["redpacket_group"][0],
        "user_id": world.carol.user_id,
        "packet_id": world.ids["redpacket"][0],
        "transfer_id": world.ids["interop_transfer"][0],
        "passkey_id": world.ids["passkey"][0],
        "message_id": world.ids["message"][0],
        "phone": FAR_PHONE,
    }
    # On the merchant API: the order still payable (a close would show) or the paid one.
    signed_order = {
        ("POST", "/v1/merchant/orders/{order_id}/close"): world.ids["order"][2],
    }
    body = {"pin": PIN, "card_id": world.alice.card_id, "amount": 100, "to": world.carol.user_id}
    no_credentials: list[dict[str, str]] = [
        {},
        {"Authorization": "Bearer not-a-token"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": f"Bearer {world.alice.headers['Authorization'][7:]}x"},
        # A merchant's credentials are no resident session.
        {"Authorization": f"Bearer {world.alice_keys['hmac'].secret}"},
    ]
    refused: dict[str, int] = {}
    for route in private:
        method, path = route
        signed = path.startswith(SIGNED_PREFIX)
        ids = {name: str(value) for name, value in first_id.items()}
        if signed:
            ids["order_id"] = str(signed_order.get(route, world.ids["order"][0]))
        url = _url(path, tuple(ids.get(name, "x") for name in PARAM_NAME.findall(path)))
        if signed:
            raw = _raw(method, SIGNED_BODIES.get(route, {"out_trade_no": "NOAUTH-01"}))
            for code, authorization in _signed_refusals(world, method, url, raw):
                headers = {"Authorization": authorization} if authorization else {}
                response = _send(client, route, url, headers, raw)
                _problem(response, 401, code)
                refused[code] = refused.get(code, 0) + 1
        else:
            raw = _raw(method, body)
            # Alice's merchant key, signing this very request, opens no session route.
            merchant = world.alice_keys["hmac"].authorization(method, url, raw)
            for headers in [*no_credentials, {"Authorization": merchant}]:
                response = _send(client, route, url, headers, raw)
                _problem(response, 401, "unauthorized")
                refused["unauthorized"] = refused.get("unauthorized", 0) + 1
    assert set(refused) == SIGNATURE_CODES | {"unauthorized"}, refused
    assert world.alice_state() == before
    assert_ledger_clean(runtime.db)


# --- another user's objects --------------------------------------------------------------


def test_another_users_objects_answer_404_on_every_owned_route(
    client: TestClient, runtime: Runtime
) -> None:
    world = _build_world(client, runtime)
    bob = world.bob
    before = world.alice_state()
    bob_before = _json(bob.get("/v1/merchants"))
    tried: dict[Route, int] = dict.fromkeys(OWNED, 0)
    failures: list[str] = []
    for route in sorted(OWNED, key=_writes_last):
        for kind in OWNED[route]:
            for ref in world.ids[kind]:
                url = _url(route[1], ref)
                response = _call(client, route, url, bob.headers, OWNED_BODIES.get(route))
                tried[route] += 1
                if not _not_found(response):
                    failures.append(f"{route[0]} {url} → {response.status_code} {response.text}")
    assert failures == [], "another user's object did not answer 404:\n" + "\n".join(failures)
    assert all(tried.values()), tried

    # Alice's objects named in a body: Bob cannot move money with her card, nor have his
    # merchant settled to it.
    for path in ("/v1/wallet/topups", "/v1/wallet/withdrawals"):
        response = bob.post(
            path, {"card_id": world.alice.card_id, "amount": 1 * YUAN, "pin": PIN}, key="x-" + path
        )
        _problem(response, 404, "card_not_found")
    applied = bob.post("/v1/merchants", application(bob, 0, settlement_card_id=world.alice.card_id))
    _problem(applied, 404, "card_not_found")

    # Bob's own lists show none of Alice's objects.
    alice_ids = {str(i) for kind in ("card", "funding", "split", "device") for i in world.ids[kind]}
    alice_ids |= {str(i) for kind in ("transaction", "payment", "order") for i in world.ids[kind]}
    alice_ids |= {str(i) for i in world.ids["merchant"]}
    bob_cards = {c["id"] for c in _json(bob.get("/v1/wallet/cards"))["items"]}
    bob_splits = {s["id"] for s in _json(bob.get("/v1/wallet/splits"))["items"]}
    bob_history = {t["id"] for t in _json(bob.get("/v1/wallet/transactions"))["items"]}
    bob_sessions = {s["id"] for s in _json(bob.get("/v1/me/sessions"))["items"]}
    bob_devices = {d["id"] for d in _json(bob.get("/v1/paycode/devices"))["items"]}
    bob_pending = {p["order_id"] for p in _json(bob.get("/v1/payments/pending"))["items"]}
    bob_merchants = _json(bob.get("/v1/merchants"))
    assert not (bob_cards | bob_splits | bob_history | bob_devices | bob_pending) & alice_ids
    assert not bob_sessions & set(world.ids["session"])
    alice_red = {str(i) for kind in ("redpacket_group", "redpacket") for i in world.ids[kind]}
    bob_red = {g["id"] for g in _json(bob.get("/v1/redpacket-groups"))["items"]}
    for role in ("sent", "received", "available"):
        bob_red |= {p["id"] for p in _json(bob.get("/v1/redpackets", role=role))["items"]}
    assert not bob_red & alice_red
    assert bob_merchants == bob_before
    assert [m["id"] for m in bob_merchants["items"]] == [world.bob_shop.merchant_id]

    # Alice's objects are exactly as they were, and hers still work for her.
    assert world.alice_state() == before
    assert before["second session works"] == 200
    assert [p["order_id"] for p in before["pending"]["items"]] == [world.ids["payment"][2]]
    assert bob.wallet()["balance"] == 0
    assert_ledger_clean(runtime.db)


# --- another merchant's objects (signed API) ---------------------------------------------


def test_another_merchants_objects_answer_404_on_every_signed_route(
    client: TestClient, runtime: Runtime
) -> None:
    world = _build_world(client, runtime)
    rival = world.bob_shop.api  # Bob's merchant, with its own valid key
    before = world.alice_state()
    rival_balance = world.bob_shop.balance()
    outbox = count(runtime.db, "SELECT COUNT(*) FROM platform_outbox")
    # Every signed route naming an object (the statement names a day: tested below).
    tried = {route: 0 for route, kinds in SIGNED.items() if set(kinds) - {"day"}}
    failures: list[str] = []
    for route in sorted(tried, key=_writes_last):
        method, path = route
        for kind in SIGNED[route]:
            for ref in world.ids.get(kind, []):
                url = _url(path, ref)
                body = SIGNED_BODIES.get(route) if method != "GET" else None
                response = rival.request(method, url, body)
                tried[route] += 1
                if not _not_found(response):
                    failures.append(f"{method} {url} → {response.status_code} {response.text}")
    # Alice's merchant's ids as cursors, and her store and till in a body.
    for url in (
        f"/v1/merchant/orders?before={world.ids['order'][0]}",
        f"/v1/merchant/events?before={world.ids['event'][0]}",
        f"/v1/merchant/settlements?before={world.ids['settlement'][0]}",
    ):
        response = rival.get(url)
        if not _not_found(response):
            failures.append(f"GET {url} → {response.status_code} {response.text}")
    alice_stores = before[f"merchant {world.alice_shop.merchant_id}"]["stores"]["items"]
    till = next(t["id"] for s in alice_stores for t in s["terminals"])
    for where in (
        {"store_id": alice_stores[1]["id"]},
        {"store_id": world.bob_shop.store_id, "terminal_id": till},
    ):
        body = {"out_trade_no": "RIVAL-0003", "amount": 1 * YUAN, **where}
        response = rival.post("/v1/merchant/orders", body)
        if not _not_found(response):
            failures.append(f"POST /v1/merchant/orders {body} → {response.status_code}")
    assert failures == [], "another merchant's object did not answer 404:\n" + "\n".join(failures)
    assert all(tried.values()), tried
    assert count(runtime.db, "SELECT COUNT(*) FROM platform_outbox") == outbox

    # Bob's merchant's lists show none of Alice's merchant's objects.
    alice_objects = {
        str(i) for kind in ("order", "refund", "event", "settlement") for i in world.ids[kind]
    }
    rival_orders = _json(rival.get("/v1/merchant/orders?limit=100"))["items"]
    rival_events = _json(rival.get("/v1/merchant/events?limit=100"))["items"]
    rival_settled = _json(rival.get("/v1/merchant/settlements?limit=100"))["items"]
    assert not {o["id"] for o in rival_orders} & alice_objects
    assert not {e["id"] for e in rival_events} & alice_objects
    assert not {s["id"] for s in rival_settled} & alice_objects
    assert {o["merchant_id"] for o in rival_orders} == {world.bob_shop.merchant_id}

    # Order numbers are per merchant: Alice's number makes Bob's merchant an order of its
    # own (never the "same number: here is the existing order" answer with Alice's order).
    number = str(world.ids["out_trade_no"][0])
    alice_order = before[f"order {world.ids['order'][0]}"]
    made = rival.post(
        "/v1/merchant/orders",
        {
            "out_trade_no": number,
            "amount": alice_order["amount"],
            "description": alice_order["description"],
        },
    )
    mine = _json(made, 201)
    assert mine["id"] not in alice_objects
    assert mine["merchant_id"] == world.bob_shop.merchant_id
    by_number = _json(rival.get(f"/v1/merchant/orders/by-out-trade-no/{number}"))
    assert by_number["id"] == mine["id"]

    # Alice's merchant's orders, refunds and events are exactly as they were; no money moved.
    assert world.alice_state() == before
    assert world.bob_shop.balance() == rival_balance
    assert_ledger_clean(runtime.db)


def test_a_merchant_statement_holds_only_its_own_orders(
    client: TestClient, runtime: Runtime
) -> None:
    """The statement route names a day, not an object: each merchant gets its own."""
    world = _build_world(client, runtime)
    api, rival = world.alice_keys["hmac"], world.bob_shop.api
    zone = ZoneInfo(runtime.settings.business_timezone)
    orders = _json(api.get("/v1/merchant/orders"))["items"]
    paid = [o for o in orders if o["paid_at"] is not None]
    assert len(paid) == 3
    days = {datetime.fromisoformat(o["paid_at"]).astimezone(zone).date() for o in paid}
    alice_numbers = {o["out_trade_no"] for o in orders} | {"ALICE-RF-0001"}
    rival_orders = _json(rival.get("/v1/merchant/orders"))["items"]
    rival_numbers = {o["out_trade_no"] for o in rival_orders if o["paid_at"] is not None}
    assert len(rival_numbers) == 2  # Alice paid Bob's merchant twice (code, payment code)
    seen: dict[str, set[str]] = {"alice": set(), "bob": set()}
    for day in sorted(days | {date.fromisoformat(_today(runtime))}):
        for who, client_ in (("alice", api), ("bob", rival)):
            response = client_.get(f"/v1/merchant/statements/{day.isoformat()}.csv")
            assert response.status_code == 200, response.text
            assert response.headers["content-type"].startswith("text/csv")
            text = response.text
            merchant_id = (
                world.alice_shop.merchant_id if who == "alice" else world.bob_shop.merchant_id
            )
            other_id = (
                world.bob_shop.merchant_id if who == "alice" else world.alice_shop.merchant_id
            )
            assert merchant_id in response.headers["content-disposition"]
            assert other_id not in text
            for line in text.splitlines()[1:]:
                seen[who].update(line.split(",")[2:4])
    seen = {who: numbers - {""} for who, numbers in seen.items()}
    # Each statement holds none of the other merchant's numbers, and all of its own.
    assert not seen["bob"] & alice_numbers
    assert not seen["alice"] & rival_numbers
    assert {o["out_trade_no"] for o in paid} | {"ALICE-RF-0001"} <= seen["alice"]
    assert rival_numbers <= seen["bob"]
    assert_ledger_clean(runtime.db)


# --- the operator API and campaigns ------------------------------------------------------


def test_operator_routes_answer_403_to_residents(client: TestClient, runtime: Runtime) -> None:
    """A signed-in, verified resident without the operator role gets 403 operator_required
    on every operator route (anonymous callers get 401: see the test above); an operator
    gets past authorisation (an unknown campaign: 404 campaign_not_found)."""
    resident = Person(client, 70, card_ending=None)
    operator = Person(client, 71, card_ending=None)
    runtime.db.transact(
        lambda uow: attributes.grant_operator(uow, user_id=operator.user_id, actor="test")
    )
    body = {"values": {"district": "罗湖区"}}
    for route in sorted(OPERATOR):
        method, path = route
        url = _url(path, tuple("cmp_missing" for _ in PARAM_NAME.findall(path)))
        raw = _raw(method, body)
        _problem(_send(client, route, url, resident.headers, raw), 403, "operator_required")
        answer = _send(client, route, url, operator.headers, raw)
        assert answer.status_code not in (401, 403), (route, answer.text)
        if "{campaign_id}" in path:
            _problem(answer, 404, "campaign_not_found")
    assert (
        runtime.db.transact(lambda uow: attributes.attributes_of(uow, user_id=resident.user_id))
        == {}
    )


def test_campaign_routes_hide_drafts_from_residents(client: TestClient, runtime: Runtime) -> None:
    """Campaign routes need a session (401 above); a draft is 404 to residents."""
    hour = 3_600_000_000
    t0 = now_us()
    spec = campaigns.CampaignSpec(
        name="draft",
        funder_name="funder",
        funder_bank_account=sandbox_card_number("0000", serial=9),
        budget=100,
        prizes=[(100, 1)],
        registration_opens_at=t0,
        registration_closes_at=t0 + hour,
        draw_at=t0 + hour,
        valid_from=t0 + hour,
        valid_until=t0 + 2 * hour,
        eligibility=Eligibility(),
    )
    cid = runtime.db.transact(
        lambda uow: campaigns.create_campaign(
            uow, spec=spec, actor="test", encryptor=runtime.encryptor
        )
    ).id
    resident = Person(client, 72, card_ending=None)
    for route in sorted(CAMPAIGN):
        url = _url(route[1], (cid,))
        _problem(_send(client, route, url, resident.headers, b""), 404, "campaign_not_found")
