"""Retention of transient interop rows, on SQLite and PostgreSQL (docs/interop.md,
"Retention"): old lookups and unused quotes go, in batches; whatever a transfer or a move
refers to stays; the switch's quote records go a day after they were asked."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from citywallet.interop.provider import retention
from citywallet.interop.provider.business import MERCHANT
from citywallet.interop.provider.models import (
    InteropTransfer,
    Move,
    PartyLookup,
    PayeeQuote,
    PayerQuote,
)
from citywallet.interop.switch import retention as switch_retention
from citywallet.interop.switch.models import Quote
from citywallet.platform.clock import now_us
from citywallet.platform.db import Database, UnitOfWork

HOUR = 3600 * 1_000_000
NOW = now_us()
CONDITION = "Yw3NKWbEM2aRElRIu7JbT_QSpJxzLbLIq8G4WBvXEN0"


def _lookup(uow: UnitOfWork, name: str, state: str, age: int) -> int:
    row = PartyLookup(
        user_id=name, identifier="13700137001", state=state, created_at=NOW - age,
        updated_at=NOW - age,
    )  # fmt: skip
    uow.session.add(row)
    uow.session.flush()
    return row.id


def _payer_quote(uow: UnitOfWork, name: str, state: str, age: int, user: str = "usr_a") -> str:
    quote_id = str(uuid.uuid4())
    uow.session.add(
        PayerQuote(
            public_id=name, quote_id=quote_id, user_id=user, payee_identifier="13700137001",
            payee_fsp="provider-b", masked_name="*明", amount=100, state=state,
            created_at=NOW - age, updated_at=NOW - age,
        )
    )  # fmt: skip
    uow.session.flush()
    return quote_id


def _payee_quote(uow: UnitOfWork, name: str, age: int) -> str:
    quote_id = str(uuid.uuid4())
    uow.session.add(
        PayeeQuote(
            quote_id=quote_id, payer_fsp="provider-b", user_id=name, identifier="13900139000",
            transfer_amount=100, payee_fee=0, payer_fee=0,
            condition=f"{name:_<43}"[:43], fulfilment_enc="x", expires_at=NOW - age + HOUR,
            response="{}", created_at=NOW - age,
        )
    )  # fmt: skip
    uow.session.flush()
    return quote_id


def _transfer(uow: UnitOfWork, quote_id: str, role: str) -> None:
    uow.session.add(
        InteropTransfer(
            public_id=f"itf_{quote_id[:8]}", transfer_id=str(uuid.uuid4()), quote_id=quote_id,
            role=role, user_id="usr_a", counterparty_fsp="provider-b",
            counterparty_identifier="13700137001", counterparty_name="*明", amount=100,
            payer_fee=0, payee_fee=0, condition=CONDITION, state="COMMITTED",
            expires_at=NOW - 47 * HOUR, created_at=NOW - 48 * HOUR, updated_at=NOW,
        )
    )  # fmt: skip
    uow.session.flush()


def _move(uow: UnitOfWork, lookup_id: int, quote_id: str) -> None:
    uow.session.add(
        Move(
            move_id=str(uuid.uuid4()), direction="out", user_id="usr_m", other_fsp="cell-2",
            state="alias_sent", balance=0, lookup_id=lookup_id, quote_id=quote_id,
            created_at=NOW - 48 * HOUR, updated_at=NOW,
        )
    )  # fmt: skip
    uow.session.flush()


def _seed(uow: UnitOfWork) -> None:
    # Lookups: answered a day ago or more go, answered recently stay; unanswered go after an
    # hour; the one a move confirms its alias with stays.
    _lookup(uow, "found-old", "found", 25 * HOUR)
    _lookup(uow, "not-found-old", "not_found", 30 * HOUR)
    _lookup(uow, "found-recent", "found", 23 * HOUR)
    _lookup(uow, "waiting-old", "waiting", 2 * HOUR)
    _lookup(uow, "waiting-recent", "waiting", HOUR // 2)
    moved = _lookup(uow, "move-confirms", "waiting", 30 * HOUR)
    # Payer quotes: unused ones a day old go; paid ones, a move's, a refund's still waiting
    # (the sweep's) and recent ones stay.
    _payer_quote(uow, "iqt_unused_ready", "ready", 25 * HOUR)
    _payer_quote(uow, "iqt_unused_failed", "failed", 26 * HOUR)
    _payer_quote(uow, "iqt_unused_waiting", "waiting", 27 * HOUR)
    _transfer(uow, _payer_quote(uow, "iqt_paid", "ready", 48 * HOUR), "payer")
    _payer_quote(uow, "iqt_moving", "ready", 48 * HOUR)
    _payer_quote(uow, "rfd_waiting", "waiting", 48 * HOUR, user=MERCHANT)
    _payer_quote(uow, "rfd_failed", "failed", 48 * HOUR, user=MERCHANT)
    _payer_quote(uow, "iqt_recent", "ready", 2 * HOUR)
    _move(uow, moved, "iqt_moving")
    # Payee quotes: unused ones a day old go; the paid one and a recent one stay.
    _payee_quote(uow, "unused-old", 25 * HOUR)
    _transfer(uow, _payee_quote(uow, "paid-old", 48 * HOUR), "payee")
    _payee_quote(uow, "unused-recent", 3 * HOUR)


def _left(db: Database) -> dict[str, set[str]]:
    with db.uow(readonly=True) as uow:
        return {
            "lookups": set(uow.session.scalars(select(PartyLookup.user_id))),
            "payer": set(uow.session.scalars(select(PayerQuote.public_id))),
            "payee": set(uow.session.scalars(select(PayeeQuote.user_id))),
        }


def test_old_lookups_and_unused_quotes_are_purged_in_batches(db: Database) -> None:
    db.transact(_seed)
    with db.uow(readonly=True) as uow:
        transfers = len(list(uow.session.scalars(select(InteropTransfer.id))))
    # Batches of 2: one transaction per batch until a batch finds nothing.
    assert db.transact(lambda uow: retention.purge_transient(uow, now=NOW, batch=2)) == 5
    assert retention.purge_all(db, now=NOW, batch=2) == 3
    assert retention.purge_all(db, now=NOW, batch=2) == 0
    assert _left(db) == {
        "lookups": {"found-recent", "waiting-recent", "move-confirms"},
        "payer": {"iqt_paid", "iqt_moving", "rfd_waiting", "iqt_recent"},
        "payee": {"paid-old", "unused-recent"},
    }
    with db.uow(readonly=True) as uow:
        assert len(list(uow.session.scalars(select(InteropTransfer.id)))) == transfers


def test_the_switch_forgets_quotes_a_day_old(db: Database) -> None:
    def seed(uow: UnitOfWork) -> None:
        for name, age, state in [
            ("old-answered", 25 * HOUR, "ANSWERED"),
            ("old-failed", 49 * HOUR, "FAILED"),
            ("old-requested", 30 * HOUR, "REQUESTED"),
            ("recent", 23 * HOUR, "REQUESTED"),
        ]:
            uow.session.add(
                Quote(
                    quote_id=str(uuid.uuid5(uuid.NAMESPACE_URL, name)), payer="provider-a",
                    payee="provider-b", digest=name, state=state, created_at=NOW - age,
                    updated_at=NOW - age,
                )
            )  # fmt: skip

    db.transact(seed)
    assert switch_retention.purge_all(db, now=NOW, batch=2) == 3
    with db.uow(readonly=True) as uow:
        assert list(uow.session.scalars(select(Quote.digest))) == ["recent"]
