"""The ledger's bulk path for one funded source and many fresh accounts
(``ledger.open_funded_accounts``, campaign grants), on SQLite and PostgreSQL: it writes
what opening the accounts and posting the transfers one by one through ``ledger.post``
would write (same transfers, hashes and counters), refuses all or nothing, and leaves a
ledger that verifies and seals."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from citywallet.ledger import service as ledger
from citywallet.ledger.service import AccountSpec, Funding
from citywallet.ledger.types import AccountCode, AccountFlags, Result, TransferCode, TransferSpec
from citywallet.platform.db import Database, UnitOfWork
from tests.ledger_checks import assert_ledger_clean

CNY = "CNY"
NOW = 1_800_000_000_000_000
GRANT = TransferCode.CAMPAIGN_GRANT


def _restricted(owner: str) -> AccountSpec:
    return AccountSpec(
        CNY, AccountCode.CUSTOMER_RESTRICTED, AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS, owner
    )


def _funded_source(db: Database, amount: int) -> int:
    bank, source = db.transact(
        lambda uow: ledger.create_accounts(
            uow,
            accounts=[
                AccountSpec(CNY, AccountCode.BANK_SETTLEMENT),
                AccountSpec(
                    CNY, AccountCode.CAMPAIGN_FUNDS, AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
                ),
            ],
        )
    )
    fund = TransferSpec("fund", bank, source, amount, CNY, TransferCode.CAMPAIGN_FUND)
    assert db.transact(lambda uow: ledger.post(uow, transfers=[fund])) == [Result.OK]
    return source


def _stored(db: Database, prefix: str) -> list[tuple[object, ...]]:
    """The stored transfers with ids starting with ``prefix``: every column that is sealed,
    the hash, and the credited account's owner and counters instead of its id."""
    with db.uow(readonly=True) as uow:
        rows = uow.session.execute(
            text(
                "SELECT substr(t.id, :n), t.amount, t.ledger, t.code, t.flags, t.pending_id, "
                "t.timeout, t.reference, t.timestamp, t.hash, t.debit_account_id, a.owner_ref, "
                "a.code, a.flags, a.debits_pending, a.debits_posted, a.credits_pending, "
                "a.credits_posted FROM ledger_transfers AS t JOIN ledger_accounts AS a "
                "ON a.id = t.credit_account_id WHERE t.id LIKE :like ORDER BY t.seq"
            ),
            {"n": len(prefix) + 1, "like": prefix + "%"},
        ).all()
    return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in rows]


def test_bulk_funding_writes_what_post_would(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ledger, "now_us", lambda: NOW)  # one ledger clock for both paths
    amounts = [2_000, 500, 88_800, 1]
    source = _funded_source(db, 2 * sum(amounts))
    owners = [f"rst:cmp_x:usr_{n}" for n in range(len(amounts))]

    ids, results = db.transact(
        lambda uow: ledger.open_funded_accounts(
            uow,
            source_account_id=source,
            fundings=[
                Funding(_restricted(owner), f"bulk.{n}", amount, GRANT, "cmp_x")
                for n, (owner, amount) in enumerate(zip(owners, amounts, strict=True))
            ],
        )
    )
    assert results == [Result.OK] * len(amounts)
    assert ids == sorted(ids)

    def one_by_one(uow: UnitOfWork) -> list[Result]:
        accounts = ledger.create_accounts(uow, accounts=[_restricted(o) for o in owners])
        return ledger.post(
            uow,
            transfers=[
                TransferSpec(f"post.{n}", source, account, amount, CNY, GRANT, reference="cmp_x")
                for n, (account, amount) in enumerate(zip(accounts, amounts, strict=True))
            ],
        )

    assert db.transact(one_by_one) == [Result.OK] * len(amounts)
    bulk, posted = _stored(db, "bulk."), _stored(db, "post.")
    assert len(bulk) == len(amounts)
    # The same rows but for the transfer id, hence the hash; the hash is the one the seal checks.
    assert [row[:9] + row[10:] for row in bulk] == [row[:9] + row[10:] for row in posted]
    with db.uow(readonly=True) as uow:
        views = ledger.get_accounts(uow, ids=ids)
        assert [views[i].balance for i in ids] == amounts
        assert [views[i].owner_ref for i in ids] == owners
        assert ledger.get_account(uow, account_id=source).balance == 0
    assert_ledger_clean(db)


def test_bulk_funding_is_all_or_nothing(db: Database) -> None:
    source = _funded_source(db, 1_000)

    def too_much(uow: UnitOfWork) -> tuple[list[int], list[Result]]:
        return ledger.open_funded_accounts(
            uow,
            source_account_id=source,
            fundings=[Funding(_restricted(f"usr_{n}"), f"grant.{n}", 400, GRANT) for n in range(3)],
        )

    _, results = db.transact(too_much)
    assert results == [Result.OK, Result.OK, Result.EXCEEDS_CREDITS]
    with db.uow(readonly=True) as uow:
        assert ledger.get_account(uow, account_id=source).balance == 1_000
        assert ledger.find_account(uow, owner_ref="usr_0") is None
        assert ledger.get_transfer(uow, transfer_id="grant.0") is None
    assert db.transact(
        lambda uow: ledger.open_funded_accounts(uow, source_account_id=source, fundings=[])
    ) == ([], [])
    assert_ledger_clean(db)
