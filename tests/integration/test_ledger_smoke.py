"""A first end-to-end pass through the engine, sealing and proofs, on both databases."""

from __future__ import annotations

from citywallet.ledger import service as ledger
from citywallet.ledger.blocks import inclusion_proof, load_signer
from citywallet.ledger.types import AccountCode, AccountFlags, Result, TransferFlags, TransferSpec
from citywallet.ledger.verifier import verify_inclusion_proof
from citywallet.platform.db import Database
from tests.ledger_checks import assert_ledger_clean, test_encryptor


def test_post_seal_prove(db: Database) -> None:
    def setup(uow):  # type: ignore[no-untyped-def]
        bank = ledger.create_account(uow, ledger="CNY", code=AccountCode.BANK_SETTLEMENT)
        alice = ledger.create_account(
            uow,
            ledger="CNY",
            code=AccountCode.CUSTOMER_WALLET,
            flags=AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS,
        )
        results = ledger.post(
            uow,
            transfers=[
                TransferSpec("top1", bank, alice, 10_000, "CNY", 1),
                TransferSpec("hold", alice, bank, 3_000, "CNY", 2, flags=TransferFlags.PENDING),
                TransferSpec("over", alice, bank, 7_001, "CNY", 2),
                TransferSpec(
                    "post", pending_id="hold", flags=TransferFlags.POST_PENDING, amount=2_000
                ),
            ],
        )
        return bank, alice, results

    _bank, alice, results = db.transact(setup)
    assert results == [Result.OK, Result.OK, Result.EXCEEDS_CREDITS, Result.OK]
    with db.uow(readonly=True) as uow:
        view = ledger.get_account(uow, account_id=alice)
    assert view is not None
    assert (view.balance, view.debits_pending) == (8_000, 0)
    assert_ledger_clean(db)
    with db.uow() as uow:
        signer = load_signer(uow, test_encryptor())
        proof = inclusion_proof(uow, transfer_id="post", signer=signer)
        transfer = ledger.get_transfer(uow, transfer_id="post")
    assert transfer is not None
    header = verify_inclusion_proof(proof, signer.public_key, transfer.canonical())
    assert header["tree_size"] == 3
