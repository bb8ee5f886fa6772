"""Dual control and the operators' second factor in a real browser: two operators sign in
with a password and a TOTP code (set up from the enrolment page), one proposes freezing a
resident on a desktop, the other approves it in a second browser context on a 375 px phone;
then the audit log is filtered by date and action and exported as CSV (UTF-8 with a BOM)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from citywallet.api.app import create_app
from citywallet.identity import attributes, totp_rules
from citywallet.identity import service as identity
from citywallet.platform.clock import now_us
from citywallet.platform.db import Database
from citywallet.runtime import Runtime
from citywallet.web.templating import TIMEZONE
from tests.e2e.conftest import Shots, Site, new_context
from tests.e2e.test_operator_console import person
from tests.identity_support import PASSWORD
from tests.ledger_checks import test_encryptor
from tests.redpacket_support import serve
from tests.wallet_support import Resident, wallet_settings


@pytest.fixture
def site(db: Database, tmp_path: Path) -> Iterator[Site]:
    """The app with dual control and the second factor on (the production defaults)."""
    settings = wallet_settings(
        tmp_path, db, worker_poll_seconds=0.2,
        operator_dual_control=True, operator_second_factor=True,
    )  # fmt: skip
    runtime = Runtime(settings, db, test_encryptor())
    with serve(create_app(runtime, start_worker=True)) as url:
        yield Site(url, runtime)


def sign_in_with_totp(page: Page, site: Site, who: Resident) -> None:
    """Password, then the authenticator's set-up and its first code."""
    page.goto(site.url + "/login?next=/operator")
    page.get_by_label("手机号").fill(who.phone)
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    page.wait_for_url("**/operator/second-factor**")
    expect(page.locator(".operator-qr svg")).to_be_visible()
    secret = page.locator("#totp-secret").inner_text().replace(" ", "")
    page.get_by_label("验证码").fill("000000" if _code(secret) != "000000" else "111111")
    page.get_by_role("button", name="继续").click()
    expect(page.locator('[data-code="totp_code_wrong"]')).to_be_visible()
    page.get_by_label("验证码").fill(_code(secret))
    page.get_by_role("button", name="继续").click()
    page.wait_for_url("**/operator")


def _code(secret: str) -> str:
    return totp_rules.code_at(secret, step=totp_rules.step_of(now_us() / 1e6))


def test_one_operator_proposes_another_approves_in_a_second_browser(
    site: Site, browser: Browser, shots: Shots
) -> None:
    alice, bob = person(site, 90), person(site, 91)
    for op in (alice, bob):
        site.db.transact(
            lambda uow, op=op: attributes.grant_operator(uow, user_id=op.user_id, actor="e2e")
        )
    target = person(site, 1)
    first = new_context(browser, "desktop")
    second = new_context(browser, "phone")
    try:
        page = first.new_page()
        sign_in_with_totp(page, site, alice)
        shots(page, "operator-home")
        page.goto(f"{site.url}/operator/residents/{target.user_id}")
        page.get_by_label("原因").fill("手机丢失，本人来电申请")
        page.on("dialog", lambda dialog: dialog.accept())
        page.get_by_role("button", name="冻结", exact=True).click()
        expect(page.locator(".flash")).to_have_text("已发起申请，需另一名运营人员批准后才会执行。")
        page.wait_for_url("**/operator/proposals/prp_*")
        expect(page.locator("#own-proposal")).to_be_visible()
        expect(page.get_by_role("button", name="通过")).to_have_count(0)
        shots(page, "proposal-by-its-proposer")
        with site.db.uow(readonly=True) as uow:
            assert identity.get_user(uow, user_id=target.user_id).status == "active"

        other = second.new_page()
        other.on("dialog", lambda dialog: dialog.accept())
        sign_in_with_totp(other, site, bob)
        other.get_by_role("link", name="复核").first.click()
        shots(other, "approvals-queue")
        other.get_by_role("link", name="冻结居民账户").click()
        other.get_by_role("button", name="通过").click()
        expect(other.locator(".flash")).to_have_text("已批准：操作已执行。")
        expect(other.locator("#proposal-state")).to_have_attribute("data-status", "approved")
        shots(other, "proposal-approved")
        with site.db.uow(readonly=True) as uow:
            assert identity.get_user(uow, user_id=target.user_id).status == "frozen"

        # the audit log: today's resident actions, both operators named, and the export
        today = datetime.now(TIMEZONE).date().isoformat()
        page.get_by_role("link", name="审计日志").click()
        page.get_by_label("起始日期").fill(today)
        page.get_by_label("截止日期（含当天）").fill(today)
        page.get_by_label("操作").select_option("resident.")
        page.get_by_role("button", name="应用筛选").click()
        rows = page.locator("table.operator-audit tbody tr")
        expect(rows).to_have_count(3)
        expect(rows.nth(0)).to_have_attribute("data-action", "resident.freeze")
        expect(rows.nth(0)).to_contain_text(bob.user_id)
        expect(rows.nth(2)).to_contain_text(alice.user_id)
        shots(page, "audit-filtered")
        with page.expect_download() as download:
            page.locator("#audit-export").click()
        data = Path(download.value.path()).read_bytes()
        assert data.startswith(b"\xef\xbb\xbf")
        table = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
        assert table[0][0] == "时间（北京）"
        assert [(r[4], r[2]) for r in table[1:]] == [
            ("resident.propose", alice.user_id),
            ("resident.approve", bob.user_id),
            ("resident.freeze", bob.user_id),
        ]
    finally:
        first.close()
        second.close()
