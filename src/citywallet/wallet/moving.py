"""A resident's wallet moving to another cell, as the wallet sees it (docs/interop.md,
"Moving a resident between cells").

At the old cell: :func:`move_blockers` says why a wallet cannot move now (money on its way,
a red packet still open, campaign money, an open split); :func:`export_wallet` reads the
balance, the bound cards (numbers in clear, for the signed package) and the history lines;
:func:`close_moved` closes the emptied wallet. At the new cell: :func:`import_wallet` opens
the wallet, binds the cards again under this cell's keys (the bank's four-element check
already passed: its reference moves with the card) and writes the old history lines,
read-only, marked with the cell they came from (``origin``).

Restricted campaign money does **not** move: it may be spent only at the campaign's
merchants of the old cell and goes back to its funder at expiry, so a wallet holding some
is refused until it is spent or expired (``wallet_has_restricted``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, or_, select

from citywallet.ledger import service as ledger
from citywallet.platform.clock import now_us
from citywallet.platform.crypto import Encryptor
from citywallet.platform.db import UnitOfWork
from citywallet.platform.errors import Conflict
from citywallet.wallet import accounts
from citywallet.wallet.cards import card_lookup_hash, card_number
from citywallet.wallet.closure import WalletHasPending, settled
from citywallet.wallet.history import KINDS
from citywallet.wallet.models import (
    Activity,
    BankCard,
    RestrictedBalance,
    Split,
    SplitShare,
    Wallet,
)
from citywallet.wallet.people import new_id

HISTORY_KINDS = frozenset(KINDS)


class WalletHasRestricted(Conflict):
    """Campaign money is left: it stays at this cell until spent or expired."""

    code = "wallet_has_restricted"
    title = "Campaign money left"


class WalletHasOpenSplits(Conflict):
    """A split bill the resident created or owes a share of is still open."""

    code = "wallet_has_open_splits"
    title = "Split bills still open"


@dataclass(frozen=True)
class CardExport:
    number: str
    bank_code: str
    bank_name: str
    check_ref: str
    bound_at: int


@dataclass(frozen=True)
class LineExport:
    object_id: str
    kind: str
    amount: int
    fee: int
    currency: str
    status: str
    counterparty_label: str
    note: str
    reference: str | None
    created_at: int


@dataclass(frozen=True)
class WalletExport:
    balance: int
    cards: list[CardExport]
    lines: list[LineExport]


def move_blockers(uow: UnitOfWork, *, user_id: str) -> int:
    """Lock the wallet and refuse a move while anything is unfinished; returns the balance
    that will move (the wallet opened if it never was: balance 0)."""
    account = accounts.ensure_wallet(uow, user_id=user_id)
    accounts.lock_wallets(uow, user_ids=[user_id])
    view = settled(
        uow, user_id=user_id, account=account,
        pending="Money is on its way in or out of this wallet (a top-up, a withdrawal or a "
        "transfer through the switch); move it once that is settled.",
        packets="{n} red packet(s) the resident sent are not all claimed yet.",
    )  # fmt: skip
    restricted = [
        b.ledger_account_id
        for b in uow.session.scalars(
            select(RestrictedBalance).where(
                RestrictedBalance.user_id == user_id, RestrictedBalance.status == "active"
            )
        )
    ]
    left = sum(v.balance for v in ledger.get_accounts(uow, ids=restricted).values())
    if left:
        raise WalletHasRestricted(
            "Campaign money is left in this wallet: it can be spent only at this cell's "
            "merchants, so the wallet moves once it is spent or expired.",
            restricted=left,
        )
    open_splits = uow.session.scalar(
        select(func.count())
        .select_from(SplitShare)
        .join(Split, Split.id == SplitShare.split_id)
        .where(
            Split.status == "open",
            or_(Split.creator_id == user_id, SplitShare.user_id == user_id),
            SplitShare.status == "unpaid",
        )
    )
    if open_splits:
        raise WalletHasOpenSplits(
            "A split bill the resident created or owes a share of is still open.",
            open_shares=int(open_splits),
        )
    return view.balance


def export_wallet(uow: UnitOfWork, *, user_id: str, encryptor: Encryptor) -> WalletExport:
    """The balance, the bound cards and every history line, oldest first."""
    account = accounts.find_wallet(uow, user_id=user_id)
    view = ledger.get_account(uow, account_id=account) if account is not None else None
    cards = [
        CardExport(
            card_number(encryptor, row), row.bank_code, row.bank_name, row.check_ref, row.created_at
        )
        for row in uow.session.scalars(
            select(BankCard)
            .where(BankCard.user_id == user_id, BankCard.status == "active")
            .order_by(BankCard.id)
        )
    ]
    lines = [
        LineExport(
            r.object_id,
            r.kind,
            r.amount,
            r.fee,
            r.currency,
            r.status,
            r.counterparty_label,
            r.note,
            r.reference,
            r.created_at,
        )
        for r in uow.session.scalars(
            select(Activity).where(Activity.user_id == user_id).order_by(Activity.id)
        )
    ]
    return WalletExport(view.balance if view is not None else 0, cards, lines)


def history_count(uow: UnitOfWork, *, user_id: str) -> int:
    """How many history lines the resident has."""
    count = uow.session.scalar(
        select(func.count()).select_from(Activity).where(Activity.user_id == user_id)
    )
    return int(count or 0)


def import_wallet(
    uow: UnitOfWork,
    *,
    user_id: str,
    origin: str,
    cards: Sequence[CardExport],
    lines: Sequence[LineExport],
    holder_name_masked: str,
    holder_id_hash: str,
    encryptor: Encryptor,
) -> None:
    """Open the moved-in resident's wallet with their cards and old history (``origin``)."""
    accounts.ensure_wallet(uow, user_id=user_id)
    for card in cards:
        public_id = new_id("card")
        uow.session.add(
            BankCard(
                public_id=public_id, user_id=user_id,
                card_enc=encryptor.encrypt(card.number.encode(), aad=public_id.encode()),
                card_hash=card_lookup_hash(encryptor, card.number), bin=card.number[:6],
                last4=card.number[-4:], number_length=len(card.number),
                bank_code=card.bank_code, bank_name=card.bank_name,
                holder_name_masked=holder_name_masked, holder_id_hash=holder_id_hash,
                check_ref=card.check_ref, status="active", created_at=card.bound_at,
            )
        )  # fmt: skip
    moment = now_us()
    for line in lines:
        uow.session.add(
            Activity(
                user_id=user_id, object_id=line.object_id, kind=line.kind, amount=line.amount,
                fee=line.fee, currency=line.currency, status=line.status,
                counterparty_user_id=None, counterparty_label=line.counterparty_label,
                note=line.note, reference=line.reference, transfer_ids=json.dumps([]),
                created_at=line.created_at, updated_at=moment, origin=origin,
            )
        )  # fmt: skip
    uow.session.flush()


def close_moved(uow: UnitOfWork, *, user_id: str) -> None:
    """Close the emptied wallet of a resident who moved (nothing is left, nothing pending)."""
    account = accounts.lock_wallets(uow, user_ids=[user_id])[user_id]
    view = ledger.get_account(uow, account_id=account)
    assert view is not None
    if view.balance or view.debits_pending or view.credits_pending:
        raise WalletHasPending("The wallet still holds money; it cannot close as moved.")
    wallet = uow.session.scalar(select(Wallet).where(Wallet.user_id == user_id))
    assert wallet is not None
    if wallet.closed_at is None:
        wallet.closed_at = now_us()
        uow.session.flush()
