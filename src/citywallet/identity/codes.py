"""One-time SMS codes: issue (rate-limited, through the outbox), verify, consume.

A code is 6 random digits, stored only as a keyed hash bound to the phone and the purpose,
valid ``sms_code_ttl_seconds``, used once; a new code for the same phone and purpose
supersedes the old one, and ``sms_code_max_attempts`` wrong tries kill it.

Checking a code is split in two so that both rules hold at once:
:func:`verify_code` runs in a transaction of its own and commits a wrong try even though the
request then fails; :func:`consume_code` runs inside the use case's transaction and marks
the code used only if that transaction commits (a conditional update, so two concurrent
requests cannot both use one code).

The message goes through the platform outbox, encrypted (the payload holds neither the
phone number nor the code in clear): it exists only if the transaction that issued the code
commits. The API then calls :func:`deliver_now` so the code arrives at once; if that
delivery fails, the worker's ``outbox.deliver`` retries it.
"""

from __future__ import annotations

import hmac
import json
import secrets
from dataclasses import dataclass

from sqlalchemy import select, text, update

from citywallet.identity import keys
from citywallet.identity.gateways import SmsGateway
from citywallet.identity.models import SmsCode
from citywallet.identity.rules import SMS_PURPOSES, mask_phone, sms_code_text
from citywallet.platform import outbox, ratelimit
from citywallet.platform.clock import now_us
from citywallet.platform.config import Settings
from citywallet.platform.crypto import CryptoError, Encryptor
from citywallet.platform.db import Database, UnitOfWork
from citywallet.platform.errors import InvalidInput
from citywallet.platform.logging import get_logger

SMS_TOPIC = "identity.sms"
SECOND_US = 1_000_000
log = get_logger(__name__)


@dataclass(frozen=True)
class CodeSent:
    """What the client may know about a code it asked for."""

    phone_masked: str
    expires_in: int  # seconds
    resend_after: int  # seconds until another code may be asked for
    outbox_id: int | None  # the message to deliver right after commit (None: nothing sent)


class SmsCodeInvalid(InvalidInput):
    """Wrong, used, superseded or killed code."""

    code = "sms_code_invalid"
    title = "Wrong verification code"


class SmsCodeExpired(InvalidInput):
    """The code's time is up."""

    code = "sms_code_expired"
    title = "Verification code expired"


def verify_ip_rule(settings: Settings) -> ratelimit.Rule:
    """Code checks per client IP per hour, whatever the phone (guessing across many codes)."""
    return ratelimit.Rule(
        "sms_verify_ip", settings.sms_verify_per_ip_per_hour, 3600, "sms_rate_limited"
    )


def send_rules(settings: Settings) -> tuple[ratelimit.Rule, ...]:
    """The limits on asking for codes: per phone per minute and per day."""
    return (
        ratelimit.Rule("sms_send_minute", settings.sms_send_per_minute, 60, "sms_rate_limited"),
        ratelimit.Rule("sms_send_day", settings.sms_send_per_day, 86_400, "sms_rate_limited"),
    )


def send_code(
    uow: UnitOfWork,
    *,
    settings: Settings,
    encryptor: Encryptor,
    phone: str,
    purpose: str,
    client_ip: str | None = None,
    deliver: bool = True,
) -> CodeSent:
    """Issue a code to the E.164 ``phone`` and enqueue its message (rate-limited).

    ``deliver=False`` counts against the limits and answers the same, but issues nothing
    (a password reset for a number without an account must look like any other).
    """
    if purpose not in SMS_PURPOSES:
        raise InvalidInput(f"Unknown purpose {purpose!r}.", code="invalid_purpose")
    phone_key = keys.phone_hash(encryptor, phone)
    for rule in send_rules(settings):
        ratelimit.hit(uow, rule, phone_key)
    if client_ip:
        ip_rule = ratelimit.Rule(
            "sms_send_ip", settings.sms_send_per_ip_per_hour, 3600, "sms_rate_limited"
        )
        ratelimit.hit(uow, ip_rule, client_ip)
    resend_after = 60 // max(1, settings.sms_send_per_minute)
    if not deliver:
        return CodeSent(mask_phone(phone), settings.sms_code_ttl_seconds, resend_after, None)
    moment = now_us()
    uow.session.execute(
        update(SmsCode)
        .where(
            SmsCode.phone_hash == phone_key,
            SmsCode.purpose == purpose,
            SmsCode.used_at.is_(None),
            SmsCode.dead.is_(False),
        )
        .values(dead=True)
    )
    code = f"{secrets.randbelow(1_000_000):06d}"
    key_id, digest = _code_hash(encryptor, phone_key, purpose, code)
    uow.session.add(
        SmsCode(
            phone_hash=phone_key,
            purpose=purpose,
            code_hash=digest,
            key_id=key_id,
            attempts=0,
            created_at=moment,
            expires_at=moment + settings.sms_code_ttl_seconds * SECOND_US,
            dead=False,
        )
    )
    body = sms_code_text(purpose, code, settings.sms_code_ttl_seconds)
    outbox_id = outbox.enqueue(
        uow,
        topic=SMS_TOPIC,
        payload={"to": encryptor.encrypt(phone.encode()), "text": encryptor.encrypt(body.encode())},
    )
    log.info("sms code issued", purpose=purpose, phone_masked=mask_phone(phone))
    return CodeSent(mask_phone(phone), settings.sms_code_ttl_seconds, resend_after, outbox_id)


def _code_hash(
    encryptor: Encryptor, phone_key: str, purpose: str, code: str, key_id: str | None = None
) -> tuple[str, str]:
    return encryptor.keyed_hash("sms-code", f"{phone_key}:{purpose}:{code}", key_id=key_id)


def verify_code(
    db: Database,
    *,
    settings: Settings,
    encryptor: Encryptor,
    phone: str,
    purpose: str,
    code: str,
    client_ip: str | None = None,
) -> int:
    """Check ``code`` in a transaction of its own (a wrong try is counted and committed).

    Each check takes a slot of the client's address first, in the same transaction (the
    bucket row stays locked until it commits, so parallel checks cannot overtake it).
    Returns the code's row id for :func:`consume_code`; raises ``SmsCodeInvalid`` (with
    ``attempts_left``) or ``SmsCodeExpired``.
    """
    phone_key = keys.phone_hash(encryptor, phone)

    def attempt(uow: UnitOfWork) -> tuple[str, int]:
        if client_ip:
            ratelimit.hit(uow, verify_ip_rule(settings), client_ip)
        row = uow.session.scalar(
            select(SmsCode)
            .where(
                SmsCode.phone_hash == phone_key,
                SmsCode.purpose == purpose,
                SmsCode.used_at.is_(None),
                SmsCode.dead.is_(False),
            )
            .order_by(SmsCode.id.desc())
            .limit(1)
            .with_for_update()
        )
        if row is None:
            return "invalid", 0
        if row.expires_at <= now_us():
            return "expired", 0
        try:
            _, expected = _code_hash(encryptor, phone_key, purpose, code, row.key_id)
        except CryptoError:  # its key was dropped since: the code cannot be checked
            return "invalid", 0
        if hmac.compare_digest(expected, row.code_hash):
            return "ok", row.id
        row.attempts += 1
        row.dead = row.attempts >= settings.sms_code_max_attempts
        return "wrong", settings.sms_code_max_attempts - row.attempts

    outcome, value = db.transact(attempt)
    if outcome == "ok":
        return value
    if outcome == "expired":
        raise SmsCodeExpired("The code has expired; ask for a new one.")
    if outcome == "wrong" and value > 0:
        raise SmsCodeInvalid("Wrong code.", attempts_left=value)
    raise SmsCodeInvalid("No valid code: ask for a new one.", attempts_left=0)


def consume_code(uow: UnitOfWork, *, code_id: int) -> None:
    """Mark a verified code used, in the use case's transaction (once, even under races)."""
    result = uow.session.execute(
        text(
            "UPDATE identity_sms_codes SET used_at = :now "
            "WHERE id = :id AND used_at IS NULL AND dead = :dead"
        ),
        {"now": now_us(), "id": code_id, "dead": False},
    )
    if getattr(result, "rowcount", 0) != 1:
        raise SmsCodeInvalid("That code has already been used.", attempts_left=0)


def sms_outbox_handler(gateway: SmsGateway, encryptor: Encryptor) -> outbox.OutboxHandler:
    """The outbox handler of topic ``identity.sms``: decrypt, then send through ``gateway``."""

    def deliver(message: outbox.Message) -> None:
        phone = encryptor.decrypt(message.payload["to"]).decode()
        body = encryptor.decrypt(message.payload["text"]).decode()
        gateway.send(phone, body, idempotency_key=f"outbox:{message.id}")

    return deliver


def deliver_now(db: Database, *, message_id: int, handler: outbox.OutboxHandler) -> bool:
    """Deliver one just-committed outbox message at once; returns whether it was delivered.

    It is claimed like the worker claims (a visibility timeout), so the worker never sends it
    at the same time; if sending fails, the worker retries it after the usual backoff.
    """
    moment = now_us()

    def claim(uow: UnitOfWork) -> outbox.Message | None:
        row = uow.session.execute(
            text(
                "UPDATE platform_outbox SET attempts = attempts + 1, next_attempt_at = :until "
                "WHERE id = :id AND delivered_at IS NULL AND dead = :dead "
                "AND next_attempt_at <= :now "
                "RETURNING id, topic, payload, attempts, created_at"
            ),
            {
                "id": message_id,
                "now": moment,
                "until": moment + outbox.CLAIM_SECONDS * SECOND_US,
                "dead": False,
            },
        ).first()
        if row is None:
            return None
        return outbox.Message(int(row[0]), row[1], json.loads(row[2]), int(row[3]), int(row[4]))

    message = db.transact(claim)
    if message is None:
        return False
    try:
        handler(message)
    except Exception as exc:  # any failure: leave it to the worker's retries
        error = f"{exc.__class__.__name__}: {exc}"
        retry_at = now_us() + outbox.backoff_us(message.attempt, jitter=0.2)
        db.transact(
            lambda uow: uow.session.execute(
                text(
                    "UPDATE platform_outbox SET next_attempt_at = :next, last_error = :err "
                    "WHERE id = :id AND delivered_at IS NULL"
                ),
                {"id": message.id, "next": retry_at, "err": error[:2000]},
            )
        )
        log.warning("sms delivery failed; the worker retries", message_id=message.id, error=error)
        return False
    db.transact(
        lambda uow: uow.session.execute(
            text(
                "UPDATE platform_outbox SET delivered_at = :now, last_error = NULL "
                "WHERE id = :id AND delivered_at IS NULL"
            ),
            {"id": message.id, "now": now_us()},
        )
    )
    return True
