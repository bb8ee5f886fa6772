"""The residents' wallet in a real browser: pay a merchant by uploading a photo of its
printed QR and confirming with the PIN; send a lucky red packet to a group that two others
open (with the animation and the best-luck mark); register for a campaign, get drawn, check
the draw in the browser (WebCrypto HMAC), and spend the campaign red packet at an eligible
merchant by scanning its QR."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any, cast

import httpx2
import zxingcpp
from PIL import Image
from playwright.sync_api import Browser, Page, expect

from citywallet.campaign import service as campaigns
from citywallet.campaign.rules import Eligibility
from citywallet.platform.clock import now_us
from citywallet.wallet import restricted
from citywallet.wallet.bank import sandbox_card_number
from tests.e2e.conftest import Shots, Site, new_context
from tests.identity_support import PASSWORD
from tests.ledger_checks import assert_ledger_clean
from tests.merchant_support import ShopOwner
from tests.redpacket_support import funded_resident
from tests.wallet_support import PIN, Resident, balance, sandbox_bank

SECOND = 1_000_000
# A camera and a QR detector for a browser without them: a canvas stream, and a detector
# that "sees" the merchant's code once the video plays.
CAMERA = """
(() => {
  const canvas = document.createElement("canvas");
  canvas.width = 64; canvas.height = 64;
  const stream = () => {
    canvas.getContext("2d").fillRect(0, 0, 8, 8);
    return canvas.captureStream(5);
  };
  Object.defineProperty(navigator, "mediaDevices", {
    value: { getUserMedia: () => Promise.resolve(stream()) }, configurable: true });
  window.BarcodeDetector = class {
    static getSupportedFormats() { return Promise.resolve(["qr_code"]); }
    constructor(options) { this.formats = options.formats; }
    detect(video) { return Promise.resolve(video.readyState >= 2 ? [{ rawValue: PAYLOAD }] : []); }
  };
})();
"""


def log_in(page: Page, site: Site, who: Resident, target: str) -> None:
    page.goto(f"{site.url}/login?next={target}")
    page.get_by_label("手机号").fill(who.phone)
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    page.wait_for_url(f"**{target}")


def shop(site: Site, n: int) -> tuple[ShopOwner, bytes]:
    """An approved merchant (through the API) and its printed static QR (PNG)."""
    client = httpx2.Client(base_url=site.url, timeout=30)
    owner = ShopOwner(cast(Any, client), site.runtime, n)
    png = owner.person.get(f"/v1/merchants/{owner.merchant_id}/stores/{owner.store_id}/code.png")
    assert png.status_code == 200, png.text
    return owner, png.content


def scan_and_pay(page: Page, site: Site, qr: Path, amount: str, shots: Shots | None) -> None:
    """Upload the photo of the QR on the scan page, type the amount, confirm with the PIN."""
    page.goto(site.url + "/app/scan")
    expect(page.get_by_role("heading", name="扫码付款")).to_be_visible()
    if shots:
        shots(page, "scan")
    page.get_by_label("二维码照片").set_input_files(qr)
    page.get_by_role("button", name="识别二维码").click()
    page.wait_for_url("**/app/scan/preview?payload=*")
    expect(page.locator("[data-merchant]")).to_have_text("罗湖好味道餐厅")
    page.get_by_label("付款金额（元）").fill(amount)
    page.get_by_label("支付密码").fill(PIN)
    if shots:
        shots(page, "preview")
    page.get_by_role("button", name="付款", exact=True).click()
    page.wait_for_url("**/app/scan/paid/*")
    expect(page.locator("[data-status]")).to_have_attribute("data-status", "paid")


def test_pay_by_scanning_and_a_lucky_red_packet_for_a_group(
    site: Site, browser: Browser, phone: Page, shots: Shots, tmp_path: Path
) -> None:
    runtime = site.runtime
    _owner, png = shop(site, 1)
    payload = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))[0].text
    qr = tmp_path / "counter-qr.png"
    qr.write_bytes(png)
    bank = sandbox_bank()
    payer = funded_resident(site.db, runtime.settings, runtime.encryptor, bank, 2, 100_000)
    a = funded_resident(site.db, runtime.settings, runtime.encryptor, bank, 3, 0)
    b = funded_resident(site.db, runtime.settings, runtime.encryptor, bank, 4, 0)

    # pay the merchant by scanning (a photo of) its counter QR
    log_in(phone, site, payer, "/app/scan")
    scan_and_pay(phone, site, qr, "25.80", shots)
    expect(phone.locator("[data-amount]")).to_have_text("¥25.80")
    shots(phone, "paid")
    assert balance(site.db, payer.user_id)[0] == 100_000 - 2_580

    # no BarcodeDetector in this chromium: the camera button all the same (the ponyfill is
    # loaded on demand: tests/e2e/test_scan_camera.py), beside the fallbacks
    phone.goto(site.url + "/app/scan")
    expect(phone.locator("[data-scan-camera]")).to_be_visible()
    # a browser that has one scans with it (a stand-in camera and detector here)
    scanner = new_context(browser, "phone")
    scanner.add_init_script(CAMERA.replace("PAYLOAD", json.dumps(payload)))
    camera = scanner.new_page()
    log_in(camera, site, payer, "/app/scan")
    camera.get_by_role("button", name="用摄像头扫码").click()
    camera.wait_for_url("**/app/scan/preview?payload=*")
    expect(camera.locator("[data-merchant]")).to_have_text("罗湖好味道餐厅")
    scanner.close()

    # the payment code: turned on once, then a barcode and a QR with a countdown
    phone.goto(site.url + "/app/paycode")
    phone.get_by_role("button", name="开通付款码").click()
    phone.wait_for_url("**/app/paycode?done=*")
    code = phone.locator("[data-code]").text_content() or ""
    assert code.isdigit()
    expect(phone.locator("[data-countdown]")).not_to_have_text("60", timeout=5_000)
    assert phone.locator("[data-qr]").evaluate("img => img.naturalWidth") > 0
    assert phone.locator("[data-barcode]").evaluate("img => img.naturalWidth") > 0
    shots(phone, "paycode")

    # a group, then a lucky red packet of 2 shares
    phone.goto(site.url + "/app/redpackets/groups")
    phone.get_by_label("群名称", exact=True).fill("家人群")
    phone.get_by_label("成员手机号").fill(f"{a.phone}\n{b.phone}")
    phone.get_by_role("button", name="创建").click()
    phone.wait_for_url("**/app/redpackets/groups/*")
    expect(phone.locator("[data-member]")).to_have_count(3)
    shots(phone, "group")
    phone.get_by_role("link", name="在本群发红包").click()
    expect(phone.get_by_label("群", exact=True)).to_be_visible()
    phone.get_by_label("拼手气红包").check()
    phone.get_by_label("红包个数").fill("2")
    phone.get_by_label("总金额（元）").fill("20.00")
    phone.get_by_label("祝福语").fill("新年快乐")
    phone.get_by_label("支付密码").fill(PIN)
    shots(phone, "send")
    phone.get_by_role("button", name="塞钱进红包").click()
    phone.wait_for_url("**/app/redpackets/rpk_*")
    packet_url = phone.url.split("?")[0]
    assert balance(site.db, payer.user_id)[0] == 100_000 - 2_580 - 2_000

    for n, who in enumerate((a, b)):
        context = new_context(browser, "phone")
        page = context.new_page()
        log_in(page, site, who, "/app/redpackets")
        page.locator("[data-packet] a").first.click()
        page.wait_for_url(packet_url)
        page.get_by_role("button", name="開").click()
        page.wait_for_url("**?opened=1")
        expect(page.locator(".envelope-open [data-my-share]")).to_be_visible()
        if n == 0:
            shots(page, "opened")
        context.close()

    phone.goto(packet_url)
    expect(phone.locator("[data-claim]")).to_have_count(2)
    expect(phone.locator("[data-best-luck]")).to_have_count(1)
    expect(phone.locator("[data-status]")).to_have_attribute("data-status", "finished")
    shots(phone, "details")
    assert balance(site.db, a.user_id)[0] + balance(site.db, b.user_id)[0] == 2_000
    assert_ledger_clean(site.db)


def test_register_get_drawn_verify_and_spend_the_campaign_red_packet(
    site: Site, phone: Page, shots: Shots, tmp_path: Path
) -> None:
    runtime, enc = site.runtime, site.runtime.encryptor
    owner, png = shop(site, 1)
    qr = tmp_path / "counter-qr.png"
    qr.write_bytes(png)
    winner = funded_resident(site.db, runtime.settings, enc, sandbox_bank(), 2, 10_000)
    t0 = now_us()
    closes = t0 + 20 * SECOND  # registration must be open now, spending starts after it
    spec = campaigns.CampaignSpec(
        name="罗湖区消费红包",
        funder_name="深圳市罗湖区人民政府",
        funder_bank_account=sandbox_card_number("0000", serial=9),
        budget=3_000,
        prizes=[(3_000, 1)],
        registration_opens_at=t0 - 3_600 * SECOND,
        registration_closes_at=closes,
        draw_at=closes,
        valid_from=closes,
        valid_until=closes + 7 * 86_400 * SECOND,
        eligibility=Eligibility(min_tier=1),
        merchant_ids=(owner.merchant_id,),
        min_spend=1_000,
    )
    cid = site.db.transact(
        lambda uow: campaigns.create_campaign(uow, spec=spec, actor="operator:e2e", encryptor=enc)
    ).id
    bank = sandbox_bank()
    assert campaigns.fund_campaign(site.db, campaign_id=cid, bank=bank, encryptor=enc) == "funded"
    site.db.transact(lambda uow: campaigns.open_registration(uow, campaign_id=cid, actor="op"))

    log_in(phone, site, winner, "/app/campaigns")
    phone.locator(f'[data-campaign="{cid}"] a').click()
    phone.wait_for_url(f"**/app/campaigns/{cid}")
    shots(phone, "campaign")
    phone.get_by_role("button", name="立即报名").click()
    phone.wait_for_url(f"**/app/campaigns/{cid}?done=*")
    expect(phone.locator("[data-result]")).to_have_attribute("data-result", "registered")

    # the operator closes, draws and issues once registration has closed
    while now_us() <= closes:
        time.sleep(0.5)
    site.db.transact(lambda uow: campaigns.close_registration(uow, campaign_id=cid, actor="op"))
    site.db.transact(lambda uow: campaigns.draw(uow, campaign_id=cid, actor="op", encryptor=enc))
    while site.db.transact(lambda uow: campaigns.issue_batch(uow, campaign_id=cid)):
        pass

    phone.goto(f"{site.url}/app/campaigns/{cid}")
    expect(phone.locator("[data-result]")).to_have_attribute("data-result", "won")
    expect(phone.locator("[data-position]")).to_contain_text("第 1 名")
    expect(phone.locator("[data-verify-ok]")).to_be_hidden()
    phone.get_by_role("button", name="在本浏览器中重新计算我的签号").click()
    expect(phone.locator("[data-verify-ok]")).to_be_visible()
    expect(phone.locator("[data-verify-bad]")).to_be_hidden()
    expected = phone.locator("[data-verify]").get_attribute("data-expected")
    expect(phone.locator("[data-verify]")).to_have_attribute("data-computed", expected or "-")
    shots(phone, "verified")
    draw_file = phone.request.get(f"{site.url}/app/campaigns/{cid}/draw.json")
    assert draw_file.ok
    assert draw_file.json()["campaign_id"] == cid

    phone.goto(site.url + "/app/campaigns")
    expect(phone.locator(f'[data-restricted="{cid}"] [data-available]')).to_have_text("¥30.00")
    expect(phone.locator(f'[data-place="{owner.merchant_id}"]')).to_be_visible()
    expect(phone.locator("[data-left]")).not_to_have_text("—")
    shots(phone, "balances")

    # spend it at the eligible merchant: scan, the preview shows what the packet covers
    phone.goto(site.url + "/app/scan")
    phone.get_by_label("二维码照片").set_input_files(qr)
    phone.get_by_role("button", name="识别二维码").click()
    phone.wait_for_url("**/app/scan/preview?payload=*")
    expect(phone.locator("[data-restricted]")).to_contain_text("¥30.00")
    phone.get_by_label("付款金额（元）").fill("45.00")
    phone.get_by_label("支付密码").fill(PIN)
    phone.get_by_role("button", name="付款", exact=True).click()
    phone.wait_for_url("**/app/scan/paid/*")
    expect(phone.locator("[data-restricted-paid]")).to_have_text("¥30.00")
    shots(phone, "spent")
    assert balance(site.db, winner.user_id)[0] == 10_000 - 1_500
    with site.db.uow(readonly=True) as uow:
        (held,) = restricted.balances_of(uow, user_id=winner.user_id)
    assert held.available == 0
    assert_ledger_clean(site.db)
