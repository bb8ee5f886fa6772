"""The merchant package's refusals, with the stable codes clients switch on (docs/merchant.md)."""

from __future__ import annotations

from citywallet.platform.errors import Conflict, NotFound


class MerchantNotFound(NotFound):
    """No such merchant (or not yours)."""

    code = "merchant_not_found"


class StoreNotFound(NotFound):
    """No such store of this merchant."""

    code = "store_not_found"


class OrderNotFound(NotFound):
    """No such order of this merchant (or, for a resident, none they paid)."""

    code = "order_not_found"


class RefundNotFound(NotFound):
    """No such refund of this merchant."""

    code = "refund_not_found"


class SettlementNotFound(NotFound):
    """No such settlement of this merchant."""

    code = "settlement_not_found"


class EventNotFound(NotFound):
    """No such webhook event of this merchant."""

    code = "event_not_found"


class MerchantNotActive(Conflict):
    """Only an active merchant can be paid or take new orders."""

    code = "merchant_not_active"


class OrderNotPayable(Conflict):
    """The order is paid, closed or expired (``code`` says which)."""

    code = "order_not_payable"


class MerchantBalanceInsufficient(Conflict):
    """The merchant's receivable balance cannot cover a refund (it was settled already)."""

    code = "merchant_balance_insufficient"
    title = "Merchant balance insufficient"
