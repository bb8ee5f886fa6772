"""The residents' wallet, money pages: home (own and restricted balances apart), top-up,
withdrawal with its fee shown before the PIN, transfer, AA split, history with filters and
paging, receipts with the ledger proof, the spending overview."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient

from citywallet.ledger.blocks import seal_block
from citywallet.runtime import Runtime
from citywallet.wallet import service as wallet
from tests.integration.test_wallet_spending import open_merchant, pay
from tests.ledger_checks import assert_ledger_clean
from tests.wallet_support import PIN, Resident, balance
from tests.web.test_app_account_pages import post, resident, sign_in, token_of

KEY = re.compile(r'name="key" value="([^"]+)"')


def key_of(client: TestClient, path: str) -> tuple[str, str]:
    """(CSRF token, one-time key) of the money form on ``path``."""
    page = client.get(path)
    assert page.status_code == 200, page.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    key = KEY.search(page.text)
    assert token
    assert key
    return token.group(1), key.group(1)


def top_up(client: TestClient, who: Resident, yuan: str) -> str:
    token, key = key_of(client, "/app/topup")
    answer = client.post(
        "/app/topup",
        data={"amount": yuan, "card_id": who.card_id or "", "pin": PIN, "key": key,
              "csrf_token": token},
    )  # fmt: skip
    assert answer.status_code == 303, answer.text
    return answer.headers["location"]


def test_home_shows_balance_and_recent(client: TestClient, runtime: Runtime) -> None:
    who = resident(runtime, 31)
    sign_in(client, who)
    home = client.get("/app")
    assert home.status_code == 200
    assert 'data-testid="balance">¥0.00<' in home.text
    assert 'data-testid="restricted-none"' in home.text
    top_up(client, who, "1234.56")
    home = client.get("/app")
    assert 'data-testid="balance">¥1,234.56<' in home.text
    assert home.text.count('data-testid="tx"') == 1
    assert_ledger_clean(runtime.db)


def test_top_up_once_per_form_and_field_errors(client: TestClient, runtime: Runtime) -> None:
    who = resident(runtime, 32)
    sign_in(client, who)
    token, key = key_of(client, "/app/topup")
    form = {"amount": "100", "card_id": who.card_id or "", "pin": PIN, "key": key,
            "csrf_token": token}  # fmt: skip
    first = client.post("/app/topup", data=form)
    again = client.post("/app/topup", data=form)
    assert first.status_code == again.status_code == 303
    assert first.headers["location"].split("?")[0] == again.headers["location"].split("?")[0]
    assert balance(runtime.db, who.user_id)[0] == 10_000

    bad = client.post("/app/topup", data={**form, "key": "k" * 20, "amount": "12.345"})
    assert bad.status_code == 422
    assert 'id="e-amount"' in bad.text
    wrong_pin = client.post("/app/topup", data={**form, "key": "w" * 20, "pin": "111111"})
    assert wrong_pin.status_code == 403
    assert 'id="e-pin"' in wrong_pin.text
    no_csrf = client.post("/app/topup", data={**form, "csrf_token": "", "key": "z" * 20})
    assert no_csrf.status_code == 403
    assert balance(runtime.db, who.user_id)[0] == 10_000
    assert_ledger_clean(runtime.db)


def test_withdraw_shows_the_fee_before_the_pin(client: TestClient, runtime: Runtime) -> None:
    who = resident(runtime, 33)
    sign_in(client, who)
    top_up(client, who, "5000")
    step1 = client.get("/app/withdraw")
    assert 'action="/app/withdraw/confirm"' in step1.text
    bad = client.get("/app/withdraw/confirm", params={"amount": "abc", "card_id": who.card_id})
    assert bad.status_code == 422
    assert 'id="e-amount"' in bad.text
    confirm = client.get("/app/withdraw/confirm", params={"amount": "2000", "card_id": who.card_id})
    assert confirm.status_code == 200
    with runtime.db.uow(readonly=True) as uow:
        quote = wallet.quote_withdrawal(
            uow, user_id=who.user_id, amount=200_000, settings=runtime.settings
        )
    assert quote.fee > 0
    fee = f"¥{quote.fee / 100:,.2f}"
    assert f'data-testid="fee">{fee}<' in confirm.text
    assert f'data-testid="total">¥{quote.total / 100:,.2f}<' in confirm.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', confirm.text)
    key = KEY.search(confirm.text)
    assert token
    assert key
    form = {"amount": "2000.00", "card_id": who.card_id or "", "pin": PIN, "key": key.group(1),
            "csrf_token": token.group(1)}  # fmt: skip
    done = client.post("/app/withdraw", data=form)
    assert done.status_code == 303, done.text
    assert balance(runtime.db, who.user_id)[0] == 500_000 - quote.total
    twice = client.post("/app/withdraw", data=form)
    assert twice.status_code == 303
    assert balance(runtime.db, who.user_id)[0] == 500_000 - quote.total

    stranger = resident(runtime, 34)
    sign_in(client, stranger)
    theirs = client.get("/app/withdraw/confirm", params={"amount": "1", "card_id": who.card_id})
    assert theirs.status_code == 404
    assert_ledger_clean(runtime.db)


def _free_after(client: TestClient, who: Resident, yuan: str) -> str:
    """The free withdrawal quota the confirm page for ``yuan`` says is left after it."""
    page = client.get(
        "/app/withdraw/confirm",
        params={"amount": yuan, "card_id": who.card_id},
        headers={"Accept-Language": "en"},
    )
    assert page.status_code == 200, page.text
    text = re.sub(r"<[^>]+>", " ", page.text)
    found = re.search(r"Free withdrawals left after this:?\s*(¥[\d,.]+)", text)
    assert found, text
    return found.group(1)


def test_withdraw_confirm_shows_the_free_quota_left_after(
    client: TestClient, runtime: Runtime
) -> None:
    who = resident(runtime, 35)
    sign_in(client, who)
    top_up(client, who, "2000")
    assert _free_after(client, who, "1500") == "¥0.00"  # uses the whole ¥1,000 quota
    assert _free_after(client, who, "400") == "¥600.00"

    token, key = key_of(client, "/app/withdraw/confirm?amount=400&card_id=" + (who.card_id or ""))
    form = {"amount": "400.00", "card_id": who.card_id or "", "pin": PIN, "key": key,
            "csrf_token": token}  # fmt: skip
    assert client.post("/app/withdraw", data=form).status_code == 303
    # What the confirm page promised is what the wallet then has left.
    assert "¥600.00" in client.get("/app/withdraw").text
    assert _free_after(client, who, "400") == "¥200.00"
    assert_ledger_clean(runtime.db)


def test_transfer_by_phone_once(client: TestClient, runtime: Runtime) -> None:
    payer, payee = resident(runtime, 35), resident(runtime, 36)
    sign_in(client, payer)
    top_up(client, payer, "300")
    token, key = key_of(client, "/app/transfer")
    step1 = {"to": payee.phone, "amount": "120.50", "note": "dinner", "key": key,
             "csrf_token": token}  # fmt: skip
    confirm = client.post("/app/transfer", data={**step1, "pin": PIN})  # a PIN here: ignored
    assert confirm.status_code == 200, confirm.text
    assert 'action="/app/transfer/confirm"' in confirm.text
    assert balance(runtime.db, payee.user_id)[0] == 0  # step 1 moves nothing
    form = {"to": payee.user_id, "amount": "120.50", "note": "dinner", "pin": PIN, "key": key,
            "csrf_token": token}  # fmt: skip
    done = client.post("/app/transfer/confirm", data=form)
    assert done.status_code == 303, done.text
    again = client.post("/app/transfer/confirm", data=form)
    assert again.headers["location"] == done.headers["location"]
    assert balance(runtime.db, payer.user_id)[0] == 30_000 - 12_050
    assert balance(runtime.db, payee.user_id)[0] == 12_050
    receipt = client.get(done.headers["location"])
    assert receipt.status_code == 200
    assert "¥120.50" in receipt.text
    assert "dinner" in receipt.text

    token, key = key_of(client, "/app/transfer")
    broke = client.post(
        "/app/transfer/confirm", data={**form, "amount": "1000", "key": key, "csrf_token": token}
    )
    assert broke.status_code == 409
    assert 'id="e-amount"' in broke.text
    nobody = client.post(
        "/app/transfer", data={**step1, "to": "13900000000", "key": "n" * 20, "csrf_token": token}
    )
    assert nobody.status_code == 404
    assert 'id="e-to"' in nobody.text
    assert_ledger_clean(runtime.db)


def test_split_create_see_and_pay(client: TestClient, runtime: Runtime) -> None:
    creator, friend = resident(runtime, 37), resident(runtime, 38)
    sign_in(client, friend)
    top_up(client, friend, "100")
    sign_in(client, creator)
    bad = post(client, "/app/splits", {"total": "x", "people": friend.phone, "include_me": "1"})
    assert bad.status_code == 422
    assert 'id="e-total"' in bad.text
    made = post(
        client, "/app/splits",
        {"total": "90", "people": friend.phone, "include_me": "1", "note": "hotpot"},
    )  # fmt: skip
    assert made.status_code == 303, made.text
    split_path = made.headers["location"].split("?")[0]
    split_id = split_path.rsplit("/", 1)[1]

    sign_in(client, friend)
    listing = client.get("/app/splits")
    assert "hotpot" in listing.text
    assert split_id in listing.text
    page = client.get(split_path)
    assert "¥45.00" in page.text
    assert f"/app/splits/{split_id}/pay" in page.text
    token, key = key_of(client, split_path)
    wrong = client.post(
        f"{split_path}/pay", data={"pin": "111111", "key": key, "csrf_token": token}
    )
    assert wrong.status_code == 403
    assert 'id="e-pin"' in wrong.text
    paid = client.post(f"{split_path}/pay", data={"pin": PIN, "key": key, "csrf_token": token})
    assert paid.status_code == 303
    assert balance(runtime.db, friend.user_id)[0] == 10_000 - 4_500
    assert balance(runtime.db, creator.user_id)[0] == 4_500
    assert 'data-testid="collected">¥90.00<' in client.get(split_path).text

    stranger = resident(runtime, 39)
    sign_in(client, stranger)
    assert client.get(split_path).status_code == 404
    token = token_of(client, "/app/splits")
    refused = client.post(
        f"{split_path}/pay", data={"pin": PIN, "key": "s" * 20, "csrf_token": token}
    )
    assert refused.status_code == 404
    assert_ledger_clean(runtime.db)


def test_history_filters_paging_and_receipt_proof(client: TestClient, runtime: Runtime) -> None:
    payer, payee = resident(runtime, 40), resident(runtime, 41)
    sign_in(client, payer)
    for n in range(1, 23):
        top_up(client, payer, f"{n}")
    token, key = key_of(client, "/app/transfer")
    sent = client.post(
        "/app/transfer/confirm",
        data={"to": payee.user_id, "amount": "5", "note": "", "pin": PIN, "key": key,
              "csrf_token": token},
    )  # fmt: skip
    receipt_path = sent.headers["location"].split("?")[0]

    first = client.get("/app/history")
    assert first.text.count('data-testid="tx"') == 20
    older = re.search(r'rel="next" href="([^"]+)"', first.text)
    assert older is not None
    second = client.get(older.group(1).replace("&amp;", "&"))
    assert second.text.count('data-testid="tx"') == 3
    only_out = client.get("/app/history", params={"kind": "transfer_out"})
    assert only_out.text.count('data-testid="tx"') == 1
    failed = client.get("/app/history", params={"status": "failed"})
    assert 'data-testid="history-empty"' in failed.text
    old_month = client.get("/app/history", params={"month": "2020-01"})
    assert 'data-testid="history-empty"' in old_month.text
    bad_month = client.get("/app/history", params={"month": "20x0-1"})
    assert bad_month.status_code == 200
    assert 'id="e-month"' in bad_month.text

    unsealed = client.get(receipt_path)
    assert 'data-testid="not-sealed-note"' in unsealed.text
    assert 'id="verify-proof"' not in unsealed.text
    signer = runtime.ledger_signer()
    runtime.db.transact(lambda uow: seal_block(uow, signer))
    sealed = client.get(receipt_path)
    assert 'id="verify-proof"' in sealed.text
    assert 'id="receipt-proofs"' in sealed.text
    assert "/static/js/app-proof.js" in sealed.text
    assert "leaf_hash" in sealed.text
    assert "audit_path" in sealed.text

    sign_in(client, payee)  # the payee has their own line of the same transfer
    assert 'data-testid="receipt-amount">+¥5.00<' in client.get(receipt_path).text
    sign_in(client, resident(runtime, 44))
    assert client.get(receipt_path).status_code == 404
    assert_ledger_clean(runtime.db)


def test_spending_overview(client: TestClient, runtime: Runtime, tmp_path: Path) -> None:
    from citywallet.wallet.bank import SandboxBank  # noqa: F401  (the helper's bank type)
    from tests.wallet_support import sandbox_bank

    bank = sandbox_bank()
    db, settings, enc = runtime.db, runtime.settings, runtime.encryptor
    diner_pk, _ = open_merchant(db, settings, enc, bank, 42, "5812", "好味道", "Good Taste")
    buyer = resident(runtime, 43)
    sign_in(client, buyer)
    empty = client.get("/app/spending")
    assert 'data-testid="spending-empty"' in empty.text
    top_up(client, buyer, "200")
    pay(db, settings, enc, diner_pk, buyer.user_id, 3_250)
    page = client.get("/app/spending")
    assert page.status_code == 200
    assert 'data-testid="spent-total">¥32.50<' in page.text
    assert "<svg" in page.text
    assert 'class="bar' in page.text
    assert "好味道" in page.text
    assert page.text.count('data-testid="trend"') == 6
    english = client.get("/app/spending", headers={"Accept-Language": "en"})
    assert "Good Taste" in english.text
    assert "Dining" in english.text
    bad = client.get("/app/spending", params={"month": "nope"})
    assert bad.status_code == 200
    assert 'id="e-month"' in bad.text
    assert_ledger_clean(runtime.db)


def test_split_creator_reminds_and_cancels(client: TestClient, runtime: Runtime) -> None:
    creator, friend, other = resident(runtime, 45), resident(runtime, 46), resident(runtime, 47)
    sign_in(client, creator)
    people = f"{friend.phone} {other.phone}"
    made = post(client, "/app/splits", {"total": "60", "people": people, "note": "taxi"})
    assert made.status_code == 303, made.text
    split_path = made.headers["location"].split("?")[0]
    reminded = post(client, f"{split_path}/remind", {}, split_path)
    assert reminded.status_code == 303
    too_soon = post(client, f"{split_path}/remind", {}, split_path)
    assert too_soon.status_code == 429
    assert 'data-code="reminder_too_soon"' in too_soon.text

    sign_in(client, friend)  # a participant may not cancel
    refused = post(client, f"{split_path}/cancel", {}, split_path)
    assert refused.status_code >= 400
    assert "Cancel unpaid shares" not in client.get(split_path).text

    sign_in(client, creator)
    cancelled = post(client, f"{split_path}/cancel", {}, split_path)
    assert cancelled.status_code == 303
    page = client.get(split_path)
    assert page.text.count("已取消") == 2
