"""Merchant onboarding: apply, review, stores and terminals, API keys, webhook settings.

A merchant is owned by a real-name resident, its legal representative (most QR merchants in
China are sole proprietors, 个体工商户). Settlement goes to one of the owner's bound debit
cards: the bank has already matched that card to the owner's name and ID number, so the
payout's holder name is the owner's verified name. New merchants wait for an operator's
review (``citywallet merchant review``) unless ``merchant_auto_approve`` is set.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from citywallet.identity.rules import normalize_phone
from citywallet.ledger import service as ledger
from citywallet.ledger.types import AccountCode, AccountFlags
from citywallet.merchant import signing
from citywallet.merchant.errors import MerchantNotActive, MerchantNotFound, StoreNotFound
from citywallet.merchant.facts import forget_merchant
from citywallet.merchant.lookup import one_row
from citywallet.merchant.models import ApiKey, Merchant, Store, Terminal
from citywallet.merchant.netguard import NetguardError, check_url
from citywallet.merchant.rules import (
    clean_text,
    validate_fee_rate,
    validate_mcc,
    validate_uscc,
)
from citywallet.platform.clock import now_us
from citywallet.platform.config import Settings
from citywallet.platform.crypto import Encryptor
from citywallet.platform.db import UnitOfWork
from citywallet.platform.errors import Conflict, InvalidInput
from citywallet.platform.logging import get_logger
from citywallet.wallet.accounts import CURRENCY
from citywallet.wallet.cards import card_number, card_row
from citywallet.wallet.people import active_user, new_id, verified

Review = Literal["approve", "reject", "suspend", "reactivate", "close"]
TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "approve": (frozenset({"pending_review"}), "active"),
    "reject": (frozenset({"pending_review"}), "rejected"),
    "suspend": (frozenset({"active"}), "suspended"),
    "reactivate": (frozenset({"suspended"}), "active"),
    "close": (frozenset({"pending_review", "active", "suspended"}), "closed"),
}
MAX_STORES = 200
log = get_logger(__name__)  # operators' decisions
MAX_KEYS = 20


@dataclass(frozen=True)
class MerchantApplication:
    """What a resident submits to become a merchant."""

    name_zh: str
    name_en: str
    city_zh: str
    city_en: str
    uscc: str
    mcc: str
    district: str
    address: str
    contact_name: str
    contact_phone: str
    settlement_card_id: str
    notify_url: str | None = None


@dataclass(frozen=True)
class MerchantView:
    """A merchant as its owner sees it."""

    id: str
    owner_user_id: str
    name_zh: str
    name_en: str
    city_zh: str
    city_en: str
    uscc: str
    mcc: str
    district: str
    address: str
    contact_name: str
    settlement_card: str  # bank name and last four digits
    fee_rate_bp: int
    settle_days: int
    status: str
    status_reason: str
    notify_url: str | None
    created_at: int
    settlement_bank: str = ""  # the bank's name as the card row keeps it
    settlement_last4: str = ""


@dataclass(frozen=True)
class StoreView:
    """A store and its terminals."""

    id: str
    merchant_id: str
    name: str
    status: str
    terminals: list[tuple[str, str]]  # (terminal id, label)
    created_at: int


@dataclass(frozen=True)
class ApiKeyView:
    """An API key as listed (never its secret)."""

    id: str
    scheme: str
    label: str
    fingerprint: str
    status: str
    created_at: int
    last_used_at: int | None


@dataclass(frozen=True)
class NewApiKey:
    """A key just created: ``secret`` (HMAC secret, or Ed25519 private key) is shown once."""

    key: ApiKeyView
    secret: str


def merchant_view(row: Merchant) -> MerchantView:
    """The owner's view of a merchant row."""
    return MerchantView(
        id=row.public_id,
        owner_user_id=row.owner_user_id,
        name_zh=row.name_zh,
        name_en=row.name_en,
        city_zh=row.city_zh,
        city_en=row.city_en,
        uscc=row.uscc,
        mcc=row.mcc,
        district=row.district,
        address=row.address,
        contact_name=row.contact_name,
        settlement_card=f"{row.card_bank_name} ****{row.card_last4}",
        settlement_bank=row.card_bank_name,
        settlement_last4=row.card_last4,
        fee_rate_bp=row.fee_rate_bp,
        settle_days=row.settle_days,
        status=row.status,
        status_reason=row.status_reason,
        notify_url=row.notify_url,
        created_at=row.created_at,
    )


def valid_notify_url(url: str | None, settings: Settings) -> str | None:
    """A notify URL that passes the network guard (None stays None)."""
    if url is None or not url.strip():
        return None
    try:
        return check_url(url.strip(), allow_hosts=settings.webhook_allow_hosts)
    except NetguardError as exc:
        raise InvalidInput(str(exc), code=exc.code) from exc


def register_merchant(
    uow: UnitOfWork,
    *,
    user_id: str,
    application: MerchantApplication,
    encryptor: Encryptor,
    settings: Settings,
) -> MerchantView:
    """Apply to become a merchant; opens its ledger accounts and its first store."""
    active_user(uow, user_id)
    identity = verified(uow, user_id, encryptor)
    card = card_row(uow, user_id=user_id, card_id=application.settlement_card_id)
    uscc = validate_uscc(application.uscc)
    if uow.session.scalar(select(Merchant.id).where(Merchant.uscc == uscc)) is not None:
        raise Conflict(
            "A merchant with this unified social credit code exists already.",
            code="merchant_exists",
        )
    public_id = new_id("mch")
    receivable, settlement, fees = (
        ledger.create_account(
            uow,
            ledger=CURRENCY,
            code=code,
            flags=AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS,
            owner_ref=f"{public_id}:{kind}",
        )
        for code, kind in (
            (AccountCode.MERCHANT_RECEIVABLE, "receivable"),
            (AccountCode.MERCHANT_SETTLEMENT_PAYABLE, "settlement"),
            (AccountCode.FEE_REVENUE, "fees"),
        )
    )
    moment = now_us()
    aad = public_id.encode()
    row = Merchant(
        public_id=public_id,
        owner_user_id=user_id,
        name_zh=clean_text(application.name_zh, field="name_zh", max_length=60),
        name_en=clean_text(application.name_en, field="name_en", max_length=25, latin=True),
        city_zh=clean_text(application.city_zh, field="city_zh", max_length=15),
        city_en=clean_text(application.city_en, field="city_en", max_length=15, latin=True),
        uscc=uscc,
        mcc=validate_mcc(application.mcc),
        district=clean_text(application.district, field="district", max_length=40),
        address=clean_text(application.address, field="address", max_length=200),
        contact_name=clean_text(application.contact_name, field="contact_name", max_length=40),
        contact_phone_enc=encryptor.encrypt(
            normalize_phone(application.contact_phone).encode(), aad=aad
        ),
        card_enc=encryptor.encrypt(card_number(encryptor, card).encode(), aad=aad),
        card_last4=card.last4,
        card_bank_name=card.bank_name,
        card_holder=identity.name,
        fee_rate_bp=validate_fee_rate(settings.merchant_fee_rate_bp),
        settle_days=settings.merchant_settle_days,
        status="active" if settings.merchant_auto_approve else "pending_review",
        status_reason="approved automatically" if settings.merchant_auto_approve else "",
        receivable_account_id=receivable,
        settlement_account_id=settlement,
        fee_account_id=fees,
        webhook_secret_enc=encryptor.encrypt(_webhook_secret().encode(), aad=aad),
        notify_url=valid_notify_url(application.notify_url, settings),
        created_at=moment,
        updated_at=moment,
    )
    uow.session.add(row)
    try:
        uow.session.flush()
    except IntegrityError:  # a concurrent application with the same code won
        raise Conflict(
            "A merchant with this unified social credit code exists already.",
            code="merchant_exists",
        ) from None
    uow.session.add(
        Store(
            public_id=new_id("sto"),
            merchant_id=row.id,
            name=row.name_zh,
            status="active",
            created_at=moment,
        )
    )
    uow.session.flush()
    return merchant_view(row)


def _webhook_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def owned_merchant(
    uow: UnitOfWork, *, user_id: str, merchant_id: str, for_update: bool = False
) -> Merchant:
    """The owner's merchant (``merchant_not_found`` for anyone else's)."""
    return one_row(
        uow,
        select(Merchant).where(
            Merchant.public_id == merchant_id, Merchant.owner_user_id == user_id
        ),
        MerchantNotFound("No such merchant."),
        for_update=for_update,
    )


def merchant_by_pk(uow: UnitOfWork, merchant_pk: int) -> Merchant:
    """A merchant by its internal key (for callers already authenticated as it)."""
    row = uow.session.get(Merchant, merchant_pk)
    if row is None:
        raise MerchantNotFound("No such merchant.")
    return row


def merchant_by_public_id(
    uow: UnitOfWork, merchant_id: str, *, for_update: bool = False
) -> Merchant:
    """A merchant by public id (operators, payment codes)."""
    return one_row(
        uow,
        select(Merchant).where(Merchant.public_id == merchant_id),
        MerchantNotFound("No such merchant."),
        for_update=for_update,
    )


def require_active(row: Merchant) -> None:
    """Refuse a merchant that may not take payments now."""
    if row.status != "active":
        raise MerchantNotActive(
            f"This merchant cannot take payments (it is {row.status.replace('_', ' ')}).",
            merchant_status=row.status,
        )


def list_merchants(uow: UnitOfWork, *, user_id: str) -> list[MerchantView]:
    """The merchants a resident owns, oldest first."""
    rows = uow.session.scalars(
        select(Merchant).where(Merchant.owner_user_id == user_id).order_by(Merchant.id)
    )
    return [merchant_view(r) for r in rows]


def review_merchant(
    uow: UnitOfWork, *, merchant_id: str, action: Review, reason: str = "", actor: str = "operator"
) -> MerchantView:
    """An operator's decision on a merchant (approve, reject, suspend, reactivate, close);
    logged with the operator's name."""
    row = merchant_by_public_id(uow, merchant_id, for_update=True)
    allowed, target = TRANSITIONS[action]
    if row.status not in allowed:
        raise Conflict(
            f"A {row.status.replace('_', ' ')} merchant cannot be {action}d.",
            code="merchant_status_conflict",
        )
    log.info(
        "merchant_reviewed",
        merchant_id=merchant_id,
        action=action,
        actor=actor,
        was=row.status,
        now=target,
        reason=reason,
    )
    row.status, row.status_reason, row.updated_at = target, reason[:200], now_us()
    uow.session.flush()
    return merchant_view(row)


def update_merchant(
    uow: UnitOfWork, *, user_id: str, merchant_id: str, notify_url: str | None, settings: Settings
) -> MerchantView:
    """Change the default notify URL of a merchant's orders (None or empty: none)."""
    row = owned_merchant(uow, user_id=user_id, merchant_id=merchant_id, for_update=True)
    row.notify_url, row.updated_at = valid_notify_url(notify_url, settings), now_us()
    uow.session.flush()
    forget_merchant(uow, row)
    return merchant_view(row)


def webhook_secret(
    uow: UnitOfWork, *, user_id: str, merchant_id: str, encryptor: Encryptor, rotate: bool = False
) -> str:
    """The secret that signs the merchant's webhooks (a new one if ``rotate``)."""
    row = owned_merchant(uow, user_id=user_id, merchant_id=merchant_id, for_update=rotate)
    aad = row.public_id.encode()
    if rotate:
        row.webhook_secret_enc = encryptor.encrypt(_webhook_secret().encode(), aad=aad)
        row.updated_at = now_us()
        uow.session.flush()
    return encryptor.decrypt(row.webhook_secret_enc, aad=aad).decode()


# --- stores and terminals -----------------------------------------------------------------


def _store_view(uow: UnitOfWork, merchant: Merchant, store: Store) -> StoreView:
    terminals = uow.session.execute(
        select(Terminal.public_id, Terminal.label)
        .where(Terminal.store_id == store.id)
        .order_by(Terminal.id)
    ).all()
    return StoreView(
        id=store.public_id,
        merchant_id=merchant.public_id,
        name=store.name,
        status=store.status,
        terminals=[(str(t), str(label)) for t, label in terminals],
        created_at=store.created_at,
    )


def store_row(uow: UnitOfWork, *, merchant_pk: int, store_id: str) -> Store:
    """A store of the merchant (``store_not_found`` otherwise)."""
    return one_row(
        uow,
        select(Store).where(Store.public_id == store_id, Store.merchant_id == merchant_pk),
        StoreNotFound("No such store."),
    )


def terminal_row(uow: UnitOfWork, *, store_pk: int, terminal_id: str) -> Terminal:
    """A terminal of the store (``store_not_found`` otherwise: terminals live in stores)."""
    return one_row(
        uow,
        select(Terminal).where(Terminal.public_id == terminal_id, Terminal.store_id == store_pk),
        StoreNotFound("No such terminal in this store.", code="terminal_not_found"),
    )


def list_stores(uow: UnitOfWork, *, merchant_pk: int) -> list[StoreView]:
    """The merchant's stores, oldest first."""
    merchant = merchant_by_pk(uow, merchant_pk)
    rows = uow.session.scalars(
        select(Store).where(Store.merchant_id == merchant_pk).order_by(Store.id)
    )
    return [_store_view(uow, merchant, r) for r in rows]


def add_store(uow: UnitOfWork, *, merchant_pk: int, name: str) -> StoreView:
    """Open another store (each has its own static code)."""
    merchant = merchant_by_pk(uow, merchant_pk)
    count = len(list(uow.session.scalars(select(Store.id).where(Store.merchant_id == merchant_pk))))
    if count >= MAX_STORES:
        raise Conflict(f"A merchant has at most {MAX_STORES} stores.", code="too_many_stores")
    row = Store(
        public_id=new_id("sto"),
        merchant_id=merchant_pk,
        name=clean_text(name, field="name", max_length=60),
        status="active",
        created_at=now_us(),
    )
    uow.session.add(row)
    uow.session.flush()
    return _store_view(uow, merchant, row)


def add_terminal(uow: UnitOfWork, *, merchant_pk: int, store_id: str, label: str) -> StoreView:
    """Register a till or POS in a store; its label is printed in its dynamic codes."""
    merchant = merchant_by_pk(uow, merchant_pk)
    store = store_row(uow, merchant_pk=merchant_pk, store_id=store_id)
    uow.session.add(
        Terminal(
            public_id=new_id("trm"),
            store_id=store.id,
            label=clean_text(label, field="label", max_length=25, latin=True),
            created_at=now_us(),
        )
    )
    uow.session.flush()
    return _store_view(uow, merchant, store)


# --- API keys -----------------------------------------------------------------------------


def _key_view(row: ApiKey) -> ApiKeyView:
    return ApiKeyView(
        row.public_id,
        row.scheme,
        row.label,
        row.fingerprint,
        row.status,
        row.created_at,
        row.last_used_at,
    )


def create_api_key(
    uow: UnitOfWork,
    *,
    merchant_pk: int,
    scheme: Literal["hmac-sha256", "ed25519"],
    label: str,
    encryptor: Encryptor,
) -> NewApiKey:
    """A new key for the merchant's server or POS; its secret is shown this once."""
    merchant = merchant_by_pk(uow, merchant_pk)
    active = uow.session.scalars(
        select(ApiKey.id).where(ApiKey.merchant_id == merchant_pk, ApiKey.status == "active")
    ).all()
    if len(active) >= MAX_KEYS:
        raise Conflict(f"A merchant has at most {MAX_KEYS} active keys.", code="too_many_keys")
    public_id = new_id("key")
    if scheme == "hmac-sha256":
        secret = "cwsk_" + secrets.token_urlsafe(32)
        stored_secret: str | None = encryptor.encrypt(secret.encode(), aad=public_id.encode())
        public_key = None
        fingerprint = hashlib.sha256(secret.encode()).hexdigest()[:16]
    else:
        secret, raw_public = signing.new_ed25519_keypair()
        stored_secret = None
        public_key = base64.b64encode(raw_public).decode()
        fingerprint = hashlib.sha256(raw_public).hexdigest()[:16]
    row = ApiKey(
        public_id=public_id,
        merchant_id=merchant.id,
        scheme=scheme,
        label=label.strip()[:60],
        secret_enc=stored_secret,
        public_key=public_key,
        fingerprint=fingerprint,
        status="active",
        created_at=now_us(),
    )
    uow.session.add(row)
    uow.session.flush()
    return NewApiKey(_key_view(row), secret)


def list_api_keys(uow: UnitOfWork, *, merchant_pk: int) -> list[ApiKeyView]:
    """The merchant's keys, newest first (no secrets)."""
    rows = uow.session.scalars(
        select(ApiKey).where(ApiKey.merchant_id == merchant_pk).order_by(ApiKey.id.desc())
    )
    return [_key_view(r) for r in rows]


def revoke_api_key(uow: UnitOfWork, *, merchant_pk: int, key_id: str) -> ApiKeyView:
    """Stop accepting a key at once."""
    row = uow.session.scalar(
        select(ApiKey).where(ApiKey.public_id == key_id, ApiKey.merchant_id == merchant_pk)
    )
    if row is None:
        raise MerchantNotFound("No such API key.", code="api_key_not_found")
    if row.status == "active":
        row.status, row.revoked_at = "revoked", now_us()
        uow.session.flush()
    return _key_view(row)
