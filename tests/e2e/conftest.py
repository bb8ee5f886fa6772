"""Page tests in a real browser: Debian's chromium driven by Playwright's Python package
(``scripts/ensure-chromium.sh`` installs it), against the real app on a real uvicorn
server, on SQLite and PostgreSQL (the ``db`` fixture).

``site`` serves the app (with its background worker) over the test database; ``browser``
is one chromium per test process; ``phone`` and ``desktop`` are pages at 375×667 and
1280×800. ``shots(page, name)`` saves the current page as screenshots in both languages
and both sizes under ``test-artifacts/e2e/<test>/<backend>/``: it opens the page's URL again
in fresh tabs of the same browser context (same sign-in), so the page under test is not
touched.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from citywallet.api.app import create_app
from citywallet.platform.db import Database
from citywallet.runtime import Runtime
from tests.ledger_checks import test_encryptor
from tests.redpacket_support import serve
from tests.wallet_support import wallet_settings

CHROMIUM = os.environ.get("CITYWALLET_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "e2e"
PHONE = {"width": 375, "height": 667}
DESKTOP = {"width": 1280, "height": 800}
SIZES = {"phone": PHONE, "desktop": DESKTOP}
LANGUAGES = {"zh_CN": "zh-CN", "en": "en-US"}


@dataclass(frozen=True)
class Site:
    """The app on a real server, and what tests need to reach behind it."""

    url: str
    runtime: Runtime

    @property
    def db(self) -> Database:
        return self.runtime.db


@pytest.fixture
def site(db: Database, tmp_path: Path) -> Iterator[Site]:
    settings = wallet_settings(tmp_path, db, worker_poll_seconds=0.2)
    runtime = Runtime(settings, db, test_encryptor())
    with serve(create_app(runtime, start_worker=True)) as url:
        yield Site(url, runtime)


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"chromium is not at {CHROMIUM}: run scripts/ensure-chromium.sh")
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
    yield browser
    browser.close()


def new_context(browser: Browser, size: str = "phone", lang: str = "zh_CN") -> BrowserContext:
    """A fresh visitor (no cookies) with a phone or desktop screen and a browser language."""
    context = browser.new_context(
        viewport=SIZES[size],
        locale=LANGUAGES[lang],
        extra_http_headers={"Accept-Language": LANGUAGES[lang]},
        is_mobile=size == "phone",
        has_touch=size == "phone",
    )
    context.set_default_timeout(15_000)
    return context


@pytest.fixture
def phone(browser: Browser) -> Iterator[Page]:
    context = new_context(browser, "phone")
    yield context.new_page()
    context.close()


@pytest.fixture
def desktop(browser: Browser) -> Iterator[Page]:
    context = new_context(browser, "desktop")
    yield context.new_page()
    context.close()


Shots = Callable[[Page, str], None]


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Shots:
    """Save the page at ``page.url`` in zh-CN and en, phone and desktop sizes."""
    test = re.sub(r"[^\w.-]+", "_", request.node.name)
    folder = ARTIFACTS / test
    shutil.rmtree(folder, ignore_errors=True)  # only this run's screens
    counter = iter(range(1, 1000))

    def take(page: Page, name: str) -> None:
        number = next(counter)
        context = page.context
        saved = [c for c in context.cookies() if c["name"] == "cw_lang"]
        host = urlsplit(page.url).hostname or "127.0.0.1"
        for lang in LANGUAGES:
            context.clear_cookies(name="cw_lang")  # the page's own choice, whatever its path
            context.add_cookies([{"name": "cw_lang", "value": lang, "domain": host, "path": "/"}])
            for size, viewport in SIZES.items():
                tab = context.new_page()
                tab.set_viewport_size(viewport)
                tab.goto(page.url)
                tab.wait_for_load_state("networkidle")
                assert "Traceback" not in tab.content()
                folder.mkdir(parents=True, exist_ok=True)
                tab.screenshot(
                    path=folder / f"{number:02d}-{name}.{lang}.{size}.png", full_page=True
                )
                tab.close()
        context.clear_cookies(name="cw_lang")
        if saved:
            context.add_cookies(saved)  # type: ignore[arg-type]

    return take
