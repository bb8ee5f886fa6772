"""How the API and the pages confirm a payment before it moves money: the PIN or a passkey
bound to the payment's intent, and step-up's second factor (docs/identity.md).

:func:`second_factor_code` runs before the payment (an SMS code is checked in a transaction
of its own, so a wrong one is counted); :func:`confirm_scan` and :func:`confirm_transfer`
run first *inside* the payment's transaction: a refusal rolls the payment back, nothing
moves. They answer the ``pin`` to hand to the payment (``None``: the passkey confirmed it).
"""

from __future__ import annotations

from typing import Any

from citywallet.identity import passkeys, second_factor
from citywallet.identity.passkey_rules import charge_intent, scan_intent, transfer_intent
from citywallet.merchant import emv
from citywallet.merchant.payees import paid_before
from citywallet.platform.db import UnitOfWork
from citywallet.runtime import Runtime
from citywallet.wallet.payees import sent_before


def second_factor_code(runtime: Runtime, *, user_id: str, sms_code: str | None) -> int | None:
    """The id of a checked ``step_up`` SMS code, or ``None`` without one."""
    if not sms_code:
        return None
    return second_factor.check_sms_code(
        runtime.db, user_id=user_id, code=sms_code, settings=runtime.settings,
        encryptor=runtime.encryptor,
    )  # fmt: skip


def _code_amount(payload: str) -> int | None:
    try:
        return emv.parse_public(payload.strip()).amount
    except emv.EmvError:
        return None


def confirm_scan(
    uow: UnitOfWork,
    runtime: Runtime,
    *,
    user_id: str,
    session_id: str | None,
    payload: str,
    amount: int | None,
    pin: str | None,
    passkey: dict[str, Any] | None,
    sms_code_id: int | None,
) -> str | None:
    """Confirm paying a scanned code (passkey bound to payload and amount; step-up)."""
    if passkey is not None:
        intent = scan_intent(payload=payload, amount=amount)
        passkeys.confirm_payment(
            uow, user_id=user_id, intent=intent, credential=passkey, settings=runtime.settings
        )
    second_factor.require(
        uow, user_id=user_id, session_id=session_id,
        amount=amount if amount is not None else _code_amount(payload),
        payee_known=lambda: paid_before(uow, user_id=user_id, payload=payload),
        by_passkey=passkey is not None, sms_code_id=sms_code_id, settings=runtime.settings,
    )  # fmt: skip
    return None if passkey is not None else pin


def confirm_transfer(
    uow: UnitOfWork,
    runtime: Runtime,
    *,
    user_id: str,
    session_id: str | None,
    to: str,
    amount: int,
    currency: str,
    pin: str | None,
    passkey: dict[str, Any] | None,
    sms_code_id: int | None,
) -> str | None:
    """Confirm a transfer to a resident (passkey bound to payee and amount; step-up)."""
    if passkey is not None:
        intent = transfer_intent(to=to, amount=amount, currency=currency)
        passkeys.confirm_payment(
            uow, user_id=user_id, intent=intent, credential=passkey, settings=runtime.settings
        )
    second_factor.require(
        uow, user_id=user_id, session_id=session_id, amount=amount,
        payee_known=lambda: sent_before(uow, user_id=user_id, to=to),
        by_passkey=passkey is not None, sms_code_id=sms_code_id, settings=runtime.settings,
    )  # fmt: skip
    return None if passkey is not None else pin


def confirm_charge(
    uow: UnitOfWork,
    runtime: Runtime,
    *,
    user_id: str,
    order_id: str,
    pin: str | None,
    passkey: dict[str, Any] | None,
) -> str | None:
    """Confirm a payment-code charge that waits for the resident (passkey bound to it)."""
    if passkey is None:
        return pin
    passkeys.confirm_payment(
        uow, user_id=user_id, intent=charge_intent(order_id=order_id), credential=passkey,
        settings=runtime.settings,
    )  # fmt: skip
    return None
