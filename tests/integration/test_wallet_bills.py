"""Bills (SQLite and PostgreSQL): the history by month with income and spending, and each
merchant line split between own balance and campaign red packets, checked against the
ledger's own counters (the wallet and the restricted account)."""

from __future__ import annotations

from citywallet.wallet import bills
from citywallet.wallet import service as wallet
from citywallet.wallet.spending import current_month
from tests.integration.test_restricted_money import (
    YUAN,
    Env,
    account,
    env,
    grant,
    make_person,
    make_shop,
    make_source,
    own,
    pay,
    refund,
    restricted_account,
)
from tests.ledger_checks import assert_ledger_clean

__all__ = ["env"]  # the fixture, used by name


def test_a_month_of_bills_matches_the_ledger(env: Env) -> None:
    shop = make_shop(env, 1)
    who = make_person(env, 1, own=300 * YUAN)
    source = make_source(env, "cmp_bills", budget=50 * YUAN)
    grant(env, source, [who], 50 * YUAN)

    first = pay(env, who, shop, 80 * YUAN)  # 50 campaign red packets, then 30 own
    assert first.restricted_amount == 50 * YUAN
    second = pay(env, who, shop, 20 * YUAN)  # nothing restricted left: own money
    refund(env, shop, first.order_id, 60 * YUAN, "R1")  # own 30 back first, then 30 restricted

    with env.db.uow(readonly=True) as uow:
        page = wallet.list_history(uow, user_id=who.user_id, limit=20)
        [month] = bills.group_by_month(uow, user_id=who.user_id, lines=page.items)
    parts = {b.line.id: (b.line.kind, b.own, b.restricted) for b in month.lines}
    assert parts[first.order_id] == ("merchant_payment", 30 * YUAN, 50 * YUAN)
    assert parts[second.order_id] == ("merchant_payment", 20 * YUAN, 0)
    [refunded] = [v for v in parts.values() if v[0] == "merchant_refund"]
    assert refunded == ("merchant_refund", 30 * YUAN, 30 * YUAN)
    [topup] = [v for v in parts.values() if v[0] == "topup"]
    assert topup == ("topup", 300 * YUAN, 0)

    totals = month.totals
    assert totals.month == current_month()
    assert (totals.income, totals.spending) == (360 * YUAN, 100 * YUAN)
    assert (totals.restricted_spent, totals.restricted_back) == (50 * YUAN, 30 * YUAN)
    assert totals.own_spent == 50 * YUAN
    # against the ledger: the wallet holds own income less own spending, the restricted
    # account what was granted less what was spent plus what came back
    assert own(env, who) == totals.income - totals.restricted_back - totals.own_spent
    held = account(env, restricted_account(env, who, source))
    assert held == 50 * YUAN - totals.restricted_spent + totals.restricted_back
    assert_ledger_clean(env.db)


def test_months_apart_and_lines_without_campaign_money(env: Env) -> None:
    who = make_person(env, 2, own=10 * YUAN)
    with env.db.uow(readonly=True) as uow:
        page = wallet.list_history(uow, user_id=who.user_id, limit=20)
        months = bills.group_by_month(uow, user_id=who.user_id, lines=page.items)
        earlier = bills.month_totals(uow, user_id=who.user_id, month="2020-10")
    assert [(m.totals.month, m.totals.income, m.totals.spending) for m in months] == [
        (current_month(), 10 * YUAN, 0)
    ]
    assert [b.restricted for b in months[0].lines] == [0]
    assert (earlier.income, earlier.spending, earlier.restricted_spent) == (0, 0, 0)
    assert_ledger_clean(env.db)
