"""Restricted money (campaign red packets) on SQLite and PostgreSQL, through the real services.

A source is made here the way a campaign makes one: a CAMPAIGN_FUNDS account (no overdraft)
funded from the bank settlement account, ``restricted.create_source`` and ``restricted.grant``.
Then: restricted money pays first at an eligible merchant and own money the rest (one linked
batch); only own money elsewhere; it can never be transferred, withdrawn or sent as a red
packet; refunds give own money back first, then the restricted part (to the balance while
valid, else to the funder); reclaim happens exactly once, also racing payments and refunds;
two sources spend the soonest to expire first; tier limits count only own money; many
winners pay in parallel without touching the source row; closing a wallet gives the
restricted money back. Every money test ends with ``assert_ledger_clean``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import select, text
from stdnum.cn import uscc

from citywallet.identity import service as identity
from citywallet.identity import sessions
from citywallet.identity.errors import AccountClosed
from citywallet.ledger import service as ledger
from citywallet.ledger.types import (
    AccountCode,
    AccountFlags,
    Transfer,
    TransferCode,
    TransferFlags,
    TransferSpec,
)
from citywallet.merchant import onboarding, payments, refunds
from citywallet.merchant.models import Merchant, Order, Refund
from citywallet.merchant.rules import fee_for
from citywallet.platform.clock import now_us
from citywallet.platform.config import Settings
from citywallet.platform.crypto import Encryptor
from citywallet.platform.db import Database, UnitOfWork
from citywallet.platform.errors import DomainError
from citywallet.redpacket import service as redpackets
from citywallet.wallet import restricted
from citywallet.wallet import service as wallet
from citywallet.wallet.accounts import CURRENCY, bank_settlement_account
from citywallet.wallet.bank import SandboxBank
from citywallet.wallet.errors import InsufficientBalance, LimitExceeded
from citywallet.wallet.models import RestrictedBalance, RestrictedUse
from citywallet.wallet.restricted import Grant, RestrictedView, SourceSpec
from tests.identity_support import PASSWORD, send_code
from tests.ledger_checks import assert_ledger_clean, test_encryptor
from tests.wallet_support import (
    PIN,
    Resident,
    balance,
    count,
    make_resident,
    sandbox_bank,
    wallet_settings,
)

T = TypeVar("T")
YUAN = 100
HOUR_US = 3600 * 1_000_000
DAY_US = 24 * HOUR_US
FEE_BP = 38  # the default merchant fee rate


# --- the world ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Env:
    """What every service call here needs."""

    db: Database
    settings: Settings
    enc: Encryptor
    bank: SandboxBank

    def run(self, fn: Callable[[UnitOfWork], T]) -> T:
        return self.db.transact(fn)


@dataclass(frozen=True)
class Shop:
    """An approved merchant."""

    pk: int
    merchant: Merchant

    @property
    def id(self) -> str:
        return self.merchant.public_id


@dataclass(frozen=True)
class Source:
    """A source of restricted money and its funder account."""

    public_id: str
    funder: int
    budget: int


@pytest.fixture
def env(db: Database, tmp_path: Path) -> Env:
    return Env(db, wallet_settings(tmp_path, db), test_encryptor(), sandbox_bank())


def _uscc(n: int) -> str:
    body = f"9144030070846{n:04d}"
    return body + uscc.calc_check_digit(body)


def make_shop(env: Env, n: int, *, district: str = "罗湖区", mcc: str = "5812") -> Shop:
    """Merchant number ``n``, owned by a resident of its own, approved."""
    owner = make_resident(env.db, env.settings, env.enc, env.bank, 700 + n)
    app = onboarding.MerchantApplication(
        name_zh=f"东门小店{n}",
        name_en=f"Dongmen Shop {n}",
        city_zh="深圳",
        city_en="Shenzhen",
        uscc=_uscc(n),
        mcc=mcc,
        district=district,
        address="东门路1号",
        contact_name="张三",
        contact_phone=owner.phone,
        settlement_card_id=str(owner.card_id),
    )
    view = env.run(
        lambda uow: onboarding.register_merchant(
            uow, user_id=owner.user_id, application=app, encryptor=env.enc, settings=env.settings
        )
    )
    env.run(lambda uow: onboarding.review_merchant(uow, merchant_id=view.id, action="approve"))
    with env.db.uow(readonly=True) as uow:
        row = onboarding.merchant_by_public_id(uow, view.id)
        uow.session.expunge(row)
    return Shop(row.id, row)


def make_person(env: Env, n: int, *, own: int = 0, card_ending: str = "0000") -> Resident:
    """A verified resident (tier 2) with ``own`` fen topped up from their card."""
    person = make_resident(env.db, env.settings, env.enc, env.bank, n, card_ending=card_ending)
    if own:
        topped = wallet.top_up(
            env.db,
            bank=env.bank,
            user_id=person.user_id,
            card_id=str(person.card_id),
            amount=own,
            pin=PIN,
            encryptor=env.enc,
            settings=env.settings,
        )
        assert topped.status == "succeeded", topped
    return person


def make_source(
    env: Env,
    public_id: str,
    *,
    budget: int,
    valid_from: int | None = None,
    valid_until: int | None = None,
    merchants: Sequence[str] = (),
    districts: Sequence[str] = (),
    mccs: Sequence[str] = (),
    min_spend: int = 0,
) -> Source:
    """A funded source, as a campaign makes one: its funder account cannot be overdrawn."""
    moment = now_us()

    def make(uow: UnitOfWork) -> int:
        funder = ledger.create_account(
            uow,
            ledger=CURRENCY,
            code=AccountCode.CAMPAIGN_FUNDS,
            flags=AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS,
            owner_ref=f"campaign:{public_id}",
        )
        [result] = ledger.post(
            uow,
            transfers=[
                TransferSpec(
                    id=f"{public_id}.fund",
                    debit_account_id=bank_settlement_account(uow),
                    credit_account_id=funder,
                    amount=budget,
                    ledger=CURRENCY,
                    code=TransferCode.CAMPAIGN_FUND,
                    reference=public_id,
                )
            ],
        )
        assert result.on_books, result
        restricted.create_source(
            uow,
            spec=SourceSpec(
                public_id=public_id,
                name=f"消费红包 {public_id}",
                funder_account_id=funder,
                valid_from=valid_from if valid_from is not None else moment - HOUR_US,
                valid_until=valid_until if valid_until is not None else moment + 7 * DAY_US,
                merchant_ids=merchants,
                districts=districts,
                mccs=mccs,
                min_spend=min_spend,
            ),
        )
        return funder

    return Source(public_id, env.run(make), budget)


def grant(env: Env, source: Source, people: Sequence[Resident], amount: int) -> int:
    """Give each resident ``amount`` of the source's money."""

    def give(uow: UnitOfWork) -> int:
        row = restricted.source_by_ref(uow, source.public_id)
        assert row is not None
        return restricted.grant(
            uow,
            source=row,
            grants=[Grant(p.user_id, amount, f"{source.public_id}.{p.user_id}") for p in people],
        )

    return env.run(give)


def order(env: Env, shop: Shop, amount: int) -> tuple[str, str]:
    """A dynamic-code order: (order id, QR payload)."""
    view, _ = env.run(
        lambda uow: payments.create_order(
            uow,
            merchant_pk=shop.pk,
            out_trade_no=f"T{now_us()}{threading.get_ident() % 10_000:04d}",
            amount=amount,
            encryptor=env.enc,
            settings=env.settings,
        )
    )
    assert view.qr_payload is not None
    return view.id, view.qr_payload


def pay(env: Env, who: Resident, shop: Shop, amount: int) -> payments.PaymentView:
    """``who`` scans and pays an order of ``amount`` at ``shop``."""
    _, payload = order(env, shop, amount)
    return env.run(
        lambda uow: payments.pay_scan(
            uow, user_id=who.user_id, payload=payload, encryptor=env.enc, settings=env.settings
        )
    )


def preview(env: Env, who: Resident, shop: Shop, amount: int) -> int:
    """What restricted money a payment of ``amount`` at ``shop`` would use first."""
    _, payload = order(env, shop, amount)
    with env.db.uow(readonly=True) as uow:
        shown = payments.preview_scan(uow, user_id=who.user_id, payload=payload, encryptor=env.enc)
    return shown.restricted_usable


def refund(env: Env, shop: Shop, order_id: str, amount: int, number: str) -> Refund:
    """Refund ``amount`` of an order; returns the refund row."""
    view, created = env.run(
        lambda uow: refunds.refund_order(
            uow,
            merchant_pk=shop.pk,
            order_id=order_id,
            out_refund_no=f"REFUND-{number}",
            amount=amount,
        )
    )
    assert created
    with env.db.uow(readonly=True) as uow:
        row = uow.session.scalar(select(Refund).where(Refund.public_id == view.id))
        assert row is not None
        uow.session.expunge(row)
    return row


def order_row(env: Env, order_id: str) -> Order:
    with env.db.uow(readonly=True) as uow:
        row = uow.session.scalar(select(Order).where(Order.public_id == order_id))
        assert row is not None
        uow.session.expunge(row)
    return row


def own(env: Env, who: Resident) -> int:
    """The resident's own (posted) balance."""
    return balance(env.db, who.user_id)[0]


def held(env: Env, who: Resident) -> dict[str, RestrictedView]:
    """The resident's restricted balances by source."""
    with env.db.uow(readonly=True) as uow:
        return {v.source_id: v for v in restricted.balances_of(uow, user_id=who.user_id)}


def left(env: Env, who: Resident, source: Source) -> int:
    """What is left of the resident's balance of ``source``."""
    return held(env, who)[source.public_id].available


def account(env: Env, account_id: int) -> int:
    with env.db.uow(readonly=True) as uow:
        view = ledger.get_account(uow, account_id=account_id)
    assert view is not None
    return view.balance


def restricted_account(env: Env, who: Resident, source: Source) -> int:
    with env.db.uow(readonly=True) as uow:
        found = uow.session.scalar(
            text(
                "SELECT b.ledger_account_id FROM wallet_restricted_balances b "
                "JOIN wallet_restricted_sources s ON s.id = b.source_id "
                "WHERE b.user_id = :u AND s.public_id = :s"
            ),
            {"u": who.user_id, "s": source.public_id},
        )
    assert found is not None
    return int(found)


def transfers(env: Env, *ids: str) -> dict[str, Transfer]:
    with env.db.uow(readonly=True) as uow:
        return ledger.get_transfers(uow, ids=ids)


def expire(env: Env, source: Source) -> None:
    """Time passes: the source's window ends now (the reclaim job has not run yet)."""
    moment = now_us()
    env.run(
        lambda uow: uow.session.execute(
            text(
                "UPDATE wallet_restricted_sources SET valid_from = :f, valid_until = :u "
                "WHERE public_id = :p"
            ),
            {"f": moment - 2 * HOUR_US, "u": moment, "p": source.public_id},
        )
    )


def reclaim_all(env: Env, *, now: int, limit: int = 5000) -> int:
    """Run the reclaim job until it finds nothing; returns how many it reclaimed."""
    total = 0
    while done := env.run(lambda uow: restricted.reclaim_expired(uow, now=now, limit=limit)):
        total += done
    return total


def refused(fn: Callable[[], object]) -> DomainError:
    with pytest.raises(DomainError) as caught:
        fn()
    return caught.value


def transfer_count(env: Env) -> int:
    return count(env.db, "SELECT COUNT(*) FROM ledger_transfers")


# --- spending -----------------------------------------------------------------------------


def test_restricted_money_pays_first_and_own_money_the_rest_in_one_linked_payment(
    env: Env,
) -> None:
    shop = make_shop(env, 1)
    luohu = make_source(env, "cmp_luohu", budget=1_000 * YUAN, districts=["罗湖区"])
    alice = make_person(env, 1, own=100 * YUAN)
    bob = make_person(env, 2)
    assert grant(env, luohu, [alice, bob], 200 * YUAN) == 2
    assert grant(env, luohu, [alice, bob], 200 * YUAN) == 0  # granting again adds nothing
    assert account(env, luohu.funder) == 600 * YUAN
    with env.db.uow(readonly=True) as uow:
        before = wallet.wallet_view(uow, user_id=alice.user_id, settings=env.settings)
    assert (before.balance, before.restricted_available) == (100 * YUAN, 200 * YUAN)
    assert preview(env, alice, shop, 250 * YUAN) == 200 * YUAN

    paid = pay(env, alice, shop, 250 * YUAN)
    assert (paid.status, paid.amount, paid.restricted_amount) == ("paid", 250 * YUAN, 200 * YUAN)
    assert own(env, alice) == 50 * YUAN
    assert left(env, alice, luohu) == 0
    fee = fee_for(250 * YUAN, FEE_BP)
    legs = transfers(env, f"{paid.order_id}.rp0", f"{paid.order_id}.pay", f"{paid.order_id}.fee")
    rp0, own_leg, fee_leg = (legs[f"{paid.order_id}.{k}"] for k in ("rp0", "pay", "fee"))
    assert (rp0.debit_account_id, rp0.amount) == (restricted_account(env, alice, luohu), 200 * YUAN)
    assert rp0.credit_account_id == own_leg.credit_account_id == shop.merchant.receivable_account_id
    assert own_leg.amount == 50 * YUAN
    assert fee_leg.amount == fee
    # one linked chain: every leg but the last carries LINKED
    assert rp0.flags & TransferFlags.LINKED
    assert own_leg.flags & TransferFlags.LINKED
    assert not fee_leg.flags & TransferFlags.LINKED
    assert order_row(env, paid.order_id).restricted_amount == 200 * YUAN

    # the restricted money is spent: the next payment is all own money
    again = pay(env, alice, shop, 30 * YUAN)
    assert again.restricted_amount == 0
    assert own(env, alice) == 20 * YUAN
    assert not transfers(env, f"{again.order_id}.rp0")

    # a payment smaller than the restricted balance leaves the own balance alone
    small = pay(env, bob, shop, 80 * YUAN)
    assert small.restricted_amount == 80 * YUAN
    assert (own(env, bob), left(env, bob, luohu)) == (0, 120 * YUAN)
    assert set(transfers(env, f"{small.order_id}.rp0", f"{small.order_id}.pay")) == {
        f"{small.order_id}.rp0"
    }
    with env.db.uow(readonly=True) as uow:
        uses = uow.session.scalars(select(RestrictedUse).order_by(RestrictedUse.id)).all()
        assert [(u.payment_ref, u.spent, u.own_amount) for u in uses] == [
            (paid.order_id, 200 * YUAN, 50 * YUAN),
            (small.order_id, 80 * YUAN, 0),
        ]
        assert {(u.merchant_ref, u.district, u.mcc) for u in uses} == {(shop.id, "罗湖区", "5812")}
    fees = fee + fee_for(30 * YUAN, FEE_BP) + fee_for(80 * YUAN, FEE_BP)
    assert account(env, shop.merchant.receivable_account_id) == 360 * YUAN - fees
    assert account(env, luohu.funder) == 600 * YUAN
    assert_ledger_clean(env.db)


def test_only_own_money_where_the_restricted_money_does_not_apply(env: Env) -> None:
    luohu_food = make_shop(env, 1)
    futian_food = make_shop(env, 2, district="福田区")
    luohu_books = make_shop(env, 3, mcc="5942")
    moment = now_us()
    cases: list[tuple[str, dict[str, Any], Shop, int, Shop | None]] = [
        # (why, scope, where it does not apply, amount there, where it does)
        ("district", {"districts": ["罗湖区"]}, futian_food, 20 * YUAN, luohu_food),
        ("mcc", {"mccs": ["5942"]}, luohu_food, 20 * YUAN, luohu_books),
        ("merchant list", {"merchants": [luohu_books.id]}, luohu_food, 20 * YUAN, luohu_books),
        ("min spend", {"min_spend": 30 * YUAN}, luohu_food, 30 * YUAN - 1, luohu_food),
        (
            "not yet",
            {"valid_from": moment + HOUR_US, "valid_until": moment + DAY_US},
            luohu_food,
            20 * YUAN,
            None,
        ),
        (
            "expired",
            {"valid_from": moment - DAY_US, "valid_until": moment - HOUR_US},
            luohu_food,
            20 * YUAN,
            None,
        ),
    ]
    for n, (why, scope, elsewhere, amount, eligible) in enumerate(cases, start=1):
        source = make_source(env, f"cmp_case{n}", budget=50 * YUAN, **scope)
        person = make_person(env, n, own=100 * YUAN)
        grant(env, source, [person], 50 * YUAN)
        assert preview(env, person, elsewhere, amount) == 0, why
        paid = pay(env, person, elsewhere, amount)
        assert paid.restricted_amount == 0, why
        assert own(env, person) == 100 * YUAN - amount, why
        assert left(env, person, source) == 50 * YUAN, why
        assert not transfers(env, f"{paid.order_id}.rp0"), why
        if eligible is not None:  # and where it applies, it pays first
            assert pay(env, person, eligible, 30 * YUAN).restricted_amount == 30 * YUAN, why
            assert left(env, person, source) == 20 * YUAN, why

    # with only restricted money, a merchant out of scope is refused and nothing changes
    carol = make_person(env, 20)
    luohu = make_source(env, "cmp_luohu", budget=100 * YUAN, districts=["罗湖区"])
    grant(env, luohu, [carol], 100 * YUAN)
    order_id, payload = order(env, futian_food, 10 * YUAN)
    before = transfer_count(env)
    error = refused(
        lambda: env.run(
            lambda uow: payments.pay_scan(
                uow,
                user_id=carol.user_id,
                payload=payload,
                encryptor=env.enc,
                settings=env.settings,
            )
        )
    )
    assert error.code == "insufficient_balance"
    assert order_row(env, order_id).status == "created"
    assert (own(env, carol), left(env, carol, luohu), transfer_count(env)) == (
        0,
        100 * YUAN,
        before,
    )
    assert_ledger_clean(env.db)


def test_restricted_money_is_never_transferred_withdrawn_or_sent(env: Env) -> None:
    shop = make_shop(env, 1, district="福田区")
    source = make_source(env, "cmp_luohu", budget=200 * YUAN, districts=["罗湖区"])
    alice, carol = make_person(env, 1), make_person(env, 2, own=50 * YUAN)
    grant(env, source, [alice], 200 * YUAN)
    split = env.run(
        lambda uow: wallet.create_split(
            uow,
            user_id=carol.user_id,
            total=10 * YUAN,
            shares=[wallet.ShareRequest(alice.user_id, 10 * YUAN)],
            encryptor=env.enc,
            settings=env.settings,
        )
    )
    _, payload = order(env, shop, 10 * YUAN)
    attempts: dict[str, Callable[[], object]] = {
        "transfer": lambda: env.run(
            lambda uow: wallet.send_transfer(
                uow,
                user_id=alice.user_id,
                to=carol.user_id,
                amount=1 * YUAN,
                encryptor=env.enc,
                settings=env.settings,
            )
        ),
        "withdrawal": lambda: wallet.withdraw(
            env.db,
            bank=env.bank,
            user_id=alice.user_id,
            card_id=str(alice.card_id),
            amount=1 * YUAN,
            pin=PIN,
            encryptor=env.enc,
            settings=env.settings,
        ),
        "split share": lambda: env.run(
            lambda uow: wallet.pay_share(
                uow, user_id=alice.user_id, split_id=split.id, settings=env.settings
            )
        ),
        "red packet": lambda: env.run(
            lambda uow: redpackets.send_packet(
                uow,
                user_id=alice.user_id,
                amount=1 * YUAN,
                to=carol.user_id,
                encryptor=env.enc,
                settings=env.settings,
            )
        ),
        "merchant elsewhere": lambda: env.run(
            lambda uow: payments.pay_scan(
                uow,
                user_id=alice.user_id,
                payload=payload,
                encryptor=env.enc,
                settings=env.settings,
            )
        ),
    }
    before = (
        transfer_count(env),
        count(env.db, "SELECT COUNT(*) FROM wallet_activity"),
        count(env.db, "SELECT COUNT(*) FROM wallet_fundings"),
    )
    for what, attempt in attempts.items():
        error = refused(attempt)
        assert isinstance(error, InsufficientBalance), (what, error.code, error.detail)
        assert error.code == "insufficient_balance", what
    after = (
        transfer_count(env),
        count(env.db, "SELECT COUNT(*) FROM wallet_activity"),
        count(env.db, "SELECT COUNT(*) FROM wallet_fundings"),
    )
    assert after == before
    assert (own(env, alice), left(env, alice, source)) == (0, 200 * YUAN)
    with env.db.uow(readonly=True) as uow:
        view = wallet.wallet_view(uow, user_id=alice.user_id, settings=env.settings)
    assert (view.balance, view.available, view.restricted_available) == (0, 0, 200 * YUAN)

    # with a little own money: only that can leave, the restricted money stays
    wallet.top_up(
        env.db,
        bank=env.bank,
        user_id=alice.user_id,
        card_id=str(alice.card_id),
        amount=10 * YUAN,
        pin=PIN,
        encryptor=env.enc,
        settings=env.settings,
    )
    too_much = refused(
        lambda: env.run(
            lambda uow: wallet.send_transfer(
                uow,
                user_id=alice.user_id,
                to=carol.user_id,
                amount=11 * YUAN,
                encryptor=env.enc,
                settings=env.settings,
            )
        )
    )
    assert too_much.code == "insufficient_balance"
    env.run(
        lambda uow: wallet.send_transfer(
            uow,
            user_id=alice.user_id,
            to=carol.user_id,
            amount=10 * YUAN,
            encryptor=env.enc,
            settings=env.settings,
        )
    )
    assert (own(env, alice), left(env, alice, source), own(env, carol)) == (
        0,
        200 * YUAN,
        60 * YUAN,
    )
    assert_ledger_clean(env.db)


# --- refunds ------------------------------------------------------------------------------


def test_refunds_give_own_money_back_first_then_the_restricted_part(env: Env) -> None:
    shop = make_shop(env, 1)
    source = make_source(env, "cmp_luohu", budget=200 * YUAN)
    alice = make_person(env, 1, own=100 * YUAN)
    grant(env, source, [alice], 200 * YUAN)
    paid = pay(env, alice, shop, 250 * YUAN)  # 200 restricted + 50 own
    assert (own(env, alice), left(env, alice, source)) == (50 * YUAN, 0)

    first = refund(env, shop, paid.order_id, 30 * YUAN, "RF-1")  # own money only
    assert first.restricted_amount == 0
    assert (own(env, alice), left(env, alice, source)) == (80 * YUAN, 0)

    across = refund(env, shop, paid.order_id, 40 * YUAN, "RF-2")  # the last 20 own + 20
    assert across.restricted_amount == 20 * YUAN
    assert (own(env, alice), left(env, alice, source)) == (100 * YUAN, 20 * YUAN)
    back = transfers(env, f"{across.public_id}.refund", f"{across.public_id}.rp0")
    assert back[f"{across.public_id}.refund"].amount == 20 * YUAN
    to_balance = back[f"{across.public_id}.rp0"]
    assert to_balance.credit_account_id == restricted_account(env, alice, source)
    assert (to_balance.amount, to_balance.code) == (20 * YUAN, TransferCode.REFUND)

    rest = refund(env, shop, paid.order_id, 180 * YUAN, "RF-3")  # restricted only
    assert rest.restricted_amount == 180 * YUAN
    assert not transfers(env, f"{rest.public_id}.refund")
    assert (own(env, alice), left(env, alice, source)) == (100 * YUAN, 200 * YUAN)
    final = order_row(env, paid.order_id)
    assert (final.refunded_amount, final.restricted_refunded) == (250 * YUAN, 200 * YUAN)
    assert final.refunded_fee == final.fee
    assert account(env, shop.merchant.receivable_account_id) == 0
    more = refused(lambda: refund(env, shop, paid.order_id, 1, "RF-4"))
    assert more.code == "refund_exceeds_paid"
    with env.db.uow(readonly=True) as uow:
        [use] = uow.session.scalars(select(RestrictedUse)).all()
        assert (use.spent, use.returned, use.returned_to_funder) == (200 * YUAN, 200 * YUAN, 0)

    # money refunded to a valid balance can be spent again
    assert pay(env, alice, shop, 200 * YUAN).restricted_amount == 200 * YUAN
    assert (own(env, alice), left(env, alice, source)) == (100 * YUAN, 0)
    assert account(env, source.funder) == 0
    assert_ledger_clean(env.db)


def test_a_refund_after_the_window_ended_goes_to_the_funder(env: Env) -> None:
    shop = make_shop(env, 1)
    source = make_source(env, "cmp_luohu", budget=200 * YUAN)
    alice = make_person(env, 1, own=100 * YUAN)
    grant(env, source, [alice], 200 * YUAN)
    paid = pay(env, alice, shop, 250 * YUAN)
    expire(env, source)
    done = refund(env, shop, paid.order_id, 250 * YUAN, "RF-LATE")
    assert done.restricted_amount == 200 * YUAN
    leg = transfers(env, f"{done.public_id}.rp0")[f"{done.public_id}.rp0"]
    assert (leg.credit_account_id, leg.code) == (source.funder, TransferCode.CAMPAIGN_RECLAIM)
    assert own(env, alice) == 100 * YUAN
    assert left(env, alice, source) == 0  # not given back to the expired balance
    assert account(env, source.funder) == 200 * YUAN  # every fen is the funder's again
    with env.db.uow(readonly=True) as uow:
        [use] = uow.session.scalars(select(RestrictedUse)).all()
        assert (use.returned, use.returned_to_funder) == (0, 200 * YUAN)
    # the reclaim job finds the balance empty: it is marked, nothing moves
    assert reclaim_all(env, now=now_us()) == 1
    assert held(env, alice)["cmp_luohu"].status == "reclaimed"
    assert held(env, alice)["cmp_luohu"].reclaimed == 0
    assert not transfers(
        env, restricted.reclaim_transfer_id(restricted_account(env, alice, source))
    )
    assert account(env, source.funder) == 200 * YUAN
    assert_ledger_clean(env.db)


def test_a_refund_after_the_balance_was_reclaimed_goes_to_the_funder(env: Env) -> None:
    shop = make_shop(env, 1)
    moment = now_us()
    source = make_source(env, "cmp_luohu", budget=200 * YUAN, valid_until=moment + DAY_US)
    alice = make_person(env, 1)
    grant(env, source, [alice], 200 * YUAN)
    paid = pay(env, alice, shop, 150 * YUAN)  # all restricted
    assert paid.restricted_amount == 150 * YUAN
    # the job runs at the end of the window (the refund below still comes before it)
    assert reclaim_all(env, now=moment + DAY_US) == 1
    view = held(env, alice)["cmp_luohu"]
    assert (view.status, view.reclaimed, view.reclaim_reason) == ("reclaimed", 50 * YUAN, "expired")
    assert account(env, source.funder) == 50 * YUAN
    part = refund(env, shop, paid.order_id, 100 * YUAN, "RF-1")
    assert part.restricted_amount == 100 * YUAN
    leg = transfers(env, f"{part.public_id}.rp0")[f"{part.public_id}.rp0"]
    assert (leg.credit_account_id, leg.code) == (source.funder, TransferCode.CAMPAIGN_RECLAIM)
    assert (left(env, alice, source), account(env, source.funder)) == (0, 150 * YUAN)
    # a reclaimed balance no longer pays
    env.run(
        lambda uow: ledger.post(
            uow,
            transfers=[
                TransferSpec(
                    id="seed_alice",
                    debit_account_id=bank_settlement_account(uow),
                    credit_account_id=wallet.ensure_wallet(uow, user_id=alice.user_id),
                    amount=10 * YUAN,
                    ledger=CURRENCY,
                    code=TransferCode.SEED,
                )
            ],
        )
    )
    assert preview(env, alice, shop, 10 * YUAN) == 0
    assert pay(env, alice, shop, 10 * YUAN).restricted_amount == 0
    assert_ledger_clean(env.db)


# --- reclaim ------------------------------------------------------------------------------


def test_reclaim_returns_what_is_left_exactly_once(env: Env) -> None:
    shop = make_shop(env, 1)
    moment = now_us()
    soon = make_source(env, "cmp_soon", budget=500 * YUAN, valid_until=moment + DAY_US)
    later = make_source(env, "cmp_later", budget=100 * YUAN, valid_until=moment + 9 * DAY_US)
    people = [make_person(env, n) for n in range(1, 6)]
    grant(env, soon, people, 100 * YUAN)
    grant(env, later, people[:1], 100 * YUAN)
    pay(env, people[1], shop, 30 * YUAN)
    pay(env, people[2], shop, 100 * YUAN)
    pay(env, people[0], shop, 120 * YUAN)  # 100 of soon (expires first), 20 of later

    assert reclaim_all(env, now=moment + DAY_US - 1) == 0  # not over yet
    assert env.run(lambda uow: restricted.reclaim_expired(uow, now=moment + DAY_US, limit=2)) == 2
    assert env.run(lambda uow: restricted.reclaim_expired(uow, now=moment + DAY_US, limit=2)) == 2
    assert env.run(lambda uow: restricted.reclaim_expired(uow, now=moment + DAY_US, limit=2)) == 1
    for _ in range(2):  # and never again
        assert env.run(lambda uow: restricted.reclaim_expired(uow, now=moment + DAY_US)) == 0
    views = [held(env, p)["cmp_soon"] for p in people]
    assert [v.status for v in views] == ["reclaimed"] * 5
    assert [v.reclaim_reason for v in views] == ["expired"] * 5
    assert [v.reclaimed for v in views] == [0, 70 * YUAN, 0, 100 * YUAN, 100 * YUAN]
    assert [v.available for v in views] == [0] * 5
    assert account(env, soon.funder) == 270 * YUAN
    accounts = [restricted_account(env, p, soon) for p in people]
    ids = [restricted.reclaim_transfer_id(a) for a in accounts]
    assert set(transfers(env, *ids)) == {ids[1], ids[3], ids[4]}
    assert held(env, people[0])["cmp_later"].status == "active"
    assert left(env, people[0], later) == 80 * YUAN

    assert reclaim_all(env, now=moment + 9 * DAY_US) == 1
    assert account(env, later.funder) == 80 * YUAN
    assert reclaim_all(env, now=moment + 99 * DAY_US) == 0
    assert_ledger_clean(env.db)


def _race(*jobs: Callable[[], object]) -> list[object]:
    """Start every job at once (threads behind one barrier); results or exceptions."""
    barrier = threading.Barrier(len(jobs))

    def run(job: Callable[[], object]) -> object:
        barrier.wait()
        try:
            return job()
        except DomainError as exc:
            return exc

    with ThreadPoolExecutor(len(jobs)) as pool:
        return list(pool.map(run, jobs))


def test_reclaim_races_payments_and_each_fen_ends_in_exactly_one_place(env: Env) -> None:
    shop = make_shop(env, 1)
    source = make_source(env, "cmp_race", budget=800 * YUAN)
    people = [make_person(env, n, own=200 * YUAN) for n in range(1, 9)]
    grant(env, source, people, 100 * YUAN)
    bills = [order(env, shop, 150 * YUAN) for _ in people]
    future = now_us() + 30 * DAY_US

    def payer(who: Resident, payload: str) -> Callable[[], object]:
        return lambda: env.run(
            lambda uow: payments.pay_scan(
                uow, user_id=who.user_id, payload=payload, encryptor=env.enc, settings=env.settings
            )
        )

    def reclaimer() -> object:
        return env.run(lambda uow: restricted.reclaim_expired(uow, now=future, limit=3))

    jobs = [payer(p, payload) for p, (_, payload) in zip(people, bills, strict=True)]
    outcomes = _race(*jobs, reclaimer, reclaimer, reclaimer, reclaimer)
    assert all(isinstance(o, payments.PaymentView) for o in outcomes[: len(people)]), outcomes
    reclaim_all(env, now=future)
    spent = [order_row(env, order_id).restricted_amount for order_id, _ in bills]
    assert set(spent) <= {0, 100 * YUAN}  # the whole balance, or (reclaimed first) none
    for person, used in zip(people, spent, strict=True):
        view = held(env, person)["cmp_race"]
        assert (view.status, view.reclaimed, view.available) == ("reclaimed", 100 * YUAN - used, 0)
        assert own(env, person) == 200 * YUAN - (150 * YUAN - used)
    assert account(env, source.funder) == 800 * YUAN - sum(spent)
    reclaims = [restricted.reclaim_transfer_id(restricted_account(env, p, source)) for p in people]
    assert len(transfers(env, *reclaims)) == sum(1 for used in spent if used < 100 * YUAN)
    assert_ledger_clean(env.db)


def test_reclaim_races_refunds_and_the_funder_gets_everything_back_once(env: Env) -> None:
    shop = make_shop(env, 1)
    source = make_source(env, "cmp_race", budget=600 * YUAN)
    people = [make_person(env, n) for n in range(1, 7)]
    grant(env, source, people, 100 * YUAN)
    paid = [pay(env, p, shop, 100 * YUAN) for p in people]  # all restricted
    future = now_us() + 30 * DAY_US

    def refunder(n: int, order_id: str) -> Callable[[], object]:
        return lambda: refund(env, shop, order_id, 100 * YUAN, f"RACE-{n}")

    def reclaimer() -> object:
        return env.run(lambda uow: restricted.reclaim_expired(uow, now=future, limit=2))

    jobs = [refunder(n, p.order_id) for n, p in enumerate(paid)]
    outcomes = _race(*jobs, reclaimer, reclaimer, reclaimer)
    done = [o for o in outcomes[: len(people)] if isinstance(o, Refund)]
    assert len(done) == len(people), outcomes
    reclaim_all(env, now=future)
    to_funder = sum(
        t.amount
        for r in done
        for t in transfers(env, f"{r.public_id}.rp0").values()
        if t.code == TransferCode.CAMPAIGN_RECLAIM
    )
    reclaimed = sum(held(env, p)["cmp_race"].reclaimed for p in people)
    assert to_funder + reclaimed == 600 * YUAN  # each fen back once, by one way or the other
    assert account(env, source.funder) == 600 * YUAN
    assert all(held(env, p)["cmp_race"].available == 0 for p in people)
    assert account(env, shop.merchant.receivable_account_id) == 0
    assert_ledger_clean(env.db)


# --- two sources, limits, many winners -----------------------------------------------------


def test_two_sources_spend_the_soonest_to_expire_first_and_refund_in_reverse(env: Env) -> None:
    shop = make_shop(env, 1)
    moment = now_us()
    late = make_source(env, "cmp_late", budget=100 * YUAN, valid_until=moment + 10 * DAY_US)
    soon = make_source(env, "cmp_soon", budget=50 * YUAN, valid_until=moment + 2 * DAY_US)
    alice = make_person(env, 1, own=100 * YUAN)
    grant(env, late, [alice], 100 * YUAN)
    grant(env, soon, [alice], 50 * YUAN)
    with env.db.uow(readonly=True) as uow:
        view = wallet.wallet_view(uow, user_id=alice.user_id, settings=env.settings)
    assert view.restricted_available == 150 * YUAN
    assert preview(env, alice, shop, 500 * YUAN) == 150 * YUAN

    paid = pay(env, alice, shop, 120 * YUAN)
    assert paid.restricted_amount == 120 * YUAN
    legs = transfers(env, f"{paid.order_id}.rp0", f"{paid.order_id}.rp1")
    first, second = legs[f"{paid.order_id}.rp0"], legs[f"{paid.order_id}.rp1"]
    assert (first.debit_account_id, first.amount) == (
        restricted_account(env, alice, soon),
        50 * YUAN,
    )
    assert (second.debit_account_id, second.amount) == (
        restricted_account(env, alice, late),
        70 * YUAN,
    )
    assert (left(env, alice, soon), left(env, alice, late), own(env, alice)) == (
        0,
        30 * YUAN,
        100 * YUAN,
    )
    # refunds undo the payment backwards: the last spent (the later source) comes back first
    refund(env, shop, paid.order_id, 20 * YUAN, "RF-1")
    assert (left(env, alice, soon), left(env, alice, late)) == (0, 50 * YUAN)
    refund(env, shop, paid.order_id, 60 * YUAN, "RF-2")
    assert (left(env, alice, soon), left(env, alice, late)) == (10 * YUAN, 100 * YUAN)
    assert own(env, alice) == 100 * YUAN
    assert_ledger_clean(env.db)


def test_tier_limits_count_only_own_money(db: Database, tmp_path: Path) -> None:
    limits = {"2": {"single": 100 * YUAN, "daily": 150 * YUAN}}
    env = Env(db, wallet_settings(tmp_path, db, wallet_tier_limits=limits), test_encryptor(),
              sandbox_bank())  # fmt: skip
    eligible, elsewhere = make_shop(env, 1), make_shop(env, 2, district="福田区")
    source = make_source(env, "cmp_luohu", budget=200 * YUAN, districts=["罗湖区"])
    alice = make_person(env, 1, own=500 * YUAN)
    grant(env, source, [alice], 200 * YUAN)

    # 280 paid, 200 of it restricted: only the own 80 counts (the single limit is 100)
    assert pay(env, alice, eligible, 280 * YUAN).restricted_amount == 200 * YUAN
    with env.db.uow(readonly=True) as uow:
        view = wallet.wallet_view(uow, user_id=alice.user_id, settings=env.settings)
    assert view.left.today == 70 * YUAN
    single = refused(lambda: pay(env, alice, elsewhere, 101 * YUAN))
    assert isinstance(single, LimitExceeded)
    assert single.code == "single_limit_exceeded"
    daily = refused(lambda: pay(env, alice, elsewhere, 71 * YUAN))
    assert daily.code == "daily_limit_exceeded"
    pay(env, alice, elsewhere, 70 * YUAN)
    assert own(env, alice) == 500 * YUAN - 80 * YUAN - 70 * YUAN
    assert_ledger_clean(env.db)


def test_many_winners_pay_in_parallel_without_touching_the_source_row(env: Env) -> None:
    winners_count, threads = 16, 16
    shop = make_shop(env, 1)
    source = make_source(env, "cmp_hot", budget=winners_count * 100 * YUAN)
    winners = [make_person(env, n, own=50 * YUAN) for n in range(1, winners_count + 1)]
    grant(env, source, winners, 100 * YUAN)
    bills = [(w, order(env, shop, amount)) for w in winners for amount in (60 * YUAN, 70 * YUAN)]
    barrier = threading.Barrier(threads)

    def pay_one(n: int) -> payments.PaymentView:
        who, (_, payload) = bills[n]
        if n < threads:
            barrier.wait()
        return env.run(
            lambda uow: payments.pay_scan(
                uow, user_id=who.user_id, payload=payload, encryptor=env.enc, settings=env.settings
            )
        )

    # On PostgreSQL another transaction holds the source row's lock the whole time: a
    # payment that locked it would wait (and this test would time out).
    holder = env.db.engine.connect() if env.db.engine.dialect.name == "postgresql" else None
    try:
        if holder is not None:
            holder.begin()
            holder.execute(
                text("SELECT id FROM wallet_restricted_sources WHERE public_id = :p FOR UPDATE"),
                {"p": source.public_id},
            )
        with ThreadPoolExecutor(threads) as pool:
            futures = [pool.submit(pay_one, n) for n in range(len(bills))]
            _done, pending = wait(futures, timeout=120)
            assert not pending, "payments waited for the source row"
    finally:
        if holder is not None:
            holder.rollback()
            holder.close()
    views = [f.result() for f in futures]
    assert {v.status for v in views} == {"paid"}
    assert sum(v.restricted_amount for v in views) == winners_count * 100 * YUAN
    for winner in winners:
        assert (left(env, winner, source), own(env, winner)) == (0, 20 * YUAN)
    amounts = [60 * YUAN, 70 * YUAN] * winners_count
    fees = sum(fee_for(a, FEE_BP) for a in amounts)
    assert account(env, shop.merchant.receivable_account_id) == sum(amounts) - fees
    assert account(env, source.funder) == 0
    assert count(env.db, "SELECT COUNT(*) FROM wallet_restricted_uses") == 2 * winners_count
    assert_ledger_clean(env.db)


# --- closing a wallet ---------------------------------------------------------------------


def test_closing_a_wallet_gives_the_restricted_money_back_and_ends_the_account(env: Env) -> None:
    shop = make_shop(env, 1)
    source = make_source(env, "cmp_luohu", budget=300 * YUAN)
    alice, carol = make_person(env, 1, own=20 * YUAN), make_person(env, 2, own=50 * YUAN)
    grant(env, source, [alice], 200 * YUAN)
    mixed = pay(env, alice, shop, 210 * YUAN)  # 200 restricted + 10 own
    more = make_source(env, "cmp_more", budget=100 * YUAN)
    grant(env, more, [alice], 100 * YUAN)
    spent = pay(env, alice, shop, 40 * YUAN)  # restricted only (cmp_more)
    assert spent.restricted_amount == 40 * YUAN
    assert own(env, alice) == 10 * YUAN

    def close() -> wallet.ClosureView:
        return env.run(lambda uow: wallet.close_wallet(uow, user_id=alice.user_id))

    not_empty = refused(close)
    assert (not_empty.code, not_empty.status) == ("wallet_not_empty", 409)
    assert not_empty.extra["balance"] == 10 * YUAN
    wallet.withdraw(
        env.db,
        bank=env.bank,
        user_id=alice.user_id,
        card_id=str(alice.card_id),
        amount=10 * YUAN,
        pin=PIN,
        encryptor=env.enc,
        settings=env.settings,
    )
    assert own(env, alice) == 0
    closed = close()
    assert (closed.restricted_returned, closed.restricted_balances) == (60 * YUAN, 2)
    assert account(env, source.funder) == 100 * YUAN  # cmp_luohu was all spent
    assert account(env, more.funder) == 60 * YUAN
    views = held(env, alice)
    assert {v.status for v in views.values()} == {"reclaimed"}
    assert {v.reclaim_reason for v in views.values()} == {"wallet_closed"}
    assert views["cmp_more"].reclaimed == 60 * YUAN
    with env.db.uow(readonly=True) as uow:
        assert wallet.wallet_closed(uow, user_id=alice.user_id)
        assert identity.get_user(uow, user_id=alice.user_id).status == "closed"
        events = uow.session.execute(
            text(
                "SELECT e.kind, e.actor FROM identity_user_events e "
                "JOIN identity_users u ON u.id = e.user_id WHERE u.public_id = :u"
            ),
            {"u": alice.user_id},
        ).all()
    assert ("closed", "user") in [tuple(e) for e in events]

    # the account is gone: its session, a login, any money movement
    with env.db.uow(readonly=True) as uow, pytest.raises(AccountClosed):
        sessions.authenticate(uow, token=alice.token)
    login = refused(
        lambda: identity.login(
            env.db,
            phone=alice.phone,
            password=PASSWORD,
            device=identity.Device(),
            settings=env.settings,
            encryptor=env.enc,
        )
    )
    assert (login.code, login.status) == ("account_closed", 403)
    assert refused(close).code == "account_closed"
    assert refused(lambda: pay(env, alice, shop, 1 * YUAN)).code == "account_closed"
    # nothing reaches the closed wallet: not a transfer ...
    to_alice = refused(
        lambda: env.run(
            lambda uow: wallet.send_transfer(
                uow,
                user_id=carol.user_id,
                to=alice.user_id,
                amount=1 * YUAN,
                encryptor=env.enc,
                settings=env.settings,
            )
        )
    )
    assert to_alice.code == "recipient_unavailable"
    # ... nor a refund of her own money (the merchant pays it back another way) ...
    own_refund = refused(lambda: refund(env, shop, mixed.order_id, 210 * YUAN, "RF-1"))
    assert own_refund.code == "payer_wallet_closed"
    # ... while a refund of restricted money goes to the funder
    back = refund(env, shop, spent.order_id, 40 * YUAN, "RF-2")
    assert back.restricted_amount == 40 * YUAN
    assert account(env, more.funder) == 100 * YUAN
    assert own(env, alice) == 0
    assert own(env, carol) == 50 * YUAN
    assert_ledger_clean(env.db)


def test_closing_is_refused_while_money_waits_for_the_bank(env: Env) -> None:
    alice = make_person(env, 1, card_ending="0009")  # the sandbox bank does not answer
    pending = wallet.top_up(
        env.db,
        bank=env.bank,
        user_id=alice.user_id,
        card_id=str(alice.card_id),
        amount=10 * YUAN,
        pin=PIN,
        encryptor=env.enc,
        settings=env.settings,
    )
    assert pending.status == "unknown"
    error = refused(lambda: env.run(lambda uow: wallet.close_wallet(uow, user_id=alice.user_id)))
    assert (error.code, error.status) == ("wallet_has_pending", 409)
    assert error.extra["pending_incoming"] == 10 * YUAN
    with env.db.uow(readonly=True) as uow:
        assert not wallet.wallet_closed(uow, user_id=alice.user_id)
        assert identity.get_user(uow, user_id=alice.user_id).status == "active"
    assert sessions_alive(env, alice)
    assert_ledger_clean(env.db)


def sessions_alive(env: Env, who: Resident) -> bool:
    with env.db.uow(readonly=True) as uow:
        return sessions.authenticate(uow, token=who.token) is not None


def test_closing_races_payments_and_no_fen_is_lost(env: Env) -> None:
    shop = make_shop(env, 1)
    source = make_source(env, "cmp_race", budget=600 * YUAN)
    people = [make_person(env, n) for n in range(1, 7)]
    grant(env, source, people, 100 * YUAN)
    bills = [order(env, shop, 60 * YUAN) for _ in people]
    jobs: list[Callable[[], object]] = []
    for who, (_, payload) in zip(people, bills, strict=True):
        jobs.append(
            lambda who=who, payload=payload: env.run(
                lambda uow: payments.pay_scan(
                    uow,
                    user_id=who.user_id,
                    payload=payload,
                    encryptor=env.enc,
                    settings=env.settings,
                )
            )
        )
        jobs.append(
            lambda who=who: env.run(lambda uow: wallet.close_wallet(uow, user_id=who.user_id))
        )
    outcomes = _race(*jobs)
    spent = 0
    for n, who in enumerate(people):
        paid, closed = outcomes[2 * n], outcomes[2 * n + 1]
        assert isinstance(closed, wallet.ClosureView), closed  # closing always works here
        if isinstance(paid, payments.PaymentView):  # paid first: closing returned the rest
            assert (paid.restricted_amount, closed.restricted_returned) == (60 * YUAN, 40 * YUAN)
            spent += 60 * YUAN
        else:
            # closed first: the payment is refused, as account_closed or (PostgreSQL: it read
            # the account before the closing committed, then waited for the wallet lock) as
            # insufficient_balance, since the closed wallet holds nothing at all
            assert isinstance(paid, DomainError), paid
            assert paid.code in {"account_closed", "insufficient_balance"}, paid.code
            assert closed.restricted_returned == 100 * YUAN
        assert held(env, who)["cmp_race"].available == 0
    assert account(env, source.funder) == 600 * YUAN - spent
    fees = spent // (60 * YUAN) * fee_for(60 * YUAN, FEE_BP)
    assert account(env, shop.merchant.receivable_account_id) == spent - fees
    with env.db.uow(readonly=True) as uow:
        statuses = set(uow.session.scalars(select(RestrictedBalance.status)))
    assert statuses == {"reclaimed"}
    assert_ledger_clean(env.db)


def test_closing_races_incoming_transfers_and_none_lands_in_a_closed_wallet(env: Env) -> None:
    senders = [make_person(env, n, own=10 * YUAN) for n in range(1, 6)]
    closers = [make_person(env, n) for n in range(11, 16)]
    jobs: list[Callable[[], object]] = []
    for sender, closer in zip(senders, closers, strict=True):
        jobs.append(
            lambda sender=sender, closer=closer: env.run(
                lambda uow: wallet.send_transfer(
                    uow,
                    user_id=sender.user_id,
                    to=closer.user_id,
                    amount=10 * YUAN,
                    encryptor=env.enc,
                    settings=env.settings,
                )
            )
        )
        jobs.append(
            lambda closer=closer: env.run(
                lambda uow: wallet.close_wallet(uow, user_id=closer.user_id)
            )
        )
    outcomes = _race(*jobs)
    for n, (sender, closer) in enumerate(zip(senders, closers, strict=True)):
        sent, closed = outcomes[2 * n], outcomes[2 * n + 1]
        with env.db.uow(readonly=True) as uow:
            is_closed = wallet.wallet_closed(uow, user_id=closer.user_id)
        if isinstance(sent, wallet.TransferView):  # arrived first: the wallet is not empty
            assert isinstance(closed, DomainError), closed
            assert closed.code == "wallet_not_empty"
            assert not is_closed
            assert (own(env, sender), own(env, closer)) == (0, 10 * YUAN)
        else:  # closed first: the money stays with the sender
            assert isinstance(sent, DomainError), sent
            assert sent.code == "recipient_unavailable"
            assert isinstance(closed, wallet.ClosureView), closed
            assert is_closed
            assert (own(env, sender), own(env, closer)) == (10 * YUAN, 0)
    assert_ledger_clean(env.db)


def test_a_closed_account_stays_closed_and_a_frozen_one_cannot_close(env: Env) -> None:
    alice, bob = make_person(env, 1), make_person(env, 2)
    env.run(lambda uow: wallet.close_wallet(uow, user_id=alice.user_id))
    again = refused(lambda: env.run(lambda uow: identity.close_account(uow, user_id=alice.user_id)))
    assert (again.code, again.status) == ("already_closed", 409)
    frozen = refused(
        lambda: env.run(
            lambda uow: identity.freeze_user(
                uow, user_id=alice.user_id, reason="test", actor="operator:test"
            )
        )
    )
    assert (frozen.code, frozen.status) == ("already_closed", 409)
    texting = env.settings.model_copy(update={"sms_send_per_minute": 5})  # a second code now
    code = send_code(env.db, texting, env.enc, alice.phone, purpose="reset_password")
    reset = refused(
        lambda: identity.reset_password(
            env.db,
            phone=alice.phone,
            code=code,
            new_password="another horse 8",
            settings=env.settings,
            encryptor=env.enc,
        )
    )
    assert reset.code == "account_closed"

    env.run(
        lambda uow: identity.freeze_user(
            uow, user_id=bob.user_id, reason="under review", actor="operator:test"
        )
    )
    refusal = refused(lambda: env.run(lambda uow: wallet.close_wallet(uow, user_id=bob.user_id)))
    assert (refusal.code, refusal.status) == ("account_frozen", 403)
    with env.db.uow(readonly=True) as uow:
        assert identity.get_user(uow, user_id=bob.user_id).status == "frozen"
        assert not wallet.wallet_closed(uow, user_id=bob.user_id)


def test_closing_waits_for_sent_red_packets_and_a_closed_wallet_gets_none(env: Env) -> None:
    alice, bob, carol = (make_person(env, n, own=5 * YUAN) for n in (1, 2, 3))

    def send(who: Resident, to: Resident) -> str:
        view = env.run(
            lambda uow: redpackets.send_packet(
                uow,
                user_id=who.user_id,
                amount=5 * YUAN,
                to=to.user_id,
                encryptor=env.enc,
                settings=env.settings,
            )
        )
        return view.id

    def close(who: Resident) -> wallet.ClosureView:
        return env.run(lambda uow: wallet.close_wallet(uow, user_id=who.user_id))

    packet = send(alice, bob)
    assert own(env, alice) == 0
    waiting = refused(lambda: close(alice))  # its unclaimed share would come back here
    assert (waiting.code, waiting.status) == ("wallet_has_open_red_packets", 409)
    assert waiting.extra["open_red_packets"] == 1

    wallet.withdraw(
        env.db,
        bank=env.bank,
        user_id=bob.user_id,
        card_id=str(bob.card_id),
        amount=5 * YUAN,
        pin=PIN,
        encryptor=env.enc,
        settings=env.settings,
    )
    close(bob)  # with alice's packet to him unopened
    before = transfer_count(env)
    nowhere = refused(lambda: send(carol, bob))
    assert (nowhere.code, nowhere.status) == ("recipient_unavailable", 409)
    opened = refused(
        lambda: env.run(
            lambda uow: redpackets.claim_packet(uow, user_id=bob.user_id, packet_id=packet)
        )
    )
    assert opened.code == "account_closed"
    assert (transfer_count(env), own(env, carol)) == (before, 5 * YUAN)

    returned = env.run(lambda uow: redpackets.expire_packets(uow, now=now_us() + 2 * DAY_US))
    assert returned == 1
    assert own(env, alice) == 5 * YUAN  # the whole packet, back once
    assert env.run(lambda uow: redpackets.expire_packets(uow, now=now_us() + 3 * DAY_US)) == 0
    wallet.withdraw(
        env.db,
        bank=env.bank,
        user_id=alice.user_id,
        card_id=str(alice.card_id),
        amount=5 * YUAN,
        pin=PIN,
        encryptor=env.enc,
        settings=env.settings,
    )
    assert close(alice).restricted_returned == 0
    assert_ledger_clean(env.db)
