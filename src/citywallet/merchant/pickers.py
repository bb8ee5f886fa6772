"""What the operator console's pickers offer: the districts merchants are in and the
active merchants, as (value, label) pairs (the campaign form's restrictions)."""

from __future__ import annotations

from sqlalchemy import select

from citywallet.merchant.models import Merchant
from citywallet.platform.db import UnitOfWork

MAX_MERCHANTS = 2_000


def district_options(uow: UnitOfWork) -> list[tuple[str, str]]:
    """Every district some merchant is registered in, sorted."""
    rows = uow.session.scalars(select(Merchant.district).distinct().order_by(Merchant.district))
    return [(d, d) for d in rows if d]


def merchant_options(uow: UnitOfWork, *, limit: int = MAX_MERCHANTS) -> list[tuple[str, str]]:
    """Active merchants (id, "name · district"), by name, at most ``limit``."""
    rows = uow.session.execute(
        select(Merchant.public_id, Merchant.name_zh, Merchant.district)
        .where(Merchant.status == "active")
        .order_by(Merchant.name_zh, Merchant.id)
        .limit(limit)
    )
    return [(pid, f"{name} · {district}") for pid, name, district in rows]
