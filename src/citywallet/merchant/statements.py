"""A merchant's daily statement, read from the ledger movements of its receivable account.

A business day is a calendar day in ``settings.business_timezone`` (Asia/Shanghai). The
statement lists every posted movement of the receivable during the day, oldest first, one
line per business object (a payment's ``.pay`` and ``.fee`` transfers are one line, as are
a refund's ``.fee`` and ``.refund``), joined with the order, refund or settlement it
references. Signs follow the receivable: money in is positive, money out negative, so for
every line ``net = amount - fee`` and ``opening + Σ net = closing``:

=========== ======================= ============== ============ ===========================
type        order_no / refund_no    amount         fee          net
=========== ======================= ============== ============ ===========================
payment     out_trade_no / —        order amount   the fee      amount - fee
refund      out_trade_no of the     -refund        -fee_back    -refund + fee_back
            order / out_refund_no
settlement  — / —                   -swept         0            -swept (to the bank, T+n)
adjustment  — / —                   the movement   0            any other movement
=========== ======================= ============== ============ ===========================

:func:`statement_csv` renders it (RFC 4180, CRLF line ends, UTF-8 without a BOM; the
content is ASCII): the header ``time,type,order_no,refund_no,amount,fee,net,balance``
then one row per line and no footer, so every row after the header has the same shape.
Amounts are yuan with two decimals (``-12.30``); times are ISO 8601 with the business
offset (``2031-03-14T12:00:05+08:00``). Order and refund numbers are written as the
merchant gave them: they are validated to letters, digits and ``_-|*@``, which cannot form
a spreadsheet formula payload.

The day window is read with plain SQL over ``ledger_transfers`` (account and timestamp
range), which settlement uses too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

from sqlalchemy import select, text

from citywallet.ledger.types import TransferCode, TransferFlags
from citywallet.merchant.models import Order, Refund, Settlement
from citywallet.merchant.onboarding import merchant_by_pk
from citywallet.platform import csvfile
from citywallet.platform.config import Settings
from citywallet.platform.db import UnitOfWork
from citywallet.wallet.accounts import CURRENCY

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_US = timedelta(microseconds=1)
LINE_TYPES = ("payment", "refund", "settlement", "adjustment")
CSV_HEADER = ("time", "type", "order_no", "refund_no", "amount", "fee", "net", "balance")
_UNPOSTED = int(TransferFlags.PENDING | TransferFlags.VOID_PENDING)  # no effect on balances
_FOREVER = 2**62
_CHUNK = 500

# --- business days (pure) ----------------------------------------------------------------


def business_zone(settings: Settings) -> ZoneInfo:
    """The time zone whose calendar days are business days."""
    return ZoneInfo(settings.business_timezone)


def to_us(moment: datetime) -> int:
    """An aware datetime as microseconds since the epoch (exact, no floats)."""
    return (moment - EPOCH) // ONE_US


def local_time(moment_us: int, zone: tzinfo) -> datetime:
    """A microsecond timestamp as an aware datetime in ``zone``."""
    return (EPOCH + timedelta(microseconds=moment_us)).astimezone(zone)


def business_day(moment_us: int, zone: tzinfo) -> date:
    """The business day a microsecond timestamp falls on."""
    return local_time(moment_us, zone).date()


def day_window(day: date, zone: tzinfo) -> tuple[int, int]:
    """The business day as ``[start, end)`` in microseconds since the epoch."""
    start = datetime.combine(day, time.min, tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), time.min, tzinfo=zone)
    return to_us(start), to_us(end)


def yuan(fen: int) -> str:
    """Fen as yuan with two decimals, for files: ``-1234.50`` (no separators, no floats)."""
    whole, frac = divmod(abs(fen), 100)
    return f"{'-' if fen < 0 else ''}{whole}.{frac:02d}"


# --- the receivable's movements ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Movement:
    """A posted transfer as seen from one account: ``delta`` is + in, - out."""

    seq: int
    transfer_id: str
    code: int
    reference: str | None
    timestamp: int
    delta: int
    other_account_id: int


_MOVEMENTS = text(
    "SELECT seq, id, debit_account_id, credit_account_id, amount, code, flags, reference, "
    "timestamp FROM ledger_transfers "
    "WHERE (debit_account_id = :account OR credit_account_id = :account) "
    "AND timestamp >= :start AND timestamp < :end ORDER BY timestamp, seq"
)
_BALANCE_BEFORE = text(
    "SELECT COALESCE(SUM(CASE WHEN credit_account_id = :account THEN amount "
    "ELSE -amount END), 0) FROM ledger_transfers "
    "WHERE (debit_account_id = :account OR credit_account_id = :account) "
    "AND timestamp < :moment AND (flags & :unposted) = 0"
)


def account_movements(
    uow: UnitOfWork, *, account_id: int, start: int, end: int | None = None
) -> list[Movement]:
    """The account's posted movements with ``start <= timestamp < end``, oldest first
    (pending transfers and voids change no balance and are left out)."""
    rows = uow.session.execute(
        _MOVEMENTS,
        {"account": account_id, "start": start, "end": _FOREVER if end is None else end},
    ).all()
    found: list[Movement] = []
    for seq, tid, debit, credit, amount, code, flags, reference, stamp in rows:
        if int(flags) & _UNPOSTED:
            continue
        incoming = int(credit) == account_id
        found.append(
            Movement(
                seq=int(seq),
                transfer_id=str(tid),
                code=int(code),
                reference=reference,
                timestamp=int(stamp),
                delta=int(amount) if incoming else -int(amount),
                other_account_id=int(debit) if incoming else int(credit),
            )
        )
    return found


def balance_before(uow: UnitOfWork, *, account_id: int, moment: int) -> int:
    """The account's posted balance (credits - debits) from transfers before ``moment``."""
    total = uow.session.execute(
        _BALANCE_BEFORE, {"account": account_id, "moment": moment, "unposted": _UNPOSTED}
    ).scalar_one()
    return int(total)


# --- the statement -----------------------------------------------------------------------


@dataclass(frozen=True)
class StatementLine:
    """One payment, refund, settlement or adjustment on the receivable."""

    time: datetime  # aware, in the business time zone
    type: str  # one of LINE_TYPES
    reference: str  # our id: ord_…, rfd_…, stl_… (a transfer id for an adjustment)
    order_no: str  # the merchant's out_trade_no (payments; refunds: the refunded order's)
    refund_no: str  # the merchant's out_refund_no (refunds only)
    amount: int  # gross, signed as it moves the receivable
    fee: int  # the platform's fee; negative when a refund gives it back
    net: int  # amount - fee: the receivable's change
    balance: int  # the receivable after this line
    settled_day: date | None = None  # settlements: the business day the payout covers


@dataclass(frozen=True)
class StatementTotals:
    """Count and sums of one line type."""

    count: int = 0
    amount: int = 0
    fee: int = 0
    net: int = 0


@dataclass(frozen=True)
class Statement:
    """A business day of the merchant's receivable: opening + Σ net = closing."""

    merchant_id: str
    day: date
    timezone: str
    currency: str
    opening_balance: int
    closing_balance: int
    lines: tuple[StatementLine, ...]
    totals: dict[str, StatementTotals]  # every LINE_TYPES key, in that order


def statement(uow: UnitOfWork, *, merchant_id: int, day: date, settings: Settings) -> Statement:
    """The merchant's statement for one business day, from the ledger."""
    merchant = merchant_by_pk(uow, merchant_id)
    zone = business_zone(settings)
    start, end = day_window(day, zone)
    account = merchant.receivable_account_id
    opening = balance_before(uow, account_id=account, moment=start)
    groups = group_movements(account_movements(uow, account_id=account, start=start, end=end))
    references = [g[0].reference for g in groups if g[0].reference]
    numbers = _numbers(uow, merchant_id, references)
    settled = _settled_days(uow, merchant_id, references)
    lines: list[StatementLine] = []
    running = opening
    for group in groups:
        head = group[0]
        kind = line_type(head.reference)
        net = sum(m.delta for m in group)
        fee = -sum(m.delta for m in group if m.code == TransferCode.FEE)
        running += net
        order_no, refund_no = numbers.get(head.reference or "", ("", ""))
        lines.append(
            StatementLine(
                time=local_time(head.timestamp, zone),
                type=kind,
                reference=head.reference or head.transfer_id,
                order_no=order_no,
                refund_no=refund_no,
                amount=net + fee,
                fee=fee,
                net=net,
                balance=running,
                settled_day=settled.get(head.reference or ""),
            )
        )
    return Statement(
        merchant_id=merchant.public_id,
        day=day,
        timezone=settings.business_timezone,
        currency=CURRENCY,
        opening_balance=opening,
        closing_balance=running,
        lines=tuple(lines),
        totals=totals(lines),
    )


def line_type(reference: str | None) -> str:
    """What a movement's business reference says it is."""
    prefix = (reference or "").partition("_")[0]
    return {"ord": "payment", "rfd": "refund", "stl": "settlement"}.get(prefix, "adjustment")


def group_movements(movements: Sequence[Movement]) -> list[list[Movement]]:
    """Consecutive movements of one business object (same reference, same batch) grouped;
    movements without a reference stay alone."""
    groups: list[list[Movement]] = []
    for movement in movements:
        last = groups[-1][-1] if groups else None
        if (
            last is not None
            and movement.reference is not None
            and movement.reference == last.reference
            and movement.timestamp == last.timestamp
        ):
            groups[-1].append(movement)
        else:
            groups.append([movement])
    return groups


def totals(lines: Iterable[StatementLine]) -> dict[str, StatementTotals]:
    """Count, amount, fee and net per line type (every type present, zeros included)."""
    sums = {kind: [0, 0, 0, 0] for kind in LINE_TYPES}
    for line in lines:
        entry = sums[line.type]
        entry[0] += 1
        entry[1] += line.amount
        entry[2] += line.fee
        entry[3] += line.net
    return {kind: StatementTotals(*values) for kind, values in sums.items()}


def _numbers(
    uow: UnitOfWork, merchant_id: int, references: Sequence[str]
) -> dict[str, tuple[str, str]]:
    """The merchant's (order number, refund number) for each ord_/rfd_ reference."""
    orders = sorted({r for r in references if r.startswith("ord_")})
    refunds = sorted({r for r in references if r.startswith("rfd_")})
    found: dict[str, tuple[str, str]] = {}
    for chunk in _chunks(orders):
        for public_id, out_trade_no in uow.session.execute(
            select(Order.public_id, Order.out_trade_no).where(
                Order.merchant_id == merchant_id, Order.public_id.in_(chunk)
            )
        ):
            found[public_id] = (out_trade_no, "")
    for chunk in _chunks(refunds):
        for public_id, out_refund_no, out_trade_no in uow.session.execute(
            select(Refund.public_id, Refund.out_refund_no, Order.out_trade_no)
            .join(Order, Order.id == Refund.order_id)
            .where(Refund.merchant_id == merchant_id, Refund.public_id.in_(chunk))
        ):
            found[public_id] = (out_trade_no, out_refund_no)
    return found


def _settled_days(uow: UnitOfWork, merchant_id: int, references: Sequence[str]) -> dict[str, date]:
    """The business day each stl_ reference settled."""
    wanted = sorted({r for r in references if r.startswith("stl_")})
    found: dict[str, date] = {}
    for chunk in _chunks(wanted):
        for public_id, business_date in uow.session.execute(
            select(Settlement.public_id, Settlement.business_date).where(
                Settlement.merchant_id == merchant_id, Settlement.public_id.in_(chunk)
            )
        ):
            found[public_id] = date.fromisoformat(business_date)
    return found


def _chunks(items: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


# --- CSV ---------------------------------------------------------------------------------


def csv_row(line: StatementLine) -> list[str]:
    """One statement line as CSV fields, in CSV_HEADER order."""
    return [
        line.time.isoformat(timespec="seconds"),
        line.type,
        line.order_no,
        line.refund_no,
        yuan(line.amount),
        yuan(line.fee),
        yuan(line.net),
        yuan(line.balance),
    ]


# The columns in Chinese, for people opening the file in Excel (``headers="zh"``).
CSV_HEADER_ZH = ("时间", "类型", "商户订单号", "商户退款单号", "金额", "手续费", "净额", "余额")
LINE_TYPES_ZH = {"payment": "收款", "refund": "退款", "settlement": "结算", "adjustment": "调整"}


def statement_csv(found: Statement, *, bom: bool = False, headers: str = "keys") -> str:
    """The statement as CSV: the header row, then one row per line, no footer.

    Machine readers get the column keys (:data:`CSV_HEADER`) and no BOM; people get a UTF-8
    BOM (``bom``, so Excel reads it as UTF-8) and, with ``headers="zh"``, Chinese headers
    and line types."""
    chinese = headers == "zh"
    header = CSV_HEADER_ZH if chinese else CSV_HEADER
    rows = (csv_row(line) for line in found.lines)
    if chinese:
        rows = ([r[0], LINE_TYPES_ZH.get(r[1], r[1]), *r[2:]] for r in rows)
    return csvfile.write(header, rows, bom=bom)
