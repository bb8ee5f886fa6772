"""Request and response bodies of the identity API (every personal value masked)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from citywallet.identity.codes import CodeSent
from citywallet.identity.consent_schemas import ConsentCreate
from citywallet.identity.gateways import SandboxMessage
from citywallet.identity.service import TierStatus, UserProfile
from citywallet.identity.sessions import IssuedSession, SessionView
from citywallet.platform.clock import to_datetime

PhoneField = Field(min_length=5, max_length=32, examples=["138 0013 8000"])
PasswordField = Field(min_length=1, max_length=128)
PinField = Field(pattern=r"^[0-9]{6}$", examples=["502817"])
CodeField = Field(pattern=r"^[0-9]{6}$", examples=["123456"])
SessionKind = Literal["bearer", "cookie"]


class SmsCodeCreate(BaseModel):
    """Ask for a verification code by SMS."""

    phone: str = PhoneField
    purpose: Literal["register", "reset_password"] = "register"


class SmsCodePublic(BaseModel):
    """A code is on its way."""

    phone_masked: str = Field(examples=["138****8000"])
    expires_in: int = Field(description="Seconds the code stays valid.")
    resend_after: int = Field(description="Seconds before another code may be asked for.")

    @classmethod
    def of(cls, sent: CodeSent) -> SmsCodePublic:
        """From the service's answer."""
        return cls(
            phone_masked=sent.phone_masked,
            expires_in=sent.expires_in,
            resend_after=sent.resend_after,
        )


class UserCreate(BaseModel):
    """Sign up: phone, the SMS code sent to it, a password, and the consents given (the
    service agreement and privacy policy versions shown, the purposes); opens a session."""

    phone: str = PhoneField
    code: str = CodeField
    password: str = PasswordField
    consent: ConsentCreate
    session: SessionKind = Field(
        default="bearer", description="'bearer': token in the body; 'cookie': HttpOnly cookie."
    )
    device_name: str = Field(default="", max_length=100)


class SessionCreate(BaseModel):
    """Log in with phone and password."""

    phone: str = PhoneField
    password: str = PasswordField
    session: SessionKind = "bearer"
    device_name: str = Field(default="", max_length=100)


class PasswordReset(BaseModel):
    """Set a new password with a ``reset_password`` SMS code (ends every session)."""

    phone: str = PhoneField
    code: str = CodeField
    new_password: str = PasswordField


class PasswordUpdate(BaseModel):
    """Change the password (ends the other sessions)."""

    old_password: str = PasswordField
    new_password: str = PasswordField


class UserPublic(BaseModel):
    """The signed-in user's account (masked)."""

    id: str = Field(examples=["usr_4fQk2WcVbYt1nNpZ8sLr"])
    phone_masked: str = Field(examples=["138****8000"])
    status: Literal["active", "frozen", "closed", "moved"]
    tier: int = Field(ge=0, le=3, description="0 unverified; 1/2/3 = PBOC Class I/II/III.")
    real_name_verified: bool
    name_masked: str | None = Field(examples=["*三"])
    id_number_masked: str | None = Field(examples=["1****************X"])
    external_checks: int
    checks_to_next_tier: int | None
    pin_set: bool
    created_at: datetime

    @classmethod
    def of(cls, profile: UserProfile) -> UserPublic:
        """From the service's profile."""
        user = profile.user
        return cls(
            id=user.id,
            phone_masked=user.phone_masked,
            status=user.status,
            tier=user.tier,
            real_name_verified=user.real_name_verified,
            name_masked=user.name_masked,
            id_number_masked=profile.id_number_masked,
            external_checks=profile.external_checks,
            checks_to_next_tier=profile.checks_to_next_tier,
            pin_set=profile.pin_set,
            created_at=to_datetime(profile.created_at),
        )


class SessionIssuedPublic(BaseModel):
    """A new session. ``token`` (bearer only) is shown once; cookie sessions get
    ``csrf_token`` to send as ``X-CSRF-Token`` (or form field ``csrf_token``)."""

    id: str = Field(examples=["ses_Xk2p9QhTn5cVbR0aLmEw"])
    kind: SessionKind
    token: str | None = None
    csrf_token: str | None = None
    expires_at: datetime

    @classmethod
    def of(cls, issued: IssuedSession) -> SessionIssuedPublic:
        """Only what the session's kind needs to see."""
        bearer = issued.kind == "bearer"
        return cls(
            id=issued.id,
            kind=issued.kind,
            token=issued.token if bearer else None,
            csrf_token=None if bearer else issued.csrf_token,
            expires_at=to_datetime(issued.expires_at),
        )


class AuthPublic(BaseModel):
    """Signed in."""

    user: UserPublic
    session: SessionIssuedPublic


class CurrentSessionPublic(BaseModel):
    """The session this request was made with."""

    id: str
    user_id: str
    kind: SessionKind
    csrf_token: str | None


class SessionPublic(BaseModel):
    """One signed-in device."""

    id: str
    kind: SessionKind
    device_name: str
    user_agent: str
    ip: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    current: bool

    @classmethod
    def of(cls, view: SessionView, *, current_id: str) -> SessionPublic:
        """From the service's view."""
        return cls(
            id=view.id,
            kind=view.kind,
            device_name=view.device_name,
            user_agent=view.user_agent,
            ip=view.ip,
            created_at=to_datetime(view.created_at),
            last_seen_at=to_datetime(view.last_seen_at),
            expires_at=to_datetime(view.expires_at),
            current=view.id == current_id,
        )


class SessionPage(BaseModel):
    """A page of sessions, newest first."""

    items: list[SessionPublic]
    next_cursor: str | None


class RealNameCreate(BaseModel):
    """Real-name verification: the name and 18-character ID number on the resident ID card."""

    name: str = Field(min_length=1, max_length=50, examples=["张三"])
    id_number: str = Field(min_length=15, max_length=22, examples=["110101199003070011"])


class TierPublic(BaseModel):
    """Where the user stands on the tier ladder."""

    tier: int
    external_checks: int
    checks_to_next_tier: int | None

    @classmethod
    def of(cls, status: TierStatus) -> TierPublic:
        """From the service's answer."""
        return cls(
            tier=status.tier,
            external_checks=status.external_checks,
            checks_to_next_tier=status.checks_to_next_tier,
        )


class PinCreate(BaseModel):
    """Set the first payment PIN (re-enter the login password)."""

    pin: str = PinField
    password: str = PasswordField


class PinUpdate(BaseModel):
    """Change the payment PIN with the old one."""

    old_pin: str = PinField
    new_pin: str = PinField


class PinReset(BaseModel):
    """Set a new payment PIN with a ``reset_pin`` SMS code."""

    code: str = CodeField
    new_pin: str = PinField


class DevSmsPublic(BaseModel):
    """A message in the sandbox SMS outbox."""

    message_id: str
    phone_masked: str
    text: str
    created_at: datetime

    @classmethod
    def of(cls, message: SandboxMessage) -> DevSmsPublic:
        """From the sandbox gateway's record."""
        return cls(
            message_id=message.message_id,
            phone_masked=message.phone_masked,
            text=message.text,
            created_at=to_datetime(message.created_at),
        )


class DevSmsPage(BaseModel):
    """The newest sandbox messages."""

    items: list[DevSmsPublic]
