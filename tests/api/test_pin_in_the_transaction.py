"""Top-up, withdrawal, closing and the password-free limits check the payment PIN inside the
transaction that does the work, as payments do (issue 13): counted on SQLite and PostgreSQL
through the real HTTP API, a count, never a timing (tests/statement_count.py).

A top-up or withdrawal is two write transactions because the bank is called in between
(the key claimed with the PIN check and the holds, then the settlement with the stored
response); the PIN adds none. Closing is one, changing the limits one. A wrong PIN rolls
the (first) transaction back (no hold, no key, no change) and adds one small write
transaction that counts the try.
"""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient

from citywallet.platform.db import Database
from tests.ledger_checks import assert_ledger_clean
from tests.statement_count import counted
from tests.wallet_support import PIN, Person, count

FUNDINGS = "SELECT COUNT(*) FROM wallet_fundings"


def test_a_top_up_and_a_withdrawal_check_the_pin_in_their_first_transaction(
    client: TestClient, db: Database
) -> None:
    alice = Person(client, 1)
    for path, amount in [("/v1/wallet/topups", 50_00), ("/v1/wallet/withdrawals", 10_00)]:
        body = {"card_id": alice.card_id, "amount": amount, "pin": PIN}
        with counted(db) as tally:
            done = alice.post(path, body, key=str(uuid.uuid4()))
        assert done.status_code == 201, done.text
        assert done.json()["status"] == "succeeded"
        assert len(tally.write) == 2, [t.statements for t in tally.write]  # hold, settle

    fundings = count(db, FUNDINGS)
    for n, path in enumerate(["/v1/wallet/topups", "/v1/wallet/withdrawals"]):
        body = {"card_id": alice.card_id, "amount": 5_00, "pin": "000000"}
        with counted(db) as tally:
            refused = alice.post(path, body, key=str(uuid.uuid4()))
        assert refused.status_code == 403, refused.text
        assert refused.json()["code"] == "pin_incorrect"
        assert refused.json()["attempts_left"] == 4 - n
        _hold, counting = tally.write  # the hold (rolled back), then the count
        assert len(counting.statements) <= 3, counting.statements
    assert count(db, FUNDINGS) == fundings
    assert alice.wallet()["balance"] == 40_00  # within the free withdrawal quota: no fee
    assert_ledger_clean(db)


def test_closing_checks_the_pin_in_its_one_transaction(client: TestClient, db: Database) -> None:
    alice = Person(client, 2, card_ending=None)
    with counted(db) as tally:
        refused = alice.post("/v1/wallet/close", {"pin": "000000"}, key="c1")
    assert refused.status_code == 403, refused.text
    assert refused.json()["code"] == "pin_incorrect"
    _close, counting = tally.write
    assert len(counting.statements) <= 3, counting.statements

    with counted(db) as tally:
        closed = alice.post("/v1/wallet/close", {"pin": PIN}, key="c2")
    assert closed.status_code == 200, closed.text
    assert len(tally.write) == 1, [t.statements for t in tally.write]
    assert alice.get("/v1/wallet").status_code in (401, 403)
    assert_ledger_clean(db)


def test_changing_the_password_free_limits_checks_the_pin_in_its_one_transaction(
    client: TestClient, db: Database
) -> None:
    alice = Person(client, 3, card_ending=None)
    before = alice.get("/v1/paycode/prefs").json()
    body = {"enabled": True, "per_payment": 10_00, "per_day": 20_00}
    with counted(db) as tally:
        refused = alice.client.put(
            "/v1/paycode/prefs", json={**body, "pin": "000000"}, headers=alice.headers
        )
    assert refused.status_code == 403, refused.text
    assert refused.json()["code"] == "pin_incorrect"
    _change, counting = tally.write
    assert len(counting.statements) <= 3, counting.statements
    assert alice.get("/v1/paycode/prefs").json() == before

    with counted(db) as tally:
        changed = alice.client.put(
            "/v1/paycode/prefs", json={**body, "pin": PIN}, headers=alice.headers
        )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["per_payment"], changed.json()["per_day"]) == (10_00, 20_00)
    assert len(tally.write) == 1, [t.statements for t in tally.write]
