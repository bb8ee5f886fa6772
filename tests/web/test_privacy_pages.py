"""Chinese everywhere and privacy, over HTTP on SQLite and PostgreSQL: the legal documents,
consents in settings (given, withdrawn, audited), "download my data", the history and the
merchant statement as CSV for Excel (BOM, Chinese headers), cards as 工商银行(0000), MCCs as
categories, generated device names and ledger kinds in Chinese."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient

from citywallet.identity import consent
from citywallet.runtime import Runtime
from citywallet.wallet.bank import SandboxBank
from tests.ledger_checks import assert_ledger_clean
from tests.redpacket_support import funded_resident
from tests.wallet_support import sandbox_bank
from tests.web.test_app_account_pages import post, resident, sign_in
from tests.web.test_merchant_pages import open_shop, paid_order

BOM = b"\xef\xbb\xbf"


def _rows(body: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body.lstrip("\ufeff"), newline="")))


def test_the_documents_are_public_in_both_languages(client: TestClient) -> None:
    zh = client.get("/app/legal/privacy_policy")
    assert zh.status_code == 200
    assert "<h1>城市钱包隐私政策</h1>" in zh.text
    assert "<table>" in zh.text  # the purposes table is rendered
    assert 'data-version="1"' in zh.text
    en = client.get("/app/legal/service_agreement", headers={"Accept-Language": "en"})
    assert "<h1>CityWallet Service Agreement</h1>" in en.text
    assert client.get("/app/legal/nothing").status_code == 404
    assert client.get("/app/legal/privacy_policy?version=7").status_code == 404


def test_consents_are_given_and_withdrawn_in_settings(client: TestClient, runtime: Runtime) -> None:
    alice = resident(runtime, 1)
    sign_in(client, alice)
    me = client.get("/app/me")
    assert 'href="/app/me/privacy"' in me.text
    assert 'href="/app/me/data"' in me.text
    page = client.get("/app/me/privacy")
    assert page.status_code == 200
    assert 'data-purpose="offers" data-granted="no"' in page.text
    given = post(client, "/app/me/privacy/offers", {"granted": "1"}, "/app/me/privacy")
    assert given.status_code == 303
    shown = client.get(given.headers["location"])
    assert 'data-purpose="offers" data-granted="yes"' in shown.text
    assert "已记录您的授权。" in shown.text
    withdrawn = post(client, "/app/me/privacy/offers", {"granted": "0"}, "/app/me/privacy")
    assert withdrawn.status_code == 303
    refused = post(client, "/app/me/privacy/wallet", {"granted": "0"}, "/app/me/privacy")
    assert refused.status_code == 422
    assert 'data-code="consent_required"' in refused.text
    assert (
        post(client, "/app/me/privacy/other", {"granted": "1"}, "/app/me/privacy").status_code
        == 404
    )
    with runtime.db.uow(readonly=True) as uow:
        history = consent.consent_history(uow, user_id=alice.user_id)
    assert [(r.purpose, r.granted, r.source, r.privacy_version) for r in history] == [
        ("offers", True, "settings", "1"),
        ("offers", False, "settings", "1"),
    ]
    assert all(r.created_at > 0 for r in history)
    # without CSRF: refused, nothing recorded
    assert client.post("/app/me/privacy/offers", data={"granted": "1"}).status_code == 403


def test_my_data_downloads_hold_only_my_own_data(client: TestClient, runtime: Runtime) -> None:
    bank = sandbox_bank()
    alice = funded_resident(runtime.db, runtime.settings, runtime.encryptor, bank, 1, 30_000)
    bob = funded_resident(runtime.db, runtime.settings, runtime.encryptor, bank, 2, 12_300)
    sign_in(client, alice)
    page = client.get("/app/me/data")
    assert 'href="/app/me/data.csv?headers=zh"' in page.text
    got = client.get("/app/me/data.json")
    assert got.status_code == 200
    data = json.loads(got.text)
    assert data["profile"]["id"] == alice.user_id
    assert [t["amount"] for t in data["transactions"]] == [30_000]
    assert bob.user_id not in got.text
    assert alice.card_number
    assert alice.card_number not in got.text
    sheet = client.get("/app/me/data.csv?headers=zh")
    assert sheet.content.startswith(BOM)
    rows = _rows(sheet.text)
    assert rows[0] == ["个人资料"]
    assert ["交易记录"] in rows
    assert any(r[:2] == ["tier", str(data["profile"]["tier"])] for r in rows)
    english = _rows(client.get("/app/me/data.csv").text)
    assert ["Transactions"] in english
    client.cookies.clear()
    assert client.get("/app/me/data.json").status_code == 303  # to the log-in page
    assert_ledger_clean(runtime.db)


def test_history_and_statement_csv_for_excel_and_chinese_labels(
    client: TestClient, runtime: Runtime
) -> None:
    bank: SandboxBank = sandbox_bank()
    shop = open_shop(runtime, bank, 1)
    payer = funded_resident(runtime.db, runtime.settings, runtime.encryptor, bank, 2, 10_000)
    paid_order(runtime, shop, payer, 8_800, "ZH-0001")
    sign_in(client, payer)
    history = client.get("/app/history.csv?headers=zh")
    assert history.content.startswith(BOM)
    rows = _rows(history.text)
    assert rows[0][:3] == ["时间", "交易编号", "类型"]
    kinds = {r[2] for r in rows[1:]}
    assert "充值" in kinds, kinds
    assert any(r[4] == "88.00" and r[3] == "支出" for r in rows[1:]), rows
    last4 = payer.card_number[-4:]  # type: ignore[index]
    assert any(r[2] == "充值" and r[7] == f"工商银行({last4})" for r in rows[1:]), rows
    assert f"工商银行({last4})" in client.get("/app/history").text
    assert _rows(client.get("/app/history.csv").text)[0][:3] == ["Time", "Transaction id", "Kind"]
    # a card reads 工商银行(last four); the spending page names the merchant's category
    cards = client.get("/app/me/cards")
    assert f"工商银行({payer.card_number[-4:]})" in cards.text  # type: ignore[index]
    month = datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m")
    spent = client.get(f"/app/spending?month={month}")
    assert 'data-testid="merchant-category">餐厅<' in spent.text
    assert "餐饮" in spent.text
    devices = client.get(
        "/app/me/devices", headers={"User-Agent": "Mozilla/5.0 (Linux; Android 14)"}
    )
    assert "未知设备" in devices.text  # the test client's agent names no known device

    sign_in(client, shop.owner)
    overview = client.get("/merchant")
    assert "餐厅（5812） · 餐饮" in overview.text
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    statement = client.get(f"/merchant/statements/{today}.csv?headers=zh")
    assert statement.content.startswith(BOM)
    lines = _rows(statement.text)
    assert lines[0][:2] == ["时间", "类型"]
    assert lines[1][1:3] == ["收款", "ZH-0001"]
    plain = client.get(f"/merchant/statements/{today}.csv")
    assert plain.content.startswith(BOM)
    assert _rows(plain.text)[0][0] == "time"
    assert_ledger_clean(runtime.db)


def test_the_operator_console_reads_in_chinese(client: TestClient, runtime: Runtime) -> None:
    from tests.web.test_operator_pages import sign_in_operator

    bank = sandbox_bank()
    shop = open_shop(runtime, bank, 1)
    payer = funded_resident(runtime.db, runtime.settings, runtime.encryptor, bank, 2, 5_000)
    runtime.db.transact(
        lambda uow: consent.set_consent(
            uow, user_id=payer.user_id, purpose="offers", granted=True, source="settings"
        )
    )
    sign_in_operator(client, runtime)
    ledger_page = client.get("/operator/ledger")
    assert "居民钱包" in ledger_page.text
    assert "银行备付金" in ledger_page.text
    merchants = client.get("/operator/merchants?status=active")
    assert "餐厅（5812）" in merchants.text
    assert f"({shop.owner.card_number[-4:]})" in merchants.text  # type: ignore[index]
    detail = client.get(f"/operator/residents/{payer.user_id}")
    assert '<li data-kind="consent_given">同意授权' in detail.text
    assert "开户" in detail.text
