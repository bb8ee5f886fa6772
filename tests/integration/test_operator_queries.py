"""The reads and the log behind the operator console: resident search by exact numbers
(keyed hashes), the audit log's filters and pages, ledger totals per kind, merchants by
status."""

from __future__ import annotations

from pathlib import Path

import pytest

from citywallet.identity import audit, residents
from citywallet.identity.audit import Actor
from citywallet.ledger import overview
from citywallet.ledger import service as ledger
from citywallet.ledger.types import AccountCode, AccountFlags, TransferCode, TransferSpec
from citywallet.merchant import review_queue
from citywallet.platform.db import Database, UnitOfWork
from citywallet.platform.errors import InvalidInput
from tests.identity_support import resident_id
from tests.ledger_checks import assert_ledger_clean, test_encryptor
from tests.wallet_support import make_resident, sandbox_bank, wallet_settings


def test_residents_are_found_only_by_exact_numbers(db: Database, tmp_path: Path) -> None:
    settings, encryptor = wallet_settings(tmp_path, db), test_encryptor()
    person = make_resident(db, settings, encryptor, sandbox_bank(), 5, card_ending=None)
    number = resident_id(sequence="006", birth="19900615")  # make_resident's for n=5
    with db.uow(readonly=True) as uow:
        [hit] = residents.search_residents(uow, query="138 0013 0005", encryptor=encryptor)
        assert hit.user_id == person.user_id
        assert hit.phone_masked == "138****0005"
        assert hit.id_number_masked is not None
        assert number not in hit.id_number_masked
        [by_id] = residents.search_residents(uow, query=number.lower(), encryptor=encryptor)
        assert by_id.user_id == person.user_id
        [by_user] = residents.search_residents(uow, query=person.user_id, encryptor=encryptor)
        assert by_user.user_id == person.user_id
        assert residents.search_residents(uow, query="13800139999", encryptor=encryptor) == []
        for bad in ("1380013", "", "张伟"):
            with pytest.raises(InvalidInput) as refused:
                residents.search_residents(uow, query=bad, encryptor=encryptor)
            assert refused.value.code == "invalid_search"
        detail = residents.resident_detail(uow, user_id=person.user_id)
    assert detail.real_name_verified
    assert detail.summary.tier >= 1
    assert "real_name_verified" in [e.kind for e in detail.events]


def test_the_audit_log_filters_and_pages(db: Database) -> None:
    one, two = Actor("usr_one", "138****0001"), Actor("usr_two", "138****0002")
    for n in range(7):
        db.transact(
            lambda uow, n=n: audit.record(
                uow, actor=one if n % 2 else two, action="campaign.open", target_id=f"cmp_{n}"
            )
        )
    db.transact(
        lambda uow: audit.record(
            uow, actor=one, action="resident.freeze", target_id="usr_x", reason=" fraud "
        )
    )
    with db.uow(readonly=True) as uow:
        page, cursor = audit.list_entries(uow, limit=5)
        assert [e.action for e in page][:1] == ["resident.freeze"]
        assert page[0].reason == "fraud"
        assert cursor is not None
        rest, end = audit.list_entries(uow, limit=5, before=cursor)
        assert (len(rest), end) == (3, None)
        assert len(audit.list_entries(uow, action="campaign.")[0]) == 7
        assert len(audit.list_entries(uow, actor_user_id="usr_one")[0]) == 4
        [entry] = audit.list_entries(uow, target_id="cmp_3")[0]
        assert (entry.actor_user_id, entry.target_kind) == ("usr_one", "campaign")

    def rolled_back(uow: object) -> None:
        audit.record(uow, actor=one, action="resident.unfreeze", target_id="usr_x")  # type: ignore[arg-type]
        raise RuntimeError("the action failed")

    with pytest.raises(RuntimeError):
        db.transact(rolled_back)  # type: ignore[arg-type]
    with db.uow(readonly=True) as uow:
        assert audit.list_entries(uow, action="resident.unfreeze")[0] == []


def test_ledger_totals_and_merchants_by_status(db: Database) -> None:
    def books(uow: UnitOfWork) -> None:
        bank = ledger.create_account(uow, ledger="CNY", code=AccountCode.BANK_SETTLEMENT)
        wallets = [
            ledger.create_account(uow, ledger="CNY", code=AccountCode.CUSTOMER_WALLET,
                                  flags=AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
            for _ in range(2)
        ]  # fmt: skip
        ledger.post(uow, transfers=[
            TransferSpec(id=f"seed-{n}", debit_account_id=bank, credit_account_id=wallet,
                         amount=1_000 * (n + 1), ledger="CNY", code=TransferCode.SEED)
            for n, wallet in enumerate(wallets)
        ])  # fmt: skip

    db.transact(books)
    with db.uow(readonly=True) as uow:
        totals = {t.name: t for t in overview.totals_by_kind(uow)}
        counts = overview.counts(uow)
        assert overview.latest_blocks(uow) == []
        assert review_queue.merchants_by_status(uow) == []
        assert review_queue.merchants_by_status(uow, status="nonsense") == []
    wallet = totals["CUSTOMER_WALLET"]
    assert (wallet.accounts, wallet.credits_posted, wallet.balance) == (2, 3_000, 3_000)
    assert totals["BANK_SETTLEMENT"].balance == -3_000
    assert (counts.transfers, counts.unsealed, counts.blocks) == (2, 2, 0)
    assert_ledger_clean(db)
    with db.uow(readonly=True) as uow:
        [block] = overview.latest_blocks(uow)
    assert block.tree_size == 2
