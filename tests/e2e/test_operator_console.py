"""The operator console in a real browser: an operator runs a campaign end to end (create
with a field error first, fund, open, residents register, close, draw, issue), reads the
dashboard and exports its CSV, freezes and unfreezes a resident with reasons, and finds all
of it in the audit log; then verifies the ledger."""

from __future__ import annotations

import csv
import io
import re
import time
from datetime import datetime

from playwright.sync_api import Page, expect

from citywallet.campaign import service as campaigns
from citywallet.identity import attributes, codes
from citywallet.identity import service as identity
from citywallet.identity.gateways import (
    SandboxIdentityVerifier,
    SandboxSmsGateway,
    sandbox_messages,
)
from citywallet.identity.rules import normalize_phone
from citywallet.platform.clock import now_us
from citywallet.wallet.bank import sandbox_card_number
from citywallet.web.templating import TIMEZONE
from tests.e2e.conftest import Shots, Site
from tests.identity_support import PASSWORD, resident_id
from tests.ledger_checks import assert_ledger_clean
from tests.wallet_support import Resident

WINDOW_SECONDS = 20


def local(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, TIMEZONE).strftime("%Y-%m-%dT%H:%M:%S")


def person(site: Site, n: int) -> Resident:
    """A verified resident, signed up while the site's worker runs: the worker may deliver
    the SMS code before we do, so the code is read from the sandbox outbox either way."""
    runtime = site.runtime
    db, settings, encryptor = runtime.db, runtime.settings, runtime.encryptor
    phone = f"1380013{n:04d}"
    sent = db.transact(
        lambda uow: identity.send_sms_code(
            uow, phone=phone, purpose="register", settings=settings, encryptor=encryptor
        )
    )
    assert sent.outbox_id is not None
    handler = codes.sms_outbox_handler(SandboxSmsGateway(db, encryptor), encryptor)
    codes.deliver_now(db, message_id=sent.outbox_id, handler=handler)  # or the worker did
    code = ""
    for _ in range(50):
        with db.uow(readonly=True) as uow:
            messages = sandbox_messages(uow, encryptor, phone=normalize_phone(phone), limit=1)
        if messages:
            code = messages[0].text
            break
        time.sleep(0.1)
    found = re.search(r"\d{6}", code)
    assert found is not None, f"no SMS to {phone}"
    login = identity.register(
        db, phone=phone, code=found.group(), password=PASSWORD,
        device=identity.Device(kind="bearer", name="e2e", ip="10.0.0.1"),
        settings=settings, encryptor=encryptor,
    )  # fmt: skip
    identity.verify_real_name(
        db, user_id=login.user.id, name="张伟",
        id_number=resident_id(sequence=f"{n % 900 + 1:03d}", birth="19900515"),
        verifier=SandboxIdentityVerifier(), settings=settings, encryptor=encryptor,
    )  # fmt: skip
    return Resident(login.user.id, phone, login.session.token, None, None, "张伟")


def sign_in(page: Page, site: Site, who: Resident) -> None:
    page.goto(site.url + "/login?next=/operator")
    page.get_by_label("手机号").fill(who.phone)
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    page.wait_for_url("**/operator")


def step(page: Page, name: str, flash: str) -> None:
    page.get_by_role("button", name=name, exact=True).click()
    expect(page.locator(".flash")).to_have_text(flash)


def test_an_operator_runs_a_campaign_and_freezes_a_resident(
    site: Site, desktop: Page, shots: Shots
) -> None:
    page = desktop
    page.on("dialog", lambda dialog: dialog.accept())  # the confirm() of risky steps
    operator = person(site, 90)
    site.db.transact(
        lambda uow: attributes.grant_operator(uow, user_id=operator.user_id, actor="e2e")
    )
    residents = [person(site, n) for n in range(3)]
    sign_in(page, site, operator)
    expect(page.get_by_role("heading", name="运营控制台")).to_be_visible()

    # create: the packets do not add up first, then they do
    page.get_by_role("link", name="消费券活动", exact=True).click()
    page.get_by_role("link", name="新建活动").click()
    closes = (now_us() // 1_000_000 + WINDOW_SECONDS) * 1_000_000
    page.locator("#f-name").fill("罗湖区消费红包")
    page.get_by_label("出资方", exact=True).fill("深圳市罗湖区人民政府")
    page.get_by_label("出资方银行账户").fill(sandbox_card_number("0000", serial=9))
    page.get_by_label("预算（元）").fill("500")
    page.get_by_label("红包金额（元） 1").fill("200")
    page.get_by_label("数量 1").fill("2")
    page.get_by_label("红包金额（元） 2").fill("66")
    page.get_by_label("数量 2").fill("1")
    page.get_by_label("报名开始").fill(local(closes - 3_600_000_000))
    page.get_by_label("报名截止").fill(local(closes))
    page.get_by_label("抽签时间").fill(local(closes))
    page.get_by_label("红包生效时间").fill(local(closes))
    page.get_by_label("红包失效时间").fill(local(closes + 86_400_000_000))
    shots(page, "campaign-form")
    page.get_by_role("button", name="创建活动").click()
    error = page.locator("#e-budget")
    expect(error).to_have_attribute("data-code", "budget_mismatch")
    expect(page.locator("#f-budget")).to_have_attribute("aria-invalid", "true")
    page.get_by_label("预算（元）").fill("466")
    page.get_by_role("button", name="创建活动").click()
    expect(page.locator(".flash")).to_have_text("活动已创建为草稿。")
    expect(page.locator("#campaign-status")).to_have_attribute("data-status", "draft")
    campaign_url = page.url.split("?")[0]
    cid = campaign_url.rsplit("/", 1)[1]

    step(page, "注资", "已发起注资。")
    expect(page.locator("#funding-status")).to_have_attribute("data-status", "funded")
    step(page, "开放报名", "报名已开放。")
    for resident in residents:
        site.db.transact(
            lambda uow, r=resident: campaigns.register(uow, campaign_id=cid, user_id=r.user_id)
        )
    page.reload()
    expect(page.locator("#fig-registrations")).to_have_text("3")
    page.goto(site.url + "/operator/campaigns")  # wait off the live page
    time.sleep(max(0.0, (closes - now_us()) / 1e6) + 0.2)
    page.get_by_role("link", name="罗湖区消费红包").click()
    step(page, "截止报名", "报名已截止，名单哈希已公布。")
    step(page, "抽签", "抽签完成，随机种子已公开。")
    step(page, "发放红包", "红包已发放。")
    expect(page.locator("#campaign-status")).to_have_attribute("data-status", "issued")
    expect(page.locator("#fig-winners")).to_have_text("3")
    expect(page.locator("#fig-issued")).to_have_text("¥466.00")
    expect(page.locator("#issued-count")).to_have_text("3")
    shots(page, "campaign-dashboard")
    with page.expect_download() as download:
        page.get_by_role("link", name="导出 CSV").click()
    path = download.value.path()
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    assert rows[0] == ["section", "key", "metric", "value"]
    assert ["summary", "", "issued_amount", "46600"] in rows
    assert ["summary", "", "registrations", "3"] in rows

    # freeze and unfreeze a resident, with reasons
    target = residents[0]
    page.get_by_role("link", name="居民").first.click()
    page.get_by_label("手机号、身份证号或用户编号").fill(target.phone)
    page.get_by_role("button", name="搜索").click()
    masked = target.phone[:3] + "****" + target.phone[-4:]
    page.get_by_role("link", name=masked).click()
    page.get_by_label("原因").fill("手机丢失，本人来电申请")
    page.get_by_role("button", name="冻结", exact=True).click()
    expect(page.locator(".flash")).to_have_text("账户已冻结。")
    with site.db.uow(readonly=True) as uow:
        assert identity.get_user(uow, user_id=target.user_id).status == "frozen"
    shots(page, "resident-frozen")
    page.get_by_label("原因").fill("本人持身份证核实")
    page.get_by_role("button", name="解冻", exact=True).click()
    expect(page.locator(".flash")).to_have_text("账户已解冻。")
    with site.db.uow(readonly=True) as uow:
        assert identity.get_user(uow, user_id=target.user_id).status == "active"

    # the audit log has both, and every campaign step
    page.get_by_role("link", name="审计日志").click()
    log = page.locator("table.operator-audit")
    expect(log.locator('tr[data-action="resident.freeze"]')).to_contain_text(
        "手机丢失，本人来电申请"
    )
    expect(log.locator('tr[data-action="resident.unfreeze"]')).to_contain_text("本人持身份证核实")
    for action in ("create", "fund", "open", "close", "draw", "issue"):
        expect(log.locator(f'tr[data-action="campaign.{action}"]').first).to_contain_text(cid)
    page.get_by_label("操作").select_option("resident.freeze")
    page.get_by_role("button", name="应用筛选").click()
    expect(page.locator("table.operator-audit tbody tr")).to_have_count(1)
    shots(page, "audit-log")

    # the ledger: verify now, and the campaign's funding with its proof
    page.get_by_role("link", name="账本").first.click()
    shots(page, "ledger")
    page.get_by_role("button", name="校验账本").click()
    expect(page.locator("#verify-result")).to_have_attribute("data-ok", "yes", timeout=30_000)
    page.goto(site.url + "/operator/ledger")
    page.get_by_label("转账编号").fill(f"{cid}.fund1")
    page.get_by_role("button", name="查询").click()
    status = page.locator("#proof-status")
    for _ in range(30):  # the worker seals every few seconds
        if status.get_attribute("data-status") == "valid":
            break
        time.sleep(0.5)
        page.reload()
    expect(status).to_have_attribute("data-status", "valid")
    shots(page, "transfer-proof")
    assert_ledger_clean(site.db)
