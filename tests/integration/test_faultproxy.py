"""The fault proxy (interop/faultproxy.py) against a tiny real HTTP server: each fault happens
at about its rate, and what the client and the server saw adds up exactly to its counters."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx2
import pytest

from citywallet.interop.faultproxy import FaultProxy, FaultRates


class _Upstream:
    """A threaded HTTP/1.1 server that counts requests by path and echoes their bodies."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.order: list[str] = []
        self.lock = threading.Lock()
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                return None

            def _body(self) -> bytes:
                if "chunked" in (self.headers.get("Transfer-Encoding") or ""):
                    data = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0], 16)
                        if size == 0:
                            self.rfile.readline()
                            return data
                        data += self.rfile.read(size)
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _answer(self) -> None:
                body = self._body()
                with upstream.lock:
                    upstream.hits[self.path] += 1
                    upstream.order.append(self.path)
                if self.path.startswith("/chunked"):
                    self.send_response(200)
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for piece in (b"hello ", b"chunked ", b"world"):
                        self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                    self.wfile.write(b"0\r\n\r\n")
                    return
                payload = json.dumps(
                    {"method": self.command, "path": self.path, "body": body.decode()}
                ).encode()
                self.send_response(201 if self.command == "POST" else 200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = _answer  # noqa: N815 - http.server's names

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def upstream() -> Iterator[_Upstream]:
    server = _Upstream()
    yield server
    server.close()


def test_without_faults_requests_and_answers_pass_unchanged_on_one_connection(
    upstream: _Upstream,
) -> None:
    with FaultProxy(upstream.url) as proxy, httpx2.Client(base_url=proxy.url) as client:
        got = client.post("/transfers", content=b'{"a": 1}')
        assert got.status_code == 201
        assert got.json() == {"method": "POST", "path": "/transfers", "body": '{"a": 1}'}
        assert client.get("/parties/MSISDN/1?x=2").json()["path"] == "/parties/MSISDN/1?x=2"

        def pieces() -> Iterator[bytes]:
            yield b"chunked "
            yield b"request"

        assert client.put("/quotes/q", content=pieces()).json()["body"] == "chunked request"
        assert client.get("/chunked").text == "hello chunked world"
        counts = proxy.snapshot()
    assert counts["requests"] == counts["passed"] == counts["forwarded"] == 4
    assert upstream.hits == Counter(
        {"/transfers": 1, "/parties/MSISDN/1?x=2": 1, "/quotes/q": 1, "/chunked": 1}
    )


def _fire(proxy: FaultProxy, n: int) -> dict[str, bool]:
    """Send ``n`` requests with distinct paths, sequentially; path → answered or not."""
    outcome = {}
    with httpx2.Client(base_url=proxy.url, timeout=10) as client:
        for i in range(n):
            path = f"/transfers/{i}"
            try:
                outcome[path] = client.put(path, content=b"{}").status_code == 200
            except httpx2.TransportError:
                outcome[path] = False
    return outcome


def test_each_fault_happens_at_about_its_rate_and_the_counts_add_up(upstream: _Upstream) -> None:
    rates = FaultRates(drop_request=0.1, drop_response=0.1, duplicate=0.1, seed=11)
    n = 1000
    with FaultProxy(upstream.url, rates) as proxy:
        outcome = _fire(proxy, n)
        time.sleep(0.5)  # the last duplicates follow their originals
        counts = proxy.snapshot()
    seen: Counter[str] = Counter()
    for path, answered in outcome.items():
        hits = upstream.hits[path]
        fate = {
            (False, 0): "dropped_requests",
            (False, 1): "dropped_responses",
            (True, 1): "passed",
            (True, 2): "duplicated",
        }[(answered, hits)]
        seen[fate] += 1
    assert counts["requests"] == n
    for fate in ("dropped_requests", "dropped_responses", "passed", "duplicated"):
        assert seen[fate] == counts[fate], fate
    assert sum(seen.values()) == n
    assert (
        counts["forwarded"]
        == sum(upstream.hits.values())
        == n - seen["dropped_requests"] + (seen["duplicated"])
    )
    # 10 % of 1000: the standard deviation is 9.5, so ±45 is beyond 4.5 of them
    for fate in ("dropped_requests", "dropped_responses", "duplicated"):
        assert 55 <= counts[fate] <= 145, (fate, counts)
    assert counts["upstream_errors"] == counts["delayed"] == 0


def test_the_same_seed_gives_the_same_faults(upstream: _Upstream) -> None:
    rates = FaultRates(drop_request=0.2, drop_response=0.2, duplicate=0.2, seed=5)
    with FaultProxy(upstream.url, rates) as first:
        one = _fire(first, 60)
    with FaultProxy(upstream.url, rates) as second:
        two = _fire(second, 60)
    assert one == two
    assert first.snapshot()["requests"] == second.snapshot()["requests"] == 60
    assert first.snapshot()["dropped_requests"] == second.snapshot()["dropped_requests"] > 0


def test_delays_reorder_overlapping_requests(upstream: _Upstream) -> None:
    rates = FaultRates(delay=1.0, delay_ms=400, seed=3)
    paths = [f"/transfers/{i}" for i in range(20)]
    with FaultProxy(upstream.url, rates) as proxy, httpx2.Client(base_url=proxy.url) as client:

        def send(path: str) -> int:
            return client.put(path, content=b"{}").status_code

        with ThreadPoolExecutor(20) as pool:
            futures = []
            for path in paths:
                futures.append(pool.submit(send, path))
                time.sleep(0.01)
            assert [f.result() for f in futures] == [200] * 20
        counts = proxy.snapshot()
    assert counts["delayed"] == counts["requests"] == 20
    assert sorted(upstream.order) == sorted(paths)
    assert upstream.order != paths  # 20 sends 10 ms apart, delays up to 400 ms


def test_health_checks_are_exempt(upstream: _Upstream) -> None:
    rates = FaultRates(drop_request=1.0)
    with FaultProxy(upstream.url, rates) as proxy, httpx2.Client(base_url=proxy.url) as client:
        assert client.get("/healthz").status_code == 200
        with pytest.raises(httpx2.TransportError):
            client.get("/parties/MSISDN/1")
        counts = proxy.snapshot()
    assert (counts["passed"], counts["dropped_requests"]) == (1, 1)
    assert upstream.hits == Counter({"/healthz": 1})


def test_an_unreachable_upstream_answers_502_and_is_counted(upstream: _Upstream) -> None:
    with FaultProxy(upstream.url) as proxy, httpx2.Client(base_url=proxy.url) as client:
        assert client.get("/up").status_code == 200
        upstream.close()
        answer = client.get("/down")
        assert answer.status_code == 502
        counts = proxy.snapshot()
    assert counts["upstream_errors"] == 1


def test_rates_parse_and_refuse_nonsense() -> None:
    rates = FaultRates.parse(
        "drop_request=0.1, drop-response=0.05,duplicate=0.1,delay=0.5,delay_ms=200,seed=7"
    )
    assert rates == FaultRates(
        drop_request=0.1, drop_response=0.05, duplicate=0.1, delay=0.5, delay_ms=200, seed=7
    )
    assert rates.active
    assert not FaultRates().active
    for spec in ("drop=0.1", "drop_request=1.5", "drop_request=0.6,duplicate=0.6", "delay_ms=-1"):
        with pytest.raises(ValueError, match=r"fault|rate|must"):
            FaultRates.parse(spec)
