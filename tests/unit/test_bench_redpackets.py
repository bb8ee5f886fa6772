"""The red-packet bench's HTTP baseline: claims/s beside GET /healthz of the same run."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from bench import redpackets


class _Healthz(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as uvicorn

    def do_GET(self) -> None:
        body = b'{"status":"ok"}'
        self.send_response(200 if self.path == "/healthz" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


def test_healthz_is_counted_over_the_run() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Healthz)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        per_s = redpackets.healthz_case(server.server_address[1], threads=2, seconds=0.3)
    finally:
        server.shutdown()
        server.server_close()
    assert per_s > 0


def _http(claims_per_s: float) -> redpackets.GrabResult:
    return redpackets.GrabResult(
        backend="postgresql", path="http", shape="hot", packets=1, shares=200, attempts=1000,
        claimed=200, empty=800, errors=0, seconds=1.0, claims_per_s=claims_per_s,
        attempts_per_s=1000.0, p50_ms=1.0, p99_ms=2.0, concurrency=32,
    )  # fmt: skip


def test_an_http_grab_case_is_scored_against_healthz_at_03() -> None:
    met, missed = _http(300.0), _http(299.0)
    redpackets.score_against_healthz(met, 1000.0)
    redpackets.score_against_healthz(missed, 1000.0)
    assert (met.healthz_per_s, met.ratio_vs_healthz, met.healthz_target_met) == (1000.0, 0.3, True)
    assert (missed.ratio_vs_healthz, missed.healthz_target_met) == (0.299, False)
    [row] = redpackets.grab_rows([met])
    header = redpackets.GRAB_HEADERS.index("ours ÷ healthz (≥ 0.3)")
    assert row[header] == "0.300 (met)"


def test_without_a_healthz_answer_there_is_no_ratio() -> None:
    result = _http(300.0)
    redpackets.score_against_healthz(result, 0.0)
    assert (result.ratio_vs_healthz, result.healthz_target_met) == (None, None)
    assert redpackets.grab_rows([_http(1.0)])[0][-2] == "—"
