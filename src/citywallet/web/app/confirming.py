"""What a payment form carries besides the PIN: a passkey assertion (``passkey``, JSON put
there by static/js/pinpad.js) and a step-up SMS code (``sms_code``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from citywallet.api.confirming import second_factor_code
from citywallet.identity.errors import PasskeyInvalid
from citywallet.runtime import Runtime


@dataclass(frozen=True)
class Confirmation:
    """A form's passkey assertion (``None``: the PIN confirms) and checked SMS code id."""

    passkey: dict[str, Any] | None
    sms_code_id: int | None


def confirmation_of(runtime: Runtime, user_id: str, fields: dict[str, str]) -> Confirmation:
    """Read the form's passkey and check its step-up SMS code (a wrong one is counted)."""
    passkey = None
    if raw := fields.get("passkey", "").strip():
        try:
            passkey = json.loads(raw)
        except ValueError:
            raise PasskeyInvalid("This is not a passkey answer.") from None
        if not isinstance(passkey, dict):
            raise PasskeyInvalid("This is not a passkey answer.")
    code = fields.get("sms_code", "").strip()
    return Confirmation(passkey, second_factor_code(runtime, user_id=user_id, sms_code=code))
