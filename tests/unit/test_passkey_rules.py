"""A payment's passkey challenge is bound to its intent (identity/passkey_rules.py): any
change of payee, amount, currency, order or kind gives another challenge; the same intent
written in another key order gives the same one."""

from __future__ import annotations

import secrets

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from citywallet.identity.passkey_rules import (
    canonical_intent,
    challenge_hash,
    charge_intent,
    origin_allowed,
    payment_challenge,
    scan_intent,
    transfer_intent,
)

nonces = st.binary(min_size=32, max_size=32)
amounts = st.integers(1, 10**10)
payees = st.text(min_size=1, max_size=40).map(str.strip).filter(bool)


@given(nonces, payees, amounts)
def test_the_challenge_is_a_function_of_nonce_and_intent(
    nonce: bytes, to: str, amount: int
) -> None:
    intent = transfer_intent(to=to, amount=amount)
    shuffled = dict(reversed(list(intent.items())))
    assert payment_challenge(nonce, intent) == payment_challenge(nonce, shuffled)
    assert len(payment_challenge(nonce, intent)) == 32


@given(nonces, payees, amounts, amounts)
def test_another_amount_gives_another_challenge(
    nonce: bytes, to: str, amount: int, other: int
) -> None:
    assume(amount != other)
    assert payment_challenge(nonce, transfer_intent(to=to, amount=amount)) != payment_challenge(
        nonce, transfer_intent(to=to, amount=other)
    )


@given(nonces, payees, payees, amounts)
def test_another_payee_gives_another_challenge(
    nonce: bytes, to: str, other: str, amount: int
) -> None:
    assume(to != other)
    assert payment_challenge(nonce, transfer_intent(to=to, amount=amount)) != payment_challenge(
        nonce, transfer_intent(to=other, amount=amount)
    )


@given(nonces, nonces)
def test_another_nonce_gives_another_challenge(nonce: bytes, other: bytes) -> None:
    assume(nonce != other)
    intent = scan_intent(payload="000201...", amount=500)
    assert payment_challenge(nonce, intent) != payment_challenge(other, intent)


def test_kinds_and_currencies_are_bound_too() -> None:
    nonce = secrets.token_bytes(32)
    scan = scan_intent(payload="usr_x", amount=500)
    transfer = transfer_intent(to="usr_x", amount=500)
    assert payment_challenge(nonce, scan) != payment_challenge(nonce, transfer)
    assert payment_challenge(nonce, transfer) != payment_challenge(
        nonce, transfer_intent(to="usr_x", amount=500, currency="HKD")
    )
    assert payment_challenge(nonce, charge_intent(order_id="ord_1")) != payment_challenge(
        nonce, charge_intent(order_id="ord_2")
    )
    assert challenge_hash(b"a") != challenge_hash(b"b")
    with pytest.raises(ValueError, match="unknown intent kind"):
        canonical_intent({"kind": "refund"})


@pytest.mark.parametrize(
    ("origin", "rp_id", "allowed", "ok"),
    [
        ("https://wallet.example.cn", "wallet.example.cn", [], True),
        ("http://wallet.example.cn", "wallet.example.cn", [], False),
        ("https://evil.example.cn", "wallet.example.cn", [], False),
        ("http://localhost:8123", "localhost", [], True),
        ("http://127.0.0.1:8000", "localhost", [], False),
        ("https://a.example", "example", ["https://a.example"], True),
        ("https://b.example", "example", ["https://a.example"], False),
    ],
)
def test_allowed_origins(origin: str, rp_id: str, allowed: list[str], ok: bool) -> None:
    assert origin_allowed(origin, rp_id=rp_id, allowed=allowed) is ok
