"""The switch names participants by their registry's display name, on SQLite and PostgreSQL:
in a party lookup's answer (``fspName``) and in the quote terms it forwards to the payer
(``payeeFspName``, whatever the payee's provider wrote there), and the payer's provider in
the prepare it forwards to the payee (``payerFspName``, whatever the payer wrote)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from citywallet.api.switch import create_switch_app
from citywallet.interop.conditions import condition_of, new_fulfilment
from citywallet.interop.messages import AliasRegistration, Amount, QuoteResponse
from citywallet.interop.switch import registry
from citywallet.platform.db import Database
from tests.integration.test_switch_api import QUOTE_ID, quote_request
from tests.switch_support import (
    KEYS,
    add_participants,
    call,
    new_prepare,
    outbox,
    public_b64,
    switch_runtime,
)


@pytest.fixture
def client(db: Database, tmp_path: Path) -> Iterator[TestClient]:
    add_participants(db)
    db.transact(
        lambda uow: registry.add_participant(
            uow, participant_id="provider-b", name="乙钱包 Provider B",
            public_key=public_b64(KEYS["provider-b"]),
            callback_url="http://provider-b.test/fspiop", cap=100_000,
        )
    )  # fmt: skip
    app = create_switch_app(switch_runtime(db, tmp_path), start_background=False)
    with TestClient(app, raise_server_exceptions=True) as test_client:
        yield test_client


def test_lookups_and_terms_name_the_payees_provider(client: TestClient, db: Database) -> None:
    path = "/participants/MSISDN/13900139000"
    registration = AliasRegistration(fsp_id="provider-b", masked_name="*小明")
    assert call(client, "POST", path, registration, source="provider-b").json() == {}
    assert call(client, "GET", "/parties/MSISDN/13900139000").status_code == 202
    found = outbox(db)[-1]
    assert found.body["party"]["fspName"] == "乙钱包 Provider B"

    assert call(client, "POST", "/quotes", quote_request(), destination="provider-b").status_code
    answer = QuoteResponse(
        transfer_amount=Amount(amount=10_000), payee_receive_amount=Amount(amount=10_000),
        payer_fee=Amount(amount=0), payee_fee=Amount(amount=0),
        expiration=datetime.now(UTC) + timedelta(minutes=1),
        ilp_condition=condition_of(new_fulfilment()),
        payee_fsp_name="Not what the switch calls me",
    )  # fmt: skip
    quote = f"/quotes/{QUOTE_ID}"
    call(client, "PUT", quote, answer, source="provider-b", destination="provider-a")
    back = outbox(db)[-1]
    assert (back.to, back.path) == ("provider-a", quote)
    assert back.body["payeeFspName"] == "乙钱包 Provider B"
    assert back.body["ilpCondition"] == answer.ilp_condition


def test_a_forwarded_prepare_names_the_payers_provider(client: TestClient, db: Database) -> None:
    prepare, _ = new_prepare(10_000)
    claimed = prepare.model_copy(update={"payer_fsp_name": "A name of my own choosing"})
    sent = call(client, "POST", "/transfers", claimed, destination="provider-b")
    assert sent.status_code == 202
    [forwarded] = [m for m in outbox(db) if (m.to, m.path) == ("provider-b", "/transfers")]
    assert forwarded.body["payerFspName"] == "PROVIDER-A"  # the registry's word, not the payer's
    assert forwarded.body["transferId"] == prepare.transfer_id
