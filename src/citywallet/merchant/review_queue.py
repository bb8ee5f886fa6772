"""Merchants as operators see them: the review queue and lists by status (read-only; the
decisions themselves are :func:`citywallet.merchant.onboarding.review_merchant`)."""

from __future__ import annotations

from sqlalchemy import select

from citywallet.merchant.models import MERCHANT_STATUSES, Merchant
from citywallet.merchant.onboarding import MerchantView, merchant_view
from citywallet.platform.db import UnitOfWork


def merchants_by_status(
    uow: UnitOfWork, *, status: str = "pending_review", limit: int = 100
) -> list[MerchantView]:
    """Merchants in ``status`` (default: waiting for review), oldest first; an unknown
    status gives nothing."""
    if status not in MERCHANT_STATUSES:
        return []
    rows = uow.session.scalars(
        select(Merchant).where(Merchant.status == status).order_by(Merchant.id).limit(limit)
    )
    return [merchant_view(row) for row in rows]
