"""Who may open which page, for every page route there is (found in the app, so a new page
is covered the day it is added):

- signed out, a private page sends the visitor to log in and back (303 → /login?next=…);
- a form posted without its CSRF token answers 403 ``csrf_failed`` and changes nothing;
- so does every form posted with a planted ``cw_form`` cookie and the token it names (an
  arbitrary one, or a genuine signed-out pair), signed out and signed in;
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
from citywallet.merchant import onboarding
from citywallet.platform.db import UnitOfWork
from citywallet.runtime import Runtime
from citywallet.schema import metadata
from citywallet.web.session import FORM_COOKIE
from tests.identity_support import PASSWORD
from tests.ledger_checks import assert_ledger_clean
from tests.merchant_support import application
from tests.wallet_support import Resident, make_resident, sandbox_bank

PREFIXES = ("/app", "/merchant", "/operator")
# GET pages anyone may open (each app adds its own here).
PUBLIC: set[str] = {
    # the residents' wallet: sign-up and the installable app's files
    "/app/signup",
    "/app/manifest.webmanifest",
    "/app/sw.js",
    "/app/icons/{size}.png",
    "/app/offline",
    "/app/legal/{name}",  # the service agreement and privacy policy, read before signing up
    "/app/password/forgot",
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
        if method == "GET" and path.startswith("/operator") and path != "/operator/login":
            answer = client.get(concrete(path))
            assert answer.status_code == 403, path
            assert 'data-code="operator_required"' in answer.text, path


# --- planted cw_form cookies ----------------------------------------------------------------

SIGNED_OUT_FORMS = {
    "/logout",
    "/app/signup",
    "/app/signup/code",
    "/app/password/forgot",
    "/app/password/forgot/code",
}


def row_counts(runtime: Runtime) -> dict[str, int]:
    """How many rows every table holds (a refused form adds, and removes, none)."""
    with runtime.db.uow(readonly=True) as uow:
        return {
            table.name: int(
                uow.session.execute(text(f"SELECT COUNT(*) FROM {table.name}")).scalar_one()
            )
            for table in metadata.sorted_tables
        }


def genuine_signed_out_pair(client: TestClient) -> tuple[str, str]:
    """A ``cw_form`` value and its form token as the server hands them to anyone (an
    attacker fetches one for himself, then plants it)."""
    fresh = TestClient(client.app, follow_redirects=False)
    page = fresh.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    nonce = fresh.cookies.get(FORM_COOKIE)
    assert nonce is not None
    return nonce, token.group(1)


def operator_with_a_shop(client: TestClient, runtime: Runtime) -> Resident:
    """A resident who is an operator and owns an approved merchant, signed in on ``client``:
    every form of the three apps gets as far as its CSRF check."""
    person = make_resident(runtime.db, runtime.settings, runtime.encryptor, sandbox_bank(), 1)
    body = application(person, 1)  # type: ignore[arg-type]
    body.update(city_zh="深圳", city_en="Shenzhen")

    def register(uow: UnitOfWork) -> onboarding.MerchantView:
        return onboarding.register_merchant(
            uow,
            user_id=person.user_id,
            application=onboarding.MerchantApplication(**body),
            encryptor=runtime.encryptor,
            settings=runtime.settings,
        )

    shop = runtime.db.transact(register)
    runtime.db.transact(
        lambda uow: onboarding.review_merchant(uow, merchant_id=shop.id, action="approve")
    )
    runtime.db.transact(
        lambda uow: attributes.grant_operator(uow, user_id=person.user_id, actor="t")
    )
    form = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None
    signed_in = client.post(
        "/login", data={"phone": person.phone, "password": PASSWORD, "csrf_token": token.group(1)}
    )
    assert signed_in.status_code == 303
    return person


def post_planted(client: TestClient, path: str, nonce: str, token: str, **data: str) -> str:
    """Post ``path`` with ``cw_form=nonce`` planted and ``token`` as the form's token; the
    refusal's code (asserting it is a 403)."""
    client.cookies.set(FORM_COOKIE, nonce)
    answer = client.post(concrete(path), data={"csrf_token": token, "amount": "1", **data})
    codes = set(re.findall(r'data-code="([a-z_]+)"', answer.text))
    assert answer.status_code == 403, (path, answer.status_code, codes)
    assert codes == {"csrf_failed"}, (path, codes)
    return codes.pop()


def test_a_planted_form_cookie_opens_no_form_signed_out(
    client: TestClient, runtime: Runtime
) -> None:
    person = make_resident(runtime.db, runtime.settings, runtime.encryptor, sandbox_bank(), 2)
    login = {"phone": person.phone, "password": PASSWORD}
    genuine = genuine_signed_out_pair(client)
    posts = [path for method, path in page_routes(client) if method == "POST"]
    before = row_counts(runtime)
    for nonce, token in (("planted", "planted"), (genuine[0], genuine[0])):
        post_planted(client, "/login", nonce, token, **login)
        for path in SIGNED_OUT_FORMS:
            post_planted(client, path, nonce, token, **login)
        for path in posts:  # the rest need a session first
            if path not in SIGNED_OUT_FORMS:
                client.cookies.set(FORM_COOKIE, nonce)
                answer = client.post(concrete(path), data={"csrf_token": token})
                assert answer.status_code == 303, path
                assert answer.headers["location"].startswith("/login?next="), path
    assert "cw_session" not in client.cookies
    assert row_counts(runtime) == before
    assert_ledger_clean(runtime.db)


def test_a_planted_form_cookie_opens_no_form_signed_in(
    client: TestClient, runtime: Runtime
) -> None:
    """Signed in, only the session's token counts: neither a made-up ``cw_form`` pair nor a
    genuine signed-out one opens any form of the residents' app, the merchant console or
    the operator console."""
    operator_with_a_shop(client, runtime)
    genuine = genuine_signed_out_pair(client)
    posts = [path for method, path in page_routes(client) if method == "POST"]
    assert len(posts) > 20
    before = row_counts(runtime)
    for nonce, token in (("planted", "planted"), genuine):
        for path in posts:
            post_planted(client, path, nonce, token, reason="x", pin="000000", name="g")
    assert client.get("/app").status_code == 200  # still signed in: logout refused too
    assert row_counts(runtime) == before
    assert_ledger_clean(runtime.db)
