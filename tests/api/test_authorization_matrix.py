"""The authorization matrix, over every route of the OpenAPI document, on both databases.

Every route (path and method) is classified explicitly, so a route added later fails
`test_every_route_is_classified` until someone decides who may call it:

- PUBLIC: answers without credentials (health, ledger proofs, sign-up/login/SMS, dev SMS);
- SESSION: needs a session, no user-owned object in the path;
- OWNED: needs a session and names a user's object in the path (card, top-up, withdrawal,
  receipt, split, session). Another signed-in, verified user who sends the owner's real id
  gets 404 (never 403, never 200) and the owner's objects are unchanged afterwards.

Everything that is not PUBLIC answers 401 problem+json `unauthorized` without credentials.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response

from citywallet.platform.db import Database
from citywallet.runtime import Runtime
from tests.identity_support import PASSWORD
from tests.ledger_checks import assert_ledger_clean, test_encryptor
from tests.wallet_support import PIN, Person, wallet_settings

YUAN = 100

Route = tuple[str, str]  # (METHOD, path template as in the OpenAPI document)

PUBLIC: frozenset[Route] = frozenset(
    {
        ("GET", "/healthz"),
        ("GET", "/v1/ledger/public-key"),
        ("GET", "/v1/ledger/transfers/{transfer_id}/proof"),
        ("POST", "/v1/auth/sms-codes"),
        ("POST", "/v1/auth/register"),
        ("POST", "/v1/auth/login"),
        ("POST", "/v1/auth/password-reset"),
        ("GET", "/v1/dev/sms"),  # sandbox only (the default, and the tests' setting)
    }
)

SESSION: frozenset[Route] = frozenset(
    {
        ("POST", "/v1/auth/logout"),
        ("GET", "/v1/auth/session"),
        ("GET", "/v1/me"),
        ("PUT", "/v1/me/password"),
        ("GET", "/v1/me/sessions"),
        ("POST", "/v1/me/real-name"),
        ("POST", "/v1/me/tier/upgrade"),
        ("PUT", "/v1/me/payment-pin"),
        ("POST", "/v1/me/payment-pin"),
        ("POST", "/v1/me/payment-pin/reset-code"),
        ("POST", "/v1/me/payment-pin/reset"),
        ("GET", "/v1/wallet"),
        ("GET", "/v1/wallet/cards"),
        ("POST", "/v1/wallet/cards"),
        ("POST", "/v1/wallet/topups"),
        ("GET", "/v1/wallet/withdrawals/quote"),
        ("POST", "/v1/wallet/withdrawals"),
        ("POST", "/v1/wallet/transfers"),
        ("POST", "/v1/wallet/splits"),
        ("GET", "/v1/wallet/splits"),
        ("GET", "/v1/wallet/transactions"),
    }
)

# Route → the kinds of the owner's ids to try in its path parameter (see `World.ids`).
OWNED: dict[Route, tuple[str, ...]] = {
    ("GET", "/v1/wallet/cards/{card_id}"): ("card", "funding"),
    ("DELETE", "/v1/wallet/cards/{card_id}"): ("card",),
    ("GET", "/v1/wallet/topups/{topup_id}"): ("funding", "transaction"),
    ("GET", "/v1/wallet/withdrawals/{withdrawal_id}"): ("funding", "transaction"),
    ("GET", "/v1/wallet/transactions/{transaction_id}"): ("transaction", "funding"),
    ("GET", "/v1/wallet/splits/{split_id}"): ("split",),
    ("POST", "/v1/wallet/splits/{split_id}/pay"): ("split",),
    ("POST", "/v1/wallet/splits/{split_id}/remind"): ("split",),
    ("POST", "/v1/wallet/splits/{split_id}/cancel"): ("split",),
    ("DELETE", "/v1/me/sessions/{session_id}"): ("session",),
}

# Money-moving POSTs: they need an Idempotency-Key (sent on every call here).
MONEY: frozenset[Route] = frozenset(
    {
        ("POST", "/v1/wallet/topups"),
        ("POST", "/v1/wallet/withdrawals"),
        ("POST", "/v1/wallet/transfers"),
        ("POST", "/v1/wallet/splits/{split_id}/pay"),
    }
)

PARAM = re.compile(r"\{[^}]+\}")


@pytest.fixture
def runtime(db: Database, tmp_path: Path) -> Runtime:
    """A runtime whose sandbox bank answers at once (as in test_wallet_api.py)."""
    settings = wallet_settings(tmp_path, db, bank_timeout_seconds=0.05)
    return Runtime(settings, db, test_encryptor())


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


def _json(response: Response) -> Any:
    assert response.status_code == 200, (response.request.method, response.url, response.text)
    return response.json()


@dataclass
class World:
    """Alice's real objects (and the people around her), made through the API."""

    alice: Person
    bob: Person  # signed in, verified, own card: the one who must not see Alice's things
    carol: Person  # Alice's counterparty
    second_token: str  # Alice's second session (a login), for the session route
    ids: dict[str, list[str]]

    def alice_state(self) -> dict[str, Any]:
        """Everything Alice (and Carol) can see of the objects; compared before and after."""
        alice, headers = self.alice, self.alice.headers
        state: dict[str, Any] = {
            "wallet": alice.wallet(),
            "carol_wallet": self.carol.wallet(),
            "cards": _json(alice.get("/v1/wallet/cards")),
            "splits": _json(alice.get("/v1/wallet/splits")),
            "history": _json(alice.get("/v1/wallet/transactions")),
            "me": _json(alice.get("/v1/me")),
        }
        for card_id in self.ids["card"]:
            state[card_id] = _json(alice.get(f"/v1/wallet/cards/{card_id}"))
        for funding_id in self.ids["funding"]:
            kind = "topups" if funding_id.startswith("top_") else "withdrawals"
            state[funding_id] = _json(alice.get(f"/v1/wallet/{kind}/{funding_id}"))
        for transaction_id in self.ids["transaction"]:
            receipt = _json(alice.get(f"/v1/wallet/transactions/{transaction_id}"))
            state[f"receipt {transaction_id}"] = receipt
        for split_id in self.ids["split"]:
            state[split_id] = _json(alice.get(f"/v1/wallet/splits/{split_id}"))
        # Sessions: ids only (last_seen_at moves with every request); both still work.
        sessions = _json(self.alice.client.get("/v1/me/sessions", headers=headers))["items"]
        state["sessions"] = sorted(s["id"] for s in sessions)
        second = {"Authorization": f"Bearer {self.second_token}"}
        state["second session works"] = alice.client.get("/v1/me", headers=second).status_code
        return state


def _build_world(client: TestClient) -> World:
    alice, bob, carol = Person(client, 1), Person(client, 2), Person(client, 3, card_ending=None)
    login = client.post("/v1/auth/login", json={"phone": alice.phone, "password": PASSWORD})
    assert login.status_code == 200, login.text
    second_token = login.json()["session"]["token"]

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

    history = _json(alice.get("/v1/wallet/transactions"))["items"]
    sessions = _json(alice.get("/v1/me/sessions"))["items"]
    ids = {
        "card": [alice.card_id],
        "funding": [topup["id"], withdrawal["id"]],
        "transaction": sorted({sent["id"], *(item["id"] for item in history)}),
        "split": [settled.json()["id"], still_open.json()["id"]],
        "session": sorted(s["id"] for s in sessions),
    }
    assert len(ids["session"]) == 2
    assert {i["kind"] for i in history} >= {"topup", "withdrawal", "transfer_out"}
    assert "split_collection" in {i["kind"] for i in history}
    return World(alice, bob, carol, second_token, ids)


def _call(
    client: TestClient,
    route: Route,
    url: str,
    headers: dict[str, str],
    body: dict[str, Any] | None = None,
) -> Response:
    method, _path = route
    headers = dict(headers)
    if route in MONEY:
        headers["Idempotency-Key"] = str(uuid.uuid4())
    json = None if method in {"GET", "DELETE"} else body
    response: Response = client.request(method, url, headers=headers, json=json)
    return response


# Well-formed bodies for the owned POST routes (so only ownership can refuse them).
OWNED_BODIES: dict[Route, dict[str, Any]] = {
    ("POST", "/v1/wallet/splits/{split_id}/pay"): {"pin": PIN},
    ("POST", "/v1/wallet/splits/{split_id}/cancel"): {"share_ids": []},
}


def _writes_last(route: Route) -> tuple[bool, str, str]:
    """Reads first, then the routes that change things (a wrong success shows in the state)."""
    return route[0] != "GET", route[1], route[0]


# --- the classification itself -----------------------------------------------------------


def test_every_route_is_classified(client: TestClient) -> None:
    """A new route fails here until it is put in PUBLIC, SESSION or OWNED (with a test)."""
    documented = _openapi_routes(client)
    classified = PUBLIC | SESSION | set(OWNED)
    assert not PUBLIC & SESSION
    assert not PUBLIC & set(OWNED)
    assert not SESSION & set(OWNED)
    assert documented - classified == set(), "unclassified routes: add them to the matrix"
    assert classified - documented == set(), "the matrix names routes that no longer exist"
    assert classified == documented
    # Every private route naming something in its path is an ownership route, and back.
    for route in documented - PUBLIC:
        assert (route in OWNED) == bool(PARAM.search(route[1])), route
    # Every money-moving route documents its Idempotency-Key.
    paths = client.get("/openapi.json").json()["paths"]
    for method, path in MONEY:
        names = [p["name"] for p in paths[path][method.lower()].get("parameters", [])]
        assert "Idempotency-Key" in names, (method, path)


def test_public_routes_answer_without_credentials(client: TestClient, runtime: Runtime) -> None:
    world = _build_world(client)
    receipt = _json(world.alice.get(f"/v1/wallet/transactions/{world.ids['funding'][0]}"))
    transfer_id = receipt["transfers"][0]["id"]
    calls: dict[Route, Response] = {
        ("GET", "/healthz"): client.get("/healthz"),
        ("GET", "/v1/ledger/public-key"): client.get("/v1/ledger/public-key"),
        ("GET", "/v1/ledger/transfers/{transfer_id}/proof"): client.get(
            f"/v1/ledger/transfers/{transfer_id}/proof"
        ),
        ("POST", "/v1/auth/sms-codes"): client.post("/v1/auth/sms-codes", json={}),
        ("POST", "/v1/auth/register"): client.post("/v1/auth/register", json={}),
        ("POST", "/v1/auth/login"): client.post("/v1/auth/login", json={}),
        ("POST", "/v1/auth/password-reset"): client.post("/v1/auth/password-reset", json={}),
        ("GET", "/v1/dev/sms"): client.get("/v1/dev/sms", params={"phone": world.bob.phone}),
    }
    assert set(calls) == PUBLIC
    for route, response in calls.items():
        assert response.status_code != 401, (route, response.text)
        assert response.status_code < 500, (route, response.text)
    assert calls[("GET", "/healthz")].status_code == 200
    assert calls[("GET", "/v1/ledger/public-key")].status_code == 200
    # Not sealed yet (409 not_sealed_yet) or sealed (200): either way no session is asked.
    assert calls[("GET", "/v1/ledger/transfers/{transfer_id}/proof")].status_code in {200, 409}
    for route in PUBLIC:
        if route[0] == "POST":
            _problem(calls[route], 422, "validation_failed")
    assert_ledger_clean(runtime.db)


def test_every_private_route_answers_401_without_credentials(
    client: TestClient, runtime: Runtime
) -> None:
    world = _build_world(client)
    before = world.alice_state()
    # Every route of the document that is not PUBLIC (a new one too, classified or not),
    # with Alice's real ids in the path, a plausible body and an Idempotency-Key.
    private = sorted(_openapi_routes(client) - PUBLIC)
    assert len(private) >= len(SESSION) + len(OWNED)
    first_id = {
        "card_id": world.ids["card"][0],
        "topup_id": world.ids["funding"][0],
        "withdrawal_id": world.ids["funding"][1],
        "transaction_id": world.ids["transaction"][0],
        "split_id": world.ids["split"][1],
        "session_id": world.ids["session"][0],
    }
    body = {"pin": PIN, "card_id": world.alice.card_id, "amount": 100, "to": world.carol.user_id}
    no_credentials: list[dict[str, str]] = [
        {},
        {"Authorization": "Bearer not-a-token"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": f"Bearer {world.alice.headers['Authorization'][7:]}x"},
    ]
    for route in private:
        url = PARAM.sub(lambda m: first_id.get(m.group()[1:-1], "x"), route[1])
        for headers in no_credentials:
            response = _call(client, route, url, headers, body)
            _problem(response, 401, "unauthorized")
    assert world.alice_state() == before
    assert_ledger_clean(runtime.db)


# --- another user's objects --------------------------------------------------------------


def test_another_users_objects_answer_404_on_every_owned_route(
    client: TestClient, runtime: Runtime
) -> None:
    world = _build_world(client)
    bob = world.bob
    before = world.alice_state()
    tried: dict[Route, int] = dict.fromkeys(OWNED, 0)
    failures: list[str] = []
    for route in sorted(OWNED, key=_writes_last):
        for kind in OWNED[route]:
            for object_id in world.ids[kind]:
                url = PARAM.sub(object_id, route[1])
                response = _call(client, route, url, bob.headers, OWNED_BODIES.get(route))
                tried[route] += 1
                ok = (
                    response.status_code == 404
                    and response.headers["content-type"].startswith("application/problem+json")
                    and str(response.json().get("code", "")).endswith("not_found")
                )
                if not ok:
                    failures.append(f"{route[0]} {url} → {response.status_code} {response.text}")
    assert failures == [], "another user's object did not answer 404:\n" + "\n".join(failures)
    assert all(tried.values()), tried

    # Alice's objects named in a body: Bob cannot move money with her card.
    for path in ("/v1/wallet/topups", "/v1/wallet/withdrawals"):
        response = bob.post(
            path, {"card_id": world.alice.card_id, "amount": 1 * YUAN, "pin": PIN}, key="x-" + path
        )
        _problem(response, 404, "card_not_found")

    # Bob's own lists show none of Alice's objects.
    alice_ids = {i for kind in ("card", "funding", "split") for i in world.ids[kind]}
    bob_cards = {c["id"] for c in _json(bob.get("/v1/wallet/cards"))["items"]}
    bob_splits = {s["id"] for s in _json(bob.get("/v1/wallet/splits"))["items"]}
    bob_history = {t["id"] for t in _json(bob.get("/v1/wallet/transactions"))["items"]}
    bob_sessions = {s["id"] for s in _json(bob.get("/v1/me/sessions"))["items"]}
    assert not (bob_cards | bob_splits | bob_history) & (alice_ids | set(world.ids["transaction"]))
    assert not bob_sessions & set(world.ids["session"])

    # Alice's objects are exactly as they were, and hers still work for her.
    assert world.alice_state() == before
    assert before["second session works"] == 200
    assert bob.wallet()["balance"] == 0
    assert_ledger_clean(runtime.db)
