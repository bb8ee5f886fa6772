"""The merchant's side of a cross-provider QR payment (merchant/interop.py), on both
databases: the payee provider's quote authenticates the scanned code with our key; the
switch's prepare, commit and abort credit, post or void the merchant exactly once."""

from __future__ import annotations

import dataclasses
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from citywallet.ledger import service as ledger
from citywallet.ledger.types import AccountCode
from citywallet.merchant import emv
from citywallet.merchant import interop as merchant_interop
from citywallet.merchant import service as merchants
from citywallet.merchant.models import InteropPayment, Merchant, Order, WebhookEvent
from citywallet.merchant.payments import pay_scan
from citywallet.merchant.rules import fee_for
from citywallet.platform.config import Settings
from citywallet.platform.db import Database
from citywallet.platform.errors import DomainError
from citywallet.wallet import service as wallet
from citywallet.wallet.accounts import platform_account
from tests.ledger_checks import assert_ledger_clean, test_encryptor
from tests.merchant_support import PIN, merchant_row, register
from tests.wallet_support import make_resident, sandbox_bank, wallet_settings

US = "provider-b"  # the merchant's provider (this deployment)
PAYER_FSP = "provider-a"
PAYER = "13900139000"
RATE_BP = 38
QUOTE_1 = "7c23e80c-d078-4077-8263-2c047876fcf6"
QUOTE_2 = "85feac2f-39b2-491b-817e-4a03203d4f14"
TRANSFER_1 = "b51ec534-ee48-4575-b6a9-ead2955b8069"
TRANSFER_2 = "c51ec534-ee48-4575-b6a9-ead2955b8069"
FAR = 2**62


@dataclasses.dataclass
class Shop:
    db: Database
    settings: Settings
    merchant_id: str
    merchant_pk: int
    store_id: str
    receivable: int
    fee_account: int
    settlement: int

    def order(self, amount: int, number: str = "IX-0001") -> merchants.OrderView:
        view, _ = self.db.transact(
            lambda uow: merchants.create_order(
                uow, merchant_pk=self.merchant_pk, out_trade_no=number, amount=amount,
                encryptor=test_encryptor(), settings=self.settings,
            )
        )  # fmt: skip
        return view

    def static_payload(self, provider: str | None = US) -> str:
        return self.db.transact(
            lambda uow: merchants.static_code(
                uow, merchant_pk=self.merchant_pk, store_id=self.store_id,
                encryptor=test_encryptor(), provider=provider,
            )
        )  # fmt: skip

    def quote(
        self, payload: str, amount: int, quote_id: str = QUOTE_1, merchant_id: str | None = None
    ) -> Any:
        return self.db.transact(
            lambda uow: merchant_interop.quote_payment(
                uow, quote_id=quote_id, merchant_id=merchant_id or self.merchant_id,
                payload=payload, amount=amount, payer_fsp=PAYER_FSP,
                payer_id_type="MSISDN", payer_identifier=PAYER, expires_at=FAR,
                participant_id=US, encryptor=test_encryptor(),
            )
        )  # fmt: skip

    def prepare(self, amount: int, quote_id: str = QUOTE_1, transfer_id: str = TRANSFER_1) -> Any:
        return self.db.transact(
            lambda uow: merchant_interop.prepare_payment(
                uow, quote_id=quote_id, transfer_id=transfer_id, amount=amount,
                settlement_account_id=self.settlement, expires_at=FAR,
            )
        )  # fmt: skip

    def commit(self, transfer_id: str = TRANSFER_1) -> Any:
        return self.db.transact(
            lambda uow: merchant_interop.commit_payment(uow, transfer_id=transfer_id)
        )

    def abort(self, transfer_id: str = TRANSFER_1) -> Any:
        return self.db.transact(
            lambda uow: merchant_interop.abort_payment(uow, transfer_id=transfer_id)
        )

    def accounts(self) -> tuple[int, int, int, int]:
        """(receivable posted, receivable pending credits, fee account, settlement balance)."""
        with self.db.uow(readonly=True) as uow:
            got = ledger.get_accounts(uow, ids=[self.receivable, self.fee_account, self.settlement])
        receivable = got[self.receivable]
        return (
            receivable.balance,
            receivable.credits_pending,
            got[self.fee_account].balance,
            got[self.settlement].balance - got[self.settlement].debits_pending,
        )

    def order_row(self, order_id: str) -> Order:
        with self.db.uow(readonly=True) as uow:
            row = uow.session.scalar(select(Order).where(Order.public_id == order_id))
            assert row is not None
            uow.session.expunge(row)
        return row

    def payments(self) -> list[InteropPayment]:
        with self.db.uow(readonly=True) as uow:
            rows = list(uow.session.scalars(select(InteropPayment)))
            uow.session.expunge_all()
        return rows

    def events(self) -> list[tuple[str, str]]:
        with self.db.uow(readonly=True) as uow:
            rows = uow.session.execute(
                select(WebhookEvent.type, WebhookEvent.object_id).where(
                    WebhookEvent.merchant_id == self.merchant_pk
                )
            ).all()
        return [(r.type, r.object_id) for r in rows]


@pytest.fixture
def shop(db: Database, tmp_path: Path) -> Shop:
    settings = wallet_settings(tmp_path, db).model_copy(update={"interop_participant_id": US})
    enc, bank = test_encryptor(), sandbox_bank()
    owner = make_resident(db, settings, enc, bank, 100)
    view = register(db, settings, enc, owner, approve=True)
    row = merchant_row(db, view.id)
    db.transact(
        lambda uow: uow.session.execute(
            update(Merchant)
            .where(Merchant.id == row.id)
            .values(notify_url="https://shop.example/notify")
        )
    )
    with db.uow(readonly=True) as uow:
        store_id = merchants.list_stores(uow, merchant_pk=row.id)[0].id
    settlement = db.transact(
        lambda uow: platform_account(
            uow, owner_ref="platform:interop_settlement", code=AccountCode.INTEROP_SETTLEMENT
        )
    )
    return Shop(
        db, settings, view.id, row.id, store_id, row.receivable_account_id, row.fee_account_id,
        settlement,
    )  # fmt: skip


def refusal(call: Any) -> str:
    with pytest.raises(DomainError) as caught:
        call()
    return caught.value.code


def test_codes_name_this_deployments_participant(shop: Shop) -> None:
    order = shop.order(50_00)
    assert order.qr_payload is not None
    assert emv.parse_public(order.qr_payload).provider == US
    assert emv.parse_public(shop.static_payload()).provider == US


def test_dynamic_code_paid_through_the_switch_once_under_duplicates(shop: Shop) -> None:
    order = shop.order(123_45)
    assert order.qr_payload is not None
    fee = fee_for(123_45, RATE_BP)
    quoted = shop.quote(order.qr_payload, 123_45)
    assert quoted == shop.quote(order.qr_payload, 123_45)  # a resent quote: the same terms
    assert (quoted.order_id, quoted.amount, quoted.fee, quoted.dynamic) == (
        order.id, 123_45, fee, True,
    )  # fmt: skip
    assert quoted.receive_amount == 123_45 - fee
    assert shop.accounts() == (0, 0, 0, 0)  # a quote moves nothing

    for _ in range(2):  # a duplicated prepare credits once
        prepared = shop.prepare(123_45)
        assert prepared.state == "prepared"
        assert shop.accounts() == (0, 123_45, 0, -123_45)
    held = shop.order_row(order.id)
    assert (held.status, held.channel) == ("awaiting_confirmation", "interop_qr")

    for _ in range(3):  # duplicated COMMITTED notices post once
        committed = shop.commit()
        assert committed.state == "committed"
        assert shop.accounts() == (123_45 - fee, 0, fee, -123_45)
    paid = shop.order_row(order.id)
    assert (paid.status, paid.channel, paid.fee, paid.payer_user_id) == (
        "paid", "interop_qr", fee, None,
    )  # fmt: skip
    assert paid.paid_at is not None
    assert len(json.loads(paid.transfer_ids)) == 3  # pending credit, its post, the fee
    assert shop.events() == [("payment.succeeded", order.id)]
    (row,) = shop.payments()
    assert (row.transfer_id, row.payer_fsp, row.payer_identifier, row.state) == (
        TRANSFER_1, PAYER_FSP, PAYER, "committed",
    )  # fmt: skip
    # the switch cannot abort what it committed; nothing changes
    assert refusal(shop.abort) == "payment_committed"
    assert shop.accounts() == (123_45 - fee, 0, fee, -123_45)
    # the paid order is not quoted again
    assert refusal(lambda: shop.quote(order.qr_payload or "", 123_45, QUOTE_2)) == "order_paid"
    assert_ledger_clean(shop.db)


def test_static_code_makes_its_order_at_prepare(shop: Shop) -> None:
    payload = shop.static_payload()
    quoted = shop.quote(payload, 8_80)
    assert not quoted.dynamic
    shop.prepare(8_80)
    made = shop.order_row(quoted.order_id)
    assert (made.status, made.channel, made.amount) == ("awaiting_confirmation", "interop_qr", 8_80)
    # the expiry sweep leaves an order held by a switch transfer to the switch's word
    assert shop.db.transact(lambda uow: merchants.close_expired_orders(uow, now=FAR - 1)) == 0
    shop.commit()
    assert shop.order_row(quoted.order_id).status == "paid"
    fee = fee_for(8_80, RATE_BP)
    assert shop.accounts() == (8_80 - fee, 0, fee, -8_80)
    assert_ledger_clean(shop.db)


@pytest.mark.parametrize("dynamic", [True, False])
def test_abort_voids_and_a_dynamic_order_is_open_again(shop: Shop, dynamic: bool) -> None:
    payload = (shop.order(20_00).qr_payload or "") if dynamic else shop.static_payload()
    quoted = shop.quote(payload, 20_00)
    shop.prepare(20_00)
    for _ in range(2):  # duplicated aborts void once
        assert shop.abort().state == "aborted"
        assert shop.accounts() == (0, 0, 0, 0)
    after = shop.order_row(quoted.order_id)
    if dynamic:
        assert (after.status, after.channel, after.fee) == ("created", None, 0)
    else:
        assert (after.status, after.decline_code) == ("closed", "transfer_aborted")
    assert refusal(shop.commit) == "payment_aborted"  # a late commit changes nothing
    assert shop.accounts() == (0, 0, 0, 0)
    assert shop.events() == []
    if dynamic:  # open again: another quote and transfer pay it
        shop.quote(payload, 20_00, QUOTE_2)
        shop.prepare(20_00, QUOTE_2, TRANSFER_2)
        shop.commit(TRANSFER_2)
        assert shop.order_row(quoted.order_id).status == "paid"
    assert_ledger_clean(shop.db)


def test_quote_refusals_change_nothing(shop: Shop) -> None:
    order = shop.order(30_00)
    payload = order.qr_payload or ""
    code = emv.parse_public(payload)
    forged = emv.build(dataclasses.replace(code, amount=1), key=b"not the platform key")
    assert refusal(lambda: shop.quote(forged, 1)) == "qr_tampered"
    assert refusal(lambda: shop.quote(payload, 29_99)) == "amount_mismatch"
    assert refusal(lambda: shop.quote(shop.static_payload(provider=None), 5_00)) == (
        "qr_other_provider"
    )
    assert refusal(lambda: shop.quote(shop.static_payload(provider="provider-c"), 5_00)) == (
        "qr_other_provider"
    )
    assert refusal(lambda: shop.quote("hello", 5_00)) == "qr_not_emv"
    assert refusal(lambda: shop.quote(payload, 30_00, merchant_id="mch_other")) == (
        "merchant_mismatch"
    )
    shop.db.transact(
        lambda uow: merchants.close_order(uow, merchant_pk=shop.merchant_pk, order_id=order.id)
    )
    assert refusal(lambda: shop.quote(payload, 30_00)) == "order_closed"
    assert shop.payments() == []
    assert shop.accounts() == (0, 0, 0, 0)


def test_a_reused_quote_id_and_foreign_transfers_are_refused(shop: Shop) -> None:
    shop.quote(shop.static_payload(), 5_00)
    assert refusal(lambda: shop.quote(shop.static_payload(), 6_00)) == "quote_id_reused"
    assert refusal(lambda: shop.prepare(5_00, QUOTE_2)) == "quote_not_found"
    assert refusal(lambda: shop.prepare(4_00)) == "amount_mismatch"
    assert shop.accounts() == (0, 0, 0, 0)
    shop.prepare(5_00)
    assert refusal(lambda: shop.prepare(5_00, QUOTE_1, TRANSFER_2)) == "quote_used"
    # a transfer that is not a merchant payment's is not ours to handle
    assert shop.commit(TRANSFER_2) is None
    assert shop.abort(TRANSFER_2) is None
    assert shop.accounts() == (0, 5_00, 0, -5_00)
    shop.abort()
    assert_ledger_clean(shop.db)


def test_a_held_order_cannot_be_paid_here_nor_refunded_through_the_wallet(
    shop: Shop, tmp_path: Path
) -> None:
    order = shop.order(12_00)
    payload = order.qr_payload or ""
    shop.quote(payload, 12_00)
    shop.prepare(12_00)
    enc, bank = test_encryptor(), sandbox_bank()
    local = make_resident(shop.db, shop.settings, enc, bank, 1)
    wallet.top_up(
        shop.db, bank=bank, user_id=local.user_id, card_id=str(local.card_id), amount=50_00,
        pin=PIN, encryptor=enc, settings=shop.settings,
    )  # fmt: skip
    assert refusal(
        lambda: shop.db.transact(
            lambda uow: pay_scan(
                uow, user_id=local.user_id, payload=payload, encryptor=enc,
                settings=shop.settings,
            )
        )
    ) == "order_closed"  # fmt: skip
    shop.commit()
    assert refusal(
        lambda: shop.db.transact(
            lambda uow: merchants.refund_order(
                uow, merchant_pk=shop.merchant_pk, order_id=order.id,
                out_refund_no="IX-RF-0001", amount=1_00,
            )
        )
    ) == "refund_through_switch_unavailable"  # fmt: skip
    assert_ledger_clean(shop.db)


def test_a_local_payment_and_a_switch_transfer_racing_for_one_order_pay_it_once(
    shop: Shop,
) -> None:
    # Each round: a resident here and a switch transfer reach for the same dynamic order at
    # once; the order's guarded UPDATE lets exactly one of them have it.
    enc, bank = test_encryptor(), sandbox_bank()
    local = make_resident(shop.db, shop.settings, enc, bank, 1)
    wallet.top_up(
        shop.db, bank=bank, user_id=local.user_id, card_id=str(local.card_id), amount=500_00,
        pin=PIN, encryptor=enc, settings=shop.settings,
    )  # fmt: skip
    outcomes = []
    for n in range(6):
        order = shop.order(10_00, f"IX-RACE-{n:02d}")
        payload = order.qr_payload or ""
        quote_id, transfer_id = (
            f"{n:08d}-0000-4000-8000-000000000000",
            f"{n:08d}-1111-4000-8000-000000000000",
        )
        shop.quote(payload, 10_00, quote_id)
        barrier = threading.Barrier(2)

        def here(payload: str = payload, barrier: threading.Barrier = barrier) -> str:
            barrier.wait()
            try:
                shop.db.transact(
                    lambda uow: pay_scan(
                        uow, user_id=local.user_id, payload=payload, encryptor=enc,
                        settings=shop.settings,
                    )
                )  # fmt: skip
            except DomainError as refused:
                return refused.code
            return "paid"

        def switched(
            quote_id: str = quote_id,
            transfer_id: str = transfer_id,
            barrier: threading.Barrier = barrier,
        ) -> str:
            barrier.wait()
            try:
                shop.prepare(10_00, quote_id, transfer_id)
            except DomainError as refused:
                return refused.code
            return "prepared"

        with ThreadPoolExecutor(2) as pool:
            first, second = pool.submit(here), pool.submit(switched)
            results = {first.result(), second.result()}
        assert results in ({"paid", "order_paid"}, {"prepared", "order_closed"}), results
        if "prepared" in results:
            shop.commit(transfer_id)
        assert shop.order_row(order.id).status == "paid"
        outcomes.append(results)
    paid_here = sum("paid" in r for r in outcomes)
    fee = fee_for(10_00, RATE_BP)
    assert shop.accounts()[0] == 6 * (10_00 - fee)  # six orders, each paid once
    assert shop.accounts()[3] == -(6 - paid_here) * 10_00
    assert_ledger_clean(shop.db)
