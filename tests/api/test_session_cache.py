"""The per-process session cache over HTTP, on SQLite and PostgreSQL (counts, never timings):

- a cached session authenticates with no SQL at all;
- a freeze made by another process (another engine: its own cache) still stops the next
  payment at once, although this process still has the session cached: the payment
  re-reads the account in its own transaction;
- logout, revoking a device, a password change and a freeze in this process end the
  session at once, cache or not;
- cookie sessions keep the CSRF rule on a cache hit.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, text

from citywallet.api.app import create_app
from citywallet.api.deps import CSRF_HEADER, SESSION_COOKIE, session_cache_of
from citywallet.identity import service as identity
from citywallet.identity import sessions
from citywallet.platform.db import Database
from citywallet.runtime import Runtime
from tests import statement_count
from tests.identity_support import PASSWORD
from tests.ledger_checks import assert_ledger_clean, test_encryptor
from tests.wallet_support import PIN, Person, balance, wallet_settings

YUAN = 100


@pytest.fixture
def runtime(db: Database, tmp_path: Path) -> Runtime:
    """A runtime whose sandbox bank answers at once; sessions cached for a minute, so no
    entry can age out while a test runs."""
    settings = wallet_settings(tmp_path, db, session_cache_seconds=60.0)
    return Runtime(settings, db, test_encryptor())


@contextmanager
def counted(db: Database) -> Iterator[dict[str, int]]:
    """Statements and transactions the engine ran inside the block."""
    seen = {"statements": 0, "transactions": 0}

    def on_statement(*_args: Any) -> None:
        seen["statements"] += 1

    def on_begin(*_args: Any) -> None:
        seen["transactions"] += 1

    event.listen(db.engine, "before_cursor_execute", on_statement)
    event.listen(db.engine, "begin", on_begin)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", on_statement)
        event.remove(db.engine, "begin", on_begin)


def _token(person: Person) -> str:
    return person.headers["Authorization"].removeprefix("Bearer ")


def test_a_cached_session_authenticates_without_sql(client: TestClient, runtime: Runtime) -> None:
    alice = Person(client, 1, card_ending=None)
    assert alice.get("/v1/auth/session").status_code == 200  # cached by now
    with counted(runtime.db) as seen:
        for _ in range(3):
            answer = alice.get("/v1/auth/session")
            assert answer.status_code == 200, answer.text
            assert answer.json()["user_id"] == alice.user_id
    assert seen == {"statements": 0, "transactions": 0}
    # A token nobody issued is asked of the database every time (never cached).
    stranger = {"Authorization": "Bearer cws_" + "x" * 43}
    with counted(runtime.db) as seen:
        for _ in range(2):
            assert client.get("/v1/auth/session", headers=stranger).status_code == 401
    assert seen["transactions"] == 2


def test_a_freeze_in_another_process_stops_the_next_payment(
    client: TestClient, runtime: Runtime, db: Database
) -> None:
    alice, bob = Person(client, 1), Person(client, 2, card_ending=None)
    alice.money("/v1/wallet/topups", {"card_id": alice.card_id, "amount": 50 * YUAN, "pin": PIN})
    alice.money("/v1/wallet/transfers", {"to": bob.phone, "amount": 1 * YUAN, "pin": PIN})
    before = balance(db, alice.user_id)

    # Another server process on the same database: its own engine, so its own cache.
    other = Database(db.url, pool_size=2)
    try:
        other.transact(
            lambda uow: identity.freeze_user(
                uow, user_id=alice.user_id, reason="fraud report", actor="operator:test"
            )
        )
    finally:
        other.dispose()
    cache = session_cache_of(runtime)
    assert sessions.cached(cache, token=_token(alice)) is not None  # still cached here

    refused = alice.post(
        "/v1/wallet/transfers",
        {"to": bob.phone, "amount": 1 * YUAN, "pin": PIN},
        key=str(uuid.uuid4()),
    )
    assert refused.status_code == 403, refused.text
    assert refused.json()["code"] == "account_frozen"
    assert balance(db, alice.user_id) == before
    # Once the entry is gone (its TTL, here dropped by hand) the session itself is refused.
    cache.drop(lambda _entry: True)
    gone = alice.get("/v1/wallet")
    assert (gone.status_code, gone.json()["code"]) == (403, "account_frozen")
    assert_ledger_clean(db)


def test_ending_a_session_in_this_process_takes_effect_at_once(
    client: TestClient, runtime: Runtime
) -> None:
    alice = Person(client, 1, card_ending=None)
    cache = session_cache_of(runtime)

    def second_session() -> dict[str, str]:
        login = client.post("/v1/auth/login", json={"phone": alice.phone, "password": PASSWORD})
        assert login.status_code == 200, login.text
        headers = {"Authorization": f"Bearer {login.json()['session']['token']}"}
        assert client.get("/v1/auth/session", headers=headers).status_code == 200  # cached
        return headers

    # Logout.
    phone = second_session()
    assert client.post("/v1/auth/logout", headers=phone).status_code == 204
    assert client.get("/v1/auth/session", headers=phone).status_code == 401
    # Signing a device out from another one.
    phone = second_session()
    phone_id = client.get("/v1/auth/session", headers=phone).json()["id"]
    assert alice.client.delete(f"/v1/me/sessions/{phone_id}", headers=alice.headers).status_code
    assert client.get("/v1/auth/session", headers=phone).status_code == 401
    # A password change ends the other sessions.
    phone = second_session()
    changed = client.put(
        "/v1/me/password",
        json={"old_password": PASSWORD, "new_password": "another horse 8"},
        headers=alice.headers,
    )
    assert changed.status_code == 204, changed.text
    assert client.get("/v1/auth/session", headers=phone).status_code == 401
    assert alice.get("/v1/auth/session").status_code == 200  # the one that changed it stays
    # A freeze through this process's database.
    assert sessions.cached(cache, token=_token(alice)) is not None
    runtime.db.transact(
        lambda uow: identity.freeze_user(
            uow, user_id=alice.user_id, reason="fraud report", actor="operator:test"
        )
    )
    assert sessions.cached(cache, token=_token(alice)) is None
    frozen = alice.get("/v1/auth/session")
    assert (frozen.status_code, frozen.json()["code"]) == (403, "account_frozen")


def test_cookie_sessions_keep_the_csrf_rule_on_a_cache_hit(
    client: TestClient, runtime: Runtime
) -> None:
    alice = Person(client, 1, card_ending=None)
    login = client.post(
        "/v1/auth/login",
        json={"phone": alice.phone, "password": PASSWORD, "session": "cookie"},
    )
    assert login.status_code == 200, login.text
    token = client.cookies.get(SESSION_COOKIE)
    assert token
    csrf = sessions.csrf_token_for(token)
    assert client.get("/v1/auth/session").status_code == 200  # cached now
    assert sessions.cached(session_cache_of(runtime), token=token) is not None
    with counted(runtime.db) as seen:
        missing = client.post("/v1/auth/logout")
        wrong = client.post("/v1/auth/logout", headers={CSRF_HEADER: csrf[:-2] + "xx"})
    assert (missing.status_code, missing.json()["code"]) == (403, "csrf_failed")
    assert (wrong.status_code, wrong.json()["code"]) == (403, "csrf_failed")
    assert seen["statements"] == 0
    # A cookie session is no bearer token, and the other way round.
    as_bearer = client.get("/v1/auth/session", headers={"Authorization": f"Bearer {token}"})
    assert as_bearer.status_code == 401
    assert client.post("/v1/auth/logout", headers={CSRF_HEADER: csrf}).status_code == 204
    client.cookies.set(SESSION_COOKIE, token)
    assert client.get("/v1/auth/session").status_code == 401


def _last_seen(db: Database) -> dict[int, int]:
    with db.uow(readonly=True) as uow:
        rows = uow.session.execute(text("SELECT id, last_seen_at FROM identity_sessions"))
        return {int(pk): int(seen) for pk, seen in rows.all()}


def test_touching_sessions_costs_requests_no_write_transaction(
    client: TestClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A burst of first requests from sessions last seen over a minute ago: the requests
    run no write transaction at all; one flush then writes every touch in one statement."""
    monkeypatch.setattr(sessions, "FLUSH_EVERY_SECONDS", 3600.0)  # only the explicit flush
    people = [Person(client, n, card_ending=None) for n in range(1, 6)]
    with runtime.db.uow() as uow:
        uow.session.execute(
            text("UPDATE identity_sessions SET last_seen_at = last_seen_at - :back"),
            {"back": 2 * sessions.TOUCH_EVERY_US},
        )
        uow.commit()
    session_cache_of(runtime).drop(lambda _entry: True)
    before = _last_seen(runtime.db)
    with statement_count.counted(runtime.db) as tally:
        for person in people * 2:  # the second request of each is a cache hit, no touch
            assert person.get("/v1/auth/session").status_code == 200
    assert tally.write == []
    assert len(tally.read) == len(people)  # each session's one lookup
    assert _last_seen(runtime.db) == before  # nothing written yet
    with statement_count.counted(runtime.db) as tally:
        assert sessions.flush_touches(runtime.db) == len(people)
    assert len(tally.write) == 1
    assert tally.statements == 1
    after = _last_seen(runtime.db)
    assert all(after[pk] >= before[pk] + 2 * sessions.TOUCH_EVERY_US for pk in before)
    assert sessions.flush_touches(runtime.db) == 0  # nothing left pending


def test_the_flusher_thread_writes_pending_touches_by_itself(
    client: TestClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sessions, "FLUSH_EVERY_SECONDS", 0.05)
    alice = Person(client, 1, card_ending=None)
    with runtime.db.uow() as uow:
        uow.session.execute(text("UPDATE identity_sessions SET last_seen_at = 1"))
        uow.commit()
    session_cache_of(runtime).drop(lambda _entry: True)
    assert alice.get("/v1/auth/session").status_code == 200
    for _ in range(400):  # an outcome awaited, not a timing asserted
        if all(seen > 1 for seen in _last_seen(runtime.db).values()):
            break
        time.sleep(0.025)
    assert all(seen > 1 for seen in _last_seen(runtime.db).values())


def test_closing_the_runtime_writes_pending_touches(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sessions, "FLUSH_EVERY_SECONDS", 3600.0)
    db = Database(db_url, pool_size=4)
    runtime = Runtime(wallet_settings(tmp_path, db), db, test_encryptor())
    with TestClient(create_app(runtime)) as client:
        alice = Person(client, 1, card_ending=None)
        with db.uow() as uow:
            uow.session.execute(text("UPDATE identity_sessions SET last_seen_at = 1"))
            uow.commit()
        session_cache_of(runtime).drop(lambda _entry: True)
        assert alice.get("/v1/auth/session").status_code == 200
        assert set(_last_seen(db).values()) == {1}
    # The app's lifespan ended: the touch is written.
    assert all(seen > 1 for seen in _last_seen(db).values())
    runtime.close()
