"""The merchant use cases, in one place: applying, reviewing and managing a merchant, its
stores, terminals and API keys from ``onboarding`` (the review queue from
``review_queue``); orders and their codes, and residents paying them by scanning, from
``payments``; payment codes (devices, password-free limits, charges, confirmations) from
``paycodes``; payments by other providers' residents through the interoperability switch
(quote, prepare, commit, abort) from ``interop``; refunds from ``refunds``; webhook events
from ``webhooks``; the balance, settlements and payouts from ``settlement``; daily
statements from ``statements``; the console's order search and printable code from
``console``; signed-request checks from ``auth``.

Functions taking ``uow`` never commit; the caller runs each in one ``db.transact`` (or a
read-only ``db.uow``). Those taking ``db`` are the periodic jobs, which run their own
short transactions because they call the bank or a merchant's server in between
(:func:`run_settlements`; :func:`webhook_handler` is the outbox handler of
:data:`WEBHOOK_TOPIC`). The pure rules (fees, refunds, field checks) are in ``rules`` and
``refund_rules``; the refusals in ``errors``.
"""

from __future__ import annotations

from citywallet.merchant.auth import (
    MerchantCaller,
    authenticate,
    authenticate_cached,
    purge_nonces,
)
from citywallet.merchant.console import (
    ORDER_STATUSES,
    OrderPage,
    OrderSearch,
    qr_pdf,
    search_orders,
)
from citywallet.merchant.interop import (
    InteropPaymentView,
    MerchantQuote,
    abort_payment,
    commit_payment,
    interop_payment,
    is_merchant_quote,
    prepare_payment,
    quote_payment,
)
from citywallet.merchant.interop_refunds import (
    SwitchRefunds,
    commit_refund,
    fail_refund,
    hold_refund,
)
from citywallet.merchant.models import MERCHANT_STATUSES
from citywallet.merchant.onboarding import (
    TRANSITIONS,
    ApiKeyView,
    MerchantApplication,
    MerchantView,
    NewApiKey,
    Review,
    StoreView,
    add_store,
    add_terminal,
    create_api_key,
    list_api_keys,
    list_merchants,
    list_stores,
    merchant_by_public_id,
    merchant_view,
    owned_merchant,
    register_merchant,
    review_merchant,
    revoke_api_key,
    store_row,
    update_merchant,
    webhook_secret,
)
from citywallet.merchant.paycodes import (
    CodeView,
    DeviceView,
    charge,
    confirm_charge,
    current_code,
    decline_charge,
    get_prefs,
    list_devices,
    pending_confirmations,
    register_device,
    revoke_device,
    set_prefs,
)
from citywallet.merchant.payments import (
    OrderView,
    PaymentView,
    ScanPreview,
    close_expired_orders,
    close_order,
    create_order,
    foreign_code,
    foreign_preview,
    get_order,
    list_orders,
    pay_scan,
    preview_scan,
    resident_payment,
    static_code,
)
from citywallet.merchant.refunds import RefundView, get_refund, list_refunds, refund_order
from citywallet.merchant.review_queue import merchants_by_status
from citywallet.merchant.settlement import (
    MerchantBalance,
    SettlementReport,
    SettlementView,
    get_settlement,
    list_settlements,
    merchant_balance,
    run_settlements,
)
from citywallet.merchant.statements import Statement, business_zone, statement, statement_csv
from citywallet.merchant.takings import Received, Takings, received_since, takings_today
from citywallet.merchant.webhooks import (
    REDELIVERIES,
    WEBHOOK_TOPIC,
    EventDetail,
    EventView,
    get_event,
    list_events,
    post_guarded,
    redeliver,
    webhook_handler,
)

__all__ = [
    "MERCHANT_STATUSES",
    "ORDER_STATUSES",
    "REDELIVERIES",
    "TRANSITIONS",
    "WEBHOOK_TOPIC",
    "ApiKeyView",
    "CodeView",
    "DeviceView",
    "EventDetail",
    "EventView",
    "InteropPaymentView",
    "MerchantApplication",
    "MerchantBalance",
    "MerchantCaller",
    "MerchantQuote",
    "MerchantView",
    "NewApiKey",
    "OrderPage",
    "OrderSearch",
    "OrderView",
    "PaymentView",
    "Received",
    "RefundView",
    "Review",
    "ScanPreview",
    "SettlementReport",
    "SettlementView",
    "Statement",
    "StoreView",
    "SwitchRefunds",
    "Takings",
    "abort_payment",
    "add_store",
    "add_terminal",
    "authenticate",
    "authenticate_cached",
    "business_zone",
    "charge",
    "close_expired_orders",
    "close_order",
    "commit_payment",
    "commit_refund",
    "confirm_charge",
    "create_api_key",
    "create_order",
    "current_code",
    "decline_charge",
    "fail_refund",
    "foreign_code",
    "foreign_preview",
    "get_event",
    "get_order",
    "get_prefs",
    "get_refund",
    "get_settlement",
    "hold_refund",
    "interop_payment",
    "is_merchant_quote",
    "list_api_keys",
    "list_devices",
    "list_events",
    "list_merchants",
    "list_orders",
    "list_refunds",
    "list_settlements",
    "list_stores",
    "merchant_balance",
    "merchant_by_public_id",
    "merchant_view",
    "merchants_by_status",
    "owned_merchant",
    "pay_scan",
    "pending_confirmations",
    "post_guarded",
    "prepare_payment",
    "preview_scan",
    "purge_nonces",
    "qr_pdf",
    "quote_payment",
    "received_since",
    "redeliver",
    "refund_order",
    "register_device",
    "register_merchant",
    "resident_payment",
    "review_merchant",
    "revoke_api_key",
    "revoke_device",
    "run_settlements",
    "search_orders",
    "set_prefs",
    "statement",
    "statement_csv",
    "static_code",
    "store_row",
    "takings_today",
    "update_merchant",
    "webhook_handler",
    "webhook_secret",
]
