"""Input that violates the OpenAPI schema is refused, and 405 says what is allowed (issue 12
item 5: ``date_to=0`` and ``"enabled": 0`` were accepted)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from pydantic import TypeAdapter, ValidationError

from citywallet.campaign.schemas import MAX_EPOCH_SECONDS, CampaignCreate, EligibilityIn, TimeIn
from citywallet.runtime import Runtime
from tests.ledger_checks import assert_ledger_clean
from tests.merchant_support import PIN
from tests.wallet_support import Person


def test_days_are_iso_dates_not_numbers(client: TestClient, runtime: Runtime) -> None:
    alice = Person(client, 1, card_ending=None)
    for bad in ("0", "1700000000", "2026-1-5", "20260105"):
        for name in ("date_from", "date_to"):
            answer = alice.get("/v1/wallet/transactions", **{name: bad})
            assert answer.status_code == 422, (name, bad, answer.text)
            assert answer.json()["code"] == "validation_failed"
    assert alice.get("/v1/wallet/transactions", date_to="2026-01-05").status_code == 200
    for edge in ("9999-12-31", "0001-01-01"):  # the last day had no next day: a 500
        answer = alice.get("/v1/wallet/transactions", date_from=edge, date_to=edge)
        assert answer.status_code == 200, (edge, answer.text)
    assert_ledger_clean(runtime.db)


def test_booleans_are_booleans(client: TestClient, runtime: Runtime) -> None:
    alice = Person(client, 1, card_ending=None)
    before = alice.get("/v1/paycode/prefs").json()
    for bad in (0, 1, "true", "0", None):
        body = {"enabled": bad, "per_payment": 100, "per_day": 1000, "pin": PIN}
        answer = alice.client.put("/v1/paycode/prefs", json=body, headers=alice.headers)
        assert answer.status_code == 422, (bad, answer.text)
    assert alice.get("/v1/paycode/prefs").json() == before
    body = {"enabled": False, "per_payment": 100, "per_day": 1000, "pin": PIN}
    answer = alice.client.put("/v1/paycode/prefs", json=body, headers=alice.headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["enabled"] is False
    assert_ledger_clean(runtime.db)


def test_a_method_not_allowed_names_the_allowed_ones(client: TestClient) -> None:
    answer = client.delete("/v1/auth/login")
    assert answer.status_code == 405
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["code"] == "method_not_allowed"
    assert answer.headers["allow"] == "POST"
    put = client.put("/v1/wallet/transactions")
    assert put.status_code == 405
    assert put.headers["allow"] == "GET"
    page = client.put("/login")  # the pages' error page keeps the header too
    assert page.status_code == 405
    assert page.headers["allow"] == "GET, POST"  # two routes: Starlette named only one
    pin = client.delete("/v1/me/payment-pin")
    assert (pin.status_code, pin.headers["allow"]) == (405, "POST, PUT")


def test_campaign_inputs_say_what_they_accept() -> None:
    """A tier is an integer, not ``true``; times are documented as both accepted spellings."""
    for bad in (True, "2", 2.0):
        with pytest.raises(ValidationError):
            EligibilityIn.model_validate({"min_tier": bad})
    assert EligibilityIn.model_validate({"min_tier": 2}).min_tier == 2
    schema = CampaignCreate.model_json_schema()["properties"]["draw_at"]
    assert {s["type"] for s in schema["anyOf"]} == {"string", "integer"}


def test_an_epoch_time_out_of_range_is_invalid_not_a_crash() -> None:
    """Found by schemathesis: ``"draw_at": 10**20`` overflowed the clock (a 500)."""
    adapter = TypeAdapter(TimeIn)
    for bad in (10**20, -(10**20), -1, MAX_EPOCH_SECONDS + 1):
        with pytest.raises(ValidationError):
            adapter.validate_python(bad)
    assert adapter.validate_python(MAX_EPOCH_SECONDS).year == 9999
