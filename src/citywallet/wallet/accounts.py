"""Wallet accounts in the ledger, the platform accounts they trade with, and the per-user
locks and limit-usage rows every money movement takes in its own transaction.

Lock order, everywhere: wallet rows in ascending ledger-account id, then the payer's usage
rows, then (inside ``ledger.post``) the ledger accounts in ascending id. On PostgreSQL these
are ``SELECT … FOR UPDATE`` row locks; on SQLite the ``BEGIN IMMEDIATE`` writer lock
already serialises every writer.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence

from sqlalchemy import ColumnElement, ScalarSelect, bindparam, select, text

from citywallet.ledger import service as ledger
from citywallet.ledger.types import AccountCode, AccountFlags
from citywallet.platform.clock import now_us
from citywallet.platform.db import DriverSql, UnitOfWork
from citywallet.wallet.models import LimitUsage, Wallet

CURRENCY = "CNY"
BANK_SETTLEMENT = "platform:bank_settlement"
FEE_REVENUE = "platform:fee_revenue"
FREE_WITHDRAWAL = "free_wd"  # the usage row of the lifetime free withdrawal quota
LIFETIME = "life"


def _advisory_lock(uow: UnitOfWork, key: str) -> None:
    """On PostgreSQL, serialise creators of the same thing until this transaction ends
    (SQLite's writer lock does that already)."""
    if uow.dialect != "postgresql":
        return
    number = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)
    uow.session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": number})


def platform_account(uow: UnitOfWork, *, owner_ref: str, code: AccountCode) -> int:
    """The platform's account for ``owner_ref`` (``platform:fee_revenue``), opened on first
    use; concurrent first uses open one account, not two."""
    found = ledger.find_account(uow, owner_ref=owner_ref)
    if found is not None:
        return found
    _advisory_lock(uow, owner_ref)
    found = ledger.find_account(uow, owner_ref=owner_ref)
    if found is not None:
        return found
    return ledger.create_account(uow, ledger=CURRENCY, code=code, owner_ref=owner_ref)


def bank_settlement_account(uow: UnitOfWork) -> int:
    """The mirror of our money at the settlement bank (no overdraft flag: it goes negative
    as residents' money arrives)."""
    return platform_account(uow, owner_ref=BANK_SETTLEMENT, code=AccountCode.BANK_SETTLEMENT)


def fee_revenue_account(uow: UnitOfWork) -> int:
    """Where fees go."""
    return platform_account(uow, owner_ref=FEE_REVENUE, code=AccountCode.FEE_REVENUE)


def find_wallet(uow: UnitOfWork, *, user_id: str) -> int | None:
    """The ledger account id of the user's wallet, or ``None`` if it was never opened."""
    found: int | None = uow.session.scalar(
        select(Wallet.ledger_account_id).where(Wallet.user_id == user_id)
    )
    return found


def wallet_id_of(user_id: ColumnElement[str] | str) -> ScalarSelect[int]:
    """The user's wallet account id as a scalar subquery (NULL if never opened), for a
    feature that reads it inside a statement of its own."""
    return select(Wallet.ledger_account_id).where(Wallet.user_id == user_id).scalar_subquery()


def ensure_wallet(uow: UnitOfWork, *, user_id: str) -> int:
    """The ledger account id of the user's CNY wallet, opened on first use (no overdraft)."""
    found = find_wallet(uow, user_id=user_id)
    if found is not None:
        return found
    _advisory_lock(uow, f"wallet:{user_id}")
    found = find_wallet(uow, user_id=user_id)
    if found is not None:
        return found
    account = ledger.create_account(
        uow,
        ledger=CURRENCY,
        code=AccountCode.CUSTOMER_WALLET,
        flags=AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS,
        owner_ref=user_id,
    )
    uow.session.add(
        Wallet(user_id=user_id, ledger_account_id=account, currency=CURRENCY, created_at=now_us())
    )
    uow.session.flush()
    return account


def lock_wallets(uow: UnitOfWork, *, user_ids: Iterable[str]) -> dict[str, int]:
    """Open (if needed) and lock the wallets of ``user_ids`` in ascending account order;
    returns their ledger account ids. Money movements of one user are serialised here."""
    wanted = sorted(set(user_ids))
    for user_id in wanted:
        ensure_wallet(uow, user_id=user_id)
    return lock_opened_wallets(uow, user_ids=wanted)


def lock_opened_wallets(uow: UnitOfWork, *, user_ids: Iterable[str]) -> dict[str, int]:
    """Lock wallets known to be open (found by an earlier read: wallets are never deleted)
    in ascending account order, in one statement; returns their ledger account ids."""
    rows = uow.session.execute(
        select(Wallet.user_id, Wallet.ledger_account_id)
        .where(Wallet.user_id.in_(sorted(set(user_ids))))
        .order_by(Wallet.ledger_account_id)
        .with_for_update()
    ).all()
    return {str(user_id): int(account) for user_id, account in rows}


# --- limit usage --------------------------------------------------------------------------


def lock_usage(uow: UnitOfWork, *, user_id: str, periods: Sequence[str]) -> dict[str, int]:
    """The usage amounts of ``periods`` for the user, rows created at zero and locked."""
    moment = now_us()
    uow.session.execute(
        text(
            "INSERT INTO wallet_limit_usage (user_id, period, amount, updated_at) "
            "VALUES (:u, :p, 0, :t) ON CONFLICT (user_id, period) DO NOTHING"
        ),
        [{"u": user_id, "p": period, "t": moment} for period in periods],
    )
    rows = uow.session.execute(
        select(LimitUsage.period, LimitUsage.amount)
        .where(LimitUsage.user_id == user_id, LimitUsage.period.in_(list(periods)))
        .order_by(LimitUsage.period)
        .with_for_update()
    ).all()
    return {str(period): int(amount) for period, amount in rows}


# One statement per dialect whatever the number of rows (the periods and amounts travel as
# one JSON object), sent at the driver's level: every payment runs it. The rows are locked
# in key order, the same order for every payer.
_COUNT_USAGE = {
    "postgresql": DriverSql(
        "INSERT INTO wallet_limit_usage (user_id, period, amount, updated_at) "
        "SELECT ?, key, value::bigint, ? FROM jsonb_each_text(CAST(? AS jsonb)) "
        "ORDER BY key "
        "ON CONFLICT (user_id, period) DO UPDATE SET "
        "amount = wallet_limit_usage.amount + excluded.amount, updated_at = excluded.updated_at "
        "RETURNING period, amount"
    ),
    "sqlite": DriverSql(
        "INSERT INTO wallet_limit_usage (user_id, period, amount, updated_at) "
        "SELECT ?, key, value, ? FROM json_each(?) WHERE true ORDER BY key "
        "ON CONFLICT (user_id, period) DO UPDATE SET "
        "amount = wallet_limit_usage.amount + excluded.amount, updated_at = excluded.updated_at "
        "RETURNING period, amount"
    ),
}


def count_usage(uow: UnitOfWork, *, user_id: str, changes: Mapping[str, int]) -> dict[str, int]:
    """Add ``changes`` to the user's usage rows (created at zero) and return the new amounts:
    one upsert whose row locks reserve the slot before any other work of the transaction.
    The caller compares the result with its limits and raises to roll the count back."""
    if not changes:
        return {}
    rows = _COUNT_USAGE[uow.dialect].run(
        uow, (user_id, now_us(), json.dumps(dict(changes), sort_keys=True))
    )
    return {str(period): int(amount) for period, amount in rows}


def read_usage(uow: UnitOfWork, *, user_id: str, periods: Sequence[str]) -> dict[str, int]:
    """Usage amounts without locking (for display); missing rows are zero."""
    rows = uow.session.execute(
        text(
            "SELECT period, amount FROM wallet_limit_usage WHERE user_id = :u AND period IN :ps"
        ).bindparams(bindparam("ps", expanding=True)),
        {"u": user_id, "ps": list(periods)},
    ).all()
    found = {str(period): int(amount) for period, amount in rows}
    return {period: found.get(period, 0) for period in periods}


def add_usage(uow: UnitOfWork, *, user_id: str, changes: Mapping[str, int]) -> None:
    """Add (or, to give back, subtract) amounts to locked usage rows."""
    moment = now_us()
    params = [
        {"u": user_id, "p": period, "d": delta, "t": moment}
        for period, delta in changes.items()
        if delta
    ]
    if params:
        uow.session.execute(
            text(
                "UPDATE wallet_limit_usage SET amount = amount + :d, updated_at = :t "
                "WHERE user_id = :u AND period = :p"
            ),
            params,
        )
