"""Before a transfer: the recipient preview refuses what the transfer would refuse, recent
recipients are the last distinct payees, and a receive code's payload pays its owner
(docs/wallet.md, "Receive code")."""

from __future__ import annotations

from pathlib import Path

import pytest

from citywallet.identity import service as identity
from citywallet.identity.service import run_confirmed
from citywallet.platform.config import Settings
from citywallet.platform.db import Database
from citywallet.platform.errors import DomainError
from citywallet.wallet import receive_code
from citywallet.wallet import service as wallet
from tests.ledger_checks import assert_ledger_clean, test_encryptor
from tests.wallet_support import PIN, balance, make_resident, sandbox_bank, wallet_settings


@pytest.fixture
def settings(tmp_path: Path, db: Database) -> Settings:
    return wallet_settings(tmp_path, db)


def test_receive_code_payload_pays_its_owner_and_the_preview_mirrors_refusals(
    db: Database, settings: Settings
) -> None:
    enc, bank = test_encryptor(), sandbox_bank()
    payer, payee, other = (make_resident(db, settings, enc, bank, n) for n in (71, 72, 73))
    wallet.top_up(db, bank=bank, user_id=payer.user_id, card_id=payer.card_id or "",
                  amount=5_000, pin=PIN, encryptor=enc, settings=settings)  # fmt: skip
    payload = db.transact(
        lambda uow: wallet.my_receive_code(uow, user_id=payee.user_id, amount=1_999)
    )
    code = receive_code.parse(payload)
    with db.uow(readonly=True) as uow:
        seen = wallet.recipient_preview(uow, user_id=payer.user_id, to=code.user_id, encryptor=enc)
    assert (seen.user_id, seen.masked_name) == (payee.user_id, "*娜")  # 72: 李娜
    assert code.amount is not None
    amount = code.amount
    run_confirmed(
        db,
        lambda uow: wallet.send_transfer(
            uow, user_id=payer.user_id, to=code.user_id, amount=amount, encryptor=enc,
            settings=settings, pin=PIN,
        ),
        settings=settings,
    )  # fmt: skip
    assert balance(db, payee.user_id)[0] == 1_999
    assert balance(db, payer.user_id)[0] == 5_000 - 1_999

    db.transact(lambda uow: identity.freeze_user(uow, user_id=other.user_id, reason="t", actor="t"))
    with db.uow(readonly=True) as uow, pytest.raises(DomainError) as refused:
        wallet.recipient_preview(uow, user_id=payer.user_id, to=other.phone, encryptor=enc)
    assert refused.value.code == "recipient_unavailable"
    with db.uow(readonly=True) as uow, pytest.raises(DomainError) as frozen:
        wallet.my_receive_code(uow, user_id=other.user_id)
    assert frozen.value.code == "account_frozen"
    with db.uow(readonly=True) as uow:
        recent = wallet.recent_recipients(uow, user_id=payer.user_id)
    assert [(r.user_id, r.label) for r in recent] == [(payee.user_id, "*娜 (138****0072)")]
    assert_ledger_clean(db)
