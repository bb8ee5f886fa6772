"""Small value-type behaviour the ledger relies on (pure)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from citywallet.ledger.types import AccountState, Result, Transfer, TransferFlags

BASE = Transfer(
    id="t",
    debit_account_id=1,
    credit_account_id=2,
    amount=10,
    ledger="CNY",
    code=5,
    flags=int(TransferFlags.PENDING),
    pending_id=None,
    timeout=3,
    reference=None,
    timestamp=1_000_000,
)


def test_expires_at_is_timestamp_plus_timeout_seconds() -> None:
    assert BASE.expires_at == 4_000_000
    assert replace(BASE, flags=int(TransferFlags.PENDING | TransferFlags.LINKED)).expires_at == (
        4_000_000
    )


@pytest.mark.parametrize(
    "changes",
    [
        {"timeout": 0},  # a pending transfer without a timeout never expires
        {"flags": 0},  # only pending transfers expire
        {"flags": int(TransferFlags.POST_PENDING), "timeout": 0},
    ],
)
def test_no_expiry(changes: dict[str, int]) -> None:
    assert replace(BASE, **changes).expires_at is None


def test_balance_and_available() -> None:
    account = AccountState(
        1, "CNY", 0, debits_pending=7, debits_posted=20, credits_pending=4, credits_posted=50
    )
    assert account.balance == 30  # pending credits are not spendable yet
    assert account.available == 23  # pending debits are held
    copy = account.copy()
    assert copy == account
    assert copy is not account
    copy.debits_posted += 1
    assert account.debits_posted == 20


def test_only_ok_and_exists_are_on_the_books() -> None:
    assert {r for r in Result if r.on_books} == {Result.OK, Result.EXISTS}


def test_expired_is_not_client_settable() -> None:
    settable = TransferFlags.client_settable()
    assert not settable & TransferFlags.EXPIRED
    assert settable == int(
        TransferFlags.LINKED
        | TransferFlags.PENDING
        | TransferFlags.POST_PENDING
        | TransferFlags.VOID_PENDING
    )
