"""Which merchants a resident has paid before (step-up's "new payee" rule)."""

from __future__ import annotations

from sqlalchemy import select

from citywallet.merchant import emv
from citywallet.merchant.models import Merchant, Order
from citywallet.platform.db import UnitOfWork


def paid_before(uow: UnitOfWork, *, user_id: str, payload: str) -> bool:
    """Whether ``user_id`` has a paid order at the merchant of a scanned code's ``payload``
    (read without its MAC: the payment itself checks the code)."""
    try:
        merchant_id = emv.parse_public(payload.strip()).merchant_id
    except emv.EmvError:
        return False
    order = uow.session.scalar(
        select(Order.id)
        .join(Merchant, Merchant.id == Order.merchant_id)
        .where(
            Merchant.public_id == merchant_id,
            Order.payer_user_id == user_id,
            Order.paid_at.is_not(None),
        )
        .limit(1)
    )
    return order is not None
