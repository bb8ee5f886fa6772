"""The options of the campaign form's pickers (districts, merchants, MCC categories), as
(value, label) pairs for ``macros/picker.html``, and reading a picker's several values.

The MCC picker's list comes from the spending categories' MCC ranges
(:data:`citywallet.wallet.spending.CATEGORY_RANGES`) until a full MCC table exists: any
list of (code, label) pairs can take its place."""

from __future__ import annotations

from fastapi import Request

from citywallet.merchant import pickers
from citywallet.platform.db import UnitOfWork
from citywallet.wallet.spending import CATEGORY_RANGES
from citywallet.web.app.money import CATEGORY_LABELS
from citywallet.web.i18n import Translations

PICKED = ("districts", "eligible_districts", "merchant_ids", "mccs")
RANGE_LIMIT = 12  # a longer range of codes is offered by its first code only


def mcc_options(tr: Translations) -> list[tuple[str, str]]:
    """(code, "code · category") for the MCCs the spending categories know, by code."""
    codes: dict[str, str] = {}
    for first, last, key in CATEGORY_RANGES:
        span = range(first, last + 1) if last - first < RANGE_LIMIT else (first,)
        for code in span:
            codes.setdefault(f"{code:04d}", tr.gettext(CATEGORY_LABELS.get(key, key)))
    return [(code, f"{code} · {label}") for code, label in sorted(codes.items())]


def options(uow: UnitOfWork, tr: Translations) -> dict[str, list[tuple[str, str]]]:
    """Every picker's options for the campaign form."""
    districts = pickers.district_options(uow)
    return {
        "districts": districts,
        "eligible_districts": districts,
        "merchant_ids": pickers.merchant_options(uow),
        "mccs": mcc_options(tr),
    }


async def picked_lists(request: Request) -> dict[str, str]:
    """The pickers' values joined with commas (a picker posts one field per checked box;
    the form parser reads comma lists, as the plain text fields post them)."""
    form = await request.form()  # read once already by the CSRF check: Starlette keeps it
    return {
        name: ",".join(v for v in form.getlist(name) if isinstance(v, str) and v.strip())
        for name in PICKED
        if name in form
    }
