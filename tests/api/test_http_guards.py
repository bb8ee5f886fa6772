"""Request body caps and security headers (issue 12, items 10 and 11).

A body over its cap answers 413 ``payload_too_large`` (problem+json) without being read:
a declared ``Content-Length`` at once, a chunked body as soon as the count passes the cap.
Checked through the app and on a real uvicorn server (where chunks really stream), with an
outer wrapper counting how many body bytes the application pulled.
"""

from __future__ import annotations

import json
import select
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from citywallet.api.app import create_app
from citywallet.platform.config import Settings
from citywallet.platform.db import Database
from citywallet.runtime import Runtime
from tests.ledger_checks import test_encryptor
from tests.redpacket_support import serve

KIB = 1024
LOGIN = "/v1/auth/login"


def assert_too_large(status: int, headers: dict[str, str], body: bytes, cap: int) -> None:
    assert status == 413
    assert headers["content-type"] == "application/problem+json"
    problem = json.loads(body)
    assert problem["code"] == "payload_too_large"
    assert problem["limit"] == cap


def test_a_json_body_over_64_kib_is_refused(client: TestClient) -> None:
    """The report: a huge JSON body to the unauthenticated log-in was read whole."""
    padding = "x" * (64 * KIB)
    body = json.dumps({"phone": "13800138000", "password": "pw", "pad": padding}).encode()
    answer = client.post(LOGIN, content=body, headers={"content-type": "application/json"})
    assert_too_large(answer.status_code, dict(answer.headers), answer.content, 64 * KIB)
    small = client.post(LOGIN, json={"phone": "13800138000", "password": "pw"})
    assert small.status_code == 401


def test_a_chunked_body_is_counted_as_it_streams(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"phone": "13800138000", "password": "'
        for _ in range(20):
            yield b"x" * (8 * KIB)
        yield b'"}'

    answer = client.post(LOGIN, content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in answer.request.headers
    assert_too_large(answer.status_code, dict(answer.headers), answer.content, 64 * KIB)


def test_forms_are_capped_too_and_the_qr_photo_upload_has_its_own_cap(
    client: TestClient,
) -> None:
    picture = {"image": ("qr.png", b"\x89PNG" + b"\0" * (1024 * KIB), "image/png")}
    # the upload reads its megabyte (then asks the visitor to log in) ...
    upload = client.post("/app/scan/image", files=picture, follow_redirects=False)
    assert upload.status_code == 303
    # ... any other form refuses it
    other = client.post("/app/scan/pay", files=picture, follow_redirects=False)
    assert_too_large(other.status_code, dict(other.headers), other.content, 64 * KIB)
    huge = {"image": ("qr.png", b"\0" * (10 * 1024 * KIB), "image/png")}
    refused = client.post("/app/scan/image", files=huge, follow_redirects=False)
    assert_too_large(refused.status_code, dict(refused.headers), refused.content, 9 * 1024 * KIB)


def test_the_caps_are_settings(db: Database, tmp_path: Path) -> None:
    settings = Settings(
        var_dir=tmp_path, database_url=db.url, max_body_bytes=100, max_campaign_body_bytes=200
    )
    app = create_app(Runtime(settings, db, test_encryptor()))
    with TestClient(app, raise_server_exceptions=False) as client:
        body = {"phone": "13800138000", "password": "p" * 100}
        answer = client.post(LOGIN, json=body)
        assert_too_large(answer.status_code, dict(answer.headers), answer.content, 100)
        campaign = client.post("/v1/operator/campaigns", json={"name": "c" * 150})
        assert campaign.status_code == 401  # under its own cap: read, then refused as anonymous
        bigger = client.post("/v1/operator/campaigns", json={"name": "c" * 250})
        assert_too_large(bigger.status_code, dict(bigger.headers), bigger.content, 200)


# --- on a real server ---------------------------------------------------------------------


class CountBodyBytes:
    """Counts the request body bytes the wrapped application pulled."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.pulled = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def counted() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                self.pulled += len(message.get("body", b""))
            return message

        await self.app(scope, counted, send)


def raw_post(url: str, head: str, chunks: Iterator[bytes]) -> tuple[int, dict[str, str], bytes]:
    """Send ``head`` then ``chunks`` until the server answers; its status, headers, body."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname or "", parts.port or 80), timeout=30) as sock:
        sock.sendall(head.encode())
        try:
            for chunk in chunks:
                if select.select([sock], [], [], 0)[0]:
                    break  # answered before the body ended
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = b""
        while True:
            try:
                data = sock.recv(64 * KIB)
            except ConnectionResetError:
                break
            if not data:
                break
            answer += data
    top, _, body = answer.partition(b"\r\n\r\n")
    lines = top.decode().split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def test_a_real_server_refuses_big_bodies_without_reading_them(runtime: Runtime) -> None:
    counter = CountBodyBytes(create_app(runtime))
    with serve(counter) as url:  # type: ignore[arg-type]
        host = urlsplit(url).netloc
        declared = (
            f"POST {LOGIN} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {100 * 1024 * 1024}\r\n\r\n"
        )
        status, headers, body = raw_post(url, declared, iter(()))
        assert_too_large(status, headers, body, 64 * KIB)
        assert headers["connection"] == "close"
        assert counter.pulled == 0

        chunked = (
            f"POST {LOGIN} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n"
        )
        piece = b"x" * (8 * KIB)
        hundred_mib = (b"%x\r\n%s\r\n" % (len(piece), piece) for _ in range(12_800))
        status, headers, body = raw_post(url, chunked, hundred_mib)
        assert_too_large(status, headers, body, 64 * KIB)
        assert 64 * KIB < counter.pulled < 1024 * KIB  # stopped soon after the cap


def test_a_real_server_behind_a_trusted_tls_proxy_sends_hsts(runtime: Runtime) -> None:
    """uvicorn trusts X-Forwarded-Proto from its configured proxies (loopback by default)
    and sets the scheme: HSTS goes out only when the visitor's connection was HTTPS."""
    with serve(create_app(runtime)) as url:
        host = urlsplit(url).netloc
        plain = f"GET /healthz HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        _, headers, _ = raw_post(url, plain, iter(()))
        assert "strict-transport-security" not in headers
        proxied = plain.replace("\r\n\r\n", "\r\nX-Forwarded-Proto: https\r\n\r\n")
        _, headers, _ = raw_post(url, proxied, iter(()))
        assert headers["strict-transport-security"] == "max-age=31536000"


# --- headers ------------------------------------------------------------------------------


def test_api_answers_are_not_stored_and_not_sniffed(client: TestClient) -> None:
    for answer in (
        client.post(LOGIN, json={"phone": "13800138000", "password": "wrong"}),
        client.get("/v1/me"),
        client.get("/v1/nothing-here"),
    ):
        assert answer.headers["cache-control"] == "no-store", answer.url
        assert answer.headers["x-content-type-options"] == "nosniff", answer.url
    public = client.get("/v1/ledger/public-key")
    assert public.status_code == 200
    assert "no-store" not in public.headers.get("cache-control", "")
    assert public.headers["x-content-type-options"] == "nosniff"
    page = client.get("/login")
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["x-content-type-options"] == "nosniff"


def test_hsts_only_over_https(runtime: Runtime, db: Database, tmp_path: Path) -> None:
    app = create_app(runtime)
    with TestClient(app, base_url="https://testserver") as secure:
        assert secure.get("/healthz").headers["strict-transport-security"] == "max-age=31536000"
        assert "strict-transport-security" in secure.get("/login").headers
    with TestClient(app) as plain:
        assert "strict-transport-security" not in plain.get("/healthz").headers
    off = Settings(var_dir=tmp_path, database_url=db.url, hsts_max_age_seconds=0)
    with TestClient(create_app(Runtime(off, db, test_encryptor())), base_url="https://t") as c:
        assert "strict-transport-security" not in c.get("/healthz").headers


# --- the middleware stack: pure ASGI, request ids, metrics, page headers ---------------------


def test_every_middleware_is_pure_asgi(runtime: Runtime) -> None:
    from starlette.middleware.base import BaseHTTPMiddleware

    app = create_app(runtime)
    assert app.user_middleware, "the stack is installed"
    for middleware in app.user_middleware:
        assert isinstance(middleware.cls, type)
        assert not issubclass(middleware.cls, BaseHTTPMiddleware), middleware.cls


def test_request_ids_metrics_and_page_headers(client: TestClient) -> None:
    given = client.get("/healthz", headers={"X-Request-ID": "req-123"})
    assert given.headers["x-request-id"] == "req-123"
    made = {client.get(path).headers["x-request-id"] for path in ("/healthz", "/v1/nope", "/login")}
    assert len(made) == 3
    assert all(len(i) == 32 for i in made)
    assert client.post(LOGIN, json={"phone": "1", "password": "x"}).status_code == 422
    metrics = client.get("/metrics").text
    for line in (
        'citywallet_http_requests_total{method="GET",route="/healthz",status="200"}',
        'citywallet_http_requests_total{method="POST",route="/v1/auth/login",status="422"}',
        'citywallet_http_requests_total{method="GET",route="unmatched",status="404"}',
        'citywallet_http_request_seconds_count{method="GET",route="/login"}',
    ):
        assert line in metrics, line
    page = client.get("/login", headers={"Accept-Language": "en"})
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    assert page.headers["referrer-policy"] == "same-origin"
    assert page.headers["vary"] == "Accept-Language, Cookie"
    assert 'lang="en"' in page.text
    api = client.get("/healthz")
    assert "content-security-policy" not in api.headers


def test_the_granian_factory_believes_forwarded_headers_from_trusted_proxies_only(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``serve --server granian`` serves ``create_app_behind_proxies``: the scheme a proxy
    forwards counts (here: HSTS over HTTPS) only when the peer is a trusted proxy."""
    from citywallet.api.app import create_app_behind_proxies
    from citywallet.platform.config import get_settings

    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
    monkeypatch.setenv("CITYWALLET_DATABASE_URL", db.url)
    monkeypatch.setenv("CITYWALLET_VAR_DIR", str(tmp_path))
    for trusted, believed in (("", False), ("10.0.0.1", False), ("testclient", True)):
        monkeypatch.setenv("CITYWALLET_TRUSTED_PROXIES", trusted)
        get_settings.cache_clear()
        app = create_app_behind_proxies()
        try:
            with TestClient(app) as client:
                answer = client.get("/healthz", headers=forwarded)
            assert answer.status_code == 200
            assert ("strict-transport-security" in answer.headers) is believed, trusted
        finally:
            get_settings.cache_clear()
            inner = getattr(app, "app", app)
            inner.state.runtime.close()
