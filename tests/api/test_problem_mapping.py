"""Every domain error answers problem+json with its own status and code (issue 12 item 1).

The extras each error is raised with are read from the source (every call of a
DomainError subclass in ``src/citywallet`` with its keyword names), so an extra added
later that collides with a member of the problem (``status``, ``code`` …) fails here
rather than answering 500 in production.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import citywallet
from citywallet.api import problems
from citywallet.merchant import onboarding
from citywallet.platform.errors import PROBLEM_MEMBERS, DomainError
from citywallet.runtime import Runtime
from tests.ledger_checks import assert_ledger_clean
from tests.merchant_support import ShopOwner, SignedClient, application, fund
from tests.wallet_support import Person

SRC = Path(citywallet.__file__).parent


def _all_subclasses(cls: type[DomainError]) -> Iterator[type[DomainError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _all_subclasses(sub)


def _domain_errors() -> dict[str, type[DomainError]]:
    for module in pkgutil.walk_packages(citywallet.__path__, "citywallet."):
        importlib.import_module(module.name)
    found = {cls.__name__: cls for cls in _all_subclasses(DomainError)}
    found["DomainError"] = DomainError
    return found


ERRORS = _domain_errors()


def _extras_in_source() -> dict[str, set[tuple[str, ...]]]:
    """For each error class, the keyword sets the code constructs it with."""
    used: dict[str, set[tuple[str, ...]]] = {name: set() for name in ERRORS}
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if name in used:
                assert all(k.arg is not None for k in node.keywords), (
                    f"{path}:{node.lineno}: pass {name}'s extras by name so this test sees them"
                )
                used[name].add(tuple(sorted(str(k.arg) for k in node.keywords)))
    return used


def _cases() -> Iterator[tuple[str, tuple[str, ...]]]:
    for name, keywords in sorted(_extras_in_source().items()):
        for names in sorted(keywords | {()}):
            yield name, names


def _construct(cls: type[DomainError], names: tuple[str, ...]) -> DomainError:
    """``cls`` with ``names`` as keyword arguments, plus any its constructor requires."""
    params = inspect.signature(cls.__init__).parameters
    kwargs: dict[str, object] = {n: f"{n}-value" for n in names}
    for param in params.values():
        required = param.kind is param.KEYWORD_ONLY and param.default is param.empty
        if required and param.name not in kwargs:
            kwargs[param.name] = f"{param.name}-value"
    for key in ("retry_after", "attempts_left"):
        if key in kwargs:
            kwargs[key] = 7
    return cls("Refused for a reason.", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(("name", "names"), list(_cases()), ids=lambda v: str(v))
def test_every_domain_error_maps_to_its_own_problem(name: str, names: tuple[str, ...]) -> None:
    error = _construct(ERRORS[name], names)
    app = FastAPI()
    problems.install(app)

    @app.get("/raise")
    def _raise() -> None:
        raise error

    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.get("/raise")
    assert answer.status_code == error.status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    body = answer.json()
    assert (body["status"], body["code"]) == (error.status, error.code)
    assert body["type"].endswith("/" + error.code)
    assert body["detail"] == "Refused for a reason."
    assert body["instance"] == "/raise"
    for key, value in error.extra.items():
        assert body[key] == value
    if "retry_after" in error.extra:
        assert answer.headers["retry-after"] == str(error.extra["retry_after"])


def test_an_extra_cannot_take_a_member_of_the_problem() -> None:
    for member in sorted(PROBLEM_MEMBERS - {"code"}):  # ``code`` is a parameter of its own
        with pytest.raises(TypeError, match=member):
            DomainError("no", **{member: "x"})
    with pytest.raises(TypeError, match="status"):
        problems.problem(409, "c", "t", "d", extra={"status": "active"})


def test_a_pending_merchant_cannot_order(client: TestClient, runtime: Runtime) -> None:
    """A pending merchant's signed ``POST /v1/merchant/orders`` is 409, not 500."""
    owner = Person(client, 1)
    made = owner.post("/v1/merchants", application(owner, 1))
    assert made.status_code == 201, made.text
    merchant_id = made.json()["id"]
    key = owner.post(f"/v1/merchants/{merchant_id}/api-keys", {"scheme": "hmac-sha256"})
    assert key.status_code == 201, key.text
    api = SignedClient(client, key.json()["key"]["id"], key.json()["secret"], "hmac-sha256")
    answer = api.post("/v1/merchant/orders", {"out_trade_no": "T000001", "amount": 100})
    assert answer.status_code == 409, answer.text
    body = answer.json()
    assert (body["status"], body["code"]) == (409, "merchant_not_active")
    assert body["merchant_status"] == "pending_review"
    assert_ledger_clean(runtime.db)


def test_a_suspended_merchants_static_code_is_refused(client: TestClient, runtime: Runtime) -> None:
    """A resident's preview of a suspended merchant's static code is 409, not 500."""
    shop = ShopOwner(client, runtime, 1)
    alice = Person(client, 2)
    fund(alice, 100_00)
    code = shop.person.get(f"/v1/merchants/{shop.merchant_id}/stores/{shop.store_id}/code")
    payload = code.json()["payload"]
    runtime.db.transact(
        lambda uow: onboarding.review_merchant(
            uow, merchant_id=shop.merchant_id, action="suspend", reason="checks"
        )
    )
    answer = alice.post("/v1/payments/scan/preview", {"payload": payload})
    assert answer.status_code == 409, answer.text
    assert answer.json()["code"] == "merchant_not_active"
    assert answer.json()["merchant_status"] == "suspended"
    assert alice.wallet()["balance"] == 100_00
    assert_ledger_clean(runtime.db)
