"""Settlement windows: close the open one, net its committed transfers, open the next.

Closing tags every committed transfer not yet in a window with the closing window's id (each
is tagged once), nets them (``settlement.close_window``), takes each participant's net out
of its position (``positions.settle``) and tells every participant in the window its net
(``PUT /settlementWindows/{id}``, net 0 included). A commit adds to the positions in the
same transaction that makes its transfer COMMITTED, so a transfer committed while a window
closes lands, with its position change, in this window or the next, never in neither.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, text, update

from citywallet.interop import positions, settlement
from citywallet.interop.messages import SettlementNotice
from citywallet.interop.switch.models import Transfer, Window
from citywallet.interop.switch.service import (
    lock_positions,
    micros,
    position_of,
    send_to,
    store_position,
)
from citywallet.interop.transfers import State
from citywallet.platform.clock import to_datetime
from citywallet.platform.db import UnitOfWork


@dataclass(frozen=True, slots=True)
class WindowView:
    id: str
    state: str
    opened_at: datetime
    closed_at: datetime | None
    report: dict[str, Any] | None  # transfer_count, total_amount, positions {id: net}


def _view(row: Window) -> WindowView:
    return WindowView(
        row.id,
        row.state,
        to_datetime(row.opened_at),
        to_datetime(row.closed_at) if row.closed_at is not None else None,
        json.loads(row.report) if row.report else None,
    )


def ensure_open(uow: UnitOfWork, *, now: datetime) -> None:
    """Open a window if none is open (the partial unique index keeps it to one)."""
    uow.session.execute(
        text(
            "INSERT INTO switch_windows (id, state, opened_at) VALUES (:id, 'OPEN', :t) "
            "ON CONFLICT (state) WHERE state = 'OPEN' DO NOTHING"
        ),
        {"id": str(uuid.uuid4()), "t": micros(now)},
    )


def open_window(uow: UnitOfWork, *, now: datetime, lock: bool = False) -> WindowView:
    """The open window (opened now if there was none)."""
    ensure_open(uow, now=now)
    statement = select(Window).where(Window.state == "OPEN")
    if lock:
        statement = statement.with_for_update()
    return _view(uow.session.execute(statement).scalar_one())


def close_window(uow: UnitOfWork, *, now: datetime) -> WindowView:
    """Close the open window (settle it, notify its participants) and open the next."""
    ensure_open(uow, now=now)
    window = uow.session.execute(
        select(Window).where(Window.state == "OPEN").with_for_update()
    ).scalar_one()
    uow.session.execute(
        update(Transfer)
        .where(Transfer.state == State.COMMITTED.value, Transfer.window_id.is_(None))
        .values(window_id=window.id)
    )
    rows = uow.session.execute(
        select(Transfer.transfer_id, Transfer.payer, Transfer.payee, Transfer.amount).where(
            Transfer.window_id == window.id
        )
    ).all()
    report = settlement.close_window(
        window.id, [settlement.CommittedTransfer(*row) for row in rows]
    )
    nets = dict(report.positions)
    for participant in lock_positions(uow, set(nets)).values():
        store_position(
            participant, positions.settle(position_of(participant), nets[participant.id])
        )
    moment = micros(now)
    window.state, window.closed_at = "CLOSED", moment
    window.report = json.dumps(
        {
            "transfer_count": report.transfer_count,
            "total_amount": report.total_amount,
            "positions": nets,
        },
        sort_keys=True,
    )
    uow.session.flush()
    ensure_open(uow, now=now)
    for participant_id, net in report.positions:
        notice = SettlementNotice(
            window_id=window.id,
            net_amount=net,
            transfer_count=sum(1 for r in rows if participant_id in (r[1], r[2])),
            closed_at=to_datetime(moment),
        )
        send_to(uow, participant_id, "PUT", f"/settlementWindows/{window.id}", notice)
    return _view(window)


def close_if_due(uow: UnitOfWork, *, now: datetime, window_seconds: float) -> WindowView | None:
    """Close the open window once it has been open ``window_seconds``; else nothing."""
    current = open_window(uow, now=now)
    if (now - current.opened_at).total_seconds() < window_seconds:
        return None
    return close_window(uow, now=now)


def windows(uow: UnitOfWork, *, limit: int = 50) -> list[WindowView]:
    """The most recent windows, newest first (the open one included)."""
    rows = uow.session.execute(
        select(Window).order_by(Window.opened_at.desc(), Window.id).limit(limit)
    ).scalars()
    return [_view(row) for row in rows]
