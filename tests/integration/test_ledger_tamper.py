"""``verify_ledger`` against damage done in the database behind the service's back.

Each test builds the same small sealed ledger (three blocks of three transfers, then two
transfers that are not sealed yet), damages it with raw SQL the way someone with database
access could, and asserts that verification names the damage: which transfer, account or
block, and what kind of change. "Exactly" means no problem is left unexplained either.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text

from citywallet.ledger import service as ledger
from citywallet.ledger.audit import verify_ledger
from citywallet.ledger.blocks import load_signer, seal_all
from citywallet.ledger.service import AccountSpec
from citywallet.ledger.types import (
    AccountCode,
    AccountFlags,
    Result,
    TransferCode,
    TransferFlags,
    TransferSpec,
    VerifyReport,
)
from citywallet.platform.db import Database, UnitOfWork
from tests.ledger_checks import test_encryptor

CNY = "CNY"
SEALED = ["t00", "t01", "t02", "t03", "t04", "t05", "t06", "t07", "t08"]
UNSEALED = ["u09", "u10"]


@dataclass(frozen=True)
class Books:
    bank: int
    alice: int
    bob: int
    carol: int
    public_key: bytes


@dataclass(frozen=True)
class Seal:
    seq: int
    height: int | None
    leaf: int | None


@pytest.fixture
def books(db: Database) -> Books:
    customer = AccountSpec(
        CNY, AccountCode.CUSTOMER_WALLET, AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
    )

    def setup(uow: UnitOfWork) -> list[int]:
        return ledger.create_accounts(
            uow,
            accounts=[AccountSpec(CNY, AccountCode.BANK_SETTLEMENT), customer, customer, customer],
        )

    bank, alice, bob, carol = db.transact(setup)
    p2p = TransferCode.P2P
    sealed = [
        TransferSpec("t00", bank, alice, 10_000, CNY, TransferCode.TOPUP),
        TransferSpec("t01", bank, bob, 5_000, CNY, TransferCode.TOPUP),
        TransferSpec("t02", alice, bob, 1_200, CNY, p2p),
        TransferSpec("t03", bob, carol, 700, CNY, p2p),
        TransferSpec("t04", alice, carol, 300, CNY, p2p, flags=TransferFlags.PENDING),
        TransferSpec("t05", pending_id="t04", flags=TransferFlags.POST_PENDING, amount=250),
        TransferSpec("t06", carol, alice, 100, CNY, p2p),
        TransferSpec("t07", bob, alice, 50, CNY, p2p),
        TransferSpec("t08", alice, bank, 400, CNY, TransferCode.WITHDRAWAL),
    ]
    # One transaction per transfer, so seq order is posting order on both databases.
    for spec in sealed:
        assert db.transact(lambda uow, s=spec: ledger.post(uow, transfers=[s])) == [Result.OK]

    def seal(uow: UnitOfWork) -> bytes:
        signer = load_signer(uow, test_encryptor())
        assert seal_all(uow, signer, max_transfers=3) == 9
        return signer.public_key

    public_key = db.transact(seal)
    later = [
        TransferSpec("u09", carol, bob, 20, CNY, p2p),
        TransferSpec("u10", bank, carol, 1_000, CNY, TransferCode.TOPUP),
    ]
    assert db.transact(lambda uow: ledger.post(uow, transfers=later)) == [Result.OK] * 2
    return Books(bank, alice, bob, carol, public_key)


def verify(db: Database, public_key: bytes | None) -> VerifyReport:
    with db.uow(readonly=True) as uow:
        return verify_ledger(uow, public_key=public_key)


def tamper(db: Database, *statements: str, **params: object) -> None:
    def run(uow: UnitOfWork) -> None:
        for sql in statements:
            uow.session.execute(text(sql), params)

    db.transact(run)


def seal_of(db: Database, transfer_id: str) -> Seal:
    with db.uow(readonly=True) as uow:
        row = uow.session.execute(
            text("SELECT seq, block_height, leaf_index FROM ledger_transfers WHERE id = :id"),
            {"id": transfer_id},
        ).one()
    return Seal(int(row[0]), row[1], row[2])


def assert_problems(report: VerifyReport, *expected: tuple[str, ...]) -> None:
    """Every expected problem (given as fragments of one sentence) is reported, and no other."""
    left = list(report.problems)
    for fragments in expected:
        match = next((p for p in left if all(f in p for f in fragments)), None)
        assert match is not None, f"no problem mentions {fragments}; got:\n" + "\n".join(
            report.problems
        )
        left.remove(match)
    assert not left, "unexpected problems:\n" + "\n".join(left)


def test_the_fixture_is_laid_out_as_the_tests_assume(db: Database, books: Books) -> None:
    seals = [seal_of(db, t) for t in SEALED]
    assert [(s.height, s.leaf) for s in seals] == [(h, i) for h in range(3) for i in range(3)]
    assert [s.seq for s in seals] == sorted(s.seq for s in seals)
    assert [(seal_of(db, t).height, seal_of(db, t).leaf) for t in UNSEALED] == [(None, None)] * 2


def test_a_clean_ledger_verifies(db: Database, books: Books) -> None:
    report = verify(db, books.public_key)
    assert report.problems == []
    assert report.ok
    assert (report.accounts, report.transfers, report.blocks, report.sealed_transfers) == (
        4,
        11,
        3,
        9,
    )


# --- transfers ----------------------------------------------------------------------------


def test_changed_amount_is_named_by_content_and_counters(db: Database, books: Books) -> None:
    tamper(db, "UPDATE ledger_transfers SET amount = 12000 WHERE id = 't02'")
    assert_problems(
        verify(db, books.public_key),
        ("transfer t02", "content changed", "block 0", "leaf 2"),
        ("checkpoint 3", "first 3 transfers no longer hash", "rewritten", "2 later"),
        (f"account {books.alice}", "debits_posted stored", "give 12"),
        (f"account {books.bob}", "credits_posted stored", "give 17"),
    )


def test_changed_amount_with_rewritten_hash_is_caught_by_the_sealed_leaves(
    db: Database, books: Books
) -> None:
    with db.uow(readonly=True) as uow:
        forged = ledger.get_transfer(uow, transfer_id="t03")
    assert forged is not None
    # A careful forger rewrites the counters too, so that only the seal can tell.
    forged_hash = ledger.transfer_hash(replace(forged, amount=70))
    tamper(
        db,
        "UPDATE ledger_transfers SET amount = 70, hash = :h WHERE id = 't03'",
        "UPDATE ledger_accounts SET debits_posted = debits_posted - 630 WHERE id = :bob",
        "UPDATE ledger_accounts SET credits_posted = credits_posted - 630 WHERE id = :carol",
        h=forged_hash,
        bob=books.bob,
        carol=books.carol,
    )
    assert_problems(
        verify(db, books.public_key),
        ("transfer t03", "content changed", "block 1", "leaf 0"),
        ("checkpoint 6", "first 6 transfers no longer hash", "rewritten", "1 later"),
    )


def test_rewritten_hash_column_alone_is_named(db: Database, books: Books) -> None:
    tamper(db, "UPDATE ledger_transfers SET hash = :h WHERE id = 't07'", h=b"\x01" * 32)
    assert_problems(verify(db, books.public_key), ("transfer t07", "hash column altered"))


def test_changed_reference_of_a_sealed_transfer_is_named(db: Database, books: Books) -> None:
    # No counter moves, so only the seal can tell.
    tamper(db, "UPDATE ledger_transfers SET reference = 'ord_forged' WHERE id = 't06'")
    assert_problems(
        verify(db, books.public_key),
        ("transfer t06", "content changed", "block 2", "leaf 0"),
        ("checkpoint 9", "first 9 transfers no longer hash", "rewritten"),
    )


def test_deleted_sealed_transfer_is_named(db: Database, books: Books) -> None:
    tamper(db, "DELETE FROM ledger_transfers WHERE id = 't07'")
    assert_problems(
        verify(db, books.public_key),
        ("block 2", "sealed leaf 1", "has no transfer", "deleted"),
        ("log", "position 7 is missing", "deleted"),
        ("checkpoint 9", "log has only 7", "truncated"),
        (f"account {books.bob}", "debits_posted stored 750 but transfers give 700"),
        (f"account {books.alice}", "credits_posted stored 10150 but transfers give 10100"),
    )


def test_deleted_sealed_pending_transfer_is_named(db: Database, books: Books) -> None:
    # The pending transfer nets to zero once posted, so only the seal and its post can tell.
    tamper(db, "DELETE FROM ledger_transfers WHERE id = 't04'")
    assert_problems(
        verify(db, books.public_key),
        ("block 1", "sealed leaf 1", "deleted"),
        ("log", "position 4 is missing", "deleted"),
        ("checkpoint 6", "log has only 4", "truncated", "1 later"),
        ("transfer t05", "resolves t04", "missing"),
    )


def test_unsealing_a_transfer_is_named(db: Database, books: Books) -> None:
    tamper(
        db, "UPDATE ledger_transfers SET block_height = NULL, leaf_index = NULL WHERE id = 't01'"
    )
    assert_problems(verify(db, books.public_key), ("block 0", "sealed leaf 1", "deleted"))


def test_swapped_leaf_positions_are_named_as_reordered(db: Database, books: Books) -> None:
    tamper(
        db,
        "UPDATE ledger_transfers SET leaf_index = 2 - leaf_index WHERE id IN ('t03', 't05')",
    )
    assert_problems(
        verify(db, books.public_key),
        ("transfer t03", "moved from leaf 0 to leaf 2", "block 1", "reordered"),
        ("transfer t05", "moved from leaf 2 to leaf 0", "block 1", "reordered"),
        ("transfer t04", "sequence order differs", "block 1", "reordered"),
        ("transfer t03", "sequence order differs", "block 1", "reordered"),
    )


def test_swapped_seq_values_are_named_as_reordered(db: Database, books: Books) -> None:
    first, second = seal_of(db, "t06"), seal_of(db, "t08")
    # Through a free value, so the primary key never holds two equal seqs (PostgreSQL).
    tamper(
        db,
        "UPDATE ledger_transfers SET seq = :spare WHERE seq = :a",
        "UPDATE ledger_transfers SET seq = :a WHERE seq = :b",
        "UPDATE ledger_transfers SET seq = :b WHERE seq = :spare",
        a=first.seq,
        b=second.seq,
        spare=10**9,
    )
    assert (seal_of(db, "t06").seq, seal_of(db, "t08").seq) == (second.seq, first.seq)
    # Leaves 0, 1, 2 of block 2 now carry seqs c, b, a: t07 and t08 are out of order.
    assert_problems(
        verify(db, books.public_key),
        ("transfer t07", "sequence order differs from sealed order", "block 2", "reordered"),
        ("transfer t08", "sequence order differs from sealed order", "block 2", "reordered"),
    )


def test_a_sealed_transfer_moved_to_another_block_is_named(db: Database, books: Books) -> None:
    tamper(db, "UPDATE ledger_transfers SET block_height = 0, leaf_index = 1 WHERE id = 't05'")
    assert_problems(
        verify(db, books.public_key),
        ("transfer t05", "content changed", "block 0", "leaf 1"),
        ("block 1", "sealed leaf 2", "deleted"),
        # Block 0 now lists t01 and t05 at leaf 1 (in either order): t05's higher seq puts
        # exactly one of t01 or t02 out of sequence order.
        ("sequence order differs", "block 0", "reordered"),
    )


def test_a_sealed_transfer_without_a_leaf_position_is_named(db: Database, books: Books) -> None:
    tamper(db, "UPDATE ledger_transfers SET leaf_index = NULL WHERE id = 't04'")
    assert_problems(
        verify(db, books.public_key),
        ("transfer t04", "block 1", "no leaf position"),
        ("block 1", "sealed leaf 1", "deleted"),
    )


def test_a_forged_transfer_slipped_into_a_block_is_named(db: Database, books: Books) -> None:
    tamper(
        db,
        "INSERT INTO ledger_transfers (id, debit_account_id, credit_account_id, amount, ledger, "
        "code, flags, pending_id, timeout, reference, timestamp, hash, block_height, leaf_index) "
        "SELECT 'forged', debit_account_id, credit_account_id, amount, ledger, code, flags, NULL, "
        "0, NULL, timestamp, hash, 2, 3 FROM ledger_transfers WHERE id = 't08'",
    )
    assert_problems(
        verify(db, books.public_key),
        ("transfer forged", "claims leaf 3 of block 2", "only 3"),
        ("log", "1 sealed transfers have no log position"),
        (f"account {books.alice}", "debits_posted"),
        (f"account {books.bank}", "credits_posted"),
    )


def test_changed_unsealed_transfer_is_named(db: Database, books: Books) -> None:
    # Not sealed yet, so no block can tell; its stored hash still does (sealing would refuse).
    tamper(db, "UPDATE ledger_transfers SET reference = 'ord_forged' WHERE id = 'u09'")
    assert_problems(verify(db, books.public_key), ("transfer u09", "not sealed", "hash"))


# --- accounts -----------------------------------------------------------------------------


def test_edited_account_counter_is_named(db: Database, books: Books) -> None:
    tamper(
        db,
        "UPDATE ledger_accounts SET credits_posted = credits_posted + 100000 WHERE id = :id",
        id=books.carol,
    )
    assert_problems(
        verify(db, books.public_key),
        (f"account {books.carol}", "credits_posted stored 101950 but transfers give 1950"),
    )


def test_edited_counter_that_hides_an_overdraft_is_named(db: Database, books: Books) -> None:
    # The CHECK constraint still holds (debits within credits), the counters do not.
    tamper(
        db,
        "UPDATE ledger_accounts SET debits_posted = 0, credits_posted = 0 WHERE id = :id",
        id=books.bob,
    )
    assert_problems(
        verify(db, books.public_key),
        (f"account {books.bob}", "debits_posted stored 0 but", "credits_posted stored 0 but"),
    )


# --- blocks -------------------------------------------------------------------------------


def test_edited_merkle_root_is_named(db: Database, books: Books) -> None:
    tamper(db, "UPDATE ledger_blocks SET merkle_root = :r WHERE height = 1", r="ab" * 32)
    assert_problems(
        verify(db, books.public_key),
        ("block 1", "header changed"),
        ("block 1", "signature is not valid"),
        ("block 1", "root mismatch"),
    )


def test_edited_prev_hash_is_named(db: Database, books: Books) -> None:
    tamper(db, "UPDATE ledger_blocks SET prev_hash = :p WHERE height = 2", p="cd" * 32)
    assert_problems(
        verify(db, books.public_key),
        ("block 2", "prev_hash does not match block 1"),
        ("block 2", "header changed"),
        ("block 2", "signature is not valid"),
    )


def test_edited_sealed_leaves_are_named(db: Database, books: Books) -> None:
    tamper(
        db,
        "UPDATE ledger_blocks SET leaves = (SELECT hash FROM ledger_transfers WHERE id = 't00') "
        "WHERE height = 0",
    )
    report = verify(db, books.public_key)
    assert any("block 0" in p and "root mismatch" in p for p in report.problems), report.problems
    assert any("transfer t01" in p and "block 0" in p for p in report.problems), report.problems


def test_a_reheadered_block_with_a_fresh_signature_of_another_key_is_named(
    db: Database, books: Books
) -> None:
    # Rebuilding a block properly needs the platform's private key: a forger's own key
    # gives a valid-looking signature that does not verify under the published key.
    forger = Ed25519PrivateKey.generate()
    with db.uow(readonly=True) as uow:
        row = uow.session.execute(text("SELECT signature FROM ledger_blocks WHERE height = 0"))
        genuine = row.scalar_one()
    tamper(
        db,
        "UPDATE ledger_blocks SET signature = :s WHERE height = 0",
        s=forger.sign(b"anything").hex(),
    )
    assert genuine != forger.sign(b"anything").hex()
    assert_problems(verify(db, books.public_key), ("block 0", "signature is not valid"))


def test_corrupted_signature_is_named(db: Database, books: Books) -> None:
    with db.uow(readonly=True) as uow:
        signature = uow.session.execute(
            text("SELECT signature FROM ledger_blocks WHERE height = 1")
        ).scalar_one()
    flipped = ("1" if signature[10] == "0" else "0").join((signature[:10], signature[11:]))
    tamper(db, "UPDATE ledger_blocks SET signature = :s WHERE height = 1", s=flipped)
    assert_problems(verify(db, books.public_key), ("block 1", "signature is not valid"))
    # Without a key the signature cannot be judged, and nothing else is wrong.
    assert verify(db, None).ok


def test_verifying_with_another_public_key_fails_every_signature(
    db: Database, books: Books
) -> None:
    other = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    assert_problems(
        verify(db, other),
        ("block 0", "signature is not valid"),
        ("block 1", "signature is not valid"),
        ("block 2", "signature is not valid"),
        ("checkpoint 3", "no valid signature by this public key", "nor 2 later"),
    )


def test_deleted_middle_block_is_named(db: Database, books: Books) -> None:
    tamper(db, "DELETE FROM ledger_blocks WHERE height = 1")
    report = verify(db, books.public_key)
    assert_problems(
        report,
        ("block 1", "missing (next block is 2)"),
        ("block 1", "missing, but 3 transfers are sealed in it", "deleted"),
        ("block 2", "prev_hash does not match block 1"),
    )
    assert report.blocks == 2


def test_deleted_last_block_is_named(db: Database, books: Books) -> None:
    # Its transfers still say they are sealed in it: the chain alone cannot show the cut.
    tamper(db, "DELETE FROM ledger_blocks WHERE height = 2")
    assert_problems(
        verify(db, books.public_key),
        ("block 2", "missing, but 3 transfers are sealed in it", "deleted"),
    )


def test_deleted_first_block_is_named(db: Database, books: Books) -> None:
    tamper(db, "DELETE FROM ledger_blocks WHERE height = 0")
    assert_problems(
        verify(db, books.public_key),
        ("block 0", "missing (next block is 1)"),
        ("block 0", "missing, but 3 transfers are sealed in it", "deleted"),
        ("block 1", "prev_hash does not match block 0"),
    )
