"""The residents the wallet serves, through identity's public contract."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import Select, bindparam, exists, or_

from citywallet.identity.errors import AccountClosed, AccountFrozen, UserNotFound
from citywallet.identity.service import (
    UserView,
    VerifiedIdentity,
    check_pin,
    find_user_by_phone,
    get_user,
    mover_of,
    mover_select,
    phone_lookup_hash,
    verified_identity,
)
from citywallet.platform.crypto import Encryptor
from citywallet.platform.db import UnitOfWork
from citywallet.wallet import accounts
from citywallet.wallet.errors import RealNameRequired, RecipientNotFound
from citywallet.wallet.models import RestrictedBalance, Wallet


def new_id(prefix: str) -> str:
    """An opaque public id such as ``top_3qW…`` (never a sequence number)."""
    return f"{prefix}_{secrets.token_urlsafe(15)}"


def active_user(uow: UnitOfWork, user_id: str) -> UserView:
    """The user, refusing a frozen account (``account_frozen``) and a closed one
    (``account_closed``), 403 both."""
    user = get_user(uow, user_id=user_id)
    _refuse_inactive(user)
    return user


@dataclass(frozen=True)
class Party:
    """A resident on one side of a payment, their wallet locked: who they are, their
    wallet's ledger account, and whether they hold restricted money (campaign red packets)
    at all, so a payment looks for usable restricted balances only when there are some."""

    user: UserView
    account_id: int
    wallet_closed: bool
    has_restricted: bool


def lock_parties(
    uow: UnitOfWork,
    *,
    user_id: str,
    pin: str | None = None,
    to: str | None = None,
    encryptor: Encryptor | None = None,
) -> tuple[Party, Party | None]:
    """The payer (and the payee named by ``to``: a user id or mobile number) with their
    wallets locked in ascending account order, in **one** statement that also reads the
    payer's PIN state, masked real names and tiers. With ``pin``, the payer's PIN is checked
    here (a wrong one raises ``PinMismatch``: see ``identity.run_confirmed``). Refuses a
    frozen or closed payer, and an unknown payee (``recipient_not_found``).

    A wallet that is not opened yet (a resident's first payment) is opened first, then read
    again: the only case with more statements."""
    payee_hash = None
    if to is not None and not to.startswith("usr_"):
        payee_hash = phone_lookup_hash(to, encryptor)
    for attempt in range(2):
        by = "none" if to is None else ("phone" if payee_hash else "id")
        params = {"payer": user_id, "payee": payee_hash or to}
        rows = uow.session.connection().execute(_parties_statement(by), params).all()
        payer_row = next((r for r in rows if r.user_id == user_id), None)
        payee_row = next((r for r in rows if r.user_id != user_id), None)
        themself = payer_row is not None and (to == user_id or payee_hash == payer_row.phone_hash)
        if payee_row is None and to is not None and themself:
            payee_row = payer_row
        if (payer_row is not None and (to is None or payee_row is not None)) or attempt:
            break
        _open_wallets(uow, user_id=user_id, to=to, encryptor=encryptor)
    if payer_row is None:
        active_user(uow, user_id)  # says why: not found, frozen or closed
        raise AssertionError(f"no wallet for {user_id}")  # pragma: no cover
    payer = mover_of(payer_row)
    _refuse_inactive(payer.user)
    if pin is not None:
        check_pin(uow, payer.pin, pin, encryptor=encryptor)
    payee = None
    if to is not None:
        if payee_row is None:
            raise RecipientNotFound("Nobody has a wallet with that id or phone number.")
        payee = _party(payee_row)
    return _party(payer_row), payee


@cache
def _parties_statement(by: str) -> Select[Any]:
    """The statement of :func:`lock_parties`, built once per shape (``by``: no payee, a
    payee by user id, a payee by phone hash) with bound parameters, so a payment neither
    builds nor compiles it."""
    query = mover_select()
    cols = query.selected_columns
    matches = cols.user_id == bindparam("payer")
    if by == "id":
        matches = or_(matches, cols.user_id == bindparam("payee"))
    elif by == "phone":
        matches = or_(matches, cols.phone_hash == bindparam("payee"))
    restricted = (
        exists()
        .where(RestrictedBalance.user_id == Wallet.user_id, RestrictedBalance.status == "active")
        .label("has_restricted")
    )
    return (
        query.add_columns(Wallet.ledger_account_id, Wallet.closed_at, restricted)
        .join(Wallet, Wallet.user_id == cols.user_id)
        .where(matches)
        .order_by(Wallet.ledger_account_id)
        .with_for_update(of=Wallet)
    )


def _party(row: object) -> Party:
    mover = mover_of(row)
    return Party(
        mover.user,
        int(row.ledger_account_id),  # type: ignore[attr-defined]
        row.closed_at is not None,  # type: ignore[attr-defined]
        bool(row.has_restricted),  # type: ignore[attr-defined]
    )


def _open_wallets(
    uow: UnitOfWork, *, user_id: str, to: str | None, encryptor: Encryptor | None
) -> None:
    payer = active_user(uow, user_id)
    accounts.ensure_wallet(uow, user_id=payer.id)
    if to is not None:
        payee = find_recipient(uow, to, encryptor)
        accounts.ensure_wallet(uow, user_id=payee.id)


def _refuse_inactive(user: UserView) -> None:
    if user.status == "frozen":
        raise AccountFrozen("This account is frozen: it cannot move money.")
    if user.status in ("closed", "moved"):
        raise AccountClosed("This account is closed: it cannot move money.")


def verified(uow: UnitOfWork, user_id: str, encryptor: Encryptor) -> VerifiedIdentity:
    """The user's verified identity (``real_name_required`` if there is none)."""
    identity = verified_identity(uow, user_id=user_id, encryptor=encryptor)
    if identity is None:
        raise RealNameRequired("Verify your real name first.")
    return identity


def find_recipient(uow: UnitOfWork, to: str, encryptor: Encryptor | None) -> UserView:
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
