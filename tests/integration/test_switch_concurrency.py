"""Concurrent prepares and fulfils on PostgreSQL (row locks on the payer's position): the cap
holds, every reservation is released or committed exactly once, and a window nets to zero."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from citywallet.api.switch import create_switch_app
from citywallet.interop.messages import TransferFulfil
from citywallet.interop.switch import service, windows
from citywallet.platform.db import Database
from tests.switch_support import (
    add_participants,
    call,
    new_prepare,
    outbox,
    positions,
    switch_runtime,
)


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


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_the_same_prepare_sent_concurrently_reserves_once(db: Database, tmp_path: Path) -> None:
    add_participants(db)
    app = create_switch_app(switch_runtime(db, tmp_path), start_background=False)
    prepare, _ = new_prepare(3_000)
    start = threading.Barrier(6)
    answers: list[int] = []
    with TestClient(app) as client:

        def send() -> None:
            start.wait()
            answers.append(call(client, "POST", "/transfers", prepare).status_code)

        threads = [threading.Thread(target=send) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert answers == [202] * 6
    assert positions(db)["provider-a"] == (0, 3_000)
    forwarded = [m for m in outbox(db) if m.to == "provider-b"]
    assert len(forwarded) == 1
    assert [m for m in outbox(db) if m.to == "provider-a"] == []
