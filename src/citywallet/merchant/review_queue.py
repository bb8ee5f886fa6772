"""Merchants as operators see them: the review queue and lists by status (read-only; the
decisions themselves are :func:`citywallet.merchant.onboarding.review_merchant`)."""

from __future__ import annotations

from sqlalchemy import select

from citywallet.merchant.models import MERCHANT_STATUSES, Merchant
from citywallet.merchant.onboarding import MerchantView, merchant_view
from citywallet.platform.db import UnitOfWork


def merchants_by_status(
    uow: UnitOfWork, *, status: str | None = "pending_review", limit: int | None = 100
) -> list[MerchantView]:
    """Merchants in ``status`` (default: waiting for review; None: every merchant), oldest
    first, at most ``limit`` (None: all); an unknown status gives nothing."""
    query = select(Merchant).order_by(Merchant.id).limit(limit)
    if status is not None:
        if status not in MERCHANT_STATUSES:
            return []
        query = query.where(Merchant.status == status)
    return [merchant_view(row) for row in uow.session.scalars(query)]
