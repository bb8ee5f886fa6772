"""Pure parts of settlement and statements: business-day windows, yuan formatting, CSV
rows, grouping of ledger movements into lines, the sweep rule and the retry backoff."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from citywallet.ledger.types import TransferCode
from citywallet.merchant.settlement import (
    RETRY_FIRST_SECONDS,
    RETRY_MAX_SECONDS,
    bank_reference,
    due_days,
    payout_transfer_id,
    retry_delay_seconds,
    sweepable,
)
from citywallet.merchant.statements import (
    CSV_HEADER,
    LINE_TYPES,
    Movement,
    Statement,
    StatementLine,
    business_day,
    day_window,
    group_movements,
    line_type,
    local_time,
    statement_csv,
    to_us,
    totals,
    yuan,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
HOUR_US = 3600 * 1_000_000


def test_a_shanghai_business_day_runs_from_16_00_utc_the_day_before() -> None:
    start, end = day_window(date(2031, 3, 14), SHANGHAI)
    assert start == to_us(datetime(2031, 3, 13, 16, tzinfo=UTC))
    assert end - start == 24 * HOUR_US
    assert business_day(start, SHANGHAI) == date(2031, 3, 14)
    assert business_day(end - 1, SHANGHAI) == date(2031, 3, 14)
    assert business_day(end, SHANGHAI) == date(2031, 3, 15)
    assert business_day(start - 1, SHANGHAI) == date(2031, 3, 13)


def test_a_day_with_a_clock_change_is_23_hours_long() -> None:
    start, end = day_window(date(2031, 3, 30), ZoneInfo("Europe/Berlin"))
    assert end - start == 23 * HOUR_US


def test_local_time_keeps_microseconds_exactly() -> None:
    moment = to_us(datetime(2031, 3, 14, 1, 2, 3, 456789, tzinfo=UTC))
    shown = local_time(moment, SHANGHAI)
    assert shown.isoformat() == "2031-03-14T09:02:03.456789+08:00"
    assert to_us(shown) == moment


def test_yuan_has_two_decimals_and_a_sign() -> None:
    assert yuan(0) == "0.00"
    assert yuan(5) == "0.05"
    assert yuan(-5) == "-0.05"
    assert yuan(123456) == "1234.56"
    assert yuan(-1_000_000_00) == "-1000000.00"


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_yuan_round_trips_through_decimal_text(fen: int) -> None:
    text = yuan(fen)
    whole, _, frac = text.lstrip("-").partition(".")
    assert len(frac) == 2
    assert (int(whole) * 100 + int(frac)) * (-1 if text.startswith("-") else 1) == fen


def _move(seq: int, reference: str | None, delta: int, *, code: int, stamp: int) -> Movement:
    return Movement(seq, f"t{seq}", code, reference, stamp, delta, 99)


def test_a_payment_pair_and_a_refund_pair_are_one_line_each() -> None:
    moves = [
        _move(1, "ord_a", 10000, code=TransferCode.PAYMENT, stamp=10),
        _move(2, "ord_a", -38, code=TransferCode.FEE, stamp=10),
        _move(3, "rfd_b", 11, code=TransferCode.FEE, stamp=20),
        _move(4, "rfd_b", -3000, code=TransferCode.REFUND, stamp=20),
        _move(5, "stl_c", -6973, code=TransferCode.SETTLEMENT, stamp=30),
        _move(6, None, 5, code=TransferCode.ADJUSTMENT, stamp=40),
        _move(7, None, 6, code=TransferCode.ADJUSTMENT, stamp=40),
    ]
    groups = group_movements(moves)
    assert [[m.seq for m in g] for g in groups] == [[1, 2], [3, 4], [5], [6], [7]]
    assert [line_type(g[0].reference) for g in groups] == [
        "payment",
        "refund",
        "settlement",
        "adjustment",
        "adjustment",
    ]


def test_the_same_reference_in_another_batch_is_another_line() -> None:
    moves = [
        _move(1, "adj_x", 5, code=TransferCode.ADJUSTMENT, stamp=10),
        _move(2, "adj_x", 5, code=TransferCode.ADJUSTMENT, stamp=11),
    ]
    assert len(group_movements(moves)) == 2


def _line(kind: str, amount: int, fee: int, balance: int, **numbers: str) -> StatementLine:
    return StatementLine(
        time=datetime(2031, 3, 14, 10, 0, 5, 123, tzinfo=SHANGHAI),
        type=kind,
        reference="ord_x",
        order_no=numbers.get("order_no", ""),
        refund_no=numbers.get("refund_no", ""),
        amount=amount,
        fee=fee,
        net=amount - fee,
        balance=balance,
    )


def test_csv_has_the_fixed_header_and_one_row_per_line_and_no_footer() -> None:
    lines = (
        _line("payment", 10000, 38, 9962, order_no="T-2031|0001"),
        _line("refund", -3000, -11, 6973, order_no="T-2031|0001", refund_no="R@1*"),
        _line("settlement", -6973, 0, 0),
    )
    found = Statement("mch_x", date(2031, 3, 14), "Asia/Shanghai", "CNY", 0, 0, lines, {})
    text = statement_csv(found)
    assert text.endswith("\r\n")
    assert text.split("\r\n") == [
        "time,type,order_no,refund_no,amount,fee,net,balance",
        "2031-03-14T10:00:05+08:00,payment,T-2031|0001,,100.00,0.38,99.62,99.62",
        "2031-03-14T10:00:05+08:00,refund,T-2031|0001,R@1*,-30.00,-0.11,-29.89,69.73",
        "2031-03-14T10:00:05+08:00,settlement,,,-69.73,0.00,-69.73,0.00",
        "",
    ]
    rows = list(csv.reader(io.StringIO(text)))
    assert tuple(rows[0]) == CSV_HEADER
    assert all(len(row) == len(CSV_HEADER) for row in rows)


def test_an_empty_statement_is_just_the_header() -> None:
    found = Statement("mch_x", date(2031, 3, 14), "Asia/Shanghai", "CNY", 5, 5, (), {})
    assert statement_csv(found) == ",".join(CSV_HEADER) + "\r\n"


def test_totals_cover_every_type_in_a_fixed_order() -> None:
    lines = [
        _line("payment", 10000, 38, 0),
        _line("payment", 500, 2, 0),
        _line("refund", -3000, -11, 0),
    ]
    found = totals(lines)
    assert tuple(found) == LINE_TYPES
    assert (found["payment"].count, found["payment"].amount) == (2, 10500)
    assert (found["payment"].fee, found["payment"].net) == (40, 10460)
    assert found["refund"].net == -2989
    assert found["settlement"].count == 0


def test_a_sweep_takes_the_days_money_and_leaves_later_days_money() -> None:
    # yesterday +99.62 (balance now includes today's +19.92)
    assert sweepable(9962 + 1992, [1992]) == 9962
    # a refund today of -29.89 spent yesterday's money; today's payment after it stays
    assert sweepable(9962 - 2989 + 1992, [-2989, 1992]) == 9962 - 2989
    # today's payment came first and paid for the refund: all that is left is yesterday's
    assert sweepable(9962 + 1992 - 2989, [1992, -2989]) == 9962 + 1992 - 2989
    assert sweepable(0, []) == 0
    assert sweepable(500, [700]) == 0  # later days brought in more than is left


@given(
    st.integers(min_value=0, max_value=10**9),
    st.lists(st.integers(min_value=-(10**8), max_value=10**8), max_size=30),
)
def test_a_sweep_is_the_largest_that_never_overdraws_since_the_day_ended(
    unswept: int, deltas: list[int]
) -> None:
    # Keep the receivable non-negative along the way, as the ledger does.
    later: list[int] = []
    running = unswept
    for delta in deltas:
        if running + delta >= 0:
            later.append(delta)
            running += delta
    amount = sweepable(running, later)
    assert 0 <= amount <= unswept
    prefix, lows = 0, [0]
    for delta in later:
        prefix += delta
        lows.append(prefix)
    assert all(unswept - amount + low >= 0 for low in lows)  # never overdrawn since
    assert amount == unswept or any(unswept - amount + low == 0 for low in lows)  # maximal


def test_retries_back_off_from_half_an_hour_to_a_day() -> None:
    delays = [retry_delay_seconds(n) for n in range(1, 10)]
    assert delays[:3] == [RETRY_FIRST_SECONDS, 2 * RETRY_FIRST_SECONDS, 4 * RETRY_FIRST_SECONDS]
    assert delays == sorted(delays)
    assert max(delays) == RETRY_MAX_SECONDS


def test_due_days_are_over_and_at_least_settle_days_old() -> None:
    today = date(2031, 3, 14)
    assert due_days(date(2031, 3, 11), today, 1) == [
        date(2031, 3, 11),
        date(2031, 3, 12),
        date(2031, 3, 13),
    ]
    assert due_days(date(2031, 3, 11), today, 2) == [date(2031, 3, 11), date(2031, 3, 12)]
    assert due_days(date(2031, 3, 13), today, 0) == [date(2031, 3, 13)]  # today is not over
    assert due_days(date(2031, 3, 14), today, 1) == []


def test_payout_ids_name_the_settlement_and_the_attempt() -> None:
    assert payout_transfer_id("stl_abc", 2) == "stl_abc.payout.2"
    assert bank_reference("stl_abc", 2) == "stl_abc-2"
