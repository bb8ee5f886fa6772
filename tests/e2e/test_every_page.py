"""Every page a person can reach, on a phone: the demo's data is seeded, then a resident, a
merchant owner and an operator each sign in and follow every link of their app. Each page
must open (no error status, no stack trace), fit a 375 px screen without sideways
scrolling, label every field, say which language it is in, show money only as
``¥1,234.56``, and pass axe-core's WCAG 2.1 A/AA rules with no serious or critical
violation (labels and names, colour contrast, focus order; axe-core comes from npm,
``node_modules/axe-core``, installed by ``make``)."""

from __future__ import annotations

import json
import re
from collections import deque
from pathlib import Path
from urllib.parse import urldefrag, urlsplit

from playwright.sync_api import Browser, Page

from citywallet import demo
from tests.e2e.conftest import Site, new_context
from tests.ledger_checks import assert_ledger_clean

MONEY = re.compile(r"¥\s?-?[\d,]*\.?\d*")
WELL_FORMED = re.compile(r"^¥-?\d{1,3}(,\d{3})*\.\d{2}$")
DOWNLOADS = (".csv", ".png", ".svg", ".pdf", ".json", ".webmanifest", ".js")
MAX_PAGES = 60

UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea')]
  .filter(e => !['hidden', 'submit', 'button'].includes(e.type) && e.offsetParent !== null)
  .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
               && !e.getAttribute('aria-labelledby'))
  .map(e => e.name || e.id || e.outerHTML.slice(0, 80))"""
OVERFLOW = "() => document.documentElement.scrollWidth - window.innerWidth"
AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]
SERIOUS = ("serious", "critical")
# axe.run over the page; only the violations, each with the first few elements it names
AXE_RUN = """async (tags) => {
  const result = await axe.run(document, {
    runOnly: { type: "tag", values: tags }, resultTypes: ["violations"] });
  return result.violations.map(v => ({ id: v.id, impact: v.impact,
    nodes: v.nodes.slice(0, 3).map(n => n.target.join(" ")) }));
}"""


def accessibility(page: Page) -> list[str]:
    """axe-core's serious and critical violations on the current page."""
    # evaluated through the DevTools protocol: the pages' CSP (own scripts only) stays on
    page.evaluate(AXE.read_text(encoding="utf-8") + "\n;undefined")
    violations = page.evaluate(AXE_RUN, AXE_TAGS)
    return [
        f"axe {v['id']} ({v['impact']}): {json.dumps(v['nodes'], ensure_ascii=False)}"
        for v in violations
        if v["impact"] in SERIOUS
    ]


def sign_in(page: Page, base: str, phone: str, target: str) -> None:
    page.goto(f"{base}/login?next={target}")
    page.locator("#f-phone").fill(phone)
    page.locator("#f-password").fill(demo.PASSWORD)
    page.locator("form[action='/login'] button[type=submit]").click()
    page.wait_for_url(f"**{target}*")


def crawl(page: Page, base: str, root: str) -> dict[str, list[str]]:
    """Visit every same-app link from ``root``; returns the problems found per page."""
    problems: dict[str, list[str]] = {}
    seen = {root}
    queue = deque([root])
    visited = 0
    while queue and visited < MAX_PAGES:
        path = queue.popleft()
        visited += 1
        response = page.goto(base + path)
        found: list[str] = []
        status = response.status if response is not None else 0
        if status >= 400:
            found.append(f"status {status}")
        html = page.content()
        if "Traceback" in html:
            found.append("stack trace")
        if page.locator("html").get_attribute("lang") not in ("zh-CN", "en"):
            found.append("no lang")
        if (overflow := page.evaluate(OVERFLOW)) > 1:
            found.append(f"{overflow}px wider than the phone")
        if unlabelled := page.evaluate(UNLABELLED):
            found.append(f"fields without a label: {unlabelled}")
        text = page.locator("body").inner_text()
        odd = [m for m in MONEY.findall(text) if not WELL_FORMED.match(m.replace(" ", ""))]
        if odd:
            found.append(f"money not as ¥1,234.56: {odd[:5]}")
        found.extend(accessibility(page))
        if found:
            problems[path] = found
        for href in page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)"):
            url, _ = urldefrag(href)
            parts = urlsplit(url)
            if parts.netloc != urlsplit(base).netloc or not parts.path.startswith(root):
                continue
            if parts.path.endswith(DOWNLOADS):
                continue
            link = parts.path + (f"?{parts.query}" if parts.query else "")
            if link not in seen:
                seen.add(link)
                queue.append(link)
    assert visited > 3, f"only {visited} pages under {root}"
    return problems


def test_every_page_fits_a_phone_and_is_labelled(site: Site, browser: Browser) -> None:
    assert AXE.is_file(), f"{AXE} is missing: run `make` (npm ci)"
    demo.seed(site.runtime)
    logins = {
        "/app": demo.RESIDENTS[0].phone,
        "/merchant": demo.RESIDENTS[2].phone,
        "/operator": demo.OPERATOR.phone,
    }
    problems: dict[str, list[str]] = {}
    for lang in ("zh_CN", "en"):
        for root, phone in logins.items():
            context = new_context(browser, "phone", lang)
            page = context.new_page()
            sign_in(page, site.url, phone, root)
            problems.update({f"{lang} {k}": v for k, v in crawl(page, site.url, root).items()})
            context.close()
    assert problems == {}, json.dumps(problems, indent=1, ensure_ascii=False)
    assert_ledger_clean(site.db)  # the demo moved money; browsing moved none wrongly
