"""Who may open which page, for every page route there is (found in the app, so a new page
is covered the day it is added):

- signed out, a private page sends the visitor to log in and back (303 → /login?next=…);
- a form posted without its CSRF token answers 403 ``csrf_failed`` and changes nothing;
- operator pages answer 403 to a resident who is not an operator;
- no page answers 500.

Public pages (log in, sign up, the PWA's files, …) are listed in PUBLIC.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from citywallet.runtime import Runtime
from tests.identity_support import PASSWORD
from tests.wallet_support import make_resident, sandbox_bank

PREFIXES = ("/app", "/merchant", "/operator")
# GET pages anyone may open (each app adds its own here).
PUBLIC: set[str] = {
    # the residents' wallet: sign-up and the installable app's files
    "/app/signup",
    "/app/manifest.webmanifest",
    "/app/sw.js",
    "/app/icons/{size}.png",
    "/app/offline",
}
PARAM = re.compile(r"\{[^}]+\}")


def _api_routes(routes: Iterable[object], prefix: str = "") -> Iterator[tuple[str, APIRoute]]:
    """Every APIRoute with its full path, also inside included routers (FastAPI may keep an
    included router as one wrapper entry holding the original router and its prefix)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield prefix + route.path, route
            continue
        original = getattr(route, "original_router", None)
        if original is not None:
            context = getattr(route, "include_context", None)
            inner = prefix + str(getattr(context, "prefix", "") or "")
            yield from _api_routes(original.routes, inner)


def page_routes(client: TestClient) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for path, route in _api_routes(client.app.routes):  # type: ignore[attr-defined]
        if path.startswith(PREFIXES):
            found.extend((method, path) for method in sorted(route.methods or ()))
    return found


def concrete(path: str) -> str:
    return PARAM.sub("x_missing", path)


def test_private_pages_send_the_visitor_to_log_in(client: TestClient) -> None:
    routes = page_routes(client)
    for method, path in routes:
        if method != "GET" or path in PUBLIC:
            continue
        answer = client.get(concrete(path))
        assert answer.status_code == 303, (path, answer.status_code)
        assert answer.headers["location"].startswith("/login?next="), path


def test_public_pages_exist_and_open(client: TestClient) -> None:
    paths = {path for _, path in page_routes(client)}
    assert PUBLIC - paths == set(), "PUBLIC names pages that no longer exist"


def test_forms_without_their_csrf_token_change_nothing(client: TestClient) -> None:
    for method, path in page_routes(client):
        if method != "POST":
            continue
        answer = client.post(concrete(path), data={"amount": "1"})
        assert answer.status_code in (303, 403), (path, answer.status_code)
        if answer.status_code == 403:
            assert "csrf_failed" in answer.text, path


def test_operator_pages_refuse_residents(client: TestClient, runtime: Runtime) -> None:
    person = make_resident(runtime.db, runtime.settings, runtime.encryptor, sandbox_bank(), 1)
    form = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None
    signed_in = client.post(
        "/login",
        data={"phone": person.phone, "password": PASSWORD, "csrf_token": token.group(1)},
    )
    assert signed_in.status_code == 303
    for method, path in page_routes(client):
        if method == "GET" and path.startswith("/operator"):
            answer = client.get(concrete(path))
            assert answer.status_code == 403, path
            assert 'data-code="operator_required"' in answer.text, path
