"""No phone number, ID number or card number is ever stored or logged in clear.

A full flow runs through the HTTP application (sign-up, real name, PIN, cards — including a
refused CVV and a declined and a timed-out bank call — top-up, P2P by phone, a split with
reminders delivered by SMS, withdrawal, unbinding); then every row of every table (both
databases), the sandbox bank's own store and everything logged are searched for the clear
values.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from fastapi.testclient import TestClient
from sqlalchemy import text

from citywallet.api.app import create_app
from citywallet.identity import codes
from citywallet.platform import outbox
from citywallet.platform.db import Database
from citywallet.platform.logging import configure_logging
from citywallet.runtime import Runtime
from citywallet.schema import metadata
from citywallet.wallet import service as wallet
from citywallet.wallet.bank import sandbox_card_number
from citywallet.wallet.notify import reminder_handler
from citywallet.wallet.transfers import REMINDER_TOPIC
from tests.ledger_checks import assert_ledger_clean, test_encryptor
from tests.wallet_support import PIN, Person, wallet_settings

YUAN = 100


def _dump_database(db: Database) -> str:
    """Every value of every row of every table, as text (bytes both raw and hex)."""
    parts: list[str] = []
    with db.uow(readonly=True) as uow:
        for table in metadata.sorted_tables:
            for row in uow.session.execute(text(f"SELECT * FROM {table.name}")):
                for value in row:
                    if isinstance(value, bytes | memoryview):
                        raw = bytes(value)
                        parts += [raw.decode("utf-8", "replace"), raw.hex()]
                    else:
                        parts.append(str(value))
    return "\n".join(parts)


def _dump_sqlite_file(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return "\n".join(
            str(value)
            for table in tables
            for row in conn.execute(f"SELECT * FROM {table}")
            for value in row
        )
    finally:
        conn.close()


def _forms(number: str) -> list[str]:
    """How a number could appear: as given, with spaces, and (phones) in E.164."""
    forms = [number, " ".join(number[i : i + 4] for i in range(0, len(number), 4))]
    if len(number) == 11:
        forms += [f"+86{number}", f"{number[:3]} {number[3:7]} {number[7:]}"]
    return forms


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Put the logging configuration back after the test: the test's own writes to a
    captured stream that is closed afterwards."""
    previous = structlog.get_config()
    yield
    structlog.configure(**previous)


@pytest.mark.usefixtures("restore_logging")
def test_no_clear_personal_numbers_at_rest_or_in_logs(
    db: Database, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    configure_logging(level="DEBUG")
    settings = wallet_settings(tmp_path, db, bank_timeout_seconds=0.05)
    runtime = Runtime(settings, db, test_encryptor())
    with TestClient(create_app(runtime), raise_server_exceptions=False) as client:
        alice, bob = Person(client, 1), Person(client, 2, card_ending="0002")
        carol = Person(client, 3, card_ending=None)
        slow = sandbox_card_number("0009", bin_="622848", serial=1)
        slow_card = alice.bind(slow)["id"]
        cvv = alice.post(
            "/v1/wallet/cards",
            {
                "card_number": sandbox_card_number("7777", serial=7),
                "phone": alice.phone,
                "cvv": "987",
            },
        )
        assert cvv.status_code == 422
        alice.money(
            "/v1/wallet/topups", {"card_id": alice.card_id, "amount": 500 * YUAN, "pin": PIN}
        )
        declined = bob.money(
            "/v1/wallet/topups", {"card_id": bob.card_id, "amount": 100, "pin": PIN}
        )
        assert declined["status"] == "failed"
        late = alice.money("/v1/wallet/topups", {"card_id": slow_card, "amount": 2_00, "pin": PIN})
        assert late["status"] == "unknown"
        wallet.reconcile_fundings(db, bank=runtime.bank, settings=settings)
        alice.money(
            "/v1/wallet/transfers", {"to": bob.phone, "amount": 10 * YUAN, "note": "hi", "pin": PIN}
        )
        wrong = alice.post(
            "/v1/wallet/transfers",
            {"to": carol.phone, "amount": 1, "pin": "000111"},
            key=str(uuid.uuid4()),
        )
        assert wrong.status_code == 403
        split = alice.post(
            "/v1/wallet/splits",
            {
                "total": 30 * YUAN,
                "shares": [{"to": bob.phone}, {"to": carol.phone}, {"to": alice.phone}],
            },
        ).json()
        bob.money(f"/v1/wallet/splits/{split['id']}/pay", {"pin": PIN})
        assert alice.post(f"/v1/wallet/splits/{split['id']}/remind").status_code == 202
        handlers = {
            **outbox.registered_handlers(),
            codes.SMS_TOPIC: codes.sms_outbox_handler(runtime.sms, runtime.encryptor),
            REMINDER_TOPIC: reminder_handler(db, runtime.sms, runtime.encryptor),
        }
        assert outbox.deliver_due(db, handlers=handlers) >= 1
        alice.money(
            "/v1/wallet/withdrawals", {"card_id": alice.card_id, "amount": 200 * YUAN, "pin": PIN}
        )
        assert (
            client.delete(f"/v1/wallet/cards/{slow_card}", headers=alice.headers).status_code == 200
        )
        assert alice.get("/v1/wallet/transactions").status_code == 200
    reminders = client.get("/v1/dev/sms", params={"phone": carol.phone})
    assert "AA" in reminders.json()["items"][0]["text"]

    stored = _dump_database(db) + "\n" + _dump_sqlite_file(tmp_path / "sandbox-bank.sqlite3")
    out, err = capfd.readouterr()
    logged = out + err
    assert "fundings reconciled" in logged  # the logs were captured
    assert "139****0001" in stored  # and the dump holds the rows (masked values are fine)
    assert alice.card_number[:6] in stored
    secrets = {
        "phone": [p.phone for p in (alice, bob, carol)],
        "ID number": [p.id_number for p in (alice, bob, carol)],
        "card number": [alice.card_number, bob.card_number, slow],
    }
    for kind, values in secrets.items():
        for value in values:
            for form in _forms(value):
                assert form not in stored, f"a {kind} is stored in clear"
                assert form not in logged, f"a {kind} was logged in clear"
    assert "cvv-value-731" not in stored + logged  # the refused CVV left no trace
    assert_ledger_clean(db)
