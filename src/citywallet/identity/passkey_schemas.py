"""Request and response bodies of passkeys and step-up (identity/passkeys.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from citywallet.identity.passkeys import PasskeyView
from citywallet.platform.clock import to_datetime

Credential = dict[str, Any]
CREDENTIAL_DOC = (
    "The browser's PublicKeyCredential as JSON (id, rawId, type, response with base64url "
    "clientDataJSON, authenticatorData or attestationObject, signature …)."
)


class PinOrPasskey(BaseModel):
    """How a payment is confirmed: the 6-digit ``pin``, or a ``passkey`` assertion made for
    this payment's challenge (POST /v1/passkeys/payment-options); one of them, not both."""

    pin: str | None = Field(
        default=None, pattern=r"^[0-9]{6}$", description="The payment PIN.", examples=["502817"]
    )
    passkey: Credential | None = Field(default=None, description=CREDENTIAL_DOC)

    @model_validator(mode="after")
    def _one_way(self) -> Self:
        if (self.pin is None) == (self.passkey is None):
            raise ValueError("confirm with either the payment PIN or a passkey")
        return self


class Confirmed(PinOrPasskey):
    """The PIN or a passkey, and ``sms_code``: a ``step_up`` code when the payment answered
    ``step_up_required``."""

    sms_code: str | None = Field(
        default=None,
        pattern=r"^[0-9]{6}$",
        description="A step_up SMS code (POST /v1/step-up/sms-codes), with the PIN.",
    )


class PaymentIntent(BaseModel):
    """What a passkey is to confirm: paying a scanned code, sending to a resident, or one
    payment-code charge."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["scan", "transfer", "charge"]
    payload: str | None = Field(default=None, max_length=512, description="scan: the code.")
    to: str | None = Field(default=None, max_length=40, description="transfer: the payee.")
    amount: int | None = Field(default=None, gt=0, strict=True)
    currency: str = Field(default="CNY", pattern=r"^[A-Z]{3}$")
    order_id: str | None = Field(default=None, max_length=40, description="charge: the order.")


class PasskeyRegistration(BaseModel):
    """A new passkey: the answer of ``navigator.credentials.create()`` and the PIN."""

    model_config = ConfigDict(extra="forbid")

    credential: Credential = Field(description=CREDENTIAL_DOC)
    name: str = Field(default="", max_length=60, description="Yours to recognise it.")
    pin: str = Field(pattern=r"^[0-9]{6}$", description="The payment PIN.")


class PasskeyRename(BaseModel):
    """Another name for a passkey."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=60)


class PasskeySignIn(BaseModel):
    """Sign in with a passkey: the answer of ``navigator.credentials.get()``."""

    model_config = ConfigDict(extra="forbid")

    credential: Credential = Field(description=CREDENTIAL_DOC)
    session: Literal["bearer", "cookie"] = "bearer"
    device_name: str = Field(default="", max_length=100)


class PasskeyPublic(BaseModel):
    """One of your passkeys."""

    id: str = Field(examples=["pk_3kT9…"])
    name: str
    created_at: datetime
    last_used_at: datetime | None

    @classmethod
    def of(cls, view: PasskeyView) -> PasskeyPublic:
        """From the service's view."""
        return cls(
            id=view.id,
            name=view.name,
            created_at=to_datetime(view.created_at),
            last_used_at=to_datetime(view.last_used_at) if view.last_used_at else None,
        )


class PasskeyList(BaseModel):
    """Your passkeys, oldest first."""

    items: list[PasskeyPublic]
