"""Retention of the provider's transient interop rows (docs/interop.md, "Retention").

Lookups and quotes are written for every question a resident (or a merchant's refund) asks
and are worth nothing once answered and old: a party is reused for 5 minutes, a quote
expires within ``interop_transfer_seconds``. Kept forever they would grow by a row per
question. What a transfer, a receipt or a move refers to is never purged: transfers and
settlement windows are the books' record and stay.

- ``interop_lookups``: answered ones a day after they were asked, unanswered ones after an
  hour (nothing waits that long), except the lookup a move still confirms its alias with;
- ``interop_payer_quotes`` and ``interop_payee_quotes``: a day after they were asked, when no
  transfer was made of them (a quote with a transfer is the transfer's terms) and no move
  carries its balance with them; a merchant refund's quote still waiting is left to the
  sweep, which fails the refund.

Each call deletes at most ``batch`` rows per table, in the caller's transaction; the worker
calls it again while it finds rows (``purge_all``).
"""

from __future__ import annotations

from sqlalchemy import and_, delete, exists, or_, select

from citywallet.interop.provider.business import MERCHANT
from citywallet.interop.provider.common import SECOND_US
from citywallet.interop.provider.models import (
    InteropTransfer,
    Move,
    PartyLookup,
    PayeeQuote,
    PayerQuote,
)
from citywallet.platform.clock import now_us
from citywallet.platform.db import Database, UnitOfWork

ANSWERED_SECONDS = 24 * 3600  # answered lookups and unused quotes
WAITING_SECONDS = 3600  # lookups never answered
BATCH = 1000


def purge_transient(uow: UnitOfWork, *, now: int | None = None, batch: int = BATCH) -> int:
    """Delete up to ``batch`` old lookups, payer quotes and payee quotes each (see the
    module docstring); returns how many rows went."""
    moment = now if now is not None else now_us()
    day_ago = moment - ANSWERED_SECONDS * SECOND_US
    hour_ago = moment - WAITING_SECONDS * SECOND_US
    return (
        _purge_lookups(uow, day_ago, hour_ago, batch)
        + _purge_payer_quotes(uow, day_ago, batch)
        + _purge_payee_quotes(uow, day_ago, batch)
    )


def purge_all(db: Database, *, now: int | None = None, batch: int = BATCH) -> int:
    """:func:`purge_transient` in one transaction per batch until nothing is left to purge
    (the worker's periodic task); returns how many rows went."""
    purged = 0
    while (done := db.transact(lambda uow: purge_transient(uow, now=now, batch=batch))) > 0:
        purged += done
    return purged


Transient = PartyLookup | PayerQuote | PayeeQuote


def _delete(uow: UnitOfWork, model: type[Transient], ids: list[int]) -> int:
    result = uow.session.execute(
        delete(model).where(model.id.in_(ids)).execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def _purge_lookups(uow: UnitOfWork, day_ago: int, hour_ago: int, batch: int) -> int:
    confirming = select(Move.lookup_id).where(Move.lookup_id.is_not(None))
    old = (
        select(PartyLookup.id)
        .where(
            or_(
                PartyLookup.created_at < day_ago,
                and_(PartyLookup.state == "waiting", PartyLookup.created_at < hour_ago),
            ),
            PartyLookup.id.not_in(confirming),
        )
        .order_by(PartyLookup.id)
        .limit(batch)
    )
    return _delete(uow, PartyLookup, list(uow.session.scalars(old)))


def _purge_payer_quotes(uow: UnitOfWork, day_ago: int, batch: int) -> int:
    paid = exists().where(InteropTransfer.quote_id == PayerQuote.quote_id)
    moving = select(Move.quote_id).where(Move.quote_id.is_not(None))
    old = (
        select(PayerQuote.id)
        .where(
            PayerQuote.created_at < day_ago,
            ~paid,
            PayerQuote.public_id.not_in(moving),
            # A merchant's refund still waiting is the sweep's to fail (the refund with it).
            or_(PayerQuote.user_id != MERCHANT, PayerQuote.state != "waiting"),
        )
        .order_by(PayerQuote.id)
        .limit(batch)
    )
    return _delete(uow, PayerQuote, list(uow.session.scalars(old)))


def _purge_payee_quotes(uow: UnitOfWork, day_ago: int, batch: int) -> int:
    paid = exists().where(InteropTransfer.quote_id == PayeeQuote.quote_id)
    moving = select(Move.quote_id).where(Move.quote_id.is_not(None))
    old = (
        select(PayeeQuote.id)
        .where(PayeeQuote.created_at < day_ago, ~paid, PayeeQuote.quote_id.not_in(moving))
        .order_by(PayeeQuote.id)
        .limit(batch)
    )
    return _delete(uow, PayeeQuote, list(uow.session.scalars(old)))
