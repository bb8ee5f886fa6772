"""Concurrent prepares and fulfils on PostgreSQL (row locks on the payer's position): the cap
holds, every reservation is released or committed exactly once, and a window nets to zero."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from citywallet.interop.messages import TransferFulfil
from citywallet.interop.switch import service, windows
from citywallet.platform.db import Database
from tests.switch_support import add_participants, new_prepare, positions


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_concurrent_prepares_never_pass_the_cap(db: Database) -> None:
    add_participants(db, cap=50_000)
    prepares = [new_prepare(1_000) for _ in range(80)]  # 80,000 asked of a 50,000 cap
    start = threading.Barrier(8)

    def payer(chunk: list) -> None:
        start.wait()
        for prepare, fulfilment in chunk:
            now = datetime.now(UTC)
            db.transact(
                lambda uow, p=prepare, n=now: service.prepare_transfer(
                    uow, source="provider-a", prepare=p, now=n
                )
            )
            body = TransferFulfil(
                fulfilment=fulfilment, completed_timestamp=now, transfer_state="COMMITTED"
            )
            if prepare.transfer_id[-1] in "01234567":  # about half are fulfilled
                db.transact(
                    lambda uow, p=prepare, b=body: service.fulfil_transfer(
                        uow,
                        source="provider-b",
                        transfer_id=p.transfer_id,
                        fulfil=b,
                        now=datetime.now(UTC),
                    )
                )

    threads = [threading.Thread(target=payer, args=(prepares[i::8],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    position, reserved = positions(db)["provider-a"]
    assert position + reserved <= 50_000
    assert position + reserved == 50_000  # all 1,000-fen prepares: the cap is filled exactly
    later = datetime.now(UTC) + timedelta(minutes=2)
    while db.transact(lambda uow: service.expire_due(uow, now=later, limit=7)):
        pass
    position, reserved = positions(db)["provider-a"]
    assert reserved == 0
    closed = db.transact(lambda uow: windows.close_window(uow, now=datetime.now(UTC)))
    assert closed.report is not None
    assert closed.report["positions"] == {"provider-a": position, "provider-b": -position}
    assert positions(db) == dict.fromkeys(("provider-a", "provider-b", "provider-c"), (0, 0))
