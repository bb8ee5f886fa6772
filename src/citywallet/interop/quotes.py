"""The payee's provider checks a prepare against the quote it gave (pure).

The condition names the quote: the payee's provider drew its fulfilment for that quote only,
so it finds the quote by the prepare's ``ilpCondition`` and releases the fulfilment only if
the prepare keeps the quote's terms: the same amount, arriving before the quote expires.
The transfer's own expiration is the switch's business (transfers.py), not the quote's.
"""

from __future__ import annotations

from datetime import datetime

from citywallet.interop.messages import ErrorCode, QuoteResponse, TransferPrepare


def check_prepare(
    quote: QuoteResponse | None, prepare: TransferPrepare, now: datetime
) -> ErrorCode | None:
    """``None`` if the payee's provider may credit and fulfil; else the error to answer."""
    if quote is None or quote.ilp_condition != prepare.ilp_condition:
        return ErrorCode.QUOTE_ID_NOT_FOUND
    if now >= quote.expiration:
        return ErrorCode.QUOTE_EXPIRED
    if prepare.amount != quote.transfer_amount:
        return ErrorCode.GENERIC_VALIDATION_ERROR
    return None
