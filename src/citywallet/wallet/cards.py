"""Bank cards: bind after a four-element check, list masked, unbind.

The card number is kept only as an ``Encryptor`` envelope bound to the card's public id,
with a keyed lookup hash (to refuse binding the same card twice), its BIN and last four
digits. The phone number reserved at the bank is checked by the bank and not stored. No
CVV is ever asked for: debit-card quick payment in China does not use one.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from citywallet.identity.rules import normalize_phone
from citywallet.identity.service import VerifiedIdentity, record_external_checks
from citywallet.platform import ratelimit
from citywallet.platform.clock import now_us
from citywallet.platform.config import Settings, get_settings
from citywallet.platform.crypto import Encryptor
from citywallet.platform.db import Database, UnitOfWork
from citywallet.platform.errors import Conflict, InvalidInput
from citywallet.wallet.bank import Bank
from citywallet.wallet.errors import BankUnavailable, CardCheckFailed, CardNotFound
from citywallet.wallet.models import BankCard, Funding
from citywallet.wallet.people import active_user, new_id, verified
from citywallet.wallet.rules import bank_for, normalize_card_number

BIND_ATTEMPTS = ratelimit.Rule("card_bind", 10, 86_400, "card_bind_rate_limited")


@dataclass(frozen=True)
class CardView:
    """A bound card as its owner sees it (masked)."""

    id: str
    bank_code: str
    bank_name: str
    number_masked: str
    last4: str
    holder_name_masked: str
    status: str
    created_at: int


def card_view(row: BankCard) -> CardView:
    """The masked view of a card row."""
    return CardView(
        id=row.public_id,
        bank_code=row.bank_code,
        bank_name=row.bank_name,
        number_masked=row.bin + "*" * (row.number_length - 10) + row.last4,
        last4=row.last4,
        holder_name_masked=row.holder_name_masked,
        status=row.status,
        created_at=row.created_at,
    )


def card_lookup_hash(encryptor: Encryptor, number: str) -> str:
    """The keyed hash that finds a card number without storing it in clear."""
    return encryptor.lookup_hash(f"bank_card:{number}")


def bind_card(
    db: Database,
    *,
    bank: Bank,
    user_id: str,
    card_number: str,
    phone: str,
    encryptor: Encryptor,
    settings: Settings | None = None,
) -> CardView:
    """Bind a debit card: Luhn, known BIN, then the bank's four-element check with the
    user's verified name and ID number; each successful check counts toward the tier.

    The bank is called outside any transaction; attempts are limited per user per day.
    """
    cfg = settings if settings is not None else get_settings()
    number = normalize_card_number(card_number)
    bank_info = bank_for(number)
    if bank_info is None:
        raise InvalidInput(
            "Cards of this bank cannot be bound yet (debit cards of the major banks only).",
            code="card_not_supported",
        )
    reserved_phone = normalize_phone(phone)
    lookup = card_lookup_hash(encryptor, number)

    def precheck(uow: UnitOfWork) -> VerifiedIdentity:
        active_user(uow, user_id)
        identity = verified(uow, user_id, encryptor)
        _refuse_duplicate(uow, user_id, lookup, cfg)
        ratelimit.hit(uow, BIND_ATTEMPTS, user_id)  # committed: every bank check costs
        return identity

    identity = db.transact(precheck)
    check = bank.check_card(
        card_number=number, name=identity.name, id_number=identity.id_number, phone=reserved_phone
    )
    if check.reason == "unavailable":
        raise BankUnavailable("The bank did not answer the card check; try again.")
    if not check.matched:
        raise CardCheckFailed(
            "The bank says this card, your name, ID number and the phone number reserved at "
            "the bank do not belong together.",
            reason=check.reason,
        )

    def store(uow: UnitOfWork) -> CardView:
        user = active_user(uow, user_id)
        _refuse_duplicate(uow, user_id, lookup, cfg)
        public_id = new_id("card")
        row = BankCard(
            public_id=public_id,
            user_id=user_id,
            card_enc=encryptor.encrypt(number.encode(), aad=public_id.encode()),
            card_hash=lookup,
            bin=number[:6],
            last4=number[-4:],
            number_length=len(number),
            bank_code=bank_info.code,
            bank_name=bank_info.name,
            holder_name_masked=user.name_masked or "",
            holder_id_hash=identity.id_hash,
            check_ref=check.bank_ref,
            status="active",
            created_at=now_us(),
        )
        uow.session.add(row)
        uow.session.flush()
        record_external_checks(
            uow,
            user_id=user_id,
            count=2,
            kind=f"bank_card:{lookup[:32]}",
            thresholds=cfg.tier_checks,
        )
        return card_view(row)

    try:
        return db.transact(store)
    except IntegrityError:  # a concurrent binding of the same card won
        raise _already_bound() from None


def _already_bound() -> Conflict:
    return Conflict("This card is already bound to your wallet.", code="card_already_bound")


def _refuse_duplicate(uow: UnitOfWork, user_id: str, lookup: str, settings: Settings) -> None:
    active = select(BankCard.card_hash).where(
        BankCard.user_id == user_id, BankCard.status == "active"
    )
    hashes = set(uow.session.scalars(active))
    if lookup in hashes:
        raise _already_bound()
    if len(hashes) >= settings.max_bank_cards:
        raise Conflict(
            f"At most {settings.max_bank_cards} cards can be bound.", code="too_many_cards"
        )


def list_cards(uow: UnitOfWork, *, user_id: str) -> list[CardView]:
    """The user's bound cards, newest first."""
    rows = uow.session.scalars(
        select(BankCard)
        .where(BankCard.user_id == user_id, BankCard.status == "active")
        .order_by(BankCard.id.desc())
    )
    return [card_view(row) for row in rows]


def card_row(uow: UnitOfWork, *, user_id: str, card_id: str, for_update: bool = False) -> BankCard:
    """The user's active card ``card_id`` (``card_not_found`` for anyone else's)."""
    query = select(BankCard).where(
        BankCard.public_id == card_id, BankCard.user_id == user_id, BankCard.status == "active"
    )
    if for_update:
        query = query.with_for_update().execution_options(populate_existing=True)
    row = uow.session.scalar(query)
    if row is None:
        raise CardNotFound("No such card.")
    return row


def get_card(uow: UnitOfWork, *, user_id: str, card_id: str) -> CardView:
    """One of the user's bound cards."""
    return card_view(card_row(uow, user_id=user_id, card_id=card_id))


def card_number(encryptor: Encryptor, row: BankCard) -> str:
    """The clear card number, for a call to the bank only."""
    if row.card_enc is None:
        raise CardNotFound("This card is no longer bound.")
    return encryptor.decrypt(row.card_enc, aad=row.public_id.encode()).decode()


def unbind_card(uow: UnitOfWork, *, user_id: str, card_id: str) -> CardView:
    """Unbind a card and forget its number; refused while money is on its way through it."""
    row = card_row(uow, user_id=user_id, card_id=card_id, for_update=True)
    in_flight = uow.session.scalar(
        select(func.count())
        .select_from(Funding)
        .where(Funding.card_id == card_id, Funding.status.in_(("processing", "unknown")))
    )
    if in_flight:
        raise Conflict(
            "Money is on its way through this card; unbind it once that has settled.",
            code="card_in_use",
        )
    row.status, row.unbound_at, row.card_enc = "unbound", now_us(), None
    uow.session.flush()
    return card_view(row)
