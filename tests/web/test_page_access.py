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
from sqlalchemy import text

from citywallet.identity import attributes
from citywallet.runtime import Runtime
from tests.identity_support import PASSWORD
from tests.ledger_checks import assert_ledger_clean
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


def sign_in(client: TestClient, runtime: Runtime, n: int = 1) -> str:
    person = make_resident(runtime.db, runtime.settings, runtime.encryptor, sandbox_bank(), n)
    form = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None
    signed_in = client.post(
        "/login",
        data={"phone": person.phone, "password": PASSWORD, "csrf_token": token.group(1)},
    )
    assert signed_in.status_code == 303
    return person.user_id


def test_signed_in_forms_without_their_csrf_token_change_nothing(
    client: TestClient, runtime: Runtime
) -> None:
    user_id = sign_in(client, runtime)
    before = transfer_count(runtime)
    posts = [path for method, path in page_routes(client) if method == "POST"]
    assert len(posts) > 20
    # refused before anything else: a missing token, or (consoles) no role / no merchant
    allowed = {
        "/app": {(403, "csrf_failed")},
        "/merchant": {(403, "csrf_failed"), (404, "no_merchant")},
        "/operator": {(403, "csrf_failed"), (403, "operator_required")},
    }
    for path in posts:
        answer = client.post(concrete(path), data={"amount": "1", "pin": "000000"})
        codes = set(re.findall(r'data-code="([a-z_]+)"', answer.text))
        assert len(codes) == 1, (path, answer.status_code, codes)
        assert (answer.status_code, codes.pop()) in allowed["/" + path.split("/")[1]], path
    # an operator's forms too: the token is checked whatever the role
    runtime.db.transact(lambda uow: attributes.grant_operator(uow, user_id=user_id, actor="t"))
    for path in (p for p in posts if p.startswith("/operator")):
        answer = client.post(concrete(path), data={"reason": "x"})
        assert answer.status_code == 403, path
        assert set(re.findall(r'data-code="([a-z_]+)"', answer.text)) == {"csrf_failed"}, path
    assert transfer_count(runtime) == before
    assert_ledger_clean(runtime.db)


def transfer_count(runtime: Runtime) -> int:
    with runtime.db.uow(readonly=True) as uow:
        return int(uow.session.execute(text("SELECT COUNT(*) FROM ledger_transfers")).scalar_one())


def test_operator_pages_refuse_residents(client: TestClient, runtime: Runtime) -> None:
    sign_in(client, runtime)
    for method, path in page_routes(client):
        if method == "GET" and path.startswith("/operator"):
            answer = client.get(concrete(path))
            assert answer.status_code == 403, path
            assert 'data-code="operator_required"' in answer.text, path
