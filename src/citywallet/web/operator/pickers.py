"""The options of the campaign form's pickers (districts, merchants, MCC categories), as
(value, label) pairs for ``macros/picker.html``, and reading a picker's several values.

The MCC picker's list is the full MCC table (:mod:`citywallet.merchant.mcc`): every named
code with its name and spending category in the page's language."""

from __future__ import annotations

from fastapi import Request

from citywallet.merchant import mcc, pickers
from citywallet.platform.db import UnitOfWork
from citywallet.web.i18n import Translations

PICKED = ("districts", "eligible_districts", "merchant_ids", "mccs")


def mcc_options(tr: Translations) -> list[tuple[str, str]]:
    """(code, "code · name · category") for every code of the MCC table, by code."""
    return [
        (code, f"{code} · {name} · {mcc.describe(code).category_name(tr.lang)}")
        for code, name, _group in mcc.choices(tr.lang)
    ]


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
