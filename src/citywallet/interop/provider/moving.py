"""Moving a resident (wallet, history, alias) from this cell to another, and receiving one
(docs/interop.md, "Moving a resident between cells").

The old cell drives the move, one transaction per step, each recording the new state of
the ``interop_moves`` row (:mod:`citywallet.interop.moves` says which step follows which),
so :func:`run_move` resumes after a crash at any point:

1. :func:`start_move` — refuse what cannot move (unknown number, an account not active or
   not verified, money on its way, an open red packet or split, campaign money, too long a
   history, this cell as the destination), freeze the account, the row ``frozen``;
2. :func:`send_package` — the signed ``POST /moves`` through the switch (``sent``);
3. the new cell imports the resident and answers ``PUT /moves/{id}`` (:func:`on_answer`:
   ``accepted``), or refuses (``refused``: the freeze is lifted, nothing else changed);
4. :func:`ask_quote` / :func:`prepare_transfer` / :func:`check_transfer` — the balance as
   one switch transfer to the resident's new wallet, through the payer's machinery without
   PIN, fee or limits (it is their own money); an aborted or expired one is voided and
   asked again (``quoting`` → ``transferring`` → ``transferred``);
5. :func:`hand_over_alias` — the switch's directory names the new cell (``alias_sent``),
   confirmed by a lookup (:func:`confirm_alias`), then the wallet is closed as ``moved``
   (``done``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from sqlalchemy import select

from citywallet.identity import moving as identity_moving
from citywallet.identity.service import find_user_by_phone, user_phone, verified_identity
from citywallet.interop.messages import (
    AliasRegistration,
    Amount,
    ErrorCode,
    ErrorMessage,
    PartyRef,
    error,
)
from citywallet.interop.moves import (
    FINAL,
    MAX_LINES,
    MoveAnswer,
    MovedCard,
    MovedCheck,
    MovedLine,
    MovedProfile,
    MoveEvent,
    MovePackage,
    MoveState,
    advance,
    check_package,
)
from citywallet.interop.provider.common import (
    SECOND_US,
    interop_account,
    msisdn,
    new_uuid,
    require_configured,
    require_on_books,
    send,
)
from citywallet.interop.provider.models import InteropTransfer, Move, PartyLookup, PayerQuote
from citywallet.interop.provider.payer import _ask_quote, _prepare
from citywallet.interop.transport import scrub
from citywallet.ledger import service as ledger
from citywallet.ledger.types import TransferCode, TransferFlags, TransferSpec
from citywallet.platform.clock import now_us
from citywallet.platform.config import Settings
from citywallet.platform.crypto import Encryptor
from citywallet.platform.db import Database, UnitOfWork
from citywallet.platform.errors import Conflict, InvalidInput, NotFound
from citywallet.platform.logging import get_logger
from citywallet.wallet import accounts, history
from citywallet.wallet import moving as wallet_moving
from citywallet.wallet.accounts import CURRENCY
from citywallet.wallet.people import new_id

log = get_logger(__name__)

MOVE_NOTE = "wallet moved"
ALIAS_RETRY_SECONDS = 2.0  # between two lookups that do not name the new cell yet


class MoveResidentNotFound(NotFound):
    """No resident has that mobile number here."""

    code = "move_resident_not_found"


class MoveRefusedHere(Conflict):
    """This cell will not start the move (``reason``)."""

    code = "move_refused"


@dataclass(frozen=True)
class MoveView:
    """A move as the operator sees it."""

    move_id: str
    direction: str
    user_id: str
    other_fsp: str
    state: str
    balance: int
    line_count: int
    other_user_id: str | None
    transfer_id: str | None
    error_code: str | None
    reason: str | None


def _view(row: Move) -> MoveView:
    return MoveView(
        row.move_id, row.direction, row.user_id, row.other_fsp, row.state, row.balance,
        row.line_count, row.other_user_id, row.transfer_id, row.error_code, row.reason,
    )  # fmt: skip


def _row(uow: UnitOfWork, move_id: str) -> Move:
    row = uow.session.scalar(
        select(Move)
        .where(Move.move_id == move_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if row is None:
        raise NotFound("No such move.", code="move_not_found")
    return row


def _step(row: Move, event: MoveEvent) -> None:
    row.state = advance(MoveState(row.state), event).value
    row.updated_at = now_us()


# --- the old cell --------------------------------------------------------------------------


def start_move(
    uow: UnitOfWork, *, phone: str, to: str, settings: Settings, encryptor: Encryptor
) -> MoveView:
    """Freeze the resident for a move to ``to`` (or return the unfinished move of theirs)."""
    require_configured(settings)
    if to == settings.interop_participant_id:
        raise MoveRefusedHere("The resident already lives at this cell.", reason="same_cell")
    try:
        PartyRef(party_identifier="13800000000", fsp_id=to)
    except ValueError:
        raise InvalidInput("Not a participant id.", code="invalid_participant") from None
    user = find_user_by_phone(uow, phone=phone, encryptor=encryptor)
    if user is None:
        raise MoveResidentNotFound("No resident has that mobile number at this cell.")
    latest = uow.session.scalar(
        select(Move)
        .where(Move.user_id == user.id, Move.direction == "out")
        .order_by(Move.id.desc())
        .limit(1)
    )
    if latest is not None and (latest.state not in FINAL or latest.state == "done"):
        if latest.other_fsp != to:
            raise MoveRefusedHere(
                f"This resident is moving (or moved) to {latest.other_fsp}.",
                reason="move_in_progress",
            )
        return _view(latest)  # resume it
    if user.status != "active":
        raise MoveRefusedHere(f"The account is {user.status}.", reason=f"account_{user.status}")
    if not user.real_name_verified:
        raise MoveRefusedHere(
            "Only a resident with a verified real name can move.", reason="real_name_required"
        )
    balance = wallet_moving.move_blockers(uow, user_id=user.id)
    lines = wallet_moving.history_count(uow, user_id=user.id)
    if lines > MAX_LINES:
        raise MoveRefusedHere(
            f"The history has {lines} lines; at most {MAX_LINES} move.", reason="history_too_long"
        )
    identity_moving.begin_move(uow, user_id=user.id, to=to)
    moment = now_us()
    row = Move(
        move_id=new_uuid(), direction="out", user_id=user.id, other_fsp=to,
        state=MoveState.FROZEN.value, balance=balance, line_count=lines,
        created_at=moment, updated_at=moment,
    )  # fmt: skip
    uow.session.add(row)
    uow.session.flush()
    log.info("move started", move_id=row.move_id, user_id=user.id, to=to)
    return _view(row)


def build_package(
    uow: UnitOfWork, *, row: Move, settings: Settings, encryptor: Encryptor
) -> MovePackage:
    """The signed message's body: the profile, the cards and the history, in clear."""
    profile = identity_moving.export_profile(uow, user_id=row.user_id, encryptor=encryptor)
    wallet = wallet_moving.export_wallet(uow, user_id=row.user_id, encryptor=encryptor)
    if wallet.balance != row.balance:  # frozen since: cannot happen unless someone bypassed it
        raise RuntimeError(f"move {row.move_id}: the balance changed while frozen")
    return MovePackage(
        move_id=row.move_id,
        from_fsp=settings.interop_participant_id,
        to_fsp=row.other_fsp,
        user_id=row.user_id,
        balance=Amount(amount=row.balance),
        profile=MovedProfile(
            phone=msisdn(profile.phone),
            password_hash=profile.password_hash,
            name=profile.name,
            id_number=profile.id_number,
            provider_ref=profile.provider_ref,
            verified_at=profile.verified_at,
            registered_at=profile.registered_at,
            checks=[MovedCheck(kind=k, count=c) for k, c in profile.checks],
        ),
        cards=[
            MovedCard(
                card_number=c.number,
                bank_code=c.bank_code,
                bank_name=c.bank_name,
                check_ref=c.check_ref,
                bound_at=c.bound_at,
            )
            for c in wallet.cards
        ],
        history=[
            MovedLine(
                object_id=line.object_id,
                kind=line.kind,
                amount=line.amount,
                fee=line.fee,
                currency="CNY",
                status=line.status,
                counterparty_label=line.counterparty_label,
                note=line.note,
                reference=line.reference,
                created_at=line.created_at,
            )
            for line in wallet.lines
        ],
    )


def send_package(uow: UnitOfWork, *, move_id: str, settings: Settings, encryptor: Encryptor) -> str:
    """``frozen``: queue the package to the new cell, through the switch."""
    row = _row(uow, move_id)
    if row.state != MoveState.FROZEN:
        return row.state
    package = build_package(uow, row=row, settings=settings, encryptor=encryptor)
    row.outbox_id = send(
        uow, settings, method="POST", path="/moves", destination=row.other_fsp, body=package
    )
    _step(row, MoveEvent.PACKAGE_QUEUED)
    uow.session.flush()
    return row.state


def on_answer(
    uow: UnitOfWork, *, move_id: str, answer: MoveAnswer | None, refusal: ErrorMessage | None
) -> str | None:
    """``PUT /moves/{id}[/error]``: the new cell holds the resident now, or refused (the
    freeze is lifted). Returns the new state, ``None`` when nothing changed."""
    row = uow.session.scalar(
        select(Move).where(Move.move_id == move_id, Move.direction == "out").with_for_update()
    )
    if row is None or row.state != MoveState.SENT:
        return None
    if row.outbox_id is not None:
        scrub(uow, row.outbox_id)
    if answer is not None:
        row.other_user_id = answer.user_id
        _step(row, MoveEvent.ACCEPTED)
    else:
        assert refusal is not None
        info = refusal.error_information
        row.error_code = info.error_code.value
        row.reason = (info.error_description or info.error_code.description)[:128]
        identity_moving.cancel_move(uow, user_id=row.user_id, why=row.reason)
        _step(row, MoveEvent.REFUSED)
    uow.session.flush()
    return row.state


def _phone(uow: UnitOfWork, row: Move, encryptor: Encryptor) -> str:
    return msisdn(user_phone(uow, user_id=row.user_id, encryptor=encryptor))


def ask_quote(
    uow: UnitOfWork, *, move_id: str, settings: Settings, encryptor: Encryptor, now: datetime
) -> str:
    """``accepted``: ask the new cell for terms to bring the balance (or skip: nothing to
    move)."""
    row = _row(uow, move_id)
    if row.state != MoveState.ACCEPTED:
        return row.state
    if row.balance == 0:
        _step(row, MoveEvent.NOTHING_TO_MOVE)
        return row.state
    phone = _phone(uow, row, encryptor)
    ours = settings.interop_participant_id
    row.quote_id = _ask_quote(
        uow, user_id=row.user_id, payer=PartyRef(party_identifier=phone, fsp_id=ours),
        payee=PartyRef(party_identifier=phone, fsp_id=row.other_fsp),
        masked_name=identity_moving.masked_name(uow, user_id=row.user_id), amount=row.balance,
        settings=settings, now=now,
    )  # fmt: skip
    row.transfer_id = None
    _step(row, MoveEvent.QUOTE_ASKED)
    uow.session.flush()
    return row.state


def prepare_transfer(uow: UnitOfWork, *, move_id: str, settings: Settings) -> str:
    """``quoting``: once the terms came, hold the whole balance and send the prepare; a
    refused, expired or priced quote is asked again (``accepted``)."""
    row = _row(uow, move_id)
    if row.state != MoveState.QUOTING:
        return row.state
    quote = uow.session.scalar(
        select(PayerQuote).where(PayerQuote.public_id == row.quote_id).with_for_update()
    )
    assert quote is not None
    if quote.state == "waiting":
        return row.state
    usable = (
        quote.state == "ready"
        and quote.transfer_amount == row.balance
        and not quote.payer_fee
        and not quote.payee_fee
        and quote.expires_at is not None
        and now_us() + SECOND_US < quote.expires_at
    )
    if not usable:
        row.error_code = quote.error_code or ErrorCode.GENERIC_VALIDATION_ERROR.value
        row.reason = "quote_unusable"
        _step(row, MoveEvent.QUOTE_FAILED)
        return row.state
    wallet = accounts.lock_wallets(uow, user_ids=[row.user_id])[row.user_id]
    public_id, transfer_id = new_id("itf"), new_uuid()
    require_on_books(
        ledger.post(
            uow,
            transfers=[
                TransferSpec(
                    id=public_id,
                    debit_account_id=wallet,
                    credit_account_id=interop_account(uow),
                    amount=row.balance,
                    ledger=CURRENCY,
                    code=TransferCode.INTEROP,
                    flags=TransferFlags.PENDING,
                    reference=transfer_id,
                )
            ],
        ),
        f"holding move {row.move_id}",
    )
    _prepare(
        uow, settings, quote=quote, public_id=public_id, transfer_id=transfer_id,
        user_id=row.user_id, note=MOVE_NOTE, usage="{}", idempotency_key=row.move_id,
    )  # fmt: skip
    history.record(
        uow, user_id=row.user_id, object_id=public_id, kind="transfer_out", amount=row.balance,
        currency=CURRENCY, status="processing", transfer_ids=[public_id],
        counterparty_label=row.other_fsp, note=MOVE_NOTE, reference=transfer_id,
    )  # fmt: skip
    row.transfer_id = public_id
    _step(row, MoveEvent.PREPARED)
    uow.session.flush()
    return row.state


def check_transfer(uow: UnitOfWork, *, move_id: str) -> str:
    """``transferring``: the switch's word on the balance: committed → ``transferred``;
    aborted or expired (voided, the money is back) → ``accepted``, to be asked again."""
    row = _row(uow, move_id)
    if row.state != MoveState.TRANSFERRING:
        return row.state
    transfer = uow.session.scalar(
        select(InteropTransfer).where(InteropTransfer.public_id == row.transfer_id)
    )
    assert transfer is not None
    if transfer.state == "COMMITTED":
        _step(row, MoveEvent.COMMITTED)
    elif transfer.state in ("ABORTED", "EXPIRED"):
        row.error_code, row.reason = transfer.error_code, f"transfer_{transfer.state.lower()}"
        _step(row, MoveEvent.TRANSFER_FAILED)
    uow.session.flush()
    return row.state


def _lookup(uow: UnitOfWork, row: Move, settings: Settings, phone: str) -> None:
    moment = now_us()
    lookup = PartyLookup(
        user_id=row.user_id, identifier=phone, state="waiting", created_at=moment,
        updated_at=moment,
    )  # fmt: skip
    uow.session.add(lookup)
    uow.session.flush()
    row.lookup_id = lookup.id
    send(uow, settings, method="GET", path=f"/parties/MSISDN/{phone}", destination=None)


def _hand_over(uow: UnitOfWork, row: Move, settings: Settings, phone: str) -> None:
    send(
        uow, settings, method="POST", path=f"/participants/MSISDN/{phone}", destination=None,
        body=AliasRegistration(
            fsp_id=row.other_fsp,
            masked_name=identity_moving.masked_name(uow, user_id=row.user_id),
        ),
    )  # fmt: skip


def hand_over_alias(
    uow: UnitOfWork, *, move_id: str, settings: Settings, encryptor: Encryptor
) -> str:
    """``transferred``: ask the switch to name the new cell as the number's holder (one
    step at the switch: it never holds nobody), then look the number up to confirm."""
    row = _row(uow, move_id)
    if row.state != MoveState.TRANSFERRED:
        return row.state
    phone = _phone(uow, row, encryptor)
    _hand_over(uow, row, settings, phone)
    _lookup(uow, row, settings, phone)
    _step(row, MoveEvent.ALIAS_QUEUED)
    uow.session.flush()
    return row.state


def confirm_alias(
    uow: UnitOfWork, *, move_id: str, settings: Settings, encryptor: Encryptor, retry: bool
) -> str:
    """``alias_sent``: the lookup names the new cell → close the wallet as ``moved``
    (``done``). Another answer with ``retry``: hand over and look again."""
    row = _row(uow, move_id)
    if row.state != MoveState.ALIAS_SENT:
        return row.state
    lookup = uow.session.get(PartyLookup, row.lookup_id) if row.lookup_id else None
    if lookup is not None and lookup.state == "found" and lookup.fsp_id == row.other_fsp:
        wallet_moving.close_moved(uow, user_id=row.user_id)
        identity_moving.finish_move(uow, user_id=row.user_id, to=row.other_fsp)
        _step(row, MoveEvent.ALIAS_CONFIRMED)
        log.info("move done", move_id=row.move_id, to=row.other_fsp)
    elif retry and (lookup is None or lookup.state != "waiting"):
        phone = _phone(uow, row, encryptor)
        _hand_over(uow, row, settings, phone)
        _lookup(uow, row, settings, phone)
    uow.session.flush()
    return row.state


def move_of(uow: UnitOfWork, *, move_id: str) -> MoveView:
    """One move, as the operator sees it."""
    row = uow.session.scalar(select(Move).where(Move.move_id == move_id))
    if row is None:
        raise NotFound("No such move.", code="move_not_found")
    return _view(row)


# --- the driver ------------------------------------------------------------------------------


class MoveStalled(Exception):
    """The move did not get further within the time given (run the command again)."""


def run_move(
    db: Database,
    *,
    phone: str,
    to: str,
    settings: Settings,
    encryptor: Encryptor,
    deliver: Callable[[], object],
    progress: Callable[[MoveView], None] = lambda _view: None,
    stop_after: str | None = None,
    seconds: float = 120.0,
    poll: float = 0.1,
) -> MoveView:
    """Start (or resume) the move and drive it to ``done`` or ``refused``: one transaction
    per step, ``deliver()`` after each (the process's courier), polling for the other cell's
    and the switch's answers. ``stop_after`` ends the run right after that state committed
    (a crash drill); :class:`MoveStalled` after ``seconds`` without reaching the end."""
    view = db.transact(
        lambda uow: start_move(uow, phone=phone, to=to, settings=settings, encryptor=encryptor)
    )
    move_id, seen = view.move_id, ""
    deadline = time.monotonic() + seconds
    last_alias_try = time.monotonic()
    while True:
        view = db.transact(lambda uow: move_of(uow, move_id=move_id))
        if view.state != seen:
            progress(view)
            seen = view.state
            if view.state == stop_after or view.state in FINAL:
                return view
        state = MoveState(view.state)
        if state is MoveState.FROZEN:
            db.transact(lambda uow: send_package(uow, move_id=move_id, settings=settings,
                                                 encryptor=encryptor))  # fmt: skip
        elif state is MoveState.ACCEPTED:
            db.transact(lambda uow: ask_quote(uow, move_id=move_id, settings=settings,
                                              encryptor=encryptor, now=_now()))  # fmt: skip
        elif state is MoveState.QUOTING:
            db.transact(lambda uow: prepare_transfer(uow, move_id=move_id, settings=settings))
        elif state is MoveState.TRANSFERRING:
            db.transact(lambda uow: check_transfer(uow, move_id=move_id))
        elif state is MoveState.TRANSFERRED:
            db.transact(lambda uow: hand_over_alias(uow, move_id=move_id, settings=settings,
                                                    encryptor=encryptor))  # fmt: skip
            last_alias_try = time.monotonic()
        elif state is MoveState.ALIAS_SENT:
            retry = time.monotonic() - last_alias_try > ALIAS_RETRY_SECONDS
            confirm = partial(
                confirm_alias, move_id=move_id, settings=settings, encryptor=encryptor, retry=retry
            )
            db.transact(confirm)
            if retry:
                last_alias_try = time.monotonic()
        deliver()
        if time.monotonic() > deadline:
            raise MoveStalled(f"move {move_id} is still {view.state}; run the command again")
        after = db.transact(lambda uow: move_of(uow, move_id=move_id))
        if after.state == view.state:
            time.sleep(poll)


def _now() -> datetime:
    from datetime import UTC

    return datetime.now(UTC)


# --- the new cell ----------------------------------------------------------------------------


def on_package(
    uow: UnitOfWork, *, package: MovePackage, settings: Settings, encryptor: Encryptor
) -> None:
    """``POST /moves`` relayed by the switch: import the resident (phone, real name and cards
    encrypted under this cell's keys; the same password hash; the old history, read-only)
    and answer ``PUT /moves/{id}``; or refuse (``/error`` 3100 with the reason) with nothing
    written. A duplicate answers the same again."""
    answer_path = f"/moves/{package.move_id}"
    seen = uow.session.scalar(
        select(Move).where(Move.move_id == package.move_id, Move.direction == "in")
    )
    if seen is not None:
        send(uow, settings, method="PUT", path=answer_path, destination=seen.other_fsp,
             body=MoveAnswer(user_id=seen.user_id))  # fmt: skip
        return
    problem = check_package(
        package, receiver=settings.interop_participant_id, sender=None,
        kinds=wallet_moving.HISTORY_KINDS,
    )  # fmt: skip
    reason = problem.reason if problem is not None else None
    user_id = None
    if reason is None:
        profile = package.profile
        try:
            user_id = identity_moving.import_resident(
                uow,
                profile=identity_moving.ProfileExport(
                    phone=profile.phone,
                    password_hash=profile.password_hash,
                    name=profile.name,
                    id_number=profile.id_number,
                    provider_ref=profile.provider_ref,
                    verified_at=profile.verified_at,
                    registered_at=profile.registered_at,
                    checks=[(c.kind, c.count) for c in profile.checks],
                    name_masked="",
                    status="active",
                ),
                origin=package.from_fsp,
                encryptor=encryptor,
                settings=settings,
            )
        except identity_moving.MoveRefused as refused:
            reason = str(refused.extra.get("reason", refused.code))
    if reason is not None or user_id is None:
        log.info("move refused", move_id=package.move_id, reason=reason)
        send(uow, settings, method="PUT", path=f"{answer_path}/error",
             destination=package.from_fsp,
             body=error(ErrorCode.GENERIC_VALIDATION_ERROR, reason))  # fmt: skip
        return
    identity = verified_identity(uow, user_id=user_id, encryptor=encryptor)
    assert identity is not None
    wallet_moving.import_wallet(
        uow, user_id=user_id, origin=package.from_fsp,
        cards=[wallet_moving.CardExport(c.card_number, c.bank_code, c.bank_name, c.check_ref,
                                        c.bound_at) for c in package.cards],
        lines=[wallet_moving.LineExport(
            x.object_id, x.kind, x.amount, x.fee, x.currency, x.status, x.counterparty_label,
            x.note, x.reference, x.created_at) for x in package.history],
        holder_name_masked=identity_moving.masked_name(uow, user_id=user_id),
        holder_id_hash=identity.id_hash, encryptor=encryptor,
    )  # fmt: skip
    moment = now_us()
    uow.session.add(
        Move(
            move_id=package.move_id, direction="in", user_id=user_id,
            other_fsp=package.from_fsp, state=MoveState.ACCEPTED.value,
            balance=package.balance.amount, line_count=len(package.history),
            other_user_id=package.user_id, created_at=moment, updated_at=moment,
        )
    )  # fmt: skip
    uow.session.flush()
    send(uow, settings, method="PUT", path=answer_path, destination=package.from_fsp,
         body=MoveAnswer(user_id=user_id))  # fmt: skip
    log.info("resident moved in", move_id=package.move_id, user_id=user_id, origin=package.from_fsp)


def note_move_quote(
    uow: UnitOfWork, *, user_id: str, payer_fsp: str, payer: str, payee: str, quote_id: str
) -> None:
    """A quote just given to ``user_id``: when it is their own balance coming from the cell
    they moved from (the same number on both sides), remember it on the move's row."""
    if payer != payee:
        return
    row = uow.session.scalar(
        select(Move)
        .where(Move.user_id == user_id, Move.direction == "in", Move.other_fsp == payer_fsp)
        .with_for_update()
    )
    if row is not None:
        row.quote_id, row.updated_at = quote_id, now_us()
        uow.session.flush()


def is_move_quote(uow: UnitOfWork, *, quote_id: str) -> bool:
    """Whether the quote carries a moved-in resident's own balance (no inflow limit; marked
    as the move on their history)."""
    found = uow.session.scalar(
        select(Move.id).where(Move.direction == "in", Move.quote_id == quote_id)
    )
    return found is not None


def moves_json(view: MoveView) -> str:
    """A move as one JSON line (the CLI's ``--json``)."""
    return json.dumps(view.__dict__, sort_keys=True)
