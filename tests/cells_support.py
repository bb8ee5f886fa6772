"""What the multi-process tests over `Cells` check alike: each cell's INTEROP_SETTLEMENT
account, and a settlement window closed at the switch and posted by every cell."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping

from sqlalchemy import Engine, text

from citywallet.interop.cells import Cells
from citywallet.ledger.types import AccountCode


def interop_account(engine: Engine) -> tuple[int, int, int, int]:
    """The INTEROP_SETTLEMENT account's (debits_pending, debits_posted, credits_pending,
    credits_posted); zeros when the cell never touched it."""
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT debits_pending, debits_posted, credits_pending, credits_posted "
                "FROM ledger_accounts WHERE code = :code"
            ),
            {"code": int(AccountCode.INTEROP_SETTLEMENT)},
        ).first()
    return (0, 0, 0, 0) if row is None else (int(row[0]), int(row[1]), int(row[2]), int(row[3]))


def settle(cells: Cells, engines: Mapping[str, Engine], *, seconds: float = 30.0) -> dict[str, int]:
    """Close the switch's window: its nets sum to zero, every cell in it posts its own net,
    and every cell's INTEROP_SETTLEMENT ends with nothing pending and debits = credits.
    Returns the nets by participant."""
    cells.cli(None, "switch", "windows", "close")
    with engines["switch"].connect() as conn:
        window_id, report = conn.execute(
            text(
                "SELECT id, report FROM switch_windows WHERE state = 'CLOSED' "
                "ORDER BY closed_at DESC LIMIT 1"
            )
        ).one()
    nets = json.loads(report)["positions"]
    assert sum(nets.values()) == 0
    deadline = time.monotonic() + seconds
    for cell in cells.cells:
        if cell.id not in nets:
            continue
        while True:
            with engines[cell.id].connect() as conn:
                net = conn.execute(
                    text("SELECT net_amount FROM interop_settlement_windows WHERE window_id = :w"),
                    {"w": window_id},
                ).scalar()
            if net is not None or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert net == nets[cell.id], (cell.id, net, nets)
    for cell in cells.cells:
        d_pending, d_posted, c_pending, c_posted = interop_account(engines[cell.id])
        assert (d_pending, c_pending) == (0, 0)
        assert d_posted == c_posted, (cell.id, d_posted, c_posted)
    return {str(k): int(v) for k, v in nets.items()}
