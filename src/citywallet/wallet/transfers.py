"""Money between residents: P2P transfers and AA split bills.

Every payment here is one transaction: read both residents with the payer's PIN state and
lock both wallets (ascending account order) in one statement, check the PIN, count and check
the payer's tier limits (one upsert), post one ledger transfer whose account lock also
checks the payee's balance limit, write both history lines (one statement). A wrong PIN
rolls it all back and is counted on its own (``identity.run_confirmed``).
A split share is paid with the share's id as the ledger transfer id, so even a bug could
not pay one share twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import select

from citywallet.identity.service import UserView, get_user
from citywallet.inbox import service as inbox
from citywallet.inbox.kinds import SPLIT_REQUESTED
from citywallet.ledger import service as ledger
from citywallet.ledger.types import AccountState, Result, TransferCode, TransferSpec
from citywallet.money import Money
from citywallet.platform import outbox
from citywallet.platform.clock import now_us
from citywallet.platform.config import Settings, get_settings
from citywallet.platform.crypto import Encryptor
from citywallet.platform.db import UnitOfWork
from citywallet.platform.errors import Conflict, InvalidInput, RateLimited
from citywallet.wallet import history
from citywallet.wallet.accounts import CURRENCY
from citywallet.wallet.errors import InsufficientBalance, SplitNotFound
from citywallet.wallet.funding import validate_amount
from citywallet.wallet.limits import check_inflow, reserve_outflow
from citywallet.wallet.models import Split, SplitShare
from citywallet.wallet.people import Party, active_user, find_recipient, label, lock_parties, new_id
from citywallet.wallet.rules import even_split, validate_shares

NOTE_MAX = 100
REMINDER_TOPIC = "wallet.split_reminder"
SECOND_US = 1_000_000


@dataclass(frozen=True)
class TransferView:
    """A P2P transfer as its sender sees it."""

    id: str
    amount: int
    currency: str
    to_user_id: str
    to_label: str
    note: str
    status: str
    created_at: int


def _note(note: str) -> str:
    clean = " ".join(note.split())
    if len(clean) > NOTE_MAX:
        raise InvalidInput(f"A note has at most {NOTE_MAX} characters.", code="note_too_long")
    return clean


def _pay(
    uow: UnitOfWork,
    *,
    payer: Party,
    payee: Party,
    amount: int,
    transfer_id: str,
    reference: str,
    settings: Settings,
) -> None:
    """Move ``amount`` from payer to payee (wallets locked by :func:`lock_parties`) under
    the payer's limits and the payee's balance limit: the usage upsert, then the ledger
    post, whose account lock also reads the balances the limits look at."""
    if payee.user.status != "active" or payee.wallet_closed:  # frozen, or closed by its owner
        raise Conflict(
            "The recipient cannot receive money right now.", code="recipient_unavailable"
        )
    reserve_outflow(
        uow,
        user_id=payer.user.id,
        tier=payer.user.tier,
        amount=amount,
        settings=settings,
        moment=now_us(),
    )

    def guard(locked: Mapping[int, AccountState]) -> None:
        check_inflow(
            tier=payee.user.tier,
            account=locked[payee.account_id],
            amount=amount,
            settings=settings,
            recipient=True,
        )
        available = locked[payer.account_id].available
        if available < amount:
            raise InsufficientBalance(
                f"The wallet's available balance does not cover {Money(amount)}.",
                available=available,
                needed=amount,
            )

    [result] = ledger.post(
        uow,
        transfers=[
            TransferSpec(
                id=transfer_id,
                debit_account_id=payer.account_id,
                credit_account_id=payee.account_id,
                amount=amount,
                ledger=CURRENCY,
                code=TransferCode.P2P,
                reference=reference,
            )
        ],
        fresh=True,
        guard=guard,
    )
    if result is Result.EXCEEDS_CREDITS:
        raise InsufficientBalance("The wallet's available balance does not cover the amount.")
    if not result.on_books:
        raise RuntimeError(f"ledger refused payment {transfer_id}: {result.value}")


def _both_lines(
    uow: UnitOfWork,
    *,
    payer: UserView,
    payee: UserView,
    kinds: tuple[str, str],
    object_id: str,
    amount: int,
    note: str,
    reference: str | None = None,
) -> None:
    """The payer's and the payee's history lines of one payment (one statement)."""
    history.record_many(
        uow,
        [
            history.Line(
                user_id=side.id,
                object_id=object_id,
                kind=kind,
                amount=amount,
                currency=CURRENCY,
                status="succeeded",
                transfer_ids=(object_id,),
                counterparty_user_id=other.id,
                counterparty_label=label(other),
                note=note,
                reference=reference,
            )
            for side, other, kind in ((payer, payee, kinds[0]), (payee, payer, kinds[1]))
        ],
    )


def send_transfer(
    uow: UnitOfWork,
    *,
    user_id: str,
    to: str,
    amount: int,
    encryptor: Encryptor,
    note: str = "",
    currency: str = CURRENCY,
    settings: Settings | None = None,
    pin: str | None = None,
) -> TransferView:
    """Send money to another resident, by user id or mobile number. With ``pin``, the
    payment PIN is checked in this transaction (run it with ``identity.run_confirmed``);
    without, the caller confirmed it before."""
    cfg = settings if settings is not None else get_settings()
    validate_amount(amount, currency)
    clean_note = _note(note)
    payer, payee = lock_parties(uow, user_id=user_id, to=to, pin=pin, encryptor=encryptor)
    assert payee is not None
    if payee.user.id == payer.user.id:
        raise InvalidInput("You cannot send money to yourself.", code="cannot_pay_self")
    transfer_id = new_id("p2p")
    _pay(
        uow,
        payer=payer,
        payee=payee,
        amount=amount,
        transfer_id=transfer_id,
        reference=transfer_id,
        settings=cfg,
    )
    _both_lines(
        uow,
        payer=payer.user,
        payee=payee.user,
        kinds=("transfer_out", "transfer_in"),
        object_id=transfer_id,
        amount=amount,
        note=clean_note,
    )
    return TransferView(
        transfer_id,
        amount,
        CURRENCY,
        payee.user.id,
        label(payee.user),
        clean_note,
        "succeeded",
        now_us(),
    )


# --- AA split -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ShareView:
    """One person's share of a split."""

    id: str
    user_id: str
    label: str
    amount: int
    status: str  # "unpaid" | "paid" | "cancelled"
    paid_at: int | None


@dataclass(frozen=True)
class SplitView:
    """A split bill, as its creator or a participant sees it."""

    id: str
    creator_id: str
    creator_label: str
    total: int
    currency: str
    note: str
    status: str  # "open" | "completed" | "cancelled"
    paid_amount: int
    paid_count: int
    shares: list[ShareView]
    created_at: int
    updated_at: int


@dataclass(frozen=True)
class ShareRequest:
    """Who owes a share: a user id or phone number, and the amount (``None``: even split)."""

    to: str
    amount: int | None = None


def create_split(
    uow: UnitOfWork,
    *,
    user_id: str,
    total: int,
    shares: Sequence[ShareRequest],
    encryptor: Encryptor,
    note: str = "",
    currency: str = CURRENCY,
    settings: Settings | None = None,
) -> SplitView:
    """Ask N people for exact shares of ``total``: every share given (summing to it), or
    none (split evenly). The creator may list themself: that share counts as paid."""
    cfg = settings if settings is not None else get_settings()
    validate_amount(total, currency)
    clean_note = _note(note)
    creator = active_user(uow, user_id)
    given = [s.amount for s in shares]
    if all(a is None for a in given):
        if not 1 <= len(shares) <= cfg.split_max_shares:
            raise InvalidInput(
                f"A split has 1 to {cfg.split_max_shares} shares.", code="invalid_share_count"
            )
        amounts = even_split(total, len(shares))
    elif any(a is None for a in given):
        raise InvalidInput(
            "Give every share an amount, or none to split evenly.", code="invalid_share_amount"
        )
    else:
        amounts = [int(a) for a in given if a is not None]
    validate_shares(total, amounts, max_shares=cfg.split_max_shares)
    people = [find_recipient(uow, s.to, encryptor) for s in shares]
    if len({p.id for p in people}) != len(people):
        raise InvalidInput("Each person appears once in a split.", code="duplicate_participant")
    moment = now_us()
    split = Split(
        public_id=new_id("spl"),
        creator_id=creator.id,
        total=total,
        currency=CURRENCY,
        note=clean_note,
        status="open",
        created_at=moment,
        updated_at=moment,
    )
    uow.session.add(split)
    uow.session.flush()
    for position, (person, amount) in enumerate(zip(people, amounts, strict=True)):
        own = person.id == creator.id
        uow.session.add(
            SplitShare(
                public_id=new_id("shr"),
                split_id=split.id,
                position=position,
                user_id=person.id,
                amount=amount,
                status="paid" if own else "unpaid",
                paid_at=moment if own else None,
            )
        )
    asked = {"currency": CURRENCY, "from": label(creator)}  # the message centre, one insert
    inbox.record_each(
        uow,
        SPLIT_REQUESTED,
        [
            (person.id, split.public_id, asked | {"amount": amount})
            for person, amount in zip(people, amounts, strict=True)
            if person.id != creator.id
        ],
    )
    uow.session.flush()
    _refresh_status(uow, split)
    return _split_view(uow, split, {p.id: p for p in [creator, *people]})


def _split_row(uow: UnitOfWork, *, user_id: str, split_id: str, for_update: bool = False) -> Split:
    """A split its creator or one of its participants may see (``split_not_found`` else)."""
    query = select(Split).where(Split.public_id == split_id)
    if for_update:
        query = query.with_for_update().execution_options(populate_existing=True)
    split = uow.session.scalar(query)
    if split is None:
        raise SplitNotFound("No such split bill.")
    if split.creator_id != user_id:
        member = uow.session.scalar(
            select(SplitShare.id).where(
                SplitShare.split_id == split.id, SplitShare.user_id == user_id
            )
        )
        if member is None:
            raise SplitNotFound("No such split bill.")
    return split


def _shares(uow: UnitOfWork, split: Split, *, for_update: bool = False) -> list[SplitShare]:
    query = select(SplitShare).where(SplitShare.split_id == split.id).order_by(SplitShare.position)
    if for_update:
        query = query.with_for_update().execution_options(populate_existing=True)
    return list(uow.session.scalars(query))


def _refresh_status(uow: UnitOfWork, split: Split) -> None:
    if split.status == "cancelled":
        return
    if all(s.status != "unpaid" for s in _shares(uow, split)):
        split.status, split.updated_at = "completed", now_us()
        uow.session.flush()


def _split_view(
    uow: UnitOfWork, split: Split, known: dict[str, UserView] | None = None
) -> SplitView:
    people = dict(known or {})

    def person(user_id: str) -> UserView:
        if user_id not in people:
            people[user_id] = get_user(uow, user_id=user_id)
        return people[user_id]

    shares = _shares(uow, split)
    paid = [s for s in shares if s.status == "paid"]
    return SplitView(
        id=split.public_id,
        creator_id=split.creator_id,
        creator_label=label(person(split.creator_id)),
        total=split.total,
        currency=split.currency,
        note=split.note,
        status=split.status,
        paid_amount=sum(s.amount for s in paid),
        paid_count=len(paid),
        shares=[
            ShareView(
                s.public_id, s.user_id, label(person(s.user_id)), s.amount, s.status, s.paid_at
            )
            for s in shares
        ],
        created_at=split.created_at,
        updated_at=split.updated_at,
    )


def get_split(uow: UnitOfWork, *, user_id: str, split_id: str) -> SplitView:
    """A split the user created or is part of."""
    return _split_view(uow, _split_row(uow, user_id=user_id, split_id=split_id))


def list_splits(uow: UnitOfWork, *, user_id: str, limit: int = 20) -> list[SplitView]:
    """Splits the user created or owes a share of, newest first."""
    member_of = select(SplitShare.split_id).where(SplitShare.user_id == user_id)
    rows = uow.session.scalars(
        select(Split)
        .where((Split.creator_id == user_id) | Split.id.in_(member_of))
        .order_by(Split.id.desc())
        .limit(max(1, min(limit, 100)))
    )
    return [_split_view(uow, row) for row in rows]


def pay_share(
    uow: UnitOfWork,
    *,
    user_id: str,
    split_id: str,
    settings: Settings | None = None,
    pin: str | None = None,
    encryptor: Encryptor | None = None,
) -> SplitView:
    """Pay the user's share of a split to its creator. With ``pin``, the payment PIN is
    checked in this transaction (``identity.run_confirmed``); without, it was before."""
    cfg = settings if settings is not None else get_settings()
    split = _split_row(uow, user_id=user_id, split_id=split_id, for_update=True)
    share = next((s for s in _shares(uow, split, for_update=True) if s.user_id == user_id), None)
    if share is None:
        raise SplitNotFound("You have no share in this split bill.")
    if share.status == "paid":
        raise Conflict("Your share is already paid.", code="share_already_paid")
    if share.status == "cancelled" or split.status == "cancelled":
        raise Conflict("This split bill was cancelled.", code="split_cancelled")
    payer, creator = lock_parties(
        uow, user_id=user_id, to=split.creator_id, pin=pin, encryptor=encryptor
    )
    assert creator is not None
    _pay(
        uow,
        payer=payer,
        payee=creator,
        amount=share.amount,
        transfer_id=share.public_id,
        reference=split.public_id,
        settings=cfg,
    )
    moment = now_us()
    share.status, share.paid_at, share.transfer_id = "paid", moment, share.public_id
    split.updated_at = moment
    _both_lines(
        uow,
        payer=payer.user,
        payee=creator.user,
        kinds=("split_payment", "split_collection"),
        object_id=share.public_id,
        amount=share.amount,
        note=split.note,
        reference=split.public_id,
    )
    uow.session.flush()
    _refresh_status(uow, split)
    return _split_view(uow, split, {payer.user.id: payer.user, creator.user.id: creator.user})


def cancel_split(
    uow: UnitOfWork, *, user_id: str, split_id: str, share_ids: Sequence[str] = ()
) -> SplitView:
    """The creator cancels unpaid shares (``share_ids``) or, with none given, the whole
    split; paid shares stay paid (settle those between yourselves with a transfer)."""
    split = _split_row(uow, user_id=user_id, split_id=split_id, for_update=True)
    if split.creator_id != user_id:
        raise SplitNotFound("No such split bill.")  # participants cannot cancel
    if split.status != "open":
        raise Conflict(f"This split bill is already {split.status}.", code="split_not_open")
    shares = _shares(uow, split, for_update=True)
    by_id = {s.public_id: s for s in shares}
    chosen = [by_id.get(i) for i in share_ids] if share_ids else shares
    if any(s is None for s in chosen):
        raise InvalidInput("That share is not part of this split.", code="share_not_found")
    for share in chosen:
        assert share is not None
        if share_ids and share.status != "unpaid":
            raise Conflict("Only unpaid shares can be cancelled.", code="share_not_unpaid")
        if share.status == "unpaid":
            share.status = "cancelled"
    split.updated_at = now_us()
    if not share_ids:
        split.status = "cancelled"
    uow.session.flush()
    _refresh_status(uow, split)
    return _split_view(uow, split)


def remind_split(
    uow: UnitOfWork, *, user_id: str, split_id: str, settings: Settings | None = None
) -> int:
    """Remind every participant who has not paid (through the outbox, at most once per
    ``split_remind_interval_seconds`` each); returns how many reminders were queued."""
    cfg = settings if settings is not None else get_settings()
    split = _split_row(uow, user_id=user_id, split_id=split_id, for_update=True)
    if split.creator_id != user_id:
        raise SplitNotFound("No such split bill.")
    if split.status != "open":
        raise Conflict(f"This split bill is already {split.status}.", code="split_not_open")
    moment = now_us()
    interval = cfg.split_remind_interval_seconds * SECOND_US
    unpaid = [s for s in _shares(uow, split, for_update=True) if s.status == "unpaid"]
    due = [
        s for s in unpaid if s.last_reminded_at is None or s.last_reminded_at + interval <= moment
    ]
    if unpaid and not due:
        wait = min(int(s.last_reminded_at or 0) + interval for s in unpaid) - moment
        raise RateLimited(
            "Everyone was reminded recently.",
            retry_after=max(1, -(-wait // SECOND_US)),
            code="reminder_too_soon",
        )
    for share in due:
        share.last_reminded_at = moment
        outbox.enqueue(
            uow,
            topic=REMINDER_TOPIC,
            payload={
                "split_id": split.public_id,
                "share_id": share.public_id,
                "user_id": share.user_id,
                "creator_id": split.creator_id,
                "amount": share.amount,
                "currency": split.currency,
            },
        )
    uow.session.flush()
    return len(due)
