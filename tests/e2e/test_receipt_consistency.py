"""The receipt page holds the ledger to its past, in a real browser: it remembers the newest
checkpoint it verified (localStorage), checks each newer one with a consistency proof in
WebCrypto, and shows ✗ when the checkpoint it remembers is from another history (a fork)."""

from __future__ import annotations

import base64

from playwright.sync_api import Page, expect

from citywallet.ledger.blocks import seal_block
from citywallet.wallet import service as wallet
from tests.e2e.conftest import Site
from tests.e2e.test_app_pay_and_social import log_in
from tests.ledger_checks import assert_ledger_clean
from tests.wallet_support import PIN, Resident, make_resident, sandbox_bank

STORED = "citywallet.ledger.checkpoint"


def _top_up_and_seal(site: Site, who: Resident, amount: int) -> str:
    runtime = site.runtime
    funding = wallet.top_up(
        site.db,
        bank=sandbox_bank(),
        user_id=who.user_id,
        card_id=who.card_id or "",
        amount=amount,
        pin=PIN,
        encryptor=runtime.encryptor,
        settings=runtime.settings,
    )
    signer = runtime.ledger_signer()
    site.db.transact(lambda uow: seal_block(uow, signer))
    return funding.id


def _verify(page: Page) -> None:
    page.get_by_role("button", name="验证", exact=True).click()
    expect(page.locator("#verify-result")).to_have_attribute("data-state", "ok", timeout=20_000)


def test_receipt_page_checks_consistency_and_shows_a_fork(site: Site, phone: Page) -> None:
    runtime = site.runtime
    resident = make_resident(site.db, runtime.settings, runtime.encryptor, sandbox_bank(), 41)
    first = _top_up_and_seal(site, resident, 10_000)
    log_in(phone, site, resident, f"/app/history/{first}")
    consistency = phone.get_by_test_id("consistency-result")

    # First visit: the checkpoint is verified and remembered.
    _verify(phone)
    expect(consistency).to_have_attribute("data-state", "ok")
    expect(consistency).to_contain_text("已记住检查点")
    remembered = phone.evaluate(f"() => localStorage.getItem({STORED!r})")
    # The worker may have sealed the top-up's hold before its post: at least one leaf.
    first_size = int(remembered.split("\n")[1])
    assert first_size >= 1

    # The ledger grows: a newer receipt's checkpoint is checked against the remembered one.
    second = _top_up_and_seal(site, resident, 2_000)
    phone.goto(f"{site.url}/app/history/{second}")
    _verify(phone)
    expect(consistency).to_have_attribute("data-state", "ok")
    expect(consistency).to_contain_text("与本浏览器此前见过的账本历史一致")
    grown = phone.evaluate(f"() => localStorage.getItem({STORED!r})")
    assert int(grown.split("\n")[1]) > first_size

    # A remembered checkpoint of another history (same size, another root): a fork.
    lines = remembered.split("\n")
    lines[2] = base64.b64encode(b"\x07" * 32).decode()
    forged = "\n".join(lines)
    phone.evaluate(f"(note) => localStorage.setItem({STORED!r}, note)", forged)
    phone.reload()
    _verify(phone)  # the proofs themselves still verify
    expect(consistency).to_have_attribute("data-state", "bad", timeout=20_000)
    expect(consistency).to_contain_text("✗")
    expect(consistency).to_contain_text("分叉")
    # The evidence is kept: the page does not overwrite the checkpoint it remembered.
    assert phone.evaluate(f"() => localStorage.getItem({STORED!r})") == forged
    assert_ledger_clean(site.db)
