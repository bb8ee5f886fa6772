"""Transfers to a mobile number held at another wallet provider, from the transfer page.

When the number is no resident here and this deployment is connected to a switch, the
transfer form does not move money: it finds the party and asks for a quote (the provider
service the ``/v1/interop`` API uses; the page waits for the switch's callbacks), then shows
the recipient's masked name, their provider, the amount, the fee and the total before the
PIN. Confirming pays the quote in one transaction through :func:`citywallet.web.forms.once`
(the one-time form key is also the transfer's idempotency key) and waits a few seconds for
the switch's final word; the receipt shows committed, processing or refused. See
docs/interop.md, "Pages"."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import Response

from citywallet.identity.service import find_user_by_phone
from citywallet.interop.provider import service as interop
from citywallet.platform.db import UnitOfWork
from citywallet.platform.errors import Conflict, DomainError
from citywallet.runtime import Runtime
from citywallet.web.forms import done, key_or_new, new_key, once
from citywallet.web.i18n import N_
from citywallet.web.session import FormFields, ViewerDep, field_errors, runtime_of
from citywallet.web.templating import render

router = APIRouter(prefix="/app", include_in_schema=False)

WAIT_SECONDS = 5.0  # for each callback: the party, the quote, the transfer's final word
T = TypeVar("T")

CONFIRM_FIELDS = {
    "pin_incorrect": "pin",
    "pin_locked": "pin",
    "pin_not_set": "pin",
    "note_too_long": "note",
}
# A quote that cannot be paid any more: back to the transfer form.
STALE_QUOTE = ("interop_quote_expired", "interop_quote_not_ready", "interop_quote_used")
RESULT = {
    "committed": N_("Sent."),
    "processing": N_(
        "Sent to the other provider, which has not answered yet: the money is held until it does."
    ),
    "aborted": N_("The other provider refused the transfer; the money is back in your wallet."),
    "expired": N_("The transfer expired before it completed; the money is back in your wallet."),
}


class InteropTimeout(DomainError):
    """The switch did not answer in time (the request may still complete)."""

    code = "interop_timeout"
    status = 504
    title = "The other provider did not answer in time"


class QuoteRefused(Conflict):
    """The recipient's provider (or the switch) refused to quote."""

    code = "interop_quote_refused"


def elsewhere(runtime: Runtime, to: str) -> bool:
    """Whether ``to`` is a mobile number of nobody here while a switch is connected
    (``invalid_phone`` for a string that is no mobile number)."""
    if not interop.configured(runtime.settings) or to.startswith("usr_"):
        return False
    with runtime.db.uow(readonly=True) as uow:
        return find_user_by_phone(uow, phone=to, encryptor=runtime.encryptor) is None


def _wait(runtime: Runtime, probe: Callable[[UnitOfWork], T | None], key: str) -> T | None:
    """What ``probe`` finds once the switch answered about ``key``, or ``None`` after
    ``WAIT_SECONDS``."""
    return interop.wait_for(runtime.db, probe, seconds=WAIT_SECONDS, key=key)


def _party(runtime: Runtime, user_id: str, phone: str) -> interop.PartyView:
    with runtime.db.uow(readonly=True) as uow:
        party = interop.recent_party(uow, phone=phone)
    if party is not None:
        return party
    lookup_id = runtime.db.transact(
        lambda uow: interop.start_lookup(
            uow, user_id=user_id, phone=phone, settings=runtime.settings
        )
    )

    def answered(uow: UnitOfWork) -> tuple[interop.Waiting, interop.PartyView | None] | None:
        state, found = interop.lookup_state(uow, lookup_id=lookup_id)
        return None if state.state == "waiting" else (state, found)

    answer = _wait(runtime, answered, interop.party_key(interop.msisdn(phone)))
    if answer is None:
        raise InteropTimeout("The switch did not answer in time; try again.")
    if answer[1] is None:
        raise interop.PartyNotFound("No wallet provider holds that number.")
    return answer[1]


def ask_quote(runtime: Runtime, *, user_id: str, phone: str, amount: int) -> interop.QuoteView:
    """Find who holds ``phone`` and get their provider's terms for sending ``amount``."""
    party = _party(runtime, user_id, phone)
    quote_id = runtime.db.transact(
        lambda uow: interop.start_quote(
            uow, user_id=user_id, phone=phone, party=party, amount=amount, currency="CNY",
            settings=runtime.settings, encryptor=runtime.encryptor, now=datetime.now(UTC),
        )
    )  # fmt: skip

    def answered(uow: UnitOfWork) -> tuple[interop.Waiting, interop.QuoteView | None] | None:
        state, view = interop.quote_state(uow, user_id=user_id, quote_id=quote_id)
        return None if state.state == "waiting" else (state, view)

    answer = _wait(runtime, answered, interop.quote_key(quote_id))
    if answer is None:
        raise InteropTimeout("The recipient's provider did not answer in time; try again.")
    state, view = answer
    if view is None:
        if state.error_code == "3204":
            raise interop.PartyNotFound("No wallet provider holds that number.")
        raise QuoteRefused(
            "The recipient's provider refused the transfer.", fspiop_code=state.error_code
        )
    return view


def confirm_page(
    request: Request,
    quote: interop.QuoteView,
    *,
    note: str,
    key: str | None = None,
    errors: dict[str, DomainError] | None = None,
    status: int = 200,
) -> Response:
    """The terms before the PIN: who (masked), at which provider, amount, fee, total."""
    return render(
        request,
        "app/transfer_interop.html",
        {"quote": quote, "note": note, "key": key or new_key(), "field_errors": errors or {}},
        status_code=status,
    )


def _back_to_form(request: Request, exc: DomainError) -> Response:
    return render(
        request,
        "app/transfer.html",
        {"form": {}, "key": new_key(), "field_errors": {"": exc}, "connected": True},
        status_code=exc.status,
    )


@router.post("/transfer/interop")
def pay_quote(request: Request, who: ViewerDep, fields: FormFields) -> Response:
    """Pay the quote shown (PIN), once per form; the receipt tells how it ended."""
    runtime = runtime_of(request)
    interop.require_configured(runtime.settings)
    key = key_or_new(fields.get("key", ""))
    quote_id = fields.get("quote_id", "")[:40]
    note = fields.get("note", "").strip()
    with runtime.db.uow(readonly=True) as uow:  # 404 for another resident's quote
        _, quote = interop.quote_state(uow, user_id=who.user_id, quote_id=quote_id)
    try:
        transfer_id = once(
            runtime,
            user_id=who.user_id,
            key=key,
            action="interop_transfer",
            fields={"quote_id": quote_id, "note": note},
            work=lambda uow: (
                interop.send_transfer(
                    uow, user_id=who.user_id, quote_id=quote_id, pin=fields.get("pin", ""),
                    settings=runtime.settings, encryptor=runtime.encryptor, note=note,
                    idempotency_key=key,
                ).id
            ),
        )  # fmt: skip
    except DomainError as exc:
        if quote is None or exc.code in STALE_QUOTE:
            return _back_to_form(request, exc)
        return confirm_page(
            request, quote, note=note, key=key, errors=field_errors(exc, CONFIRM_FIELDS),
            status=exc.status,
        )  # fmt: skip

    def final(uow: UnitOfWork) -> interop.InteropTransferView | None:
        view = interop.get_transfer(uow, user_id=who.user_id, transfer_id=transfer_id)
        return None if view.state == "processing" else view

    ended = _wait(runtime, final, interop.transfer_key(transfer_id))
    return done(f"/app/history/{transfer_id}", RESULT[ended.state if ended else "processing"])
