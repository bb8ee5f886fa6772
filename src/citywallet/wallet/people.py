"""The residents the wallet serves, through identity's public contract."""

from __future__ import annotations

import secrets

from citywallet.identity.errors import AccountClosed, AccountFrozen, UserNotFound
from citywallet.identity.service import (
    UserView,
    VerifiedIdentity,
    find_user_by_phone,
    get_user,
    verified_identity,
)
from citywallet.platform.crypto import Encryptor
from citywallet.platform.db import UnitOfWork
from citywallet.wallet.errors import RealNameRequired, RecipientNotFound


def new_id(prefix: str) -> str:
    """An opaque public id such as ``top_3qW…`` (never a sequence number)."""
    return f"{prefix}_{secrets.token_urlsafe(15)}"


def active_user(uow: UnitOfWork, user_id: str) -> UserView:
    """The user, refusing a frozen account (``account_frozen``) and a closed one
    (``account_closed``), 403 both."""
    user = get_user(uow, user_id=user_id)
    if user.status == "frozen":
        raise AccountFrozen("This account is frozen: it cannot move money.")
    if user.status == "closed":
        raise AccountClosed("This account is closed: it cannot move money.")
    return user


def verified(uow: UnitOfWork, user_id: str, encryptor: Encryptor) -> VerifiedIdentity:
    """The user's verified identity (``real_name_required`` if there is none)."""
    identity = verified_identity(uow, user_id=user_id, encryptor=encryptor)
    if identity is None:
        raise RealNameRequired("Verify your real name first.")
    return identity


def find_recipient(uow: UnitOfWork, to: str, encryptor: Encryptor) -> UserView:
    """The user a payment goes to, by user id (``usr_…``) or mainland mobile number."""
    if to.startswith("usr_"):
        try:
            return get_user(uow, user_id=to)
        except UserNotFound:
            raise RecipientNotFound("Nobody has a wallet with that id.") from None
    user = find_user_by_phone(uow, phone=to, encryptor=encryptor)
    if user is None:
        raise RecipientNotFound("Nobody has a wallet with that phone number.")
    return user


def label(user: UserView) -> str:
    """How a counterparty is shown: masked real name and masked phone."""
    if user.name_masked:
        return f"{user.name_masked} ({user.phone_masked})"
    return user.phone_masked
