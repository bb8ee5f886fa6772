"""``citywallet serve --workers 2``: /metrics reports the whole server, whichever process
answers the scrape (prometheus-client's multiprocess mode, docs/operations.md)."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2

from tests.server_support import serve

HEALTHZ = re.compile(
    r'^citywallet_http_requests_total\{method="GET",route="/healthz",status="200"\} (\S+)$', re.M
)


def test_every_worker_counts_into_one_answer(tmp_path: Path) -> None:
    with serve(tmp_path, "--workers", "2") as base:
        # at once, a new connection each: both processes accept some
        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(lambda _: httpx2.get(f"{base}/healthz").status_code, range(48)))
        assert codes == [200] * 48
        seen = len(codes)
        folder = tmp_path / "var" / "metrics"
        writers = {re.sub(r"^\w+?_(\d+)\.db$", r"\1", p.name) for p in folder.glob("counter_*.db")}
        answers = []
        for _ in range(6):
            scrape = httpx2.get(f"{base}/metrics")
            assert scrape.status_code == 200
            found = HEALTHZ.search(scrape.text)
            assert found is not None, scrape.text[:500]
            answers.append(float(found.group(1)))
    assert len(writers) == 2, f"both processes served and counted: {sorted(writers)}"
    # the first readiness probe of serve() and our 48 requests, summed over both processes,
    # in every answer; a per-process answer would show each process's share only
    assert min(answers) >= seen
    assert len(set(answers)) == 1
