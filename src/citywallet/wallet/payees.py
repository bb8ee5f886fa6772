"""Whom a resident has paid before (step-up's "new payee" rule, identity/stepup.py)."""

from __future__ import annotations

from sqlalchemy import select

from citywallet.identity.service import find_user_by_phone
from citywallet.platform.db import UnitOfWork
from citywallet.platform.errors import DomainError
from citywallet.wallet.models import Activity


def sent_before(uow: UnitOfWork, *, user_id: str, to: str) -> bool:
    """Whether ``user_id`` sent a transfer to ``to`` (a user id or mobile number) before."""
    payee = to
    if not to.startswith("usr_"):
        try:
            found = find_user_by_phone(uow, phone=to)
        except DomainError:
            return False
        if found is None:
            return False
        payee = found.id
    line = uow.session.scalar(
        select(Activity.id)
        .where(
            Activity.user_id == user_id,
            Activity.kind == "transfer_out",
            Activity.counterparty_user_id == payee,
        )
        .limit(1)
    )
    return line is not None
