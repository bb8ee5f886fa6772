"""Pure: the payee's provider holds a prepare to its quote (interop/quotes.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from citywallet.interop.conditions import condition_of, new_fulfilment
from citywallet.interop.messages import Amount, ErrorCode, QuoteResponse, TransferPrepare
from citywallet.interop.quotes import check_prepare

T0 = datetime(2026, 12, 7, 5, 30, tzinfo=UTC)
CONDITION = condition_of(new_fulfilment())
QUOTE = QuoteResponse(
    transfer_amount=Amount(amount=10000),
    payee_receive_amount=Amount(amount=9990),
    payer_fee=Amount(amount=0),
    payee_fee=Amount(amount=10),
    expiration=T0 + timedelta(minutes=1),
    ilp_condition=CONDITION,
)


def _prepare(amount: int = 10000, condition: str = CONDITION) -> TransferPrepare:
    return TransferPrepare(
        transfer_id="b51ec534-ee48-4575-b6a9-ead2955b8069",
        payer_fsp="provider-a",
        payee_fsp="provider-b",
        amount=Amount(amount=amount),
        ilp_condition=condition,
        expiration=T0 + timedelta(minutes=2),
    )


def test_a_prepare_on_the_quoted_terms_is_accepted() -> None:
    assert check_prepare(QUOTE, _prepare(), T0) is None


def test_an_expired_quote_is_3302() -> None:
    assert check_prepare(QUOTE, _prepare(), QUOTE.expiration) is ErrorCode.QUOTE_EXPIRED


def test_an_unknown_quote_is_3205() -> None:
    other = condition_of(new_fulfilment())
    assert check_prepare(None, _prepare(), T0) is ErrorCode.QUOTE_ID_NOT_FOUND
    assert check_prepare(QUOTE, _prepare(condition=other), T0) is ErrorCode.QUOTE_ID_NOT_FOUND


@given(st.integers(1, 10**9))
def test_only_the_quoted_amount_passes(amount: int) -> None:
    result = check_prepare(QUOTE, _prepare(amount=amount), T0)
    assert result is (None if amount == 10000 else ErrorCode.GENERIC_VALIDATION_ERROR)
