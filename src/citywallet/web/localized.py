"""Domain codes shown to people in the page's language: merchant category codes (MCC) as
categories, bank cards as ``工商银行(0000)``, generated device names, ledger account kinds
and audit actions.

:func:`helpers` gives every template these as functions bound to the request's language
(``mcc_label(code)``, ``mcc_name(code)``, ``mcc_category(code)``, ``card_label(bank, last4)``,
``device_label(name)``, ``account_kind(name)``, ``transfer_kind(name)``, ``mcc_choices()``,
``audit_detail(text)``). The tables behind them are pure modules (``merchant.mcc``,
``wallet.banknames``); texts of our own go through the catalogue (``zh_everywhere.po``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from citywallet.merchant import mcc
from citywallet.wallet import banknames
from citywallet.web.i18n import N_, Translations

# Names identity.sessions makes from a browser's User-Agent when the device gave none.
DEVICE_NAMES: dict[str, str] = {
    "iPhone": N_("iPhone"),
    "iPad": N_("iPad"),
    "Android": N_("Android phone"),
    "Windows": N_("Windows computer"),
    "Macintosh": N_("Mac computer"),
    "Mac": N_("Mac computer"),
    "Linux": N_("Linux computer"),
    "Unknown device": N_("Unknown device"),
}

# Ledger account kinds (``AccountCode`` names) and transfer kinds (``TransferCode`` names).
ACCOUNT_KINDS: dict[str, str] = {
    "BANK_SETTLEMENT": N_("Bank settlement"),
    "FEE_REVENUE": N_("Fee revenue"),
    "REDPACKET_ESCROW": N_("Red-packet escrow"),
    "CAMPAIGN_FUNDS": N_("Campaign funds"),
    "INTEROP_SETTLEMENT": N_("Interoperability settlement"),
    "MERCHANT_SETTLEMENT_PAYABLE": N_("Merchant settlement payable"),
    "OPERATING": N_("Operating account"),
    "CUSTOMER_WALLET": N_("Resident wallet"),
    "CUSTOMER_RESTRICTED": N_("Campaign red-packet balance"),
    "MERCHANT_RECEIVABLE": N_("Merchant receivable"),
}
TRANSFER_KINDS: dict[str, str] = {
    "TOPUP": N_("Top-up"),
    "WITHDRAWAL": N_("Withdrawal"),
    "FEE": N_("Fee"),
    "P2P": N_("Transfer between residents"),
    "PAYMENT": N_("Merchant payment"),
    "REFUND": N_("Refund"),
    "REDPACKET_FUND": N_("Red packet sent"),
    "REDPACKET_CLAIM": N_("Red packet claimed"),
    "REDPACKET_RETURN": N_("Red packet returned"),
    "CAMPAIGN_FUND": N_("Campaign funding"),
    "CAMPAIGN_GRANT": N_("Campaign red packet issued"),
    "CAMPAIGN_RECLAIM": N_("Campaign money reclaimed"),
    "SETTLEMENT": N_("Merchant settlement"),
    "INTEROP": N_("Interoperability transfer"),
    "ADJUSTMENT": N_("Adjustment"),
    "SEED": N_("Demo data"),
}


# Kinds of account events (``identity_user_events.kind``), as the operator console lists them.
EVENT_KINDS: dict[str, str] = {
    "registered": N_("Account opened"),
    "real_name_verified": N_("Real name verified"),
    "identity_rechecked": N_("Identity checked again"),
    "tier_changed": N_("Tier changed"),
    "pin_set": N_("Payment PIN set"),
    "pin_changed": N_("Payment PIN changed"),
    "pin_reset": N_("Payment PIN reset"),
    "pin_locked": N_("Payment PIN locked"),
    "password_changed": N_("Password changed"),
    "password_reset": N_("Password reset"),
    "frozen": N_("Frozen"),
    "unfrozen": N_("Unfrozen"),
    "closed": N_("Wallet closed"),
    "move_started": N_("Move to another cell started"),
    "move_refused": N_("Move refused"),
    "moved": N_("Moved to another cell"),
    "moved_in": N_("Moved in from another cell"),
    "consent_given": N_("Consent given"),
    "consent_withdrawn": N_("Consent withdrawn"),
}
EVENT_ACTORS: dict[str, str] = {"user": N_("the resident"), "system": N_("the system")}

# Audit details the console writes (English, for the record), read back in the page's language:
# (pattern of the stored text, its text to translate with the pattern's named groups).
AUDIT_DETAILS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^(?P<name>.+); budget (?P<budget>[\d.,]+)$"), N_("%(name)s; budget %(budget)s")),
    (re.compile(r"^batch of (?P<n>\d+)$"), N_("a batch of %(n)s")),
    (
        re.compile(r"^(?P<n>\d+) registrations; list hash (?P<hash>\w+)$"),
        N_("%(n)s registrations; list hash %(hash)s"),
    ),
    (re.compile(r"^(?P<n>\d+) winners; seed (?P<seed>\S+)$"), N_("%(n)s winners; seed %(seed)s")),
    (re.compile(r"^(?P<n>\d+) winners$"), N_("%(n)s winners")),
    (
        re.compile(r"^ok; (?P<a>\d+) accounts, (?P<t>\d+) transfers, (?P<b>\d+) blocks$"),
        N_("all checks hold; %(a)s accounts, %(t)s transfers, %(b)s blocks"),
    ),
    (
        re.compile(
            r"^(?P<p>\d+) problems; (?P<a>\d+) accounts, (?P<t>\d+) transfers, (?P<b>\d+) blocks$"
        ),
        N_("%(p)s problems found; %(a)s accounts, %(t)s transfers, %(b)s blocks"),
    ),
)


def audit_detail(tr: Translations, detail: str) -> str:
    """An audit entry's detail in ``tr``'s language when it is one the console writes."""
    for pattern, text in AUDIT_DETAILS:
        found = pattern.match(detail)
        if found:
            return tr.gettext(text) % found.groupdict()
    return detail


# How wallet.funding names a card on a top-up's or withdrawal's history line.
FUNDING_CARD = re.compile(r"^(?P<bank>[A-Z]{2,10}) ····(?P<last4>\d{4})$")


def counterparty(label: str, lang: str) -> str:
    """A history line's other side; a bank card (``ICBC ····1234``) as ``工商银行(1234)``."""
    found = FUNDING_CARD.match(label)
    if found is None:
        return label
    return banknames.card_label(found["bank"], found["last4"], lang)


def helpers(tr: Translations) -> dict[str, Callable[..., Any]]:
    """The template functions for ``tr``'s language."""
    lang = tr.lang

    def mcc_label(code: str | None) -> str:
        return "—" if not code else mcc.label(code, lang)

    def mcc_name(code: str | None) -> str:
        return "—" if not code else mcc.describe(code).name(lang)

    def mcc_category(code: str | None) -> str:
        return mcc.describe(code or "").category_name(lang)

    def card_label(bank: str, last4: str) -> str:
        return banknames.card_label(bank, last4, lang)

    def device_label(name: str | None) -> str:
        if not name:
            return tr.gettext("Unknown device")
        known = DEVICE_NAMES.get(name)
        return tr.gettext(known) if known else name

    def account_kind(name: str | None) -> str:
        known = ACCOUNT_KINDS.get(name or "")
        return tr.gettext(known) if known else (name or "—")

    def transfer_kind(name: str | None) -> str:
        known = TRANSFER_KINDS.get(name or "")
        return tr.gettext(known) if known else (name or "—")

    def event_kind(kind: str | None) -> str:
        known = EVENT_KINDS.get(kind or "")
        return tr.gettext(known) if known else (kind or "—")

    def event_actor(actor: str | None) -> str:
        known = EVENT_ACTORS.get(actor or "")
        return tr.gettext(known) if known else (actor or "—")

    def mcc_choices() -> list[tuple[str, str, str]]:
        return mcc.choices(lang)

    return {
        "mcc_label": mcc_label,
        "mcc_name": mcc_name,
        "mcc_category": mcc_category,
        "card_label": card_label,
        "device_label": device_label,
        "account_kind": account_kind,
        "transfer_kind": transfer_kind,
        "event_kind": event_kind,
        "event_actor": event_actor,
        "mcc_choices": mcc_choices,
        "audit_detail": lambda detail: audit_detail(tr, detail or ""),
        "counterparty": lambda label: counterparty(label or "", lang),
    }
