"""Cross-provider pages on a deployment connected to a scripted switch (signed callbacks
from the switch's test key, as tests/integration/test_interop_provider_*.py drive it): the
transfer page shows the other provider's terms before the PIN and pays them once; the
history and receipt name the provider and the switch's transfer id; the operator's
interoperability page shows the position, transfers, windows and aliases."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from citywallet.api.app import create_app
from citywallet.interop.messages import (
    Amount,
    ErrorCode,
    SettlementNotice,
    TransferFulfil,
    TransferPrepare,
    error,
)
from citywallet.interop.provider import service as interop
from citywallet.interop.transport import Courier, Sender
from citywallet.platform.db import Database
from citywallet.runtime import Runtime
from citywallet.web.app import interop as interop_pages
from tests.interop_support import (
    ME,
    OTHER,
    FakeSwitch,
    eventually,
    interop_settings,
    new_quote,
    outbox,
)
from tests.ledger_checks import assert_ledger_clean, test_encryptor
from tests.wallet_support import PIN, balance, platform_balance, wallet_settings
from tests.web.test_app_account_pages import resident, sign_in
from tests.web.test_app_money_pages import key_of, top_up
from tests.web.test_operator_pages import sign_in_operator

FAR = "13700137001"  # held at provider-b
NOBODY = "13700137999"  # held nowhere
INTEROP = "platform:interop_settlement"
FORM = re.compile(r'name="(csrf_token|key|quote_id|note)" value="([^"]*)"')


@pytest.fixture
def fake() -> FakeSwitch:
    return FakeSwitch(directory={FAR: (OTHER, "*明")})


@pytest.fixture
def runtime(db: Database, tmp_path: Path, fake: FakeSwitch) -> Runtime:
    runtime = Runtime(interop_settings(tmp_path, db), db, test_encryptor())
    runtime.__dict__["interop_courier"] = Courier(
        db, Sender(runtime.interop_key, transport=fake.transport()), poll=0.05
    )
    return runtime


@pytest.fixture
def client(
    runtime: Runtime, fake: FakeSwitch, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    # Waits end when the answer is in; a generous bound keeps a loaded machine from failing.
    monkeypatch.setattr(interop_pages, "WAIT_SECONDS", 30.0)
    with TestClient(
        create_app(runtime), raise_server_exceptions=False, follow_redirects=False,
        headers={"Accept-Language": "en"},
    ) as test_client:  # fmt: skip
        fake.client = test_client
        yield test_client


def _terms(client: TestClient, to: str, yuan: str, note: str = "") -> tuple[int, str]:
    """Fill the transfer page (a wrong PIN there: it is not used) and get the terms page."""
    token, key = key_of(client, "/app/transfer")
    page = client.post(
        "/app/transfer",
        data={"to": to, "amount": yuan, "note": note, "pin": "000000", "key": key,
              "csrf_token": token},
    )  # fmt: skip
    return page.status_code, page.text


def _confirm(client: TestClient, terms: str, pin: str = PIN) -> dict[str, str]:
    form = dict(FORM.findall(terms))
    return {**form, "pin": pin}


def test_terms_before_the_pin_then_committed_once(
    client: TestClient, runtime: Runtime, fake: FakeSwitch
) -> None:
    alice = resident(runtime, 41)
    sign_in(client, alice)
    top_up(client, alice, "300")
    assert 'data-testid="interop-hint"' in client.get("/app/transfer").text
    status, terms = _terms(client, FAR, "88.80", note="lunch")
    assert status == 200, terms
    assert 'data-testid="interop-name">*明<' in terms
    assert f'data-testid="interop-provider">{OTHER}<' in terms
    assert 'data-testid="amount">¥88.80<' in terms
    assert 'data-testid="fee">¥0.00<' in terms
    assert 'data-testid="total">¥88.80<' in terms
    assert 'name="pin"' in terms
    # Nothing held yet: the terms page moved no money and asked nothing of the PIN.
    assert balance(runtime.db, alice.user_id) == (30_000, 0, 0)
    assert not [m for m in outbox(runtime.db) if m["path"] == "/transfers"]

    wrong = client.post("/app/transfer/interop", data=_confirm(client, terms, pin="111111"))
    assert wrong.status_code == 403
    assert 'id="e-pin"' in wrong.text
    assert balance(runtime.db, alice.user_id) == (30_000, 0, 0)

    form = _confirm(client, terms)
    paid = client.post("/app/transfer/interop", data=form)
    assert paid.status_code == 303, paid.text
    receipt_url = paid.headers["location"]
    assert receipt_url.startswith("/app/history/itf_")
    again = client.post("/app/transfer/interop", data=form)  # a double submit: the same receipt
    assert again.headers["location"].split("?")[0] == receipt_url.split("?")[0]
    assert balance(runtime.db, alice.user_id) == (30_000 - 8_880, 0, 0)
    assert platform_balance(runtime.db, INTEROP) == 8_880  # owed to the switch
    prepares = [m for m in outbox(runtime.db) if m["path"] == "/transfers"]
    assert len(prepares) == 1
    switch_id = prepares[0]["json"]["transferId"]

    receipt = client.get(receipt_url)
    assert receipt.status_code == 200
    assert 'data-testid="receipt-status">Succeeded<' in receipt.text
    assert f'data-testid="receipt-provider">{OTHER}<' in receipt.text
    assert f'data-testid="receipt-switch-id">{switch_id}<' in receipt.text
    assert "lunch" in receipt.text
    history = client.get("/app/history")
    assert f"*明 ({OTHER})" in history.text
    assert switch_id in history.text
    assert_ledger_clean(runtime.db)


def test_refused_and_unknown_numbers(
    client: TestClient, runtime: Runtime, fake: FakeSwitch
) -> None:
    alice = resident(runtime, 42)
    sign_in(client, alice)
    top_up(client, alice, "100")
    status, page = _terms(client, NOBODY, "10")
    assert status == 404
    assert 'id="e-to"' in page
    assert 'data-code="party_not_found"' in page

    fake.on_prepare = "reject"
    status, terms = _terms(client, FAR, "12")
    assert status == 200
    refused = client.post("/app/transfer/interop", data=_confirm(client, terms))
    assert refused.status_code == 303
    receipt = client.get(refused.headers["location"])
    assert 'data-testid="receipt-error-code">5105<' in receipt.text
    assert balance(runtime.db, alice.user_id) == (10_000, 0, 0)  # the hold was voided
    # The same quote cannot be paid twice: back to the transfer form.
    reused = client.post("/app/transfer/interop", data={**_confirm(client, terms), "key": "r" * 20})
    assert reused.status_code == 409
    assert 'data-code="interop_quote_used"' in reused.text
    # Someone else's quote is not found.
    bob = resident(runtime, 43)
    sign_in(client, bob)
    token, _ = key_of(client, "/app/transfer")
    theirs = client.post(
        "/app/transfer/interop",
        data={**_confirm(client, terms), "key": "t" * 20, "csrf_token": token},
    )
    assert theirs.status_code == 404
    assert_ledger_clean(runtime.db)


def test_processing_until_the_switch_answers(
    client: TestClient, runtime: Runtime, fake: FakeSwitch, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = resident(runtime, 44)
    sign_in(client, alice)
    top_up(client, alice, "100")
    fake.on_prepare = "silent"
    _, terms = _terms(client, FAR, "20")
    monkeypatch.setattr(interop_pages, "WAIT_SECONDS", 0.2)  # the switch stays silent
    paid = client.post("/app/transfer/interop", data=_confirm(client, terms))
    assert paid.status_code == 303
    assert "has%20not%20answered%20yet" in paid.headers["location"]
    receipt = client.get(paid.headers["location"])
    assert 'data-testid="receipt-status">Processing<' in receipt.text
    assert balance(runtime.db, alice.user_id) == (10_000, 0, 2_000)  # held
    eventually(lambda: any(m[1] == "/transfers" for m in fake.seen))
    prepare = next(m[2] for m in fake.seen if m[1] == "/transfers")

    client.cookies.clear()
    sign_in_operator(client, runtime)
    page = client.get("/operator/interop")
    assert page.status_code == 200
    assert f'data-testid="participant-id">{ME}<' in page.text
    assert 'data-testid="count-PREPARED">1<' in page.text
    assert f'data-transfer="{prepare["transferId"]}"' in page.text
    assert 'data-testid="position-pending-out">¥20.00<' in page.text

    # The switch expires it: the money comes back, the console lists it with 3303.
    path = f"/transfers/{prepare['transferId']}/error"
    assert fake.send("PUT", path, error(ErrorCode.TRANSFER_EXPIRED)).status_code == 202
    assert balance(runtime.db, alice.user_id) == (10_000, 0, 0)
    page = client.get("/operator/interop")
    assert 'data-testid="count-EXPIRED">1<' in page.text
    assert 'data-testid="error-code">3303<' in page.text
    assert_ledger_clean(runtime.db)


def test_payee_receipt_and_the_console_after_settlement(
    client: TestClient, runtime: Runtime, fake: FakeSwitch
) -> None:
    bob = resident(runtime, 45)
    queued = interop.sync_aliases(
        runtime.db, settings=runtime.settings, encryptor=runtime.encryptor
    )
    assert queued == 1
    eventually(lambda: bob.phone in fake.aliases)
    quote_id = str(uuid.uuid4())
    assert (
        fake.send("POST", "/quotes", new_quote(quote_id, 5_000, phone=bob.phone)).status_code == 202
    )
    answer = next(m for m in outbox(runtime.db) if m["path"] == f"/quotes/{quote_id}")
    prepare = TransferPrepare(
        transfer_id=str(uuid.uuid4()), payer_fsp=OTHER, payee_fsp=ME,
        amount=Amount(amount=5_000), ilp_condition=answer["json"]["ilpCondition"],
        expiration=datetime.now(UTC) + timedelta(seconds=30),
    )  # fmt: skip
    assert fake.send("POST", "/transfers", prepare).status_code == 202
    fulfil = next(m for m in outbox(runtime.db) if m["path"] == f"/transfers/{prepare.transfer_id}")
    commit = TransferFulfil.model_validate_json(fulfil["body"])
    assert fake.send("PUT", f"/transfers/{prepare.transfer_id}", commit).status_code == 202
    assert balance(runtime.db, bob.user_id) == (5_000, 0, 0)

    sign_in(client, bob)
    history = client.get("/app/history")
    assert prepare.transfer_id in history.text
    line = re.search(r'href="(/app/history/itf_[^"]+)"', history.text)
    assert line
    receipt = client.get(line.group(1))
    assert f'data-testid="receipt-provider">{OTHER}<' in receipt.text
    assert f'data-testid="receipt-switch-id">{prepare.transfer_id}<' in receipt.text

    window = str(uuid.uuid4())
    notice = SettlementNotice(
        window_id=window, net_amount=-5_000, transfer_count=1, closed_at=datetime.now(UTC)
    )
    assert fake.send("PUT", f"/settlementWindows/{window}", notice).status_code == 202
    client.cookies.clear()
    sign_in_operator(client, runtime)
    page = client.get("/operator/interop")
    assert f'data-window="{window}"' in page.text
    assert 'data-testid="aliases-registered">1<' in page.text
    assert 'data-testid="position">¥0.00<' in page.text  # settled: nothing owed either way
    with runtime.db.uow(readonly=True) as uow:
        view = interop.overview(uow, settings=runtime.settings)
    assert view.counts["COMMITTED"] == 1
    assert view.position is not None
    assert view.position.owed_to_switch == 0
    assert_ledger_clean(runtime.db)


def test_not_connected_deployment(db: Database, tmp_path: Path) -> None:
    runtime = Runtime(wallet_settings(tmp_path, db), db, test_encryptor())
    with TestClient(
        create_app(runtime), raise_server_exceptions=False, follow_redirects=False,
        headers={"Accept-Language": "en"},
    ) as client:  # fmt: skip
        operator = sign_in_operator(client, runtime)
        page = client.get("/operator/interop")
        assert page.status_code == 200
        assert 'data-testid="not-connected"' in page.text
        assert 'data-testid="position">¥0.00<' in page.text
        assert 'href="/operator/interop"' in page.text  # in the navigation
        form = client.get("/app/transfer")
        assert 'data-testid="interop-hint"' not in form.text
        token, key = key_of(client, "/app/transfer")
        refused = client.post(
            "/app/transfer/interop",
            data={"quote_id": "iqt_x", "key": key, "pin": PIN, "csrf_token": token},
        )
        assert refused.status_code == 503
        assert 'data-code="interop_not_configured"' in refused.text
        # A number nobody holds is still the wallet's own refusal.
        nobody = client.post(
            "/app/transfer",
            data={"to": NOBODY, "amount": "1", "pin": PIN, "key": key, "csrf_token": token},
        )
        assert nobody.status_code == 404
        assert 'data-code="recipient_not_found"' in nobody.text
        assert balance(runtime.db, operator.user_id) == (0, 0, 0)


def test_a_refused_quote_shows_on_the_number(
    client: TestClient, runtime: Runtime, fake: FakeSwitch, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(body: dict[str, object]) -> None:
        refusal = error(ErrorCode.PAYEE_FSP_REJECTED_QUOTE)
        fake.send("PUT", f"/quotes/{body['quoteId']}/error", refusal)

    monkeypatch.setattr(fake, "_quote", refuse)
    alice = resident(runtime, 46)
    sign_in(client, alice)
    status, page = _terms(client, FAR, "5")
    assert status == 409
    assert 'id="e-to"' in page
    assert 'data-code="interop_quote_refused"' in page
    assert balance(runtime.db, alice.user_id) == (0, 0, 0)


def test_the_other_provider_is_shown_by_its_display_name(
    client: TestClient, runtime: Runtime, fake: FakeSwitch
) -> None:
    """The switch's registry names provider-b: the lookup and the terms carry the name, and
    the terms page, the receipt, the history line and the operator's page show it (with the
    participant id beside it)."""
    fake.names[OTHER] = "Provider B 钱包"
    alice = resident(runtime, 43)
    sign_in(client, alice)
    top_up(client, alice, "100")
    status, terms = _terms(client, FAR, "12.00")
    assert status == 200, terms
    assert 'data-testid="interop-provider">Provider B 钱包 <small' in terms
    paid = client.post("/app/transfer/interop", data=_confirm(client, terms))
    assert paid.status_code == 303, paid.text
    receipt = client.get(paid.headers["location"])
    assert 'data-testid="receipt-provider">Provider B 钱包 <small' in receipt.text
    assert f'data-testid="receipt-provider-id">{OTHER}<' in receipt.text
    assert "*明 (Provider B 钱包)" in receipt.text
    assert "*明 (Provider B 钱包)" in client.get("/app/history").text
    # A refused one lists on the operator's page under the name too.
    fake.on_prepare = "reject"
    status, terms = _terms(client, FAR, "5.00")
    assert client.post("/app/transfer/interop", data=_confirm(client, terms)).status_code == 303
    with runtime.db.uow(readonly=True) as uow:
        (line,) = interop.overview(uow, settings=runtime.settings).failed
    assert (line.counterparty_fsp, line.counterparty_fsp_name) == (OTHER, "Provider B 钱包")
    client.cookies.clear()
    sign_in_operator(client, runtime)
    page = client.get("/operator/interop")
    assert page.status_code == 200
    assert f'Provider B 钱包 <small class="muted mono">{OTHER}</small>' in page.text
    assert balance(runtime.db, alice.user_id) == (10_000 - 1_200, 0, 0)
    assert_ledger_clean(runtime.db)
