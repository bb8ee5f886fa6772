"""The switch's use cases: party lookup, quote routing and transfers (docs/interop.md).

Transfers change only through ``transfers.step``; this module maps its effects to SQL in
the caller's transaction: the record is a ``switch_transfers`` row, positions are columns of
the (row-locked) participant rows, messages go through ``transport.send`` (the outbox). A
prepare's reservation is checked in the same transaction and its result stepped at once
(``PositionChecked``), so a stored transfer is never left RECEIVED. Participant rows are
locked in ascending id order, after the transfer rows, so transactions never wait in a cycle.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from citywallet.interop import positions, transfers
from citywallet.interop.messages import (
    ErrorCode,
    ErrorMessage,
    Message,
    Party,
    PartyLookupResult,
    QuoteRequest,
    QuoteResponse,
    TransferFulfil,
    TransferPrepare,
    error,
)
from citywallet.interop.switch import registry
from citywallet.interop.switch.models import Participant, Quote, Transfer
from citywallet.interop.transfers import State
from citywallet.interop.transport import send
from citywallet.platform.clock import to_datetime
from citywallet.platform.db import UnitOfWork

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SWEEP_BATCH = 200


def micros(moment: datetime) -> int:
    """µs since the epoch of an aware datetime."""
    return (moment - EPOCH) // timedelta(microseconds=1)


def send_to(
    uow: UnitOfWork, to: str, method: str, path: str, body: Message | None = None
) -> int | None:
    """Queue a message from the switch to participant ``to`` (through the outbox); its id."""
    row = uow.session.get(Participant, to)
    if row is None:  # only known participants reach a service; nobody to tell otherwise
        return None
    return send(
        uow, base_url=row.callback_url, method=method, path=path,
        source=registry.SWITCH_ID, destination=to, body=body,
    )  # fmt: skip


def callback_url(uow: UnitOfWork, participant_id: str) -> str | None:
    """Where participant ``participant_id`` receives messages (``None``: unknown)."""
    row = uow.session.get(Participant, participant_id)
    return row.callback_url if row is not None else None


# ---- discovery ----------------------------------------------------------------------------


def lookup_party(uow: UnitOfWork, *, source: str, id_type: str, identifier: str) -> None:
    """``GET /parties/{type}/{id}``: answer ``source`` from the alias directory (or 3204)."""
    path = f"/parties/{id_type}/{identifier}"
    found = registry.lookup_alias(uow, id_type=id_type, identifier=identifier)
    if found is None or id_type != "MSISDN":  # merchants are named by their QR, not looked up
        send_to(uow, source, "PUT", path + "/error", error(ErrorCode.PARTY_NOT_FOUND))
        return
    party = Party(
        party_identifier=identifier, fsp_id=found.fsp_id, masked_name=found.masked_name,
        fsp_name=registry.display_name(uow, found.fsp_id),
    )  # fmt: skip
    send_to(uow, source, "PUT", path, PartyLookupResult(party=party))


# ---- agreement ----------------------------------------------------------------------------


def _digest(message: Message) -> str:
    return hashlib.sha256(message.wire()).hexdigest()


def request_quote(uow: UnitOfWork, *, source: str, request: QuoteRequest, now: datetime) -> None:
    """``POST /quotes`` from the payer's provider: forward it to the payee's provider; a
    resend gets the payee's answer again once there is one."""
    path = f"/quotes/{request.quote_id}"
    if request.payer.fsp_id != source:
        send_to(uow, source, "PUT", path + "/error", error(ErrorCode.GENERIC_VALIDATION_ERROR))
        return
    payee = request.payee.fsp_id
    if not registry.is_active(uow, payee):
        send_to(uow, source, "PUT", path + "/error", error(ErrorCode.PAYEE_FSP_ID_NOT_FOUND))
        return
    digest = _digest(request)
    row = uow.session.execute(
        select(Quote).where(Quote.quote_id == request.quote_id).with_for_update()
    ).scalar_one_or_none()
    if row is not None:
        if row.digest != digest or row.payer != source:
            send_to(uow, source, "PUT", path + "/error", error(ErrorCode.MODIFIED_REQUEST))
        elif row.answer is not None and row.state == "FAILED":  # resent after the answer
            refusal = ErrorMessage.model_validate_json(row.answer)
            send_to(uow, source, "PUT", path + "/error", refusal)
        elif row.answer is not None:  # the answer again (its inline return may have been lost)
            send_to(uow, source, "PUT", path, QuoteResponse.model_validate_json(row.answer))
        return  # a resend in flight: the payee's answer comes once
    moment = micros(now)
    uow.session.add(
        Quote(
            quote_id=request.quote_id,
            payer=source,
            payee=payee,
            digest=digest,
            state="REQUESTED",
            created_at=moment,
            updated_at=moment,
        )
    )
    uow.session.flush()
    send_to(uow, payee, "POST", "/quotes", request)


def _quote(uow: UnitOfWork, quote_id: str) -> Quote | None:
    statement = select(Quote).where(Quote.quote_id == quote_id).with_for_update()
    return uow.session.execute(statement).scalar_one_or_none()


def answer_quote(
    uow: UnitOfWork, *, source: str, quote_id: str, response: QuoteResponse, now: datetime
) -> None:
    """``PUT /quotes/{id}`` from the payee's provider: forward it to the payer's, once."""
    path = f"/quotes/{quote_id}"
    row = _quote(uow, quote_id)
    if row is None or source not in (row.payer, row.payee):
        send_to(uow, source, "PUT", path + "/error", error(ErrorCode.QUOTE_ID_NOT_FOUND))
        return
    if source != row.payee:
        send_to(uow, source, "PUT", path + "/error", error(ErrorCode.GENERIC_VALIDATION_ERROR))
        return
    digest = _digest(response)
    if row.state != "REQUESTED":
        if row.answer_digest != digest:
            send_to(uow, source, "PUT", path + "/error", error(ErrorCode.MODIFIED_REQUEST))
        return
    named = response.model_copy(  # the registry's word on the payee's name, not the payee's
        update={"payee_fsp_name": registry.display_name(uow, row.payee)}
    )
    row.state, row.answer_digest, row.updated_at = "ANSWERED", digest, micros(now)
    row.answer = named.wire().decode("utf-8")  # a resent request gets exactly this again
    uow.session.flush()
    send_to(uow, row.payer, "PUT", path, named)


def quote_error(
    uow: UnitOfWork, *, source: str, quote_id: str, message: ErrorMessage, now: datetime
) -> None:
    """``PUT /quotes/{id}/error`` from either side: forward it to the other side, once."""
    path = f"/quotes/{quote_id}"
    row = _quote(uow, quote_id)
    if row is None or source not in (row.payer, row.payee):
        send_to(uow, source, "PUT", path + "/error", error(ErrorCode.QUOTE_ID_NOT_FOUND))
        return
    if row.state == "FAILED":
        return
    row.state, row.updated_at = "FAILED", micros(now)
    if source == row.payee:  # the payer gets it again should it resend the request
        row.answer = message.wire().decode("utf-8")
    uow.session.flush()
    other = row.payer if source == row.payee else row.payee
    send_to(uow, other, "PUT", path + "/error", message)


# ---- transfers ----------------------------------------------------------------------------


def _load(uow: UnitOfWork, transfer_id: str) -> tuple[Transfer | None, transfers.Transfer | None]:
    row = uow.session.execute(
        select(Transfer).where(Transfer.transfer_id == transfer_id).with_for_update()
    ).scalar_one_or_none()
    if row is None:
        return None, None
    prepare = TransferPrepare.model_validate_json(row.prepare)
    record = transfers.Transfer(
        prepare=prepare, digest=row.digest, state=State(row.state), fulfilment=row.fulfilment
    )
    return row, record


def lock_positions(uow: UnitOfWork, ids: set[str]) -> dict[str, Participant]:
    """Lock these participants' rows (ascending id) and read them fresh: a row loaded
    earlier in this session without a lock must not lend its stale position."""
    uow.session.flush()  # our own changes first, so populate_existing re-reads them
    rows = uow.session.execute(
        select(Participant).where(Participant.id.in_(sorted(ids))).order_by(Participant.id)
        .with_for_update().execution_options(populate_existing=True)
    ).scalars()  # fmt: skip
    return {row.id: row for row in rows}


def position_of(row: Participant) -> positions.Position:
    """The pure position of a participant row."""
    return positions.Position(row.id, row.cap, row.position, row.reserved)


def store_position(row: Participant, position: positions.Position) -> None:
    """Write a pure position back to its (locked) row."""
    row.position, row.reserved = position.position, position.reserved


def _wire_state(state: State) -> str:
    return {State.COMMITTED: "COMMITTED", State.ABORTED: "ABORTED", State.EXPIRED: "ABORTED"}.get(
        state, "RESERVED"
    )


def _store(
    uow: UnitOfWork, row: Transfer | None, outcome: transfers.Outcome, moment: int
) -> Transfer | None:
    record = outcome.transfer
    if record is None:
        return row
    if row is None:
        prepare = record.prepare
        row = Transfer(
            transfer_id=record.transfer_id, payer=record.payer, payee=record.payee,
            amount=record.amount, digest=record.digest, prepare=prepare.wire().decode("utf-8"),
            state=record.state.value, expiration=micros(prepare.expiration),
            created_at=moment, updated_at=moment,
        )  # fmt: skip
        uow.session.add(row)
    elif row.state == record.state.value:
        return row
    if record.state.final and row.completed_at is None:
        row.completed_at = moment
        errors = [e for e in outcome.effects if isinstance(e, transfers.SendError)]
        payer_errors = [e.code for e in errors if e.to == record.payer]
        if record.state is not State.COMMITTED and payer_errors:
            row.error_code = payer_errors[0].value
    row.state, row.fulfilment, row.updated_at = record.state.value, record.fulfilment, moment
    uow.session.flush()
    return row


def _apply(
    uow: UnitOfWork, row: Transfer | None, outcome: transfers.Outcome, now: datetime
) -> None:
    """Store the outcome's record and perform its effects, all in ``uow``."""
    moment = micros(now)
    row = _store(uow, row, outcome, moment)
    record = outcome.transfer
    assert record is not None
    assert row is not None
    for effect in outcome.effects:
        if isinstance(effect, transfers.ReservePosition):
            payer = lock_positions(uow, {effect.participant})[effect.participant]
            reservation = positions.reserve(position_of(payer), effect.amount)
            store_position(payer, reservation.position)
            checked = transfers.PositionChecked(record.transfer_id, reservation.ok)
            _apply(uow, row, transfers.step(record, checked), now)
        elif isinstance(effect, transfers.CommitPosition):
            rows = lock_positions(uow, {effect.payer, effect.payee})
            payer, payee = rows[effect.payer], rows[effect.payee]
            store_position(payer, positions.commit_payer(position_of(payer), effect.amount))
            store_position(payee, positions.credit_payee(position_of(payee), effect.amount))
        elif isinstance(effect, transfers.ReleasePosition):
            payer = lock_positions(uow, {effect.participant})[effect.participant]
            store_position(payer, positions.release(position_of(payer), effect.amount))
        elif isinstance(effect, transfers.ForwardPrepare):
            named = {"payer_fsp_name": registry.display_name(uow, record.prepare.payer_fsp)}
            send_to(uow, effect.to, "POST", "/transfers", record.prepare.model_copy(update=named))
        elif isinstance(effect, transfers.NotifyState):
            state = _wire_state(effect.state)
            done = row.completed_at if row.completed_at is not None else moment
            body = TransferFulfil(
                fulfilment=record.fulfilment if state == "COMMITTED" else None,
                completed_timestamp=to_datetime(done),
                transfer_state=state,  # type: ignore[arg-type]
            )
            send_to(uow, effect.to, "PUT", f"/transfers/{record.transfer_id}", body)
        else:
            path = f"/transfers/{record.transfer_id}/error"
            send_to(uow, effect.to, "PUT", path, error(effect.code))
    uow.session.flush()


def _step(uow: UnitOfWork, transfer_id: str, event: transfers.Event, now: datetime) -> None:
    row, record = _load(uow, transfer_id)
    outcome = transfers.step(record, event)
    if outcome.transfer is None and row is None:
        # Nothing stored: the only effects are errors to the sender about this id.
        for effect in outcome.effects:
            if isinstance(effect, transfers.SendError):
                send_to(
                    uow, effect.to, "PUT", f"/transfers/{transfer_id}/error", error(effect.code)
                )
        return
    _apply(uow, row, outcome, now)


def prepare_transfer(
    uow: UnitOfWork, *, source: str, prepare: TransferPrepare, now: datetime
) -> None:
    """``POST /transfers`` from the payer's provider (duplicates and reorders are harmless)."""
    transfer_id = prepare.transfer_id
    if not registry.is_active(uow, prepare.payee_fsp):
        row = uow.session.get(Transfer, transfer_id)
        if row is None:  # nothing to route to; a stored transfer keeps its own story
            path = f"/transfers/{transfer_id}/error"
            send_to(uow, source, "PUT", path, error(ErrorCode.PAYEE_FSP_ID_NOT_FOUND))
            return
    _step(uow, transfer_id, transfers.Prepare(source, prepare, now), now)


def fulfil_transfer(
    uow: UnitOfWork, *, source: str, transfer_id: str, fulfil: TransferFulfil, now: datetime
) -> None:
    """``PUT /transfers/{id}`` from the payee's provider: commit (or abort, if it says so)."""
    if fulfil.transfer_state == "COMMITTED" and fulfil.fulfilment is not None:
        event: transfers.Event = transfers.Fulfil(source, transfer_id, fulfil.fulfilment, now)
    elif fulfil.transfer_state == "ABORTED":
        code = ErrorCode.PAYEE_FSP_REJECTED_TRANSACTION
        event = transfers.Reject(source, transfer_id, code, now)
    else:  # RESERVED is the switch's word, never a payee's
        path = f"/transfers/{transfer_id}/error"
        send_to(uow, source, "PUT", path, error(ErrorCode.GENERIC_VALIDATION_ERROR))
        return
    _step(uow, transfer_id, event, now)


def reject_transfer(
    uow: UnitOfWork, *, source: str, transfer_id: str, message: ErrorMessage, now: datetime
) -> None:
    """``PUT /transfers/{id}/error`` from the payee's provider: abort and tell the payer."""
    code = message.error_information.error_code
    _step(uow, transfer_id, transfers.Reject(source, transfer_id, code, now), now)


def query_transfer(uow: UnitOfWork, *, source: str, transfer_id: str, now: datetime) -> None:
    """``GET /transfers/{id}``: tell the asking payer or payee the state (3208 to others)."""
    _step(uow, transfer_id, transfers.Query(source, transfer_id), now)


@dataclass(frozen=True, slots=True)
class TransferView:
    transfer_id: str
    payer: str
    payee: str
    amount: int
    state: str
    error_code: str | None
    created_at: int
    completed_at: int | None


def failed_transfers(uow: UnitOfWork, *, limit: int = 100) -> list[TransferView]:
    """Aborted and expired transfers, newest first (for the console)."""
    rows = uow.session.execute(
        select(Transfer)
        .where(Transfer.state.in_((State.ABORTED.value, State.EXPIRED.value)))
        .order_by(Transfer.created_at.desc())
        .limit(limit)
    ).scalars()
    return [
        TransferView(
            r.transfer_id,
            r.payer,
            r.payee,
            r.amount,
            r.state,
            r.error_code,
            r.created_at,
            r.completed_at,
        )
        for r in rows
    ]


def expire_due(uow: UnitOfWork, *, now: datetime, limit: int = SWEEP_BATCH) -> int:
    """Step Timeout for up to ``limit`` unfinished transfers past expiration; returns how many.

    PostgreSQL: ``SKIP LOCKED``, so several sweepers (and a fulfil holding a row) never wait.
    """
    statement = (
        select(Transfer.transfer_id, Transfer.payer)
        .where(
            Transfer.state.in_((State.RECEIVED.value, State.RESERVED.value)),
            Transfer.expiration <= micros(now),
        )
        .order_by(Transfer.expiration)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    due = uow.session.execute(statement).all()
    if not due:
        return 0
    lock_positions(uow, {payer for _, payer in due})  # ascending, before any single one
    for transfer_id, _payer in due:
        _step(uow, transfer_id, transfers.Timeout(transfer_id, now), now)
    return len(due)
