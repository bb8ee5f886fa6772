"""FSPIOP error codes we do not list, on SQLite and PostgreSQL, against a scripted switch.

A peer's scheme-specific code (4 digits) is accepted and read by its category: a payee error
(5xxx) ends the payer's transfer at once (voided, the money back), a server error (2xxx)
leaves it to the sweep; a code that is not 4 digits is refused with 400 3101 and changes
nothing."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from citywallet.interop.messages import ErrorMessage
from citywallet.interop.provider import service as interop
from citywallet.runtime import Runtime
from tests.api.test_interop_api import FAR_PHONE, YUAN, _funded, client, fake, runtime
from tests.interop_support import FakeSwitch, signed
from tests.ledger_checks import assert_ledger_clean
from tests.wallet_support import PIN, balance

__all__ = ["client", "fake", "runtime"]  # the fixtures of test_interop_api, reused


def _silent_transfer(client: TestClient, fake: FakeSwitch, person_n: int) -> dict[str, str]:
    person = _funded(client, person_n, 100 * YUAN)
    fake.on_prepare = "silent"
    quote = person.post("/v1/interop/quotes", {"phone": FAR_PHONE, "amount": 30 * YUAN})
    assert quote.status_code == 201, quote.text
    sent = person.post(
        "/v1/interop/transfers", {"quote_id": quote.json()["quote_id"], "pin": PIN}, key="k"
    )
    assert sent.status_code in (201, 202), sent.text
    return {"user_id": person.user_id, **sent.json()}


def _error(code: str) -> ErrorMessage:
    body = {"errorInformation": {"errorCode": code, "errorDescription": "scheme-specific"}}
    return ErrorMessage.model_validate_json(json.dumps(body))


@pytest.mark.parametrize(("code", "final"), [("5999", True), ("4321", True), ("2999", False)])
def test_an_unknown_code_decides_by_its_category(
    client: TestClient, runtime: Runtime, fake: FakeSwitch, code: str, final: bool
) -> None:
    transfer = _silent_transfer(client, fake, 1)
    assert transfer["state"] == "processing"
    held = (100 * YUAN, 0, 30 * YUAN)
    assert balance(runtime.db, transfer["user_id"]) == held
    path = f"/transfers/{transfer['switch_transfer_id']}/error"
    assert fake.send("PUT", path, _error(code)).status_code == 202
    with runtime.db.uow(readonly=True) as uow:
        view = interop.get_transfer(uow, user_id=transfer["user_id"], transfer_id=transfer["id"])
    if final:  # the payee side refused: voided, the money is back, the code is kept
        assert (view.state, view.error_code) == ("aborted", code)
        assert balance(runtime.db, transfer["user_id"]) == (100 * YUAN, 0, 0)
    else:  # a server error: still the switch's to decide (the sweep asks later)
        assert (view.state, view.error_code) == ("processing", None)
        assert balance(runtime.db, transfer["user_id"]) == held
    assert_ledger_clean(runtime.db)


@pytest.mark.parametrize("code", ["59999", "59a9", "", "５９９９"])
def test_a_code_that_is_not_four_digits_is_refused_with_3101(
    client: TestClient, runtime: Runtime, fake: FakeSwitch, code: str
) -> None:
    transfer = _silent_transfer(client, fake, 1)
    path = f"/transfers/{transfer['switch_transfer_id']}/error"
    info = {"errorCode": code, "errorDescription": "x"}
    raw = json.dumps({"errorInformation": info}).encode()
    answer = client.put("/fspiop" + path, content=raw, headers=signed("PUT", path, raw))
    assert answer.status_code == 400, answer.text
    assert answer.json()["errorInformation"]["errorCode"] == "3101"
    assert balance(runtime.db, transfer["user_id"]) == (100 * YUAN, 0, 30 * YUAN)
    assert_ledger_clean(runtime.db)
