"""The payer's side, for residents: find who holds a number, ask for a quote, pay it.

Lookups and quotes are rows written with their outgoing message in one transaction; the
switch's callbacks fill them in, and the API polls the row. Paying a quote is one
transaction, the same shape as a P2P transfer: the payer's wallet locked with their PIN
state (checked here), the tier limits counted, a pending ledger transfer wallet →
INTEROP_SETTLEMENT (timeout 0: only the switch's final word resolves it), the row, the
history line and the outgoing prepare.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update

from citywallet.identity.service import user_phone
from citywallet.interop.messages import (
    Amount,
    ErrorCode,
    PartyLookupResult,
    PartyRef,
    QuoteRequest,
    QuoteResponse,
    TransferPrepare,
)
from citywallet.interop.provider.business import MERCHANT, BusinessPayer
from citywallet.interop.provider.common import (
    PUBLIC_STATE,
    SECOND_US,
    from_us,
    interop_account,
    msisdn,
    new_uuid,
    provider_name,
    require_configured,
    send,
    to_us,
)
from citywallet.interop.provider.models import InteropTransfer, PartyLookup, PayerQuote
from citywallet.interop.provider.waiting import notify_after_commit, party_key, quote_key
from citywallet.ledger import service as ledger
from citywallet.ledger.types import Result, TransferCode, TransferFlags, TransferSpec
from citywallet.platform import ratelimit
from citywallet.platform.clock import now_us
from citywallet.platform.config import Settings
from citywallet.platform.crypto import Encryptor
from citywallet.platform.db import UnitOfWork
from citywallet.platform.errors import Conflict, InvalidInput, NotFound
from citywallet.platform.ratelimit import Rule
from citywallet.wallet import accounts, history
from citywallet.wallet.accounts import CURRENCY
from citywallet.wallet.errors import InsufficientBalance
from citywallet.wallet.funding import validate_amount
from citywallet.wallet.limits import reserve_outflow
from citywallet.wallet.people import active_user, lock_parties, new_id

LOOKUP_REUSE_SECONDS = 300  # a found party is reused here for this long (any asker)
LOOKUPS = "interop.lookups"  # the rate-limit rule of lookups that reach the switch
NOTE_MAX = 100


class PartyNotFound(NotFound):
    """No provider holds that number."""

    code = "party_not_found"


class QuoteNotFound(NotFound):
    """No such quote (or not yours)."""

    code = "interop_quote_not_found"


class InteropTransferNotFound(NotFound):
    """No such cross-provider transfer (or not yours)."""

    code = "interop_transfer_not_found"


@dataclass(frozen=True)
class PartyView:
    """Who holds a number: the provider (its id, and its display name if the switch gave
    one) and the masked real name."""

    participant: str
    masked_name: str
    participant_name: str | None = None


@dataclass(frozen=True)
class Waiting:
    """A row still waiting for the switch's callback (``state`` ``waiting``), or answered."""

    state: str  # "waiting" | "found" / "ready" | "not_found" / "failed"
    error_code: str | None


@dataclass(frozen=True)
class QuoteView:
    """A quote as its asker sees it."""

    quote_id: str
    participant: str
    masked_name: str
    amount: int
    payer_fee: int
    total: int
    currency: str
    expires_at: int
    participant_name: str  # the display name, else the participant id


@dataclass(frozen=True)
class InteropTransferView:
    """A cross-provider transfer as its sender sees it."""

    id: str
    switch_transfer_id: str
    role: str
    state: str  # "processing" | "committed" | "aborted" | "expired"
    participant: str
    masked_name: str
    amount: int
    payer_fee: int
    currency: str
    note: str
    error_code: str | None
    created_at: int
    resolved_at: int | None
    participant_name: str  # the display name, else the participant id


# --- discovery ----------------------------------------------------------------------------


def start_lookup(uow: UnitOfWork, *, user_id: str, phone: str, settings: Settings) -> int:
    """Ask the switch who holds ``phone``; returns the lookup's id to poll."""
    require_configured(settings)
    active_user(uow, user_id)
    identifier = msisdn(phone)
    # Each lookup that reaches the switch counts: nobody walks the directory for names.
    rule = Rule(LOOKUPS, settings.interop_lookups_per_hour, 3600, code="interop_lookups_exceeded")
    ratelimit.hit(uow, rule, user_id)
    moment = now_us()
    row = PartyLookup(
        user_id=user_id, identifier=identifier, state="waiting", created_at=moment,
        updated_at=moment,
    )  # fmt: skip
    uow.session.add(row)
    uow.session.flush()
    send(uow, settings, method="GET", path=f"/parties/MSISDN/{identifier}", destination=None)
    return row.id


def lookup_state(uow: UnitOfWork, *, lookup_id: int) -> tuple[Waiting, PartyView | None]:
    """The state of a lookup and, once found, the party."""
    row = uow.session.get(PartyLookup, lookup_id)
    assert row is not None
    found = None
    if row.state == "found" and row.fsp_id and row.masked_name:
        found = PartyView(row.fsp_id, row.masked_name, row.fsp_name)
    return Waiting(row.state, row.error_code), found


def on_party(
    uow: UnitOfWork, *, identifier: str, result: PartyLookupResult | None, code: str | None
) -> int:
    """``PUT /parties/MSISDN/{id}[/error]``: answer every lookup waiting for that number."""
    values: dict[str, object] = {"updated_at": now_us()}
    if result is not None:
        values |= {
            "state": "found", "fsp_id": result.party.fsp_id,
            "masked_name": result.party.masked_name, "fsp_name": result.party.fsp_name,
        }  # fmt: skip
    else:
        values |= {"state": "not_found", "error_code": code}
    answered = uow.session.execute(
        update(PartyLookup)
        .where(PartyLookup.identifier == identifier, PartyLookup.state == "waiting")
        .values(**values)
    )
    notify_after_commit(uow, party_key(identifier))
    return int(answered.rowcount)  # type: ignore[attr-defined]


def recent_party(uow: UnitOfWork, *, phone: str) -> PartyView | None:
    """The party found here for ``phone`` in the last few minutes, if any: the switch gives
    every asker the same answer, so a resident paying a number someone here paid lately
    needs no lookup hop. A quote refused with 3204 since then (the number moved or closed)
    has retired the answer (:func:`on_quote`)."""
    row = uow.session.scalar(
        select(PartyLookup)
        .where(
            PartyLookup.identifier == msisdn(phone),
            PartyLookup.state == "found",
            PartyLookup.updated_at >= now_us() - LOOKUP_REUSE_SECONDS * SECOND_US,
        )
        .order_by(PartyLookup.id.desc())
        .limit(1)
    )
    if row is None or not row.fsp_id or not row.masked_name:
        return None
    return PartyView(row.fsp_id, row.masked_name, row.fsp_name)


# --- agreement ----------------------------------------------------------------------------


def start_quote(
    uow: UnitOfWork,
    *,
    user_id: str,
    phone: str,
    party: PartyView,
    amount: int,
    currency: str,
    settings: Settings,
    encryptor: Encryptor,
    now: datetime,
) -> str:
    """Ask the payee's provider for terms to send ``amount``; returns the quote's public id."""
    require_configured(settings)
    validate_amount(amount, currency)
    active_user(uow, user_id)
    if party.participant == settings.interop_participant_id:
        raise Conflict(
            "That number is one of ours: send with a wallet transfer.", code="same_provider"
        )
    payee = PartyRef(party_identifier=msisdn(phone), fsp_id=party.participant)
    return _ask_quote(
        uow, user_id=user_id, payer=_resident(uow, user_id, settings, encryptor), payee=payee,
        masked_name=party.masked_name, amount=amount, settings=settings, now=now,
        fsp_name=party.participant_name,
    )  # fmt: skip


def start_merchant_quote(
    uow: UnitOfWork,
    *,
    user_id: str,
    merchant_id: str,
    participant: str,
    merchant_name: str,
    qr_payload: str,
    amount: int,
    settings: Settings,
    encryptor: Encryptor,
    now: datetime,
) -> str:
    """Ask another provider's merchant (``merchant_id`` at ``participant``, from the code
    the resident scanned) for terms to pay ``amount``; the merchant's provider authenticates
    ``qr_payload`` before it quotes. Returns the quote's public id (then as for a resident:
    :func:`quote_state`, :func:`send_transfer`)."""
    require_configured(settings)
    validate_amount(amount, CURRENCY)
    active_user(uow, user_id)
    if participant == settings.interop_participant_id:
        raise Conflict("That merchant is one of ours.", code="same_provider")
    payee = PartyRef(party_id_type="BUSINESS", party_identifier=merchant_id, fsp_id=participant)
    return _ask_quote(
        uow, user_id=user_id, payer=_resident(uow, user_id, settings, encryptor), payee=payee,
        masked_name=merchant_name[:64], amount=amount, settings=settings, now=now,
        qr_payload=qr_payload,
    )  # fmt: skip


def start_business_quote(
    uow: UnitOfWork,
    *,
    owner: str,
    merchant_id: str,
    payee: PartyRef,
    amount: int,
    settings: Settings,
    now: datetime,
) -> None:
    """Ask ``payee``'s provider for terms for one of our merchants (``merchant_id``) to
    send ``amount`` (a refund, ``owner`` its id: the quote's public id). No resident: the
    merchant feature authorised it; the prepare follows the terms at once
    (:func:`on_quote` with a :class:`BusinessPayer`)."""
    require_configured(settings)
    validate_amount(amount, CURRENCY)
    payer = PartyRef(
        party_id_type="BUSINESS", party_identifier=merchant_id,
        fsp_id=settings.interop_participant_id,
    )  # fmt: skip
    _ask_quote(
        uow, user_id=MERCHANT, payer=payer, payee=payee, masked_name=_masked(payee),
        amount=amount, settings=settings, now=now, public_id=owner,
    )  # fmt: skip


def _masked(party: PartyRef) -> str:
    """A number as the pages show it (no name is known without a lookup)."""
    number = party.party_identifier
    return f"{number[:3]}****{number[-4:]}" if len(number) > 7 else number


def _resident(uow: UnitOfWork, user_id: str, settings: Settings, encryptor: Encryptor) -> PartyRef:
    phone = msisdn(user_phone(uow, user_id=user_id, encryptor=encryptor))
    return PartyRef(party_identifier=phone, fsp_id=settings.interop_participant_id)


def _ask_quote(
    uow: UnitOfWork,
    *,
    user_id: str,
    payer: PartyRef,
    payee: PartyRef,
    masked_name: str,
    amount: int,
    settings: Settings,
    now: datetime,
    qr_payload: str | None = None,
    public_id: str | None = None,
    fsp_name: str | None = None,
) -> str:
    """The quote row and its ``POST /quotes``, in one transaction (``fsp_name``: the
    payee's provider's display name, if a lookup gave it; the terms may give it later)."""
    request = QuoteRequest(
        quote_id=new_uuid(),
        transaction_id=new_uuid(),
        payer=payer,
        payee=payee,
        amount_type="SEND",
        amount=Amount(amount=amount),
        expiration=now + timedelta(seconds=settings.interop_transfer_seconds),
        qr_payload=qr_payload,
    )
    party = PartyView(payee.fsp_id, masked_name)
    moment = to_us(now)
    public_id = public_id or new_id("iqt")
    uow.session.add(
        PayerQuote(
            public_id=public_id, quote_id=request.quote_id, user_id=user_id,
            payee_identifier=request.payee.party_identifier, payee_fsp=party.participant,
            payee_fsp_name=fsp_name, masked_name=party.masked_name, amount=amount,
            state="waiting", created_at=moment, updated_at=moment,
        )
    )  # fmt: skip
    uow.session.flush()
    send(uow, settings, method="POST", path="/quotes", destination=party.participant, body=request)
    return public_id


def _quote_row(uow: UnitOfWork, *, user_id: str, quote_id: str, lock: bool = False) -> PayerQuote:
    query = select(PayerQuote).where(PayerQuote.public_id == quote_id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    row = uow.session.scalar(query)
    if row is None or row.user_id != user_id:
        raise QuoteNotFound("No such quote.")
    return row


def quote_state(
    uow: UnitOfWork, *, user_id: str, quote_id: str
) -> tuple[Waiting, QuoteView | None]:
    """The state of a quote and, once ready, its terms."""
    row = _quote_row(uow, user_id=user_id, quote_id=quote_id)
    view = None
    if row.state == "ready":
        assert row.transfer_amount is not None
        assert row.payer_fee is not None
        assert row.expires_at is not None
        view = QuoteView(
            row.public_id, row.payee_fsp, row.masked_name, row.transfer_amount, row.payer_fee,
            row.transfer_amount + row.payer_fee, CURRENCY, row.expires_at,
            provider_name(row.payee_fsp, row.payee_fsp_name),
        )  # fmt: skip
    return Waiting(row.state, row.error_code), view


def on_quote(
    uow: UnitOfWork,
    *,
    quote_id: str,
    source_fsp: str | None,
    response: QuoteResponse | None,
    code: str | None,
    settings: Settings | None = None,
    business: BusinessPayer | None = None,
) -> bool:
    """``PUT /quotes/{id}[/error]`` for a quote we asked: fill in the terms (or the refusal)
    once; returns whether something changed. A merchant's quote (a refund) goes on at once
    through ``business``: the prepare, or the refund fails."""
    row = uow.session.scalar(
        select(PayerQuote).where(PayerQuote.quote_id == quote_id).with_for_update()
    )
    if row is None or row.state != "waiting":
        return False
    del source_fsp
    notify_after_commit(uow, quote_key(row.public_id))
    row.updated_at = now_us()
    if response is not None and response.transfer_amount.amount == row.amount:
        row.state = "ready"
        row.transfer_amount = response.transfer_amount.amount
        row.payer_fee = response.payer_fee.amount
        row.payee_fee = response.payee_fee.amount
        row.condition = response.ilp_condition
        row.expires_at = to_us(response.expiration)
        if response.payee_fsp_name:  # the switch's registry names the payee's provider
            row.payee_fsp_name = response.payee_fsp_name
    else:  # refused, or terms for another amount than we asked
        row.state = "failed"
        row.error_code = code or ErrorCode.GENERIC_VALIDATION_ERROR.value
        if code == ErrorCode.PARTY_NOT_FOUND.value:  # not there any more: look it up again
            _retire_lookups(uow, identifier=row.payee_identifier, participant=row.payee_fsp)
    uow.session.flush()
    if row.user_id == MERCHANT:
        if settings is None or business is None:  # pragma: no cover - the adapters pass them
            raise RuntimeError(f"merchant quote {quote_id} without its merchant payer")
        _business_prepare(uow, row, settings, business)
    return True


def _retire_lookups(uow: UnitOfWork, *, identifier: str, participant: str) -> None:
    uow.session.execute(
        update(PartyLookup)
        .where(
            PartyLookup.identifier == identifier,
            PartyLookup.state == "found",
            PartyLookup.fsp_id == participant,
        )
        .values(state="not_found", error_code=ErrorCode.PARTY_NOT_FOUND.value)
    )


def _business_prepare(
    uow: UnitOfWork, quote: PayerQuote, settings: Settings, business: BusinessPayer
) -> None:
    """A merchant's quote answered: hold the merchant's debit and send the prepare, or
    tell the merchant feature it failed (refused, a payer fee we do not pay, or the
    merchant can no longer cover it)."""
    if quote.state != "ready" or quote.payer_fee:
        business.fail(uow, owner=quote.public_id)
        return
    assert quote.transfer_amount is not None
    assert quote.condition is not None
    public_id, transfer_id = new_id("itf"), new_uuid()
    held = business.hold(
        uow, owner=quote.public_id, transfer_id=transfer_id, amount=quote.transfer_amount,
        settlement=interop_account(uow),
    )  # fmt: skip
    if held:
        _prepare(
            uow, settings, quote=quote, public_id=public_id, transfer_id=transfer_id,
            user_id=MERCHANT, note="", usage="{}", idempotency_key=quote.public_id,
        )  # fmt: skip


# --- the transfer -------------------------------------------------------------------------


def _note(note: str) -> str:
    clean = " ".join(note.split())
    if len(clean) > NOTE_MAX:
        raise InvalidInput(f"A note has at most {NOTE_MAX} characters.", code="note_too_long")
    return clean


def send_transfer(
    uow: UnitOfWork,
    *,
    user_id: str,
    quote_id: str,
    pin: str | None,
    settings: Settings,
    encryptor: Encryptor,
    note: str = "",
    idempotency_key: str | None = None,
) -> InteropTransferView:
    """Pay a ready quote: PIN (inside: run with ``identity.run_confirmed``), limits, a
    pending debit and the prepare to the switch, in the caller's transaction."""
    require_configured(settings)
    clean_note = _note(note)
    payer, _ = lock_parties(uow, user_id=user_id, pin=pin, encryptor=encryptor)
    quote = _quote_row(uow, user_id=user_id, quote_id=quote_id, lock=True)
    moment = now_us()
    if quote.state != "ready":
        raise Conflict("This quote has no terms to pay.", code="interop_quote_not_ready")
    assert quote.transfer_amount is not None
    assert quote.payer_fee is not None
    assert quote.condition is not None
    assert quote.expires_at is not None
    if moment >= quote.expires_at:
        raise Conflict("This quote has expired; ask for a new one.", code="interop_quote_expired")
    if uow.session.scalar(
        select(InteropTransfer.id).where(InteropTransfer.quote_id == quote.quote_id)
    ):
        raise Conflict("This quote was paid already.", code="interop_quote_used")
    total = quote.transfer_amount + quote.payer_fee
    periods = reserve_outflow(
        uow, user_id=user_id, tier=payer.user.tier, amount=total, settings=settings,
        moment=moment,
    )  # fmt: skip
    account = ledger.get_account(uow, account_id=payer.account_id)
    assert account is not None
    if account.available < total:
        raise InsufficientBalance(
            "The wallet's available balance does not cover the amount and the fee.",
            available=account.available,
            needed=total,
        )
    public_id, transfer_id = new_id("itf"), new_uuid()
    settlement = interop_account(uow)
    holds = [
        TransferSpec(
            id=public_id,
            debit_account_id=payer.account_id,
            credit_account_id=settlement,
            amount=quote.transfer_amount,
            ledger=CURRENCY,
            code=TransferCode.INTEROP,
            flags=TransferFlags.PENDING | (TransferFlags.LINKED if quote.payer_fee else 0),
            reference=transfer_id,
        )
    ]
    if quote.payer_fee:
        holds.append(
            TransferSpec(
                id=f"{public_id}.fee",
                debit_account_id=payer.account_id,
                credit_account_id=accounts.fee_revenue_account(uow),
                amount=quote.payer_fee,
                ledger=CURRENCY,
                code=TransferCode.FEE,
                flags=TransferFlags.PENDING,
                reference=transfer_id,
            )
        )
    results = ledger.post(uow, transfers=holds)
    if any(r is Result.EXCEEDS_CREDITS for r in results):
        raise InsufficientBalance("The wallet's available balance does not cover the amount.")
    if not all(r.on_books for r in results):
        raise RuntimeError(f"ledger refused interop hold {public_id}: {results}")
    row = _prepare(
        uow, settings, quote=quote, public_id=public_id, transfer_id=transfer_id,
        user_id=user_id, note=clean_note,
        usage=json.dumps(dict.fromkeys([periods.day, periods.year, periods.lifetime], total)),
        idempotency_key=idempotency_key,
    )  # fmt: skip
    history.record(
        uow,
        user_id=user_id,
        object_id=public_id,
        kind="transfer_out",
        amount=quote.transfer_amount,
        fee=quote.payer_fee,
        currency=CURRENCY,
        status="processing",
        transfer_ids=[h.id for h in holds],
        counterparty_label=f"{quote.masked_name} "
        f"({provider_name(quote.payee_fsp, quote.payee_fsp_name)})",
        note=clean_note,
        reference=transfer_id,
    )
    uow.session.flush()
    return view_of(row)


def _prepare(
    uow: UnitOfWork,
    settings: Settings,
    *,
    quote: PayerQuote,
    public_id: str,
    transfer_id: str,
    user_id: str,
    note: str,
    usage: str,
    idempotency_key: str | None,
) -> InteropTransfer:
    """The payer's transfer row for a ready quote and its ``POST /transfers`` (the caller
    has held the money)."""
    assert quote.transfer_amount is not None
    assert quote.payer_fee is not None
    assert quote.condition is not None
    moment = now_us()
    expiration = moment + settings.interop_transfer_seconds * SECOND_US
    row = InteropTransfer(
        public_id=public_id,
        transfer_id=transfer_id,
        quote_id=quote.quote_id,
        role="payer",
        user_id=user_id,
        counterparty_fsp=quote.payee_fsp,
        counterparty_fsp_name=quote.payee_fsp_name,
        counterparty_identifier=quote.payee_identifier,
        counterparty_name=quote.masked_name,
        amount=quote.transfer_amount,
        payer_fee=quote.payer_fee,
        payee_fee=quote.payee_fee or 0,
        condition=quote.condition,
        state="PREPARED",
        note=note,
        usage=usage,
        idempotency_key=idempotency_key,
        expires_at=expiration,
        created_at=moment,
        updated_at=moment,
    )
    uow.session.add(row)
    uow.session.flush()
    send(
        uow, settings, method="POST", path="/transfers", destination=quote.payee_fsp,
        body=TransferPrepare(
            transfer_id=transfer_id, payer_fsp=settings.interop_participant_id,
            payee_fsp=quote.payee_fsp, amount=Amount(amount=quote.transfer_amount),
            ilp_condition=quote.condition, expiration=from_us(expiration),
        ),
    )  # fmt: skip
    return row


def view_of(row: InteropTransfer) -> InteropTransferView:
    """The resident's view of a transfer row."""
    return InteropTransferView(
        row.public_id, row.transfer_id, row.role, PUBLIC_STATE[row.state], row.counterparty_fsp,
        row.counterparty_name, row.amount, row.payer_fee, CURRENCY, row.note, row.error_code,
        row.created_at, row.resolved_at,
        provider_name(row.counterparty_fsp, row.counterparty_fsp_name),
    )  # fmt: skip


def get_transfer(uow: UnitOfWork, *, user_id: str, transfer_id: str) -> InteropTransferView:
    """One of the resident's cross-provider transfers (404 for anyone else's)."""
    row = uow.session.scalar(
        select(InteropTransfer).where(InteropTransfer.public_id == transfer_id)
    )
    if row is None or row.user_id != user_id:
        raise InteropTransferNotFound("No such transfer.")
    return view_of(row)


def transfer_for_key(
    uow: UnitOfWork, *, user_id: str, idempotency_key: str
) -> InteropTransferView | None:
    """The resident's transfer started with ``idempotency_key``, if any."""
    row = uow.session.scalar(
        select(InteropTransfer).where(
            InteropTransfer.user_id == user_id, InteropTransfer.idempotency_key == idempotency_key
        )
    )
    return None if row is None else view_of(row)
