"""The provider's use cases, one face for the adapters (api/interop.py, tasks, the CLI)."""

from __future__ import annotations

from citywallet.interop.provider.aliases import (
    announce_verified,
    register_alias,
    remove_alias,
    sync_aliases,
)
from citywallet.interop.provider.business import BusinessPayee, BusinessPayer, BusinessTerms
from citywallet.interop.provider.common import (
    INTEROP_SETTLEMENT,
    PUBLIC_STATE,
    SWITCH,
    NotConnected,
    configured,
    interop_account,
    msisdn,
    require_configured,
)
from citywallet.interop.provider.console import InteropOverview, overview
from citywallet.interop.provider.outcome import on_error, on_settlement, on_state, sweep
from citywallet.interop.provider.payee import on_prepare, on_quote_request, payee_fees
from citywallet.interop.provider.payer import (
    InteropTransferNotFound,
    InteropTransferView,
    PartyNotFound,
    PartyView,
    QuoteNotFound,
    QuoteView,
    Waiting,
    get_transfer,
    lookup_state,
    on_party,
    on_quote,
    quote_state,
    recent_party,
    send_transfer,
    start_business_quote,
    start_lookup,
    start_merchant_quote,
    start_quote,
    transfer_for_key,
)
from citywallet.interop.provider.retention import purge_all, purge_transient
from citywallet.interop.provider.waiting import party_key, quote_key, transfer_key, wait_for

__all__ = [
    "INTEROP_SETTLEMENT",
    "PUBLIC_STATE",
    "SWITCH",
    "BusinessPayee",
    "BusinessPayer",
    "BusinessTerms",
    "InteropOverview",
    "InteropTransferNotFound",
    "InteropTransferView",
    "NotConnected",
    "PartyNotFound",
    "PartyView",
    "QuoteNotFound",
    "QuoteView",
    "Waiting",
    "announce_verified",
    "configured",
    "get_transfer",
    "interop_account",
    "lookup_state",
    "msisdn",
    "on_error",
    "on_party",
    "on_prepare",
    "on_quote",
    "on_quote_request",
    "on_settlement",
    "on_state",
    "overview",
    "party_key",
    "payee_fees",
    "purge_all",
    "purge_transient",
    "quote_key",
    "quote_state",
    "recent_party",
    "register_alias",
    "remove_alias",
    "require_configured",
    "send_transfer",
    "start_business_quote",
    "start_lookup",
    "start_merchant_quote",
    "start_quote",
    "sweep",
    "sync_aliases",
    "transfer_for_key",
    "transfer_key",
    "wait_for",
]
