"""Campaign reports: what a campaign gave out, what residents did with it, and where.

Figures come from the campaign's registrations and from the wallet's restricted balances
and uses whose source is the campaign (one balance per winner, one use row per payment
that spent from it), which the wallet sums (:mod:`citywallet.wallet.restricted_figures`).
Amounts are fen. "Spent" is net of refunds: what payments took from the red packets, less
what refunds gave back to the balances or to the funder.

Days are business days in Asia/Shanghai (UTC+08:00 all year: China has had no daylight
saving since 1991), computed in SQL so a 2-million-registration campaign is summed by the
database, not fetched. Spending is counted on the day of the payment (a later refund
lowers that day's net spending).

The CSV (:func:`report_csv`) is one long-format table, ``section,key,metric,value``; the
sections, keys and metrics are listed in docs/campaigns.md and do not change meaning.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import func, select

from citywallet.campaign.models import Registration, Winner
from citywallet.campaign.service import campaign_row, count_registrations
from citywallet.platform.clock import DAY_US
from citywallet.platform.db import UnitOfWork
from citywallet.wallet import restricted, restricted_figures
from citywallet.wallet.accounts import CURRENCY
from citywallet.wallet.restricted_figures import SpendingBreakdown

SHANGHAI_OFFSET_US = 8 * 3_600_000_000
EPOCH = date(1970, 1, 1)
MAX_SERIES_DAYS = 400  # gaps between days with activity are filled up to this span


@dataclass(frozen=True)
class ResidentDistrict:
    """Registrations and winners by the residents' district of residence."""

    district: str
    registrations: int
    winners: int


@dataclass(frozen=True)
class DayFigures:
    """One business day (Asia/Shanghai)."""

    day: str  # YYYY-MM-DD
    registrations: int
    payments: int
    spent: int  # net of later refunds of those payments


@dataclass(frozen=True)
class CampaignReport:
    """A campaign's figures (see the module docstring for the definitions)."""

    campaign_id: str
    name: str
    status: str
    currency: str
    budget: int
    registrations: int
    winners: int
    issued_count: int
    issued_amount: int
    claimed: int  # winners who spent at least once
    payments: int  # payments that used the campaign's money
    spent_gross: int
    refunded: int  # given back to the residents' balances by refunds
    returned_to_funder: int  # late refunds (after the validity window) to the funder
    spent: int  # spent_gross - refunded - returned_to_funder
    reclaimed: int  # unused balances returned at expiry or wallet closure
    outstanding: int  # still in the residents' balances
    own_spending: int
    redemption_rate: float  # spent / issued_amount, 0 when nothing was issued
    by_mcc: list[SpendingBreakdown]
    by_district: list[SpendingBreakdown]
    by_resident_district: list[ResidentDistrict]
    daily: list[DayFigures]


def _day(day_number: int) -> str:
    return (EPOCH + timedelta(days=day_number)).isoformat()


def report(uow: UnitOfWork, *, campaign_id: str) -> CampaignReport:
    """The campaign's figures now (``campaign_not_found``)."""
    row = campaign_row(uow, campaign_id)
    source = restricted.source_by_ref(uow, row.public_id)
    assert source is not None
    session = uow.session
    registrations = (
        count_registrations(uow, row.id) if row.status in ("draft", "open") else row.registrations
    )
    money = restricted_figures.totals(uow, source_id=source.id)
    spent = money.spent_gross - money.refunded - money.returned_to_funder

    by_resident = [
        ResidentDistrict(str(district), int(n), int(won or 0))
        for district, n, won in session.execute(
            select(
                Registration.district,
                func.count(Registration.id),
                func.count(Winner.rank),
            )
            .outerjoin(Winner, Winner.registration_id == Registration.id)
            .where(Registration.campaign_id == row.id)
            .group_by(Registration.district)
        )
    ]
    by_resident.sort(key=lambda item: item.district)

    reg_day = (Registration.created_at + SHANGHAI_OFFSET_US) // DAY_US
    days: dict[int, list[int]] = {}
    for day_number, n in session.execute(
        select(reg_day, func.count(Registration.id))
        .where(Registration.campaign_id == row.id)
        .group_by(reg_day)
    ):
        days.setdefault(int(day_number), [0, 0, 0])[0] = int(n)
    for spending in restricted_figures.spending_by_day(
        uow, source_id=source.id, utc_offset_us=SHANGHAI_OFFSET_US
    ):
        figures = days.setdefault(spending.day, [0, 0, 0])
        figures[1], figures[2] = spending.payments, spending.spent
    if days and max(days) - min(days) <= MAX_SERIES_DAYS:
        for day_number in range(min(days), max(days) + 1):
            days.setdefault(day_number, [0, 0, 0])
    daily = [DayFigures(_day(d), *days[d]) for d in sorted(days)]

    return CampaignReport(
        campaign_id=row.public_id,
        name=row.name,
        status=row.status,
        currency=CURRENCY,
        budget=row.budget,
        registrations=registrations,
        winners=row.winners,
        issued_count=money.issued_count,
        issued_amount=money.issued_amount,
        claimed=money.claimed,
        payments=money.payments,
        spent_gross=money.spent_gross,
        refunded=money.refunded,
        returned_to_funder=money.returned_to_funder,
        spent=spent,
        reclaimed=money.reclaimed,
        outstanding=money.issued_amount - money.spent_gross + money.refunded - money.reclaimed,
        own_spending=money.own_amount,
        redemption_rate=round(spent / money.issued_amount, 4) if money.issued_amount else 0.0,
        by_mcc=restricted_figures.spending_by(uow, source_id=source.id, key="mcc"),
        by_district=restricted_figures.spending_by(uow, source_id=source.id, key="district"),
        by_resident_district=by_resident,
        daily=daily,
    )


SUMMARY_METRICS = (
    "budget",
    "registrations",
    "winners",
    "issued_count",
    "issued_amount",
    "claimed",
    "payments",
    "spent_gross",
    "refunded",
    "returned_to_funder",
    "spent",
    "reclaimed",
    "outstanding",
    "own_spending",
    "redemption_rate",
)
CSV_HEADER = ("section", "key", "metric", "value")


def csv_rows(data: CampaignReport) -> list[tuple[str, str, str, str]]:
    """The report as long-format rows (section, key, metric, value), header excluded."""
    rows: list[tuple[str, str, str, str]] = [
        ("campaign", data.campaign_id, "name", data.name),
        ("campaign", data.campaign_id, "status", data.status),
        ("campaign", data.campaign_id, "currency", data.currency),
    ]
    for metric in SUMMARY_METRICS:
        value = getattr(data, metric)
        text = f"{value:.4f}" if isinstance(value, float) else str(value)
        rows.append(("summary", "", metric, text))
    for section, items in (("mcc", data.by_mcc), ("district", data.by_district)):
        for item in items:
            rows += [
                (section, item.key, "payments", str(item.payments)),
                (section, item.key, "spent", str(item.spent)),
                (section, item.key, "own_amount", str(item.own_amount)),
            ]
    for resident in data.by_resident_district:
        rows += [
            ("resident_district", resident.district, "registrations", str(resident.registrations)),
            ("resident_district", resident.district, "winners", str(resident.winners)),
        ]
    for day in data.daily:
        rows += [
            ("day", day.day, "registrations", str(day.registrations)),
            ("day", day.day, "payments", str(day.payments)),
            ("day", day.day, "spent", str(day.spent)),
        ]
    return rows


def report_csv(data: CampaignReport) -> str:
    """The report as CSV text (RFC 4180, ``\\r\\n`` line ends, UTF-8 when encoded)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_HEADER)
    writer.writerows(csv_rows(data))
    return out.getvalue()
