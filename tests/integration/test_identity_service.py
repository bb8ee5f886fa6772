"""Identity services on SQLite and PostgreSQL: codes, sign-up, sessions, real name, tiers,
PIN lockout, freezing, rate limits, encryption at rest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, select, text, update

from citywallet.identity import codes, pins, service, sessions
from citywallet.identity.errors import AccountFrozen, PinIncorrect, PinLocked, PinNotSet
from citywallet.identity.gateways import (
    IdentityCheck,
    SandboxIdentityVerifier,
    SandboxSmsGateway,
    sandbox_messages,
)
from citywallet.identity.keys import install_encryptor
from citywallet.identity.models import PaymentPin, SmsCode, UserEvent
from citywallet.platform import outbox, ratelimit
from citywallet.platform.clock import now_us
from citywallet.platform.config import Settings
from citywallet.platform.crypto import Encryptor, Keyring, rewrap_all
from citywallet.platform.db import Database
from citywallet.platform.errors import Conflict, DomainError, InvalidInput, RateLimited
from tests.identity_support import (
    PASSWORD,
    in_threads,
    last_code,
    resident_id,
    send_code,
    sign_up,
    test_settings,
)
from tests.ledger_checks import TEST_KEYRING, test_encryptor

PHONE = "13800138000"
OTHER = "13912345678"
VERIFIER = SandboxIdentityVerifier()


@pytest.fixture
def settings(tmp_path: Path, db: Database) -> Settings:
    return test_settings(tmp_path, db)


@pytest.fixture
def enc() -> Encryptor:
    encryptor = test_encryptor()
    install_encryptor(encryptor)
    return encryptor


def _verify(db: Database, settings: Settings, enc: Encryptor, user_id: str, **kw: Any) -> Any:
    values = {"name": "张三", "id_number": resident_id()} | kw
    return service.verify_real_name(
        db, user_id=user_id, verifier=VERIFIER, settings=settings, encryptor=enc, **values
    )


# --- SMS codes and sign-up ----------------------------------------------------------------


def test_sign_up_stores_the_phone_encrypted_and_finds_it_in_any_format(
    db: Database, settings: Settings, enc: Encryptor
) -> None:
    result = sign_up(db, settings, enc, PHONE)
    assert result.user.id.startswith("usr_")
    assert result.session.id.startswith("ses_")
    assert result.user.phone_masked == "138****8000"
    assert result.user.tier == 0
    assert not result.user.real_name_verified
    with db.uow(readonly=True) as uow:
        for form in ("138 0013 8000", "+86 138-0013-8000", "008613800138000"):
            found = service.find_user_by_phone(uow, phone=form)
            assert found is not None
            assert found.id == result.user.id
        assert service.find_user_by_phone(uow, phone=OTHER) is None
        assert service.get_user(uow, user_id=result.user.id) == result.user
        assert service.user_phone(uow, user_id=result.user.id) == "+8613800138000"
        with pytest.raises(DomainError) as info:
            service.get_user(uow, user_id="usr_nope")
        assert (info.value.code, info.value.status) == ("user_not_found", 404)


def test_a_code_is_single_use(db: Database, settings: Settings, enc: Encryptor) -> None:
    code = send_code(db, settings, enc, PHONE)
    device = service.Device()
    service.register(
        db, phone=PHONE, code=code, password=PASSWORD, device=device, settings=settings
    )
    with pytest.raises(InvalidInput) as info:
        service.register(
            db, phone=PHONE, code=code, password=PASSWORD, device=device, settings=settings
        )
    assert info.value.code == "sms_code_invalid"


def test_a_second_account_for_a_phone_is_refused(
    db: Database, tmp_path: Path, enc: Encryptor
) -> None:
    relaxed = test_settings(tmp_path, db, sms_send_per_minute=5)
    sign_up(db, relaxed, enc, PHONE)
    code = send_code(db, relaxed, enc, PHONE)
    with pytest.raises(Conflict) as info:
        service.register(
            db,
            phone=PHONE,
            code=code,
            password=PASSWORD,
            device=service.Device(),
            settings=relaxed,
        )
    assert info.value.code == "phone_already_registered"


def test_five_wrong_tries_kill_a_code_and_each_is_counted(
    db: Database, settings: Settings, enc: Encryptor
) -> None:
    code = send_code(db, settings, enc, PHONE)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    left = []
    for _ in range(5):
        with pytest.raises(InvalidInput) as info:
            service.register(
                db,
                phone=PHONE,
                code=wrong,
                password=PASSWORD,
                device=service.Device(),
                settings=settings,
            )
        left.append(info.value.extra["attempts_left"])
    assert left == [4, 3, 2, 1, 0]
    with pytest.raises(InvalidInput) as info:  # even the right code is dead now
        service.register(
            db,
            phone=PHONE,
            code=code,
            password=PASSWORD,
            device=service.Device(),
            settings=settings,
        )
    assert info.value.code == "sms_code_invalid"


def test_codes_expire_and_a_new_code_supersedes_the_old(
    db: Database, tmp_path: Path, enc: Encryptor
) -> None:
    relaxed = test_settings(tmp_path, db, sms_send_per_minute=5)
    first = send_code(db, relaxed, enc, PHONE)
    second = send_code(db, relaxed, enc, PHONE)
    device = service.Device()
    if first != second:
        with pytest.raises(InvalidInput):
            service.register(
                db, phone=PHONE, code=first, password=PASSWORD, device=device, settings=relaxed
            )
    db.transact(lambda uow: uow.session.execute(update(SmsCode).values(expires_at=0)))
    with pytest.raises(InvalidInput) as info:
        service.register(
            db, phone=PHONE, code=second, password=PASSWORD, device=device, settings=relaxed
        )
    assert info.value.code == "sms_code_expired"


def test_codes_are_stored_hashed_and_the_outbox_holds_no_clear_values(
    db: Database, settings: Settings, enc: Encryptor
) -> None:
    code = send_code(db, settings, enc, PHONE)
    with db.uow(readonly=True) as uow:
        stored = uow.session.scalars(select(SmsCode.code_hash)).all()
        payloads = uow.session.execute(text("SELECT payload FROM platform_outbox")).scalars().all()
    assert stored
    assert all(code not in h for h in stored)
    assert payloads
    assert all(code not in p and PHONE not in p for p in payloads)


def test_sending_is_limited_per_phone_per_minute_and_per_day(
    db: Database, tmp_path: Path, enc: Encryptor
) -> None:
    strict = test_settings(tmp_path, db, sms_send_per_minute=1, sms_send_per_day=3)

    def ask(phone: str = PHONE) -> codes.CodeSent:
        return db.transact(
            lambda uow: service.send_sms_code(
                uow, phone=phone, purpose="register", settings=strict, encryptor=enc
            )
        )

    def a_minute_passes() -> None:
        db.transact(
            lambda uow: uow.session.execute(
                text("DELETE FROM platform_rate_limits WHERE bucket LIKE 'sms_send_minute:%'")
            )
        )

    ask()
    with pytest.raises(RateLimited) as info:
        ask()
    assert info.value.code == "sms_rate_limited"
    assert 55 <= info.value.retry_after <= 60
    ask(OTHER)  # another phone is not affected
    a_minute_passes()
    ask()
    a_minute_passes()
    ask()
    a_minute_passes()
    with pytest.raises(RateLimited) as info:
        ask()
    assert info.value.retry_after > 86_000  # the day's window opened at the first send


def test_a_reset_code_for_an_unknown_phone_looks_the_same_but_sends_nothing(
    db: Database, settings: Settings, enc: Encryptor
) -> None:
    sent = db.transact(
        lambda uow: service.send_sms_code(
            uow, phone=OTHER, purpose="reset_password", settings=settings, encryptor=enc
        )
    )
    assert sent.outbox_id is None
    assert sent.phone_masked == "139****5678"
    with db.uow(readonly=True) as uow:
        assert uow.session.scalar(select(SmsCode.id)) is None


# --- login and sessions -------------------------------------------------------------------


def test_login_opens_a_session_and_wrong_passwords_are_limited(
    db: Database, tmp_path: Path, enc: Encryptor
) -> None:
    strict = test_settings(tmp_path, db, login_failures_per_phone=3)
    user = sign_up(db, strict, enc, PHONE).user
    device = service.Device(ip="10.0.0.9")
    result = service.login(
        db, phone="+86 138 0013 8000", password=PASSWORD, device=device, settings=strict
    )
    assert result.user.id == user.id
    for _ in range(3):
        with pytest.raises(DomainError) as info:
            service.login(db, phone=PHONE, password="wrong horse 7", device=device, settings=strict)
        assert (info.value.code, info.value.status) == ("invalid_credentials", 401)
    with pytest.raises(RateLimited) as limited:  # even the right password now
        service.login(db, phone=PHONE, password=PASSWORD, device=device, settings=strict)
    assert limited.value.code == "login_rate_limited"
    assert limited.value.retry_after > 800
    with pytest.raises(DomainError) as unknown:  # an unknown phone answers the same
        service.login(db, phone=OTHER, password=PASSWORD, device=device, settings=strict)
    assert unknown.value.code == "invalid_credentials"


def test_sessions_list_page_and_revoke_only_ones_own(
    db: Database, settings: Settings, enc: Encryptor
) -> None:
    alice = sign_up(db, settings, enc, PHONE)
    bob = sign_up(db, settings, enc, OTHER)
    for _ in range(4):
        service.login(
            db, phone=PHONE, password=PASSWORD, device=service.Device(), settings=settings
        )
    with db.uow(readonly=True) as uow:
        first, cursor = sessions.list_sessions(uow, user_id=alice.user.id, limit=3)
        rest, end = sessions.list_sessions(uow, user_id=alice.user.id, limit=3, cursor=cursor)
    assert len(first) == 3
    assert len(rest) == 2
    assert end is None
    assert len({s.id for s in first + rest}) == 5
    with pytest.raises(DomainError) as info:
        db.transact(
            lambda uow: sessions.revoke_session(
                uow, user_id=bob.user.id, session_id=alice.session.id
            )
        )
    assert (info.value.code, info.value.status) == ("session_not_found", 404)
    db.transact(
        lambda uow: sessions.revoke_session(uow, user_id=alice.user.id, session_id=alice.session.id)
    )
    with db.uow(readonly=True) as uow:
        assert sessions.authenticate(uow, token=alice.session.token) is None
        found = sessions.authenticate(uow, token=bob.session.token)
        assert found is not None
        assert found.user_id == bob.user.id
        assert sessions.authenticate(uow, token="cws_" + "x" * 40) is None


def test_only_the_token_hash_is_stored(db: Database, settings: Settings, enc: Encryptor) -> None:
    issued = sign_up(db, settings, enc, PHONE).session
    dump = _dump(db)
    assert issued.token not in dump
    assert sessions.token_hash(issued.token) in dump


# --- real name, one identity per person, tiers --------------------------------------------


def test_real_name_verification_reaches_tier_one_and_masks(
    db: Database, settings: Settings, enc: Encryptor
) -> None:
    user = sign_up(db, settings, enc, PHONE).user
    view = _verify(db, settings, enc, user.id)
    assert (view.tier, view.real_name_verified, view.name_masked) == (1, True, "*三")
    with db.uow(readonly=True) as uow:
        identity = service.verified_identity(uow, user_id=user.id)
        profile = service.get_profile(uow, user_id=user.id)
    assert identity is not None
    assert (identity.name, identity.id_number) == ("张三", resident_id())
    assert profile.id_number_masked == "1****************1"
    assert profile.external_checks == 1
    assert profile.checks_to_next_tier == 2


def test_one_verified_identity_per_person(db: Database, settings: Settings, enc: Encryptor) -> None:
    alice = sign_up(db, settings, enc, PHONE).user
    bob = sign_up(db, settings, enc, OTHER).user
    _verify(db, settings, enc, alice.id)
    with pytest.raises(Conflict) as info:
        _verify(db, settings, enc, bob.id, id_number=resident_id().lower())
    assert info.value.code == "identity_already_used"
    with pytest.raises(Conflict) as again:
        _verify(db, settings, enc, alice.id, id_number=resident_id(sequence="003"))
    assert again.value.code == "already_verified"


def test_racing_verifications_of_one_id_number_leave_one_winner(
    db: Database, tmp_path: Path, enc: Encryptor
) -> None:
    relaxed = test_settings(tmp_path, db)
    phones = [f"1390000{i:04d}" for i in range(6)]
    users = [sign_up(db, relaxed, enc, phone).user for phone in phones]
    results = in_threads(lambda i: _verify(db, relaxed, enc, users[i].id), len(users))
    winners = [r for r in results if not isinstance(r, Exception)]
    losers = [r for r in results if isinstance(r, Exception)]
    assert len(winners) == 1
    assert all(isinstance(e, Conflict) and e.code == "identity_already_used" for e in losers)


@pytest.mark.parametrize(
    ("name", "sequence", "code", "reason"),
    [
        ("假名", "001", "identity_check_failed", "name_mismatch"),
        ("张三", "999", "identity_check_failed", "id_not_found"),
        ("张三", "998", "identity_service_unavailable", None),
    ],
)
def test_declines_and_outages_record_nothing(
    db: Database,
    settings: Settings,
    enc: Encryptor,
    name: str,
    sequence: str,
    code: str,
    reason: str | None,
) -> None:
    user = sign_up(db, settings, enc, PHONE).user
    with pytest.raises(DomainError) as info:
        _verify(db, settings, enc, user.id, name=name, id_number=resident_id(sequence=sequence))
    assert info.value.code == code
    assert info.value.extra.get("reason") == reason
    with db.uow(readonly=True) as uow:
        assert service.get_user(uow, user_id=user.id).tier == 0
        assert service.verified_identity(uow, user_id=user.id) is None


def test_external_checks_count_once_per_kind_and_climb_the_tiers(
    db: Database, settings: Settings, enc: Encryptor
) -> None:
    user = sign_up(db, settings, enc, PHONE).user
    _verify(db, settings, enc, user.id)

    def record(count: int, kind: str) -> int:
        return db.transact(
            lambda uow: service.record_external_checks(uow, user_id=user.id, count=count, kind=kind)
        )

    assert record(2, "bank_card:fp1") == 2  # 1 + 2 = 3 checks: Class II
    assert record(2, "bank_card:fp1") == 2  # the same card again adds nothing
    assert record(2, "bank_card:fp2") == 3  # 5 checks: Class III
    with db.uow(readonly=True) as uow:
        kinds = uow.session.scalars(
            select(UserEvent.detail).where(UserEvent.kind == "tier_changed")
        ).all()
        assert service.get_user(uow, user_id=user.id).tier == 3
    assert len(kinds) == 3
    with pytest.raises(InvalidInput):
        record(0, "bank_card:fp3")


class _Declining:
    def verify(self, name: str, id_number: str) -> IdentityCheck:
        return IdentityCheck(False, "id_not_found", "test")


def test_an_upgrade_rechecks_the_identity(db: Database, settings: Settings, enc: Encryptor) -> None:
    user = sign_up(db, settings, enc, PHONE).user
    with pytest.raises(Conflict) as unverified:
        service.recheck_identity(db, user_id=user.id, verifier=VERIFIER, settings=settings)
    assert unverified.value.code == "real_name_required"
    _verify(db, settings, enc, user.id)
    db.transact(
        lambda uow: service.record_external_checks(
            uow, user_id=user.id, count=2, kind="bank_card:fp1"
        )
    )
    stricter = settings.model_copy(update={"tier_checks": [1, 2, 3]})
    with pytest.raises(Conflict) as failed:
        service.recheck_identity(db, user_id=user.id, verifier=_Declining(), settings=stricter)
    assert failed.value.code == "identity_recheck_failed"
    with db.uow(readonly=True) as uow:
        assert service.get_user(uow, user_id=user.id).tier == 2
    status = service.recheck_identity(db, user_id=user.id, verifier=VERIFIER, settings=stricter)
    assert (status.tier, status.external_checks, status.checks_to_next_tier) == (3, 3, None)


# --- payment PIN --------------------------------------------------------------------------


def _set_pin(db: Database, user_id: str, pin: str = "502817") -> None:
    db.transact(lambda uow: pins.set_payment_pin(uow, user_id=user_id, pin=pin))


def test_pin_lifecycle_and_lockout(db: Database, settings: Settings, enc: Encryptor) -> None:
    user = sign_up(db, settings, enc, PHONE).user
    with pytest.raises(PinNotSet) as not_set:
        service.confirm_payment_pin(db, user_id=user.id, pin="502817")
    assert (not_set.value.code, not_set.value.status) == ("pin_not_set", 409)
    with pytest.raises(InvalidInput) as weak:
        _set_pin(db, user.id, "138000")  # the phone number's last six digits
    assert weak.value.code == "pin_weak"
    _set_pin(db, user.id)
    service.confirm_payment_pin(db, user_id=user.id, pin="502817")
    left = []
    for _ in range(4):
        with pytest.raises(PinIncorrect) as wrong:
            service.confirm_payment_pin(db, user_id=user.id, pin="739164")
        left.append(wrong.value.attempts_left)
    assert left == [4, 3, 2, 1]
    service.confirm_payment_pin(db, user_id=user.id, pin="502817")  # success resets the count
    for _ in range(4):
        with pytest.raises(PinIncorrect):
            service.confirm_payment_pin(db, user_id=user.id, pin="739164")
    with pytest.raises(PinLocked) as locked:
        service.confirm_payment_pin(db, user_id=user.id, pin="739164")
    assert (locked.value.status, locked.value.retry_after) == (423, 3 * 3600)
    with pytest.raises(PinLocked):  # locked: even the right PIN is not checked
        service.confirm_payment_pin(db, user_id=user.id, pin="502817")
    db.transact(lambda uow: uow.session.execute(update(PaymentPin).values(locked_until=1)))
    service.confirm_payment_pin(db, user_id=user.id, pin="502817")  # the lock ran out


def test_concurrent_wrong_pins_cannot_exceed_the_limit(
    db: Database, settings: Settings, enc: Encryptor
) -> None:
    user = sign_up(db, settings, enc, PHONE).user
    _set_pin(db, user.id)
    results = in_threads(
        lambda _i: service.confirm_payment_pin(db, user_id=user.id, pin="739164"), 12
    )
    incorrect = [r for r in results if isinstance(r, PinIncorrect)]
    locked = [r for r in results if isinstance(r, PinLocked)]
    assert len(incorrect) == 4
    assert len(locked) == 8
    assert sorted(e.attempts_left for e in incorrect) == [1, 2, 3, 4]


def test_pin_change_and_reset_by_sms(db: Database, tmp_path: Path, enc: Encryptor) -> None:
    relaxed = test_settings(tmp_path, db, sms_send_per_minute=5)
    user = sign_up(db, relaxed, enc, PHONE).user
    _set_pin(db, user.id)
    with pytest.raises(Conflict):
        _set_pin(db, user.id, "739164")
    with pytest.raises(PinIncorrect):
        pins.change_payment_pin(db, user_id=user.id, old_pin="739164", new_pin="260419")
    pins.change_payment_pin(db, user_id=user.id, old_pin="502817", new_pin="260419")
    for _ in range(5):
        with pytest.raises((PinIncorrect, PinLocked)):
            service.confirm_payment_pin(db, user_id=user.id, pin="111222")
    sent = db.transact(lambda uow: pins.send_pin_reset_code(uow, user_id=user.id, settings=relaxed))
    assert sent.outbox_id is not None
    handler = codes.sms_outbox_handler(SandboxSmsGateway(db, enc), enc)
    assert codes.deliver_now(db, message_id=sent.outbox_id, handler=handler)
    pins.reset_payment_pin(
        db, user_id=user.id, code=last_code(db, enc, PHONE), new_pin="918273", settings=relaxed
    )
    service.confirm_payment_pin(db, user_id=user.id, pin="918273")  # new PIN, lock lifted


def test_a_pin_hashed_under_an_old_key_is_rehashed_on_success(
    db: Database, settings: Settings, enc: Encryptor
) -> None:
    user = sign_up(db, settings, enc, PHONE).user
    _set_pin(db, user.id)
    rotated = Encryptor(Keyring({"t2": bytes(range(1, 33)), **TEST_KEYRING.keys}, "t2"))
    service.confirm_payment_pin(db, user_id=user.id, pin="502817", encryptor=rotated)
    with db.uow(readonly=True) as uow:
        assert uow.session.scalar(select(PaymentPin.key_id)) == "t2"
    only_new = Encryptor(Keyring({"t2": bytes(range(1, 33))}, "t2"))
    service.confirm_payment_pin(db, user_id=user.id, pin="502817", encryptor=only_new)
    with pytest.raises(PinIncorrect):
        service.confirm_payment_pin(db, user_id=user.id, pin="260419", encryptor=only_new)


# --- freezing -----------------------------------------------------------------------------


def test_a_frozen_user_is_signed_out_and_cannot_log_in_or_pay(
    db: Database, settings: Settings, enc: Encryptor
) -> None:
    signed = sign_up(db, settings, enc, PHONE)
    user = signed.user
    _set_pin(db, user.id)
    frozen = db.transact(
        lambda uow: service.freeze_user(
            uow, user_id=user.id, reason="reported stolen phone", actor="operator:test"
        )
    )
    assert frozen.status == "frozen"
    with db.uow(readonly=True) as uow, pytest.raises(AccountFrozen):
        sessions.authenticate(uow, token=signed.session.token)
    with pytest.raises(AccountFrozen):
        service.login(
            db, phone=PHONE, password=PASSWORD, device=service.Device(), settings=settings
        )
    with pytest.raises(AccountFrozen):
        service.confirm_payment_pin(db, user_id=user.id, pin="502817")
    with pytest.raises(Conflict):
        db.transact(
            lambda uow: service.freeze_user(uow, user_id=user.id, reason="x", actor="operator:test")
        )
    db.transact(
        lambda uow: service.unfreeze_user(
            uow, user_id=user.id, reason="phone recovered", actor="operator:test"
        )
    )
    with db.uow(readonly=True) as uow:  # the old session stays ended
        assert sessions.authenticate(uow, token=signed.session.token) is None
        events = uow.session.execute(select(UserEvent.kind, UserEvent.actor)).all()
    assert ("frozen", "operator:test") in events
    assert ("unfrozen", "operator:test") in events
    service.login(db, phone=PHONE, password=PASSWORD, device=service.Device(), settings=settings)


# --- rate limiter -------------------------------------------------------------------------


def test_rate_limit_windows_open_at_the_first_hit(db: Database) -> None:
    rule = ratelimit.Rule("test_rule", 2, 60)
    start = 1_000_000_000_000
    for offset in (0, 10):
        db.transact(lambda uow, o=offset: ratelimit.hit(uow, rule, "k", now=start + o * 10**6))
    with pytest.raises(RateLimited) as info:
        db.transact(lambda uow: ratelimit.hit(uow, rule, "k", now=start + 30 * 10**6))
    assert info.value.retry_after == 30
    db.transact(lambda uow: ratelimit.hit(uow, rule, "other", now=start + 30 * 10**6))
    db.transact(lambda uow: ratelimit.hit(uow, rule, "k", now=start + 60 * 10**6))  # new window
    with pytest.raises(RateLimited):
        ratelimit.reserve(db, (ratelimit.Rule("test_rule", 1, 60), "k"), now=start + 61 * 10**6)
    with db.uow() as uow:
        ratelimit.reset(uow, rule, "k")
        uow.commit()
    ratelimit.reserve(db, (ratelimit.Rule("test_rule", 1, 60), "k"), now=start + 61 * 10**6)
    with db.uow() as uow:
        assert ratelimit.purge_expired(uow, now=start + 10**9) == 2  # "k" anew, and "other"
        uow.commit()


def test_concurrent_hits_take_exactly_the_limit(db: Database) -> None:
    rule = ratelimit.Rule("test_race", 5, 60)
    results = in_threads(lambda _i: db.transact(lambda uow: ratelimit.hit(uow, rule, "k")), 16)
    assert sum(r is None for r in results) == 5
    assert all(isinstance(r, RateLimited) for r in results if r is not None)


# --- encryption at rest and key rotation --------------------------------------------------


def _dump(db: Database) -> str:
    """Every value of every table, as text."""
    lines = []
    with db.engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            for row in conn.execute(text(f"SELECT * FROM {table}")):
                lines.append(" ".join(str(v) for v in row))
    return "\n".join(lines)


def test_no_phone_name_or_id_number_in_clear_in_the_database(
    db: Database, settings: Settings, enc: Encryptor
) -> None:
    user = sign_up(db, settings, enc, PHONE).user
    _verify(db, settings, enc, user.id, name="欧阳娜娜", id_number=resident_id(sequence="123"))
    dump = _dump(db)
    for secret in (PHONE, "8613800138000", "欧阳娜娜", resident_id(sequence="123"), "19900307"):
        assert secret not in dump


def test_key_rotation_rewraps_identity_columns(
    db: Database, settings: Settings, enc: Encryptor
) -> None:
    user = sign_up(db, settings, enc, PHONE).user
    _verify(db, settings, enc, user.id)
    rotated = Encryptor(
        Keyring({"t2": bytes(range(1, 33)), **TEST_KEYRING.keys}, "t2", TEST_KEYRING.lookup_key)
    )
    changed = db.transact(lambda uow: rewrap_all(uow, rotated))
    assert changed >= 3  # phone, name, ID number (and the sandbox SMS's phone)
    only_new = Encryptor(Keyring({"t2": bytes(range(1, 33))}, "t2"))  # t1 may now be dropped
    with db.uow(readonly=True) as uow:
        found = service.find_user_by_phone(uow, phone=PHONE, encryptor=rotated)
        assert found is not None
        assert found.id == user.id
        identity = service.verified_identity(uow, user_id=user.id, encryptor=only_new)
        assert identity is not None
        assert identity.id_number == resident_id()
        assert service.user_phone(uow, user_id=user.id, encryptor=only_new) == "+86" + PHONE


# --- SMS delivery through the outbox ------------------------------------------------------


def test_a_failed_immediate_delivery_is_retried_by_the_worker(
    db: Database, settings: Settings, enc: Encryptor
) -> None:
    sent = db.transact(
        lambda uow: service.send_sms_code(
            uow, phone=PHONE, purpose="register", settings=settings, encryptor=enc
        )
    )
    assert sent.outbox_id is not None
    broken = SandboxSmsGateway(db, enc, failure_rate=1.0)
    assert not codes.deliver_now(
        db, message_id=sent.outbox_id, handler=codes.sms_outbox_handler(broken, enc)
    )
    with db.uow(readonly=True) as uow:
        assert sandbox_messages(uow, enc, phone="+86" + PHONE) == []
        error = uow.session.execute(text("SELECT last_error FROM platform_outbox")).scalar_one()
    assert "SmsDeliveryFailed" in error
    working = codes.sms_outbox_handler(SandboxSmsGateway(db, enc), enc)
    later = now_us() + 3600 * 10**6
    assert outbox.deliver_due(db, handlers={codes.SMS_TOPIC: working}, now=later) == 1
    assert outbox.deliver_due(db, handlers={codes.SMS_TOPIC: working}, now=later) == 0
    code = last_code(db, enc, PHONE)
    result = service.register(
        db, phone=PHONE, code=code, password=PASSWORD, device=service.Device(), settings=settings
    )
    assert result.user.phone_masked == "138****8000"
