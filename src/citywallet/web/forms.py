"""Helpers shared by the pages' forms (the three apps): the one-time form key, amounts typed
in yuan, doing the work once per key (the PIN checked inside it), and the redirect with a
flash message."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from urllib.parse import quote

from fastapi.responses import RedirectResponse

from citywallet.identity.pins import run_confirmed
from citywallet.money import Money, MoneyError
from citywallet.platform import idempotency
from citywallet.platform.db import UnitOfWork
from citywallet.platform.errors import InvalidInput
from citywallet.runtime import Runtime

_KEY = re.compile(r"[A-Za-z0-9_-]{8,64}")


def new_key() -> str:
    """A one-time key for a money-moving form, made when the form is shown."""
    return secrets.token_urlsafe(18)


def key_ok(key: str) -> bool:
    """Whether ``key`` looks like one :func:`new_key` made (8–64 URL-safe characters)."""
    return _KEY.fullmatch(key) is not None


def key_or_new(key: str) -> str:
    """``key`` if it is well formed, otherwise a fresh one (for showing the form again)."""
    return key if key_ok(key) else new_key()


def parse_amount(text: str) -> int:
    """Yuan typed by a person (``12.50``, ``1,000``, ``¥8``) as fen (``invalid_amount``)."""
    try:
        amount = Money.parse(text.strip().replace(",", "").replace("¥", "")).amount
    except (MoneyError, ValueError):
        raise InvalidInput("Enter an amount like 12.50.", code="invalid_amount") from None
    if amount <= 0:
        raise InvalidInput("Enter an amount above zero.", code="invalid_amount")
    return amount


def once(
    runtime: Runtime,
    *,
    user_id: str,
    key: str,
    action: str,
    fields: dict[str, str],
    work: Callable[[UnitOfWork], str],
) -> str:
    """Run ``work`` (moves money, returns the id to show) once per one-time ``key``, as the
    API's ``Idempotent`` does (``platform.idempotency.claim_then``): the key is claimed and
    the outcome stored in the transaction of ``work``; its fingerprint binds it to
    ``action`` and ``fields``. A repeated key returns the first outcome without checking the
    PIN or moving money again. ``work`` checks the payment PIN inside its transaction (the
    services take ``pin=``); a wrong one rolls it back and is counted on its own. A
    malformed key is ``form_key_invalid``."""
    if not key_ok(key):
        raise InvalidInput("This form has expired: reload the page.", code="form_key_invalid")
    shown = {k: v for k, v in fields.items() if k not in ("pin", "key")}
    fingerprint = idempotency.fingerprint(runtime.encryptor, "POST", f"web:{action}", shown)
    scope = f"web:{user_id}"[:64]

    def attempt(uow: UnitOfWork) -> tuple[idempotency.StoredResponse, bool]:
        return idempotency.claim_then(
            uow,
            scope=scope,
            key=key,
            request_hash=fingerprint,
            work=lambda uow: idempotency.StoredResponse(303, work(uow).encode()),
        )

    stored, _ = run_confirmed(runtime.db, attempt, settings=runtime.settings)
    return stored.body.decode()


def done(url: str, message: str) -> RedirectResponse:
    """303 to ``url`` with a flash ``message`` (an English text marked with ``N_``)."""
    joiner = "&" if "?" in url else "?"
    return RedirectResponse(f"{url}{joiner}done={quote(message, safe='')}", status_code=303)
