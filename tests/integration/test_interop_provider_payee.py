"""The payee's side through the FSPIOP endpoints, on SQLite and PostgreSQL: terms for one of
our residents, a pending credit and the fulfilment for a prepare that keeps them, posting on
the switch's COMMITTED and voiding on 3303, duplicates and late messages changing nothing
twice, refused prepares crediting nothing, and settlement notices posted once."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from citywallet.api.app import create_app
from citywallet.interop import conditions
from citywallet.interop.messages import (
    Amount,
    ErrorCode,
    SettlementNotice,
    TransferFulfil,
    TransferPrepare,
    error,
)
from citywallet.interop.provider import service as interop
from citywallet.platform.db import Database
from citywallet.runtime import Runtime
from tests.interop_support import (
    ME,
    OTHER,
    FakeSwitch,
    connected_runtime,
    new_quote,
    outbox,
)
from tests.ledger_checks import assert_ledger_clean
from tests.wallet_support import Person, balance, count, platform_balance

INTEROP = "platform:interop_settlement"
BANK = "platform:bank_settlement"


@pytest.fixture
def fake() -> FakeSwitch:
    return FakeSwitch()


@pytest.fixture
def runtime(db: Database, tmp_path: Path, fake: FakeSwitch) -> Runtime:
    return connected_runtime(db, tmp_path, fake)


@pytest.fixture
def client(runtime: Runtime, fake: FakeSwitch) -> Iterator[TestClient]:
    with TestClient(create_app(runtime), raise_server_exceptions=False) as test_client:
        fake.client = test_client
        yield test_client


def _sent(db: Database, path: str) -> list[dict[str, Any]]:
    return [m for m in outbox(db) if m["path"] == path]


def _quote(fake: FakeSwitch, db: Database, phone: str, amount: int) -> tuple[str, dict[str, Any]]:
    quote_id = str(uuid.uuid4())
    assert fake.send("POST", "/quotes", new_quote(quote_id, amount, phone=phone)).status_code == 202
    [answer] = _sent(db, f"/quotes/{quote_id}")
    assert (answer["method"], answer["destination"]) == ("PUT", OTHER)
    return quote_id, answer["json"]


def _prepare(condition: str, amount: int, *, seconds: int = 30) -> TransferPrepare:
    return TransferPrepare(
        transfer_id=str(uuid.uuid4()), payer_fsp=OTHER, payee_fsp=ME,
        amount=Amount(amount=amount), ilp_condition=condition,
        expiration=datetime.now(UTC) + timedelta(seconds=seconds),
    )  # fmt: skip


def _committed(fulfilment: str) -> TransferFulfil:
    return TransferFulfil(
        fulfilment=fulfilment, completed_timestamp=datetime.now(UTC), transfer_state="COMMITTED"
    )


def test_payee_happy_path_credits_once(
    client: TestClient, runtime: Runtime, fake: FakeSwitch
) -> None:
    db = runtime.db
    bob = Person(client, 2, card_ending=None)
    quote_id, terms = _quote(fake, db, bob.phone, 8_800)
    assert terms["transferAmount"] == {"amount": 8_800, "currency": "CNY"}
    assert (terms["payerFee"]["amount"], terms["payeeFee"]["amount"]) == (0, 0)
    # A duplicate quote request gets the same terms and stores nothing new.
    fake.send("POST", "/quotes", new_quote(quote_id, 8_800, phone=bob.phone))
    assert [m["json"] for m in _sent(db, f"/quotes/{quote_id}")] == [terms, terms]
    assert count(db, "SELECT COUNT(*) FROM interop_payee_quotes") == 1

    prepare = _prepare(terms["ilpCondition"], 8_800)
    for _ in range(2):  # the prepare and a duplicate of it: credited once, answered twice
        assert fake.send("POST", "/transfers", prepare).status_code == 202
    fulfil, again = _sent(db, f"/transfers/{prepare.transfer_id}")
    assert again["json"]["fulfilment"] == fulfil["json"]["fulfilment"]
    assert (fulfil["method"], fulfil["destination"]) == ("PUT", OTHER)
    assert fulfil["json"]["transferState"] == "COMMITTED"
    assert conditions.matches(terms["ilpCondition"], fulfil["json"]["fulfilment"])
    assert balance(db, bob.user_id) == (0, 8_800, 0)  # pending until the switch commits
    line = bob.get("/v1/wallet/transactions").json()["items"][0]
    assert (line["kind"], line["status"], line["reference"]) == (
        "transfer_in", "processing", prepare.transfer_id,
    )  # fmt: skip

    commit = _committed(fulfil["json"]["fulfilment"])
    for _ in range(2):  # the switch's COMMITTED and a duplicate
        assert fake.send("PUT", f"/transfers/{prepare.transfer_id}", commit).status_code == 202
    late = error(ErrorCode.TRANSFER_EXPIRED)  # a late, contradictory message changes nothing
    assert fake.send("PUT", f"/transfers/{prepare.transfer_id}/error", late).status_code == 202
    fake.send("POST", "/transfers", prepare)  # once final, a duplicate prepare gets nothing
    assert len(_sent(db, f"/transfers/{prepare.transfer_id}")) == 2
    assert balance(db, bob.user_id) == (8_800, 0, 0)
    assert platform_balance(db, INTEROP) == -8_800  # the switch owes us
    line = bob.get("/v1/wallet/transactions").json()["items"][0]
    assert (line["kind"], line["status"], line["counterparty_label"]) == (
        "transfer_in", "succeeded", OTHER,
    )  # fmt: skip
    assert count(db, "SELECT COUNT(*) FROM ledger_transfers WHERE id LIKE '%.post'") == 1
    assert_ledger_clean(db)


def test_the_payees_line_names_the_paying_provider_as_the_switch_does(
    client: TestClient, runtime: Runtime, fake: FakeSwitch
) -> None:
    bob = Person(client, 2, card_ending=None)
    _, terms = _quote(fake, runtime.db, bob.phone, 1_200)
    prepare = _prepare(terms["ilpCondition"], 1_200).model_copy(
        update={"payer_fsp_name": "乙钱包 Provider B"}
    )
    assert fake.send("POST", "/transfers", prepare).status_code == 202
    line = bob.get("/v1/wallet/transactions").json()["items"][0]
    assert (line["kind"], line["reference"]) == ("transfer_in", prepare.transfer_id)
    assert line["counterparty_label"] == "乙钱包 Provider B"
    # without a name (an older switch) the participant id, as before
    _, terms = _quote(fake, runtime.db, bob.phone, 300)
    plain = _prepare(terms["ilpCondition"], 300)
    assert fake.send("POST", "/transfers", plain).status_code == 202
    line = bob.get("/v1/wallet/transactions").json()["items"][0]
    assert (line["reference"], line["counterparty_label"]) == (plain.transfer_id, OTHER)
    assert_ledger_clean(runtime.db)


def test_payee_expiry_voids_and_late_commit_changes_nothing(
    client: TestClient, runtime: Runtime, fake: FakeSwitch
) -> None:
    db = runtime.db
    bob = Person(client, 2, card_ending=None)
    _, terms = _quote(fake, db, bob.phone, 500)
    prepare = _prepare(terms["ilpCondition"], 500)
    fake.send("POST", "/transfers", prepare)
    [fulfil] = _sent(db, f"/transfers/{prepare.transfer_id}")
    fake.send("PUT", f"/transfers/{prepare.transfer_id}/error", error(ErrorCode.TRANSFER_EXPIRED))
    assert balance(db, bob.user_id) == (0, 0, 0)
    fake.send("PUT", f"/transfers/{prepare.transfer_id}", _committed(fulfil["json"]["fulfilment"]))
    assert balance(db, bob.user_id) == (0, 0, 0)
    assert platform_balance(db, INTEROP) == 0
    line = bob.get("/v1/wallet/transactions").json()["items"][0]
    assert line["status"] == "failed"
    assert_ledger_clean(db)


def test_payee_abort_voids(client: TestClient, runtime: Runtime, fake: FakeSwitch) -> None:
    db = runtime.db
    bob = Person(client, 2, card_ending=None)
    _, terms = _quote(fake, db, bob.phone, 700)
    prepare = _prepare(terms["ilpCondition"], 700)
    fake.send("POST", "/transfers", prepare)
    aborted = TransferFulfil(completed_timestamp=datetime.now(UTC), transfer_state="ABORTED")
    fake.send("PUT", f"/transfers/{prepare.transfer_id}", aborted)
    assert balance(db, bob.user_id) == (0, 0, 0)
    with db.uow(readonly=True) as uow:
        public_id = uow.session.execute(text("SELECT public_id FROM interop_transfers")).scalar()
        view = interop.get_transfer(uow, user_id=bob.user_id, transfer_id=str(public_id))
    assert view.state == "aborted"
    assert_ledger_clean(db)


def test_refused_prepares_credit_nothing(
    client: TestClient, runtime: Runtime, fake: FakeSwitch
) -> None:
    db = runtime.db
    bob = Person(client, 2, card_ending=None)
    _, terms = _quote(fake, db, bob.phone, 1_000)
    unknown = _prepare(conditions.condition_of(conditions.new_fulfilment()), 1_000)
    other_amount = _prepare(terms["ilpCondition"], 999)
    for prepare, code in ((unknown, "3205"), (other_amount, "3100")):
        fake.send("POST", "/transfers", prepare)
        [refusal] = _sent(db, f"/transfers/{prepare.transfer_id}/error")
        assert refusal["json"]["errorInformation"]["errorCode"] == code
        assert _sent(db, f"/transfers/{prepare.transfer_id}") == []
    # An expired quote: 3302.
    runtime.settings.interop_transfer_seconds = 0
    quote_id = str(uuid.uuid4())
    fake.send("POST", "/quotes", new_quote(quote_id, 300, phone=bob.phone))
    [late_terms] = _sent(db, f"/quotes/{quote_id}")
    late = _prepare(late_terms["json"]["ilpCondition"], 300)
    fake.send("POST", "/transfers", late)
    [refusal] = _sent(db, f"/transfers/{late.transfer_id}/error")
    assert refusal["json"]["errorInformation"]["errorCode"] == "3302"
    # A second transfer against a quote already used: 3100, one credit only.
    first = _prepare(terms["ilpCondition"], 1_000)
    second = _prepare(terms["ilpCondition"], 1_000)
    fake.send("POST", "/transfers", first)
    fake.send("POST", "/transfers", second)
    [refusal] = _sent(db, f"/transfers/{second.transfer_id}/error")
    assert refusal["json"]["errorInformation"]["errorCode"] == "3100"
    assert balance(db, bob.user_id) == (0, 1_000, 0)
    assert count(db, "SELECT COUNT(*) FROM interop_transfers") == 1
    assert_ledger_clean(db)


def test_quotes_for_unknown_or_unverified_residents_are_refused(
    client: TestClient, runtime: Runtime, fake: FakeSwitch
) -> None:
    db = runtime.db
    for phone, code in (("13900139999", "3204"), ("12345", "3204")):
        quote_id = str(uuid.uuid4())
        fake.send("POST", "/quotes", new_quote(quote_id, 100, phone=phone))
        [refusal] = _sent(db, f"/quotes/{quote_id}/error")
        assert refusal["json"]["errorInformation"]["errorCode"] == code
    carol = Person(client, 3, card_ending=None)
    closed = carol.post("/v1/wallet/close", {"pin": "502817"}, key="close")
    assert closed.status_code == 200, closed.text
    quote_id = str(uuid.uuid4())
    fake.send("POST", "/quotes", new_quote(quote_id, 100, phone=carol.phone))
    [refusal] = _sent(db, f"/quotes/{quote_id}/error")
    assert refusal["json"]["errorInformation"]["errorCode"] == "5103"
    assert count(db, "SELECT COUNT(*) FROM interop_payee_quotes") == 0


def test_settlement_posts_each_window_once(
    client: TestClient, runtime: Runtime, fake: FakeSwitch
) -> None:
    db = runtime.db
    bob = Person(client, 2, card_ending=None)
    _, terms = _quote(fake, db, bob.phone, 4_000)
    prepare = _prepare(terms["ilpCondition"], 4_000)
    fake.send("POST", "/transfers", prepare)
    [fulfil] = _sent(db, f"/transfers/{prepare.transfer_id}")
    fake.send("PUT", f"/transfers/{prepare.transfer_id}", _committed(fulfil["json"]["fulfilment"]))
    assert platform_balance(db, INTEROP) == -4_000
    window = str(uuid.uuid4())
    notice = SettlementNotice(
        window_id=window, net_amount=-4_000, transfer_count=1, closed_at=datetime.now(UTC)
    )
    for _ in range(2):
        assert fake.send("PUT", f"/settlementWindows/{window}", notice).status_code == 202
    assert platform_balance(db, INTEROP) == 0  # the switch paid what it owed
    assert platform_balance(db, BANK) == -4_000  # the money arrived at our bank
    assert count(db, "SELECT COUNT(*) FROM interop_settlement_windows") == 1
    empty = str(uuid.uuid4())
    zero = SettlementNotice(
        window_id=empty, net_amount=0, transfer_count=0, closed_at=datetime.now(UTC)
    )
    fake.send("PUT", f"/settlementWindows/{empty}", zero)
    assert count(db, "SELECT COUNT(*) FROM interop_settlement_windows") == 2
    mismatched = fake.send("PUT", f"/settlementWindows/{uuid.uuid4()}", notice)
    assert mismatched.status_code == 400
    assert_ledger_clean(db)
