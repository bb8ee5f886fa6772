"""Identity tables: users, verified identities, checks, PINs, SMS codes, sessions, events.

Phone numbers, names and ID numbers are stored only as ``Encryptor`` envelopes (registered
for re-wrapping by ``citywallet keys rotate``), plus a keyed lookup hash where a lookup is
needed and a masked form for display. Timestamps are microseconds since the epoch.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from citywallet.platform.crypto import register_encrypted_column
from citywallet.platform.db import Base, BigId


class User(Base):
    """A resident's account."""

    __tablename__ = "identity_users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)  # usr_…
    phone_hash: Mapped[str] = mapped_column(String(64), unique=True)  # lookup hash of E.164
    phone_enc: Mapped[str] = mapped_column(Text)
    phone_masked: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(200))  # argon2id, PHC string
    status: Mapped[str] = mapped_column(String(16), default="active")  # active|frozen|closed|moved
    frozen_reason: Mapped[str | None] = mapped_column(String(500))
    moved_to: Mapped[str | None] = mapped_column(String(32))  # the cell a moved wallet went to
    tier: Mapped[int] = mapped_column(Integer, default=0)
    external_checks: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class RealName(Base):
    """A user's verified identity; the unique ``id_hash`` keeps it to one account per person."""

    __tablename__ = "identity_real_names"

    user_id: Mapped[int] = mapped_column(ForeignKey("identity_users.id"), primary_key=True)
    id_hash: Mapped[str] = mapped_column(String(64), unique=True)  # lookup hash of the ID number
    name_enc: Mapped[str] = mapped_column(Text)
    id_number_enc: Mapped[str] = mapped_column(Text)
    name_masked: Mapped[str] = mapped_column(String(64))
    id_number_masked: Mapped[str] = mapped_column(String(18))
    provider_ref: Mapped[str] = mapped_column(String(64))
    verified_at: Mapped[int] = mapped_column(BigInteger)


class ExternalCheck(Base):
    """One successful check with an external authority; the tier counts them (per kind)."""

    __tablename__ = "identity_external_checks"
    __table_args__ = (
        Index("uq_identity_external_checks_user_kind", "user_id", "kind", unique=True),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("identity_users.id"))
    kind: Mapped[str] = mapped_column(String(100))  # e.g. "resident_id", "bank_card:<fp>"
    count: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class PaymentPin(Base):
    """A user's payment PIN as a keyed HMAC (with the key id) and its lockout state."""

    __tablename__ = "identity_payment_pins"

    user_id: Mapped[int] = mapped_column(ForeignKey("identity_users.id"), primary_key=True)
    pin_hash: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(32))
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[int | None] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class SmsCode(Base):
    """A one-time SMS code, stored as a keyed hash; dies after too many wrong tries."""

    __tablename__ = "identity_sms_codes"
    __table_args__ = (Index("ix_identity_sms_codes_phone", "phone_hash", "purpose", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    phone_hash: Mapped[str] = mapped_column(String(64))
    purpose: Mapped[str] = mapped_column(String(32))
    code_hash: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(32))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger)
    used_at: Mapped[int | None] = mapped_column(BigInteger)
    dead: Mapped[bool] = mapped_column(default=False)  # superseded or too many wrong tries


class LoginSession(Base):
    """A login on one device: a bearer token (API) or a cookie (pages); only its hash is kept."""

    __tablename__ = "identity_sessions"
    __table_args__ = (Index("ix_identity_sessions_user", "user_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)  # ses_…
    user_id: Mapped[int] = mapped_column(ForeignKey("identity_users.id"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # SHA-256 of the token
    kind: Mapped[str] = mapped_column(String(8))  # bearer | cookie
    device_name: Mapped[str] = mapped_column(String(100))
    user_agent: Mapped[str] = mapped_column(String(300))
    ip: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[int] = mapped_column(BigInteger)
    last_seen_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger)
    revoked_at: Mapped[int | None] = mapped_column(BigInteger)
    revoked_reason: Mapped[str | None] = mapped_column(String(32))


class UserEvent(Base):
    """Audit trail of an account: sign-up, verification, tier, PIN, freezes (who and why)."""

    __tablename__ = "identity_user_events"
    __table_args__ = (Index("ix_identity_user_events_user", "user_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("identity_users.id"))
    kind: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(100))  # "user", "system", "operator:<name>"
    detail: Mapped[str] = mapped_column(Text, default="")  # never sensitive values
    created_at: Mapped[int] = mapped_column(BigInteger)


class Attribute(Base):
    """A fact about a resident vouched for by an authority: ``district`` of residence,
    ``social_insurance`` … (campaign eligibility reads them; residents cannot set them)."""

    __tablename__ = "identity_attributes"

    user_id: Mapped[int] = mapped_column(ForeignKey("identity_users.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[str] = mapped_column(String(100))
    source: Mapped[str] = mapped_column(String(100))  # who vouched: "operator:…", a registry
    updated_at: Mapped[int] = mapped_column(BigInteger)


class Operator(Base):
    """A resident account allowed into the operator API and console."""

    __tablename__ = "identity_operators"

    user_id: Mapped[int] = mapped_column(ForeignKey("identity_users.id"), primary_key=True)
    granted_by: Mapped[str] = mapped_column(String(100))
    granted_at: Mapped[int] = mapped_column(BigInteger)


class SandboxSms(Base):
    """A message the sandbox SMS gateway "sent": the development outbox."""

    __tablename__ = "identity_sandbox_sms"
    __table_args__ = (Index("ix_identity_sandbox_sms_phone", "phone_hash", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(String(40), unique=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(100), unique=True)
    phone_hash: Mapped[str] = mapped_column(String(64))
    phone_enc: Mapped[str] = mapped_column(Text)
    phone_masked: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[int] = mapped_column(BigInteger)


class Passkey(Base):
    """A WebAuthn credential (passkey) a resident registered: sign-in and fingerprint/face pay.
    Only its public key is kept; ``sign_count`` is the authenticator's last counter."""

    __tablename__ = "identity_passkeys"
    __table_args__ = (Index("ix_identity_passkeys_user", "user_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)  # pk_…
    user_id: Mapped[int] = mapped_column(ForeignKey("identity_users.id"))
    credential_id: Mapped[str] = mapped_column(String(1400), unique=True)  # base64url
    public_key: Mapped[str] = mapped_column(Text)  # base64url of the COSE key
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)
    transports: Mapped[str] = mapped_column(String(200), default="")  # comma-separated
    name: Mapped[str] = mapped_column(String(60))
    created_at: Mapped[int] = mapped_column(BigInteger)
    last_used_at: Mapped[int | None] = mapped_column(BigInteger)


class PasskeyChallenge(Base):
    """A WebAuthn challenge handed out for one ceremony: used once, before ``expires_at``.
    A payment's challenge is derived from a nonce and the payment's intent (``nonce``), so
    its assertion confirms that payment and nothing else (identity/passkey_rules.py)."""

    __tablename__ = "identity_passkey_challenges"
    __table_args__ = (Index("ix_identity_passkey_challenges_expiry", "expires_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    challenge_hash: Mapped[str] = mapped_column(String(64), unique=True)  # SHA-256 hex
    purpose: Mapped[str] = mapped_column(String(16))  # register | login | payment
    user_id: Mapped[int | None] = mapped_column(ForeignKey("identity_users.id"))
    nonce: Mapped[str] = mapped_column(String(64))  # base64url
    created_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger)
    used_at: Mapped[int | None] = mapped_column(BigInteger)


register_encrypted_column("identity_users", "id", "phone_enc")
# The identity envelopes are bound to their row (the user id is their associated data).
register_encrypted_column("identity_real_names", "user_id", "name_enc", aad_is_key=True)
register_encrypted_column("identity_real_names", "user_id", "id_number_enc", aad_is_key=True)
register_encrypted_column("identity_sandbox_sms", "id", "phone_enc")
