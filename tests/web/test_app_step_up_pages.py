"""Step-up on the transfer page: a PIN-only transfer above the threshold is refused with the
SMS code field shown, and nothing moves; with a ``step_up`` code texted to the payer's own
phone it goes through once. The PIN pad's hooks are on every PIN box."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from citywallet.api.app import create_app
from citywallet.identity.models import SandboxSms
from citywallet.platform.db import Database
from citywallet.runtime import Runtime
from tests.ledger_checks import assert_ledger_clean, test_encryptor
from tests.wallet_support import PIN, balance, wallet_settings
from tests.web.test_app_account_pages import resident, sign_in
from tests.web.test_app_money_pages import key_of, top_up

THRESHOLD = 100_00


@pytest.fixture
def runtime(db: Database, tmp_path: Path) -> Runtime:
    settings = wallet_settings(tmp_path, db, step_up_amount=THRESHOLD, sms_send_per_minute=10)
    return Runtime(settings, db, test_encryptor())


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(
        create_app(runtime), raise_server_exceptions=False, follow_redirects=False
    ) as test_client:
        yield test_client


def latest_code(runtime: Runtime) -> str:
    with runtime.db.uow(readonly=True) as uow:
        texts = [m.text for m in uow.session.query(SandboxSms).order_by(SandboxSms.id.desc())]
    found = re.search(r"\d{6}", texts[0])
    assert found
    return found.group()


def test_a_large_transfer_asks_for_an_sms_code_then_goes_through(
    client: TestClient, runtime: Runtime
) -> None:
    payer, payee = resident(runtime, 41), resident(runtime, 42)
    sign_in(client, payer)
    top_up(client, payer, "300")
    token, key = key_of(client, "/app/transfer")
    step_1 = {"to": payee.phone, "amount": "100.00", "key": key, "csrf_token": token}
    page = client.post("/app/transfer", data=step_1)  # the confirm step: name, then the PIN
    assert page.status_code == 200, page.text
    assert "data-pinpad" in page.text
    assert 'data-passkey-intent="transfer"' in page.text
    form = {"to": payee.user_id, "amount": "100.00", "pin": PIN, "key": key, "csrf_token": token}
    asked = client.post("/app/transfer/confirm", data=form)
    assert asked.status_code == 403, asked.text
    assert 'data-code="step_up_required"' in asked.text
    assert 'name="sms_code"' in asked.text
    assert balance(runtime.db, payer.user_id)[0] == 30_000

    sent = client.post("/v1/step-up/sms-codes", headers={"X-CSRF-Token": token})
    assert sent.status_code == 202, sent.text
    done = client.post("/app/transfer/confirm", data={**form, "sms_code": latest_code(runtime)})
    assert done.status_code == 303, done.text
    assert balance(runtime.db, payer.user_id)[0] == 30_000 - 10_000
    assert balance(runtime.db, payee.user_id)[0] == 10_000

    below = client.post(
        "/app/transfer/confirm",
        data={**form, "amount": "99.99", "key": key_of(client, "/app/transfer")[1]},
    )
    assert below.status_code == 303, below.text  # one fen below: the PIN alone
    assert balance(runtime.db, payer.user_id)[0] == 30_000 - 10_000 - 9_999
    assert_ledger_clean(runtime.db)
