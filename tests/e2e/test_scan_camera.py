"""Scanning with the camera where the browser has no BarcodeDetector (iPhone Safari,
desktop Chromium): the scan page loads the barcode-detector ponyfill and its ZXing
WebAssembly reader from this server (``/vendor``, served from node_modules), reads the
merchant's QR from a real camera stream (Chromium's fake camera playing a Y4M video of the
QR made here with segno) and goes to the payment preview; the payment then goes through.
When the ponyfill cannot be loaded, one tap sends a frame to the server's reader."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import httpx2
import pytest
import segno
import zxingcpp
from PIL import Image
from playwright.sync_api import Browser, Page, Playwright, Route, expect

from tests.e2e.conftest import CHROMIUM, Shots, Site, new_context
from tests.e2e.test_app_pay_and_social import log_in, shop
from tests.ledger_checks import assert_ledger_clean
from tests.redpacket_support import funded_resident
from tests.wallet_support import PIN, balance, sandbox_bank

WIDTH, HEIGHT = 640, 480
NO_DETECTOR = "delete window.BarcodeDetector;"


def qr_video(payload: str, path: Path) -> Path:
    """A two-second Y4M video (I420, full range) of ``payload`` as a QR on white."""
    qr = segno.make(payload, error="m")
    buffer = io.BytesIO()
    qr.save(buffer, kind="png", scale=5, border=4)
    code = Image.open(buffer).convert("L")
    assert code.width <= WIDTH, "the code must fit in the frame"
    assert code.height <= HEIGHT, "the code must fit in the frame"
    frame = Image.new("L", (WIDTH, HEIGHT), 255)
    frame.paste(code, ((WIDTH - code.width) // 2, (HEIGHT - code.height) // 2))
    luma = frame.tobytes()
    chroma = bytes([128]) * ((WIDTH // 2) * (HEIGHT // 2))
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{WIDTH} H{HEIGHT} F10:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(20):
            out.write(b"FRAME\n" + luma + chroma + chroma)
    return path


@pytest.fixture
def camera_browser(
    playwright: Playwright, site: Site, tmp_path: Path
) -> Iterator[tuple[Browser, str]]:
    """A chromium whose camera films the first merchant's counter QR; and that payload."""
    _owner, png = shop(site, 1)
    payload = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))[0].text
    video = qr_video(payload, tmp_path / "counter-qr.y4m")
    browser = playwright.chromium.launch(
        executable_path=CHROMIUM,
        args=[
            "--no-sandbox",
            "--use-fake-device-for-media-stream",
            "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={video}",
        ],
    )
    yield browser, payload
    browser.close()


def scanner_page(browser: Browser, site: Site) -> Page:
    """A phone without BarcodeDetector, allowed to use the camera."""
    context = new_context(browser, "phone")
    context.grant_permissions(["camera"], origin=site.url)
    context.add_init_script(NO_DETECTOR)
    return context.new_page()


def test_camera_scan_with_the_ponyfill_from_our_server(
    site: Site, camera_browser: tuple[Browser, str], shots: Shots
) -> None:
    browser, _payload = camera_browser
    payer = funded_resident(
        site.db, site.runtime.settings, site.runtime.encryptor, sandbox_bank(), 2, 100_000
    )
    page = scanner_page(browser, site)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    log_in(page, site, payer, "/app/scan")
    assert page.evaluate("'BarcodeDetector' in window") is False
    shots(page, "scan")
    page.get_by_role("button", name="用摄像头扫码").click()
    page.wait_for_url("**/app/scan/preview?payload=*", timeout=30_000)
    expect(page.locator("[data-merchant]")).to_have_text("罗湖好味道餐厅")

    # the ponyfill and the reader came from this server, nothing from anywhere else
    assert f"{site.url}/vendor/barcode-detector/ponyfill.js" in requested
    assert f"{site.url}/vendor/zxing-wasm/zxing_reader.wasm" in requested
    assert all(url.startswith((site.url, "data:", "blob:")) for url in requested), requested

    # and the scanned code pays
    page.get_by_label("付款金额（元）").fill("12.30")
    page.get_by_label("支付密码").fill(PIN)
    page.get_by_role("button", name="付款", exact=True).click()
    page.wait_for_url("**/app/scan/paid/*")
    expect(page.locator("[data-status]")).to_have_attribute("data-status", "paid")
    assert balance(site.db, payer.user_id)[0] == 100_000 - 1_230
    assert_ledger_clean(site.db)
    page.context.close()


def test_without_the_ponyfill_a_frame_goes_to_the_server(
    site: Site, camera_browser: tuple[Browser, str]
) -> None:
    browser, payload = camera_browser
    payer = funded_resident(
        site.db, site.runtime.settings, site.runtime.encryptor, sandbox_bank(), 2, 0
    )
    page = scanner_page(browser, site)

    def unreachable(route: Route) -> None:
        route.abort()

    page.route("**/vendor/**", unreachable)
    log_in(page, site, payer, "/app/scan")
    page.get_by_role("button", name="用摄像头扫码").click()
    capture = page.get_by_role("button", name="拍照识别")
    expect(capture).to_be_visible()
    capture.click()
    page.wait_for_url("**/app/scan/preview?payload=*")
    expect(page.locator("[data-merchant]")).to_have_text("罗湖好味道餐厅")
    assert unquote(page.url.split("payload=", 1)[1]) == payload
    page.context.close()


def test_the_vendor_files_are_served_from_node_modules(site: Site) -> None:
    with httpx2.Client(base_url=site.url) as client:
        script = client.get("/vendor/barcode-detector/ponyfill.js")
        wasm = client.get("/vendor/zxing-wasm/zxing_reader.wasm")
        outside = client.get("/vendor/barcode-detector/../package.json")
        scan_csp = client.get("/app/scan").headers.get("content-security-policy", "")
        home_csp = client.get("/login").headers["content-security-policy"]
    assert script.status_code == 200
    assert "BarcodeDetectionAPI" in script.text
    assert wasm.status_code == 200
    assert wasm.headers["content-type"] == "application/wasm"
    assert wasm.content[:4] == b"\0asm"
    assert outside.status_code == 404
    assert "'wasm-unsafe-eval'" not in home_csp
    assert "'wasm-unsafe-eval'" in scan_csp
