"""Residents' wallet pages: home, top-up, withdrawal, transfers, AA splits, history,
receipts, spending overview.

Money-moving forms confirm the payment PIN (as the API does) and carry a one-time ``key``
made when the form is shown: a top-up or withdrawal uses it as the wallet's idempotency key;
a transfer or a split payment goes through :func:`citywallet.web.forms.once`, so a double
submit moves money once and lands on the same receipt. See docs/web-app.md."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from citywallet.identity.service import run_confirmed
from citywallet.interop.provider import service as interop
from citywallet.platform.clock import now_us
from citywallet.platform.errors import DomainError, InvalidInput
from citywallet.runtime import Runtime
from citywallet.wallet import bills, spending
from citywallet.wallet import service as wallet
from citywallet.wallet.bank import Bank
from citywallet.wallet.history import KINDS
from citywallet.web.app import interop as interop_pages
from citywallet.web.forms import done, key_or_new, new_key, once, parse_amount
from citywallet.web.i18n import N_
from citywallet.web.session import FormFields, ViewerDep, field_errors, runtime_of
from citywallet.web.templating import render

router = APIRouter(prefix="/app", include_in_schema=False)

MONEY_FIELDS = {
    "invalid_amount": "amount",
    "insufficient_balance": "amount",
    "single_limit_exceeded": "amount",
    "daily_limit_exceeded": "amount",
    "yearly_limit_exceeded": "amount",
    "lifetime_limit_exceeded": "amount",
    "balance_limit_exceeded": "amount",
    "recipient_limit_exceeded": "amount",
    "pin_incorrect": "pin",
    "pin_locked": "pin",
    "pin_not_set": "pin",
    "card_not_found": "card_id",
    "recipient_not_found": "to",
    "recipient_unavailable": "to",
    "cannot_pay_self": "to",
    "invalid_phone": "to",
    "note_too_long": "note",
    "party_not_found": "to",
    "interop_quote_refused": "to",
    "same_provider": "to",
}
SPLIT_FIELDS = {
    "invalid_amount": "total",
    "recipient_not_found": "people",
    "invalid_phone": "people",
    "duplicate_participant": "people",
    "invalid_share_count": "people",
    "note_too_long": "note",
}
DONE = {
    "topup": N_("Topped up."),
    "topup_pending": N_("The bank has not answered yet; the money shows as pending."),
    "withdrawal": N_("Withdrawal on its way to your card."),
    "transfer": N_("Sent."),
    "split": N_("Split request sent."),
    "share": N_("Your share is paid."),
    "reminded": N_("Reminders sent to those who have not paid."),
    "cancelled": N_("The unpaid shares are cancelled."),
}
STATUSES = ("succeeded", "processing", "unknown", "failed")
KIND_LABELS = {
    "topup": N_("Top-up"),
    "withdrawal": N_("Withdrawal"),
    "transfer_out": N_("Transfer sent"),
    "transfer_in": N_("Transfer received"),
    "split_payment": N_("Split bill paid"),
    "split_collection": N_("Split bill collected"),
    "merchant_payment": N_("Merchant payment"),
    "merchant_refund": N_("Refund"),
    "redpacket_sent": N_("Red packet sent"),
    "redpacket_received": N_("Red packet received"),
    "redpacket_refund": N_("Red packet refund"),
}
STATUS_LABELS = {
    "succeeded": N_("Succeeded"),
    "processing": N_("Processing"),
    "unknown": N_("Waiting for the bank"),
    "failed": N_("Failed"),
}
CATEGORY_LABELS = {
    "dining": N_("Dining"),
    "groceries": N_("Groceries"),
    "shopping": N_("Shopping"),
    "clothing": N_("Clothing"),
    "transport": N_("Transport"),
    "health": N_("Health"),
    "utilities": N_("Utilities"),
    "entertainment": N_("Entertainment"),
    "education": N_("Education"),
    "travel": N_("Travel"),
    "other": N_("Other"),
}
ROLE_LABELS = {
    "hold": N_("Hold"),
    "post": N_("Posted"),
    "void": N_("Released"),
    "transfer": N_("Transfer"),
}


def _labels() -> dict[str, Any]:
    return {
        "kind_labels": KIND_LABELS,
        "status_labels": STATUS_LABELS,
        "category_labels": CATEGORY_LABELS,
        "role_labels": ROLE_LABELS,
    }


def _to(path: str, what: str) -> RedirectResponse:
    return done(path, DONE[what])


# --- home ---------------------------------------------------------------------------------


@router.get("")
def home(request: Request, who: ViewerDep) -> Response:
    """Own balance, restricted red-packet balances apart, recent transactions."""
    runtime = runtime_of(request)
    moment = now_us()
    with runtime.db.uow(readonly=True) as uow:
        view = wallet.wallet_view(uow, user_id=who.user_id, settings=runtime.settings)
        restricted = [
            r
            for r in wallet.balances_of(uow, user_id=who.user_id)
            if r.status == "active" and r.available > 0 and r.valid_until > moment
        ]
        recent = wallet.list_history(uow, user_id=who.user_id, limit=5)
    return render(
        request,
        "app/home.html",
        {"wallet": view, "restricted": restricted, "recent": recent.items, **_labels()},
    )


# --- top-up -------------------------------------------------------------------------------


def _cards(runtime: Runtime, user_id: str) -> list[wallet.CardView]:
    with runtime.db.uow(readonly=True) as uow:
        return [c for c in wallet.list_cards(uow, user_id=user_id) if c.status == "active"]


def _funding_form(
    request: Request,
    user_id: str,
    kind: str,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, DomainError] | None = None,
    status: int = 200,
) -> Response:
    runtime = runtime_of(request)
    with runtime.db.uow(readonly=True) as uow:
        view = wallet.wallet_view(uow, user_id=user_id, settings=runtime.settings)
    return render(
        request,
        "app/topup.html" if kind == "topup" else "app/withdraw.html",
        {
            "cards": _cards(runtime, user_id),
            "wallet": view,
            "form": form or {},
            "key": new_key(),
            "field_errors": errors or {},
        },
        status_code=status,
    )


@router.get("/topup")
def topup_page(request: Request, who: ViewerDep) -> Response:
    """Top up from a bound card: amount, card, PIN."""
    return _funding_form(request, who.user_id, "topup")


def _finish_funding(
    runtime: Runtime, bank: Bank, started: wallet.BankRequest
) -> wallet.FundingView:
    answer = wallet.ask_bank(bank, started)
    return runtime.db.transact(
        lambda uow: wallet.settle_funding(uow, funding_id=started.funding_id, answer=answer)
    )


def _funding_done(view: wallet.FundingView) -> RedirectResponse:
    what = view.kind if view.status == "succeeded" else "topup_pending"
    if view.kind == "withdrawal" and view.status != "failed":
        what = "withdrawal"
    return _to(f"/app/history/{view.id}", what)


@router.post("/topup")
def topup(request: Request, who: ViewerDep, fields: FormFields) -> Response:
    runtime = runtime_of(request)
    key = key_or_new(fields.get("key", ""))
    form = {"amount": fields.get("amount", ""), "card_id": fields.get("card_id", "")}
    try:
        amount = parse_amount(form["amount"])
        with runtime.db.uow(readonly=True) as uow:
            seen = wallet.funding_for_key(uow, user_id=who.user_id, idempotency_key=key)
        if seen is not None:
            return RedirectResponse(f"/app/history/{seen.id}", status_code=303)
        bank = runtime.bank  # before anything is written (the PIN check counts a wrong try)
        started = run_confirmed(
            runtime.db,
            lambda uow: wallet.start_topup(
                uow,
                user_id=who.user_id,
                card_id=form["card_id"],
                amount=amount,
                encryptor=runtime.encryptor,
                settings=runtime.settings,
                idempotency_key=key,
                pin=fields.get("pin", ""),
            ),
            settings=runtime.settings,
        )
    except DomainError as exc:
        return _funding_form(
            request,
            who.user_id,
            "topup",
            form=form,
            errors=field_errors(exc, MONEY_FIELDS),
            status=exc.status,
        )
    return _funding_done(_finish_funding(runtime, bank, started))


# --- withdrawal: amount → confirm (fee shown) → done ---------------------------------------


@router.get("/withdraw")
def withdraw_page(request: Request, who: ViewerDep) -> Response:
    """Step 1: amount and card."""
    return _funding_form(request, who.user_id, "withdrawal")


def _confirm_page(
    request: Request,
    user_id: str,
    amount: int,
    card_id: str,
    *,
    key: str | None = None,
    errors: dict[str, DomainError] | None = None,
    status: int = 200,
) -> Response:
    runtime = runtime_of(request)
    with runtime.db.uow(readonly=True) as uow:
        quote_ = wallet.quote_withdrawal(
            uow, user_id=user_id, amount=amount, settings=runtime.settings
        )
        card = wallet.get_card(uow, user_id=user_id, card_id=card_id)
    return render(
        request,
        "app/withdraw_confirm.html",
        {
            "quote": quote_,
            "card": card,
            "amount_text": f"{amount / 100:.2f}",
            "key": key or new_key(),
            "field_errors": errors or {},
        },
        status_code=status,
    )


@router.get("/withdraw/confirm")
def withdraw_confirm(
    request: Request, who: ViewerDep, amount: str = "", card_id: str = ""
) -> Response:
    """Step 2: the fee and the total that leaves the wallet, then the PIN."""
    try:
        value = parse_amount(amount)
        with runtime_of(request).db.uow(readonly=True) as uow:
            wallet.get_card(uow, user_id=who.user_id, card_id=card_id)
    except DomainError as exc:
        return _funding_form(
            request,
            who.user_id,
            "withdrawal",
            form={"amount": amount, "card_id": card_id},
            errors=field_errors(exc, MONEY_FIELDS),
            status=exc.status,
        )
    return _confirm_page(request, who.user_id, value, card_id)


@router.post("/withdraw")
def withdraw(request: Request, who: ViewerDep, fields: FormFields) -> Response:
    runtime = runtime_of(request)
    key = key_or_new(fields.get("key", ""))
    card_id = fields.get("card_id", "")
    try:
        amount = parse_amount(fields.get("amount", ""))
    except DomainError as exc:
        return _funding_form(
            request, who.user_id, "withdrawal", errors=field_errors(exc, MONEY_FIELDS),
            status=exc.status,
        )  # fmt: skip
    try:
        with runtime.db.uow(readonly=True) as uow:
            seen = wallet.funding_for_key(uow, user_id=who.user_id, idempotency_key=key)
        if seen is not None:
            return RedirectResponse(f"/app/history/{seen.id}", status_code=303)
        bank = runtime.bank  # before anything is written (the PIN check counts a wrong try)
        started = run_confirmed(
            runtime.db,
            lambda uow: wallet.start_withdrawal(
                uow,
                user_id=who.user_id,
                card_id=card_id,
                amount=amount,
                encryptor=runtime.encryptor,
                settings=runtime.settings,
                idempotency_key=key,
                pin=fields.get("pin", ""),
            ),
            settings=runtime.settings,
        )
    except DomainError as exc:
        if exc.code == "card_not_found":
            raise
        return _confirm_page(
            request, who.user_id, amount, card_id, key=key,
            errors=field_errors(exc, MONEY_FIELDS), status=exc.status,
        )  # fmt: skip
    return _funding_done(_finish_funding(runtime, bank, started))


# --- transfer -----------------------------------------------------------------------------


def _transfer_form(
    request: Request,
    user_id: str,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, DomainError] | None = None,
    status: int = 200,
) -> Response:
    runtime = runtime_of(request)
    form = form or {}
    chosen = None
    with runtime.db.uow(readonly=True) as uow:
        recent = wallet.recent_recipients(uow, user_id=user_id)
        if form.get("to", "").startswith("usr_") and "to" not in (errors or {}):
            try:  # a recent recipient tapped: shown by name, their id kept in the form
                chosen = wallet.recipient_preview(
                    uow, user_id=user_id, to=form["to"], encryptor=runtime.encryptor
                )
            except DomainError:
                form = {**form, "to": ""}
    return render(
        request,
        "app/transfer.html",
        {
            "form": form,
            "key": form.get("key") or new_key(),
            "field_errors": errors or {},
            "connected": interop.configured(runtime.settings),
            "recent": recent,
            "chosen": chosen,
        },
        status_code=status,
    )


def transfer_confirm_page(
    request: Request,
    recipient: wallet.RecipientView,
    *,
    form: dict[str, str],
    amount_fixed: bool = True,
    errors: dict[str, DomainError] | None = None,
    status: int = 200,
) -> Response:
    """Step 2 of a transfer, before the PIN: whom the money reaches (masked real name),
    how much, the note; also where a scanned receive code lands."""
    return render(
        request,
        "app/transfer_confirm.html",
        {
            "recipient": recipient,
            "form": form,
            "amount_fixed": amount_fixed,
            "amount": parse_amount(form["amount"]) if amount_fixed else None,
            "key": form.get("key") or new_key(),
            "field_errors": errors or {},
        },
        status_code=status,
    )


def preview_recipient(runtime: Runtime, user_id: str, to: str) -> wallet.RecipientView:
    """Whom a transfer to ``to`` would reach (refusals as the transfer would give them)."""
    with runtime.db.uow(readonly=True) as uow:
        return wallet.recipient_preview(uow, user_id=user_id, to=to, encryptor=runtime.encryptor)


@router.get("/transfer")
def transfer_page(request: Request, who: ViewerDep, to: str = "") -> Response:
    """Send money to a phone number (or a recent recipient): who, how much, a note."""
    return _transfer_form(request, who.user_id, form={"to": to[:40]})


@router.post("/transfer")
def transfer(request: Request, who: ViewerDep, fields: FormFields) -> Response:
    """Step 1 moves nothing: the recipient's masked name and the amount to confirm, then the
    PIN (a number at another provider: that provider's terms first)."""
    runtime = runtime_of(request)
    form = {k: fields.get(k, "").strip() for k in ("to", "amount", "note")}
    form["key"] = key_or_new(fields.get("key", ""))
    try:
        amount = parse_amount(form["amount"])
        form["amount"] = f"{amount // 100}.{amount % 100:02d}"
        if interop_pages.elsewhere(runtime, form["to"]):  # terms first, the PIN after them
            quote = interop_pages.ask_quote(
                runtime, user_id=who.user_id, phone=form["to"], amount=amount
            )
            return interop_pages.confirm_page(request, quote, note=form["note"])
        recipient = preview_recipient(runtime, who.user_id, form["to"])
        if len(" ".join(form["note"].split())) > 100:
            raise InvalidInput("A note has at most 100 characters.", code="note_too_long")
    except DomainError as exc:
        return _transfer_form(
            request, who.user_id, form=form, errors=field_errors(exc, MONEY_FIELDS),
            status=exc.status,
        )  # fmt: skip
    return transfer_confirm_page(request, recipient, form=form)


@router.post("/transfer/confirm")
def confirm_transfer(request: Request, who: ViewerDep, fields: FormFields) -> Response:
    """Step 2: the PIN, checked in the transaction that moves the money, once per form."""
    runtime = runtime_of(request)
    key = key_or_new(fields.get("key", ""))
    form = {k: fields.get(k, "").strip() for k in ("to", "amount", "note")}
    form["key"] = key
    amount_fixed = fields.get("amount_fixed", "1") != "0"
    try:
        recipient = preview_recipient(runtime, who.user_id, form["to"])
    except DomainError as exc:
        return _transfer_form(
            request, who.user_id, form=form, errors=field_errors(exc, MONEY_FIELDS),
            status=exc.status,
        )  # fmt: skip
    try:
        amount = parse_amount(form["amount"])
        transfer_id = once(
            runtime,
            user_id=who.user_id,
            key=key,
            action="transfer",
            fields={"to": recipient.user_id, "amount": str(amount), "note": form["note"]},
            work=lambda uow: (
                wallet.send_transfer(
                    uow,
                    user_id=who.user_id,
                    to=recipient.user_id,
                    amount=amount,
                    note=form["note"],
                    encryptor=runtime.encryptor,
                    settings=runtime.settings,
                    pin=fields.get("pin", ""),
                ).id
            ),
        )
    except DomainError as exc:
        errors = field_errors(exc, MONEY_FIELDS)
        if amount_fixed and "amount" in errors:  # the amount was agreed: choose another
            return _transfer_form(request, who.user_id, form=form, errors=errors, status=exc.status)
        return transfer_confirm_page(
            request, recipient, form=form, amount_fixed=amount_fixed, errors=errors,
            status=exc.status,
        )  # fmt: skip
    return _to(f"/app/history/{transfer_id}", "transfer")


# --- AA splits ----------------------------------------------------------------------------


def _splits_page(
    request: Request,
    user_id: str,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, DomainError] | None = None,
    status: int = 200,
) -> Response:
    with runtime_of(request).db.uow(readonly=True) as uow:
        splits = wallet.list_splits(uow, user_id=user_id, limit=50)
    mine = [s for s in splits if s.creator_id == user_id]
    asked = [s for s in splits if s.creator_id != user_id]
    return render(
        request,
        "app/splits.html",
        {
            "mine": mine,
            "asked": asked,
            "me": user_id,
            "form": form or {},
            "field_errors": errors or {},
        },
        status_code=status,
    )


@router.get("/splits")
def splits_page(request: Request, who: ViewerDep) -> Response:
    """Split bills I asked for and those asking me to pay, and a form for a new one."""
    return _splits_page(request, who.user_id)


@router.post("/splits")
def create_split(request: Request, who: ViewerDep, fields: FormFields) -> Response:
    """Ask people (mobile numbers) for even shares of a total."""
    runtime = runtime_of(request)
    form = {k: fields.get(k, "") for k in ("total", "note", "people", "include_me")}
    people = [p for p in form["people"].replace(",", " ").replace("，", " ").split() if p]
    try:
        total = parse_amount(form["total"])
        shares = [wallet.ShareRequest(p, None) for p in people]
        if form["include_me"]:
            shares.append(wallet.ShareRequest(who.user_id, None))
        view = runtime.db.transact(
            lambda uow: wallet.create_split(
                uow,
                user_id=who.user_id,
                total=total,
                note=form["note"].strip(),
                shares=shares,
                encryptor=runtime.encryptor,
                settings=runtime.settings,
            )
        )
    except DomainError as exc:
        return _splits_page(
            request, who.user_id, form=form, errors=field_errors(exc, SPLIT_FIELDS),
            status=exc.status,
        )  # fmt: skip
    return _to(f"/app/splits/{view.id}", "split")


def _split_page(
    request: Request,
    user_id: str,
    split_id: str,
    *,
    errors: dict[str, DomainError] | None = None,
    status: int = 200,
) -> Response:
    with runtime_of(request).db.uow(readonly=True) as uow:
        view = wallet.get_split(uow, user_id=user_id, split_id=split_id)
    mine = next((s for s in view.shares if s.user_id == user_id), None)
    return render(
        request,
        "app/split.html",
        {
            "split": view,
            "my_share": mine,
            "me": user_id,
            "key": new_key(),
            "field_errors": errors or {},
        },
        status_code=status,
    )


@router.get("/splits/{split_id}")
def split_page(split_id: str, request: Request, who: ViewerDep) -> Response:
    """One split bill: who has paid; my share with a pay form."""
    return _split_page(request, who.user_id, split_id)


@router.post("/splits/{split_id}/pay")
def pay_share(split_id: str, request: Request, who: ViewerDep, fields: FormFields) -> Response:
    """Pay my share to the split's creator (PIN)."""
    runtime = runtime_of(request)
    key = key_or_new(fields.get("key", ""))
    with runtime.db.uow(readonly=True) as uow:
        wallet.get_split(uow, user_id=who.user_id, split_id=split_id)  # 404 for strangers
    try:
        once(
            runtime,
            user_id=who.user_id,
            key=key,
            action="share",
            fields={"split_id": split_id},
            work=lambda uow: (
                wallet.pay_share(
                    uow,
                    user_id=who.user_id,
                    split_id=split_id,
                    settings=runtime.settings,
                    pin=fields.get("pin", ""),
                    encryptor=runtime.encryptor,
                ).id
            ),
        )
    except DomainError as exc:
        return _split_page(
            request, who.user_id, split_id, errors=field_errors(exc, MONEY_FIELDS),
            status=exc.status,
        )  # fmt: skip
    return _to(f"/app/splits/{split_id}", "share")


@router.post("/splits/{split_id}/remind")
def remind_split(split_id: str, request: Request, who: ViewerDep, _fields: FormFields) -> Response:
    """Remind everyone who has not paid (creator only; at most once an hour each)."""
    runtime = runtime_of(request)
    try:
        runtime.db.transact(
            lambda uow: wallet.remind_split(
                uow, user_id=who.user_id, split_id=split_id, settings=runtime.settings
            )
        )
    except DomainError as exc:
        if exc.status == 404:
            raise
        return _split_page(request, who.user_id, split_id, errors={"": exc}, status=exc.status)
    return _to(f"/app/splits/{split_id}", "reminded")


@router.post("/splits/{split_id}/cancel")
def cancel_split(split_id: str, request: Request, who: ViewerDep, _fields: FormFields) -> Response:
    """Cancel the unpaid shares (creator only); paid shares stay paid."""
    runtime = runtime_of(request)
    try:
        runtime.db.transact(
            lambda uow: wallet.cancel_split(
                uow, user_id=who.user_id, split_id=split_id, share_ids=[]
            )
        )
    except DomainError as exc:
        if exc.status == 404:
            raise
        return _split_page(request, who.user_id, split_id, errors={"": exc}, status=exc.status)
    return _to(f"/app/splits/{split_id}", "cancelled")


# --- history and receipts -----------------------------------------------------------------


@dataclass(frozen=True)
class HistoryFilter:
    kind: str
    month: str
    status: str

    def query(self, **more: str) -> str:
        values = {"kind": self.kind, "month": self.month, "status": self.status, **more}
        return urlencode({k: v for k, v in values.items() if v})


@router.get("/history")
def history(
    request: Request,
    who: ViewerDep,
    kind: str = "",
    month: str = "",
    status: str = "",
    cursor: str = "",
) -> Response:
    """Everything in and out, newest first, filtered by kind, month and status; paged."""
    chosen = HistoryFilter(
        kind if kind in KINDS else "",
        month[:7],
        status if status in STATUSES else "",
    )
    error: dict[str, DomainError] = {}
    since = until = None
    if chosen.month:
        try:
            since, until = spending.month_bounds(chosen.month)
        except DomainError as exc:
            error = {"month": exc}
    runtime = runtime_of(request)
    try:
        with runtime.db.uow(readonly=True) as uow:
            page = wallet.list_history(
                uow,
                user_id=who.user_id,
                kinds=[chosen.kind] if chosen.kind else [],
                statuses=[chosen.status] if chosen.status else [],
                since=since,
                until=until,
                cursor=cursor or None,
                limit=20,
            )
    except DomainError as exc:  # a cursor that is not ours: start from the top
        error = {"": exc}
        with runtime.db.uow(readonly=True) as uow:
            page = wallet.list_history(uow, user_id=who.user_id, limit=20)
    with runtime.db.uow(readonly=True) as uow:  # bills: by month, with totals and parts
        months = bills.group_by_month(uow, user_id=who.user_id, lines=page.items)
    return render(
        request,
        "app/history.html",
        {
            "page": page,
            "months": months,
            "filter": chosen,
            "kinds": KINDS,
            "statuses": STATUSES,
            "first_page": not cursor,
            "field_errors": error,
            **_labels(),
        },
    )


@router.get("/history/{transaction_id}")
def receipt(transaction_id: str, request: Request, who: ViewerDep) -> Response:
    """A receipt: the transaction, its ledger transfers with their inclusion proofs, and a
    button that checks the proofs in the browser against the published public key."""
    runtime = runtime_of(request)
    signer = runtime.ledger_signer()
    crossing = None
    with runtime.db.uow(readonly=True) as uow:
        found = wallet.receipt(uow, user_id=who.user_id, object_id=transaction_id, signer=signer)
        if transaction_id.startswith("itf_"):  # through the switch: its id and the provider
            crossing = interop.get_transfer(uow, user_id=who.user_id, transfer_id=transaction_id)
    proofs = [
        {"id": t.id, "fields": t.sealed_fields, "proof": t.proof}
        for t in found.transfers
        if t.proof is not None
    ]
    return render(
        request,
        "app/receipt.html",
        {
            "receipt": found,
            "tx": found.transaction,
            "crossing": crossing,
            "proofs": proofs,
            **_labels(),
        },
    )


# --- spending -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    """One bar of a server-rendered SVG chart (coordinates in the SVG's units)."""

    label: str
    amount: int
    x: float
    y: float
    width: float
    height: float


def bars(values: list[tuple[str, int]], *, width: float = 320, height: float = 140) -> list[Bar]:
    """Vertical bars for ``values`` scaled to the largest (negative net spending shows 0)."""
    if not values:
        return []
    top = max(max(v for _, v in values), 1)
    slot = width / len(values)
    result = []
    for index, (label, value) in enumerate(values):
        h = height * max(value, 0) / top
        result.append(Bar(label, value, index * slot + slot * 0.15, height - h, slot * 0.7, h))
    return result


@router.get("/spending")
def spending_page(request: Request, who: ViewerDep, month: str = "") -> Response:
    """This month's spending by category and by merchant, a chart, and the 6-month trend."""
    runtime = runtime_of(request)
    error: dict[str, DomainError] = {}
    try:
        if month:
            spending.parse_month(month)
    except DomainError as exc:
        error, month = {"month": exc}, ""
    with runtime.db.uow(readonly=True) as uow:
        view = spending.spending_overview(uow, user_id=who.user_id, month=month or None)
    largest = max((c.amount for c in view.by_category), default=0)
    return render(
        request,
        "app/spending.html",
        {
            "view": view,
            "trend": bars([(t.month, t.amount) for t in view.trend]),
            "largest": max(largest, 1),
            "field_errors": error,
            **_labels(),
        },
    )
