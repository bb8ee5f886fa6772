"""Closing a wallet at its owner's request.

DOMAIN §5: unused campaign money goes back to the funder at expiry, "also when a resident
closed the wallet early". Closing is one transaction:

0. with the owner's ``pin``, check the payment PIN (a wrong one rolls it all back and is
   counted on its own: ``identity.run_confirmed``);
1. refuse a frozen or closed account (``account_frozen`` / ``account_closed``, 403);
2. lock the wallet row — the lock every money movement of this resident takes first, so
   none of their payments, transfers or refunds runs meanwhile;
3. refuse while money is on its way in or out (409 ``wallet_has_pending``: a top-up or
   withdrawal waits for the bank), while a red packet the resident sent is still open (409
   ``wallet_has_open_red_packets``: its unclaimed shares come back to this wallet within
   24 h) or while the own balance is not zero (409 ``wallet_not_empty``, with
   ``balance``): only the resident can say where their own money goes, so they withdraw
   or spend it first;
4. give every active restricted balance back to its funder
   (:func:`citywallet.wallet.restricted.reclaim_for_user`, exactly once);
5. mark the wallet closed and close the identity account (status ``closed``, every session
   ended, an event recorded: ``identity.service.close_account``).

A closed wallet receives nothing more: a transfer to it answers ``recipient_unavailable``,
a merchant's refund of the resident's own money answers ``payer_wallet_closed`` (the
merchant pays it back another way), and the restricted part of a refund goes to the funder.
Callers that credit a wallet check :func:`wallet_closed` after locking it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select

from citywallet.identity.service import close_account, verify_pin
from citywallet.ledger import service as ledger
from citywallet.ledger.service import AccountView
from citywallet.money import Money
from citywallet.platform.clock import now_us
from citywallet.platform.crypto import Encryptor
from citywallet.platform.db import UnitOfWork
from citywallet.platform.errors import Conflict
from citywallet.wallet import accounts, restricted
from citywallet.wallet.accounts import CURRENCY
from citywallet.wallet.models import RestrictedBalance, Wallet
from citywallet.wallet.people import active_user


class WalletNotEmpty(Conflict):
    """The wallet still holds the resident's own money (``balance``): withdraw it first."""

    code = "wallet_not_empty"
    title = "Wallet not empty"


class WalletHasOpenRedPackets(Conflict):
    """A red packet the resident sent may still return shares to this wallet."""

    code = "wallet_has_open_red_packets"
    title = "Red packets still open"


class WalletHasPending(Conflict):
    """A top-up or withdrawal still waits for the bank: close once it is settled."""

    code = "wallet_has_pending"
    title = "Wallet has pending money"


@dataclass(frozen=True)
class ClosureView:
    """A closed wallet, and what went back to campaign funders."""

    user_id: str
    currency: str
    closed_at: int
    restricted_returned: int  # restricted money given back to its funders (fen)
    restricted_balances: int  # how many restricted balances were given back


def wallet_closed(uow: UnitOfWork, *, user_id: str) -> bool:
    """Whether the resident closed their wallet (read it with the wallet row locked)."""
    closed_at = uow.session.scalar(select(Wallet.closed_at).where(Wallet.user_id == user_id))
    return closed_at is not None


def closed_among(uow: UnitOfWork, *, user_ids: Sequence[str]) -> set[str]:
    """Which of ``user_ids`` (up to a batch of some thousands) closed their wallet. Their
    wallet rows are share-locked, in the order every money movement locks them, so none of
    them closes before the caller commits what it gives them (campaign issuance)."""
    wanted = sorted(set(user_ids))
    if not wanted:
        return set()
    if uow.dialect == "postgresql":  # one array parameter: no 10,000-bind IN list to compile
        rows = (
            uow.session.connection()
            .exec_driver_sql(
                "SELECT user_id, closed_at FROM wallet_wallets "
                "WHERE user_id = ANY(%(ids)s::text[]) ORDER BY ledger_account_id FOR SHARE",
                {"ids": wanted},
            )
            .all()
        )
    else:
        rows = uow.session.execute(
            select(Wallet.user_id, Wallet.closed_at)
            .where(Wallet.user_id.in_(wanted))
            .order_by(Wallet.ledger_account_id)
        ).all()
    return {str(user_id) for user_id, closed_at in rows if closed_at is not None}


def settled(
    uow: UnitOfWork, *, user_id: str, account: int, pending: str, packets: str
) -> AccountView:
    """The resident's wallet ``account`` (locked by the caller), or a refusal while money
    is on its way in or out (``pending``) or a red packet they sent is open (``packets``,
    ``{n}`` the count): what closing and moving a wallet both wait for."""
    view = ledger.get_account(uow, account_id=account)
    assert view is not None
    if view.debits_pending or view.credits_pending:
        raise WalletHasPending(
            pending, pending_incoming=view.credits_pending, pending_outgoing=view.debits_pending
        )
    # redpacket builds on wallet, so it is imported here, where closing asks it
    from citywallet.redpacket.service import open_packets_count

    if count := open_packets_count(uow, user_id=user_id):
        raise WalletHasOpenRedPackets(packets.format(n=count), open_red_packets=count)
    return view


def close_wallet(
    uow: UnitOfWork,
    *,
    user_id: str,
    actor: str = "user",
    now: int | None = None,
    pin: str | None = None,
    encryptor: Encryptor | None = None,
) -> ClosureView:
    """Close the resident's wallet and account for good: the own balance must be zero with
    nothing pending; restricted money goes back to its funders. With ``pin``, the payment
    PIN is checked in this transaction (``identity.run_confirmed``); without, it was before
    (or an operator closes it)."""
    if pin is not None:
        verify_pin(uow, user_id=user_id, pin=pin, encryptor=encryptor)
    active_user(uow, user_id)
    moment = now if now is not None else now_us()
    wallet_account = accounts.lock_wallets(uow, user_ids=[user_id])[user_id]
    view = settled(
        uow, user_id=user_id, account=wallet_account,
        pending="A top-up or withdrawal is still waiting for the bank; close the wallet once "
        "it is settled.",
        packets="{n} red packet(s) you sent are not all claimed yet; their unclaimed shares "
        "come back to this wallet within 24 hours. Close the wallet after that.",
    )  # fmt: skip
    if view.balance:
        raise WalletNotEmpty(
            f"The wallet still holds {Money(view.balance)}: withdraw it to your bank card "
            "or spend it first.",
            balance=view.balance,
            currency=CURRENCY,
        )
    count = restricted.reclaim_for_user(uow, user_id=user_id, now=moment)
    returned = uow.session.scalar(
        select(func.coalesce(func.sum(RestrictedBalance.reclaimed), 0)).where(
            RestrictedBalance.user_id == user_id,
            RestrictedBalance.reclaim_reason == "wallet_closed",
        )
    )
    wallet = uow.session.scalar(select(Wallet).where(Wallet.user_id == user_id))
    assert wallet is not None
    wallet.closed_at = moment
    close_account(uow, user_id=user_id, actor=actor)
    uow.session.flush()
    return ClosureView(user_id, CURRENCY, moment, int(returned or 0), count)
