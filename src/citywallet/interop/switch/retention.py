"""Retention of the switch's quote records (docs/interop.md, "Retention").

``switch_quotes`` routes a quote's answer back and detects resent requests; a quote is
answered (or fails) within its expiration, so a day later its row does nothing but grow the
table. Transfers, positions and windows are the switch's books and are never purged.
"""

from __future__ import annotations

from sqlalchemy import delete, select

from citywallet.interop.switch.models import Quote
from citywallet.platform.clock import now_us
from citywallet.platform.db import Database, UnitOfWork

QUOTE_SECONDS = 24 * 3600
BATCH = 1000


def purge_quotes(uow: UnitOfWork, *, now: int | None = None, batch: int = BATCH) -> int:
    """Delete up to ``batch`` quote records older than a day; returns how many."""
    moment = now if now is not None else now_us()
    old = list(
        uow.session.scalars(
            select(Quote.quote_id)
            .where(Quote.created_at < moment - QUOTE_SECONDS * 1_000_000)
            .order_by(Quote.created_at)
            .limit(batch)
        )
    )
    if not old:
        return 0
    result = uow.session.execute(
        delete(Quote).where(Quote.quote_id.in_(old)).execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def purge_all(db: Database, *, now: int | None = None, batch: int = BATCH) -> int:
    """:func:`purge_quotes`, one transaction per batch, until none is left (a periodic
    task of the switch's worker); returns how many went."""
    purged = 0
    while (done := db.transact(lambda uow: purge_quotes(uow, now=now, batch=batch))) > 0:
        purged += done
    return purged
