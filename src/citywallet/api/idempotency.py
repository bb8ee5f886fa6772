"""``Idempotency-Key`` on money-moving requests: the route-side half of
:mod:`citywallet.platform.idempotency`.

Every money-moving ``POST`` requires the header (400 ``idempotency_key_required``). The
key is claimed (``begin``) as the first statement of the transaction that moves the money,
and the response is stored (``finish``) in that same transaction, so the key, the ledger
effects and the response commit together: a replay gets the stored response byte for byte
(with ``Idempotent-Replayed: true``), the same key with a different request answers 422
``idempotency_key_reused``, and concurrent duplicates wait for the first and then replay it.

A request that calls the bank in between runs two transactions: :meth:`Idempotent.start`
claims the key together with the PIN check and the ledger holds (the key stays *in
progress*: a duplicate meanwhile answers 409 ``idempotency_key_in_progress``), and
:meth:`Idempotent.complete` stores the response together with the settlement. If the
process dies in between, the next duplicate asks ``recover`` whether the work finished
anyway (the reconciliation job settles the holds) and stores that answer.

Keys are scoped to the caller. The request fingerprint is a keyed hash (the lookup key) of
method, path and the parsed body, so the stored fingerprint reveals nothing about a PIN in
the body, and formatting differences in the JSON do not count as a different request.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import Header, Request, Response
from pydantic import BaseModel

from citywallet.identity.service import run_confirmed
from citywallet.platform import idempotency
from citywallet.platform.db import UnitOfWork
from citywallet.platform.errors import Conflict, DomainError
from citywallet.runtime import Runtime

R = TypeVar("R")
Rendered = tuple[int, BaseModel]

KEY_PATTERN = re.compile(r"[\x21-\x7e]{1,128}")  # printable ASCII, no spaces (as Stripe's)
REPLAYED_HEADER = "Idempotent-Replayed"

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Required: a unique key per money-moving request (e.g. a UUID), 1–128 "
        "printable ASCII characters. Retrying with the same key and body returns the first "
        "response; the same key with another body answers 422 idempotency_key_reused.",
    ),
]


class IdempotencyKeyRequired(DomainError):
    """A money-moving request came without a usable ``Idempotency-Key``."""

    code = "idempotency_key_required"
    status = 400
    title = "Idempotency-Key required"


class Idempotent:
    """One money-moving request under its ``Idempotency-Key``."""

    def __init__(self, runtime: Runtime, *, scope: str, key: str, fingerprint: str) -> None:
        self.runtime = runtime
        self.scope = scope
        self.key = key
        self.fingerprint = fingerprint

    @classmethod
    def of(
        cls, runtime: Runtime, request: Request, *, scope: str, key: str | None, body: BaseModel
    ) -> Idempotent:
        """The idempotency context of a request (refuses a missing or malformed key)."""
        if key is None:
            raise IdempotencyKeyRequired(
                "Send an Idempotency-Key header (for example a UUID) with every request "
                "that moves money."
            )
        if not KEY_PATTERN.fullmatch(key):
            raise IdempotencyKeyRequired(
                "An Idempotency-Key is 1 to 128 printable ASCII characters without spaces.",
                code="idempotency_key_invalid",
            )
        fingerprint = idempotency.fingerprint(
            runtime.encryptor, request.method, request.url.path, body.model_dump(mode="json")
        )
        return cls(runtime, scope=scope, key=key, fingerprint=fingerprint)

    # --- replays ------------------------------------------------------------------------

    def replay(
        self, *, recover: Callable[[UnitOfWork], Rendered | None] | None = None
    ) -> Response | None:
        """The stored response if this key was used before, looked up in a transaction that
        is rolled back; for a key still in progress (a request waiting for the bank),
        ``recover`` may answer from what that request left. ``None`` for a new key."""
        try:
            with self.runtime.db.uow() as uow:  # rolled back: only looks
                stored = self._begin(uow)
        except Conflict as exc:
            if exc.code != "idempotency_key_in_progress" or recover is None:
                raise
            return self._recover(recover, exc)
        return None if stored is None else self._response(stored, replayed=True)

    def stored(self, uow: UnitOfWork) -> Response | None:
        """The stored response of this key, looked up read only in ``uow`` (for a request
        refused by read-only checks before it claims its key); ``None`` for a new key."""
        stored = idempotency.lookup(
            uow, scope=self.scope, key=self.key, request_hash=self.fingerprint
        )
        return None if stored is None else self._response(stored, replayed=True)

    def _recover(
        self, recover: Callable[[UnitOfWork], Rendered | None], in_progress: Conflict
    ) -> Response:
        def attempt(uow: UnitOfWork) -> idempotency.StoredResponse | None:
            rendered = recover(uow)
            if rendered is None:
                return None
            stored = self._stored(rendered)
            idempotency.finish(
                uow, scope=self.scope, key=self.key, status_code=stored.status_code,
                body=stored.body,
            )  # fmt: skip
            return stored

        try:
            stored = self.runtime.db.transact(attempt)
        except RuntimeError:  # the original request finished it just now
            replayed = self.replay()
            if replayed is None:
                raise in_progress from None
            return replayed
        if stored is None:
            raise Conflict(
                "The request with this Idempotency-Key is still being processed; retry shortly.",
                code="idempotency_key_in_progress",
                retry_after=2,
            ) from None
        return self._response(stored, replayed=True)

    # --- running ------------------------------------------------------------------------

    def run(self, fn: Callable[[UnitOfWork], R], render: Callable[[R], Rendered]) -> Response:
        """Claim the key, do ``fn`` and store its rendered response in one transaction.

        A key used before replays its response before ``fn`` runs (so a replay neither needs
        nor spends a PIN try). ``fn`` may check the payment PIN inside (``check_pin``): a
        wrong one rolls everything back, the key included, and is counted on its own."""

        def attempt(uow: UnitOfWork) -> tuple[idempotency.StoredResponse, bool]:
            return idempotency.claim_then(
                uow,
                scope=self.scope,
                key=self.key,
                request_hash=self.fingerprint,
                work=lambda uow: self._stored(render(fn(uow))),
            )

        stored, replayed = run_confirmed(self.runtime.db, attempt, settings=self.runtime.settings)
        return self._response(stored, replayed=replayed)

    def start(self, fn: Callable[[UnitOfWork], R]) -> R | Response:
        """First of two transactions: claim the key together with ``fn``'s effects (the key
        stays in progress). A key already finished returns its stored response instead
        (before ``fn`` runs: a replay needs no PIN). ``fn`` may check the PIN inside, as in
        :meth:`run`."""

        def attempt(uow: UnitOfWork) -> R | Response:
            stored = self._begin(uow)
            if stored is not None:
                return self._response(stored, replayed=True)
            return fn(uow)

        return run_confirmed(self.runtime.db, attempt, settings=self.runtime.settings)

    def complete(self, fn: Callable[[UnitOfWork], R], render: Callable[[R], Rendered]) -> Response:
        """Last of two transactions: ``fn``'s effects and the stored response commit together
        (if a recovering duplicate stored a response meanwhile, that one is returned)."""

        def attempt(uow: UnitOfWork) -> tuple[idempotency.StoredResponse, bool]:
            try:
                stored = self._begin(uow)
            except Conflict as exc:
                if exc.code != "idempotency_key_in_progress":
                    raise
                stored = None  # ours, as expected
            result = fn(uow)
            if stored is not None:
                return stored, True
            response = self._stored(render(result))
            self._finish(uow, response)
            return response, False

        stored, replayed = self.runtime.db.transact(attempt)
        return self._response(stored, replayed=replayed)

    # --- plumbing -----------------------------------------------------------------------

    def _begin(self, uow: UnitOfWork) -> idempotency.StoredResponse | None:
        return idempotency.begin(uow, scope=self.scope, key=self.key, request_hash=self.fingerprint)

    def _finish(self, uow: UnitOfWork, response: idempotency.StoredResponse) -> None:
        idempotency.finish(
            uow,
            scope=self.scope,
            key=self.key,
            status_code=response.status_code,
            body=response.body,
        )

    @staticmethod
    def _stored(rendered: Rendered) -> idempotency.StoredResponse:
        status, model = rendered
        return idempotency.StoredResponse(status, model.model_dump_json().encode())

    @staticmethod
    def _response(stored: idempotency.StoredResponse, *, replayed: bool) -> Response:
        headers = {REPLAYED_HEADER: "true"} if replayed else {}
        return Response(
            content=stored.body,
            status_code=stored.status_code,
            media_type="application/json",
            headers=headers,
        )
