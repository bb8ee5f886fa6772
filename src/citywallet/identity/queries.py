"""Row lookups shared by identity's service modules (not part of the public contract)."""

from __future__ import annotations

import json
import secrets
from typing import Any

from sqlalchemy import select

from citywallet.identity.errors import AccountFrozen, UserNotFound
from citywallet.identity.models import User, UserEvent
from citywallet.platform.clock import now_us
from citywallet.platform.db import UnitOfWork


def new_public_id(prefix: str) -> str:
    """An opaque, unguessable public id such as ``usr_3qW…`` (never a sequence number)."""
    return f"{prefix}_{secrets.token_urlsafe(15)}"


def user_row(uow: UnitOfWork, user_id: str, *, for_update: bool = False) -> User:
    """The user with public id ``user_id``, or ``UserNotFound``."""
    query = select(User).where(User.public_id == user_id)
    if for_update:
        query = query.with_for_update()
    user = uow.session.scalar(query)
    if user is None:
        raise UserNotFound("No such user.")
    return user


def active_user_row(uow: UnitOfWork, user_id: str, *, for_update: bool = False) -> User:
    """Like :func:`user_row`, refusing a frozen account."""
    user = user_row(uow, user_id, for_update=for_update)
    if user.status == "frozen":
        raise AccountFrozen("This account is frozen; contact customer service.")
    return user


def add_event(
    uow: UnitOfWork, user: User, kind: str, *, actor: str = "user", **detail: Any
) -> None:
    """Append to the account's audit trail (``detail`` must hold no sensitive values)."""
    uow.session.add(
        UserEvent(
            user_id=user.id,
            kind=kind,
            actor=actor,
            detail=json.dumps(detail, sort_keys=True, ensure_ascii=False) if detail else "",
            created_at=now_us(),
        )
    )
