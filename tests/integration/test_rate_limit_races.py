"""Rate limits under 40 parallel attempts, on SQLite and PostgreSQL: exactly the limit do the
guarded work (a password or PIN check, an SMS code issued or checked), the rest are refused
with 429 before any work (issue 12, item 7)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from citywallet.identity import codes, pins, service
from citywallet.identity.errors import PinIncorrect, PinLocked
from citywallet.identity.keys import install_encryptor
from citywallet.identity.models import PaymentPin, SmsCode, UserEvent
from citywallet.platform import ratelimit
from citywallet.platform.crypto import Encryptor
from citywallet.platform.db import Database
from citywallet.platform.errors import DomainError, RateLimited
from citywallet.platform.models import OutboxMessage
from tests.identity_support import PASSWORD, in_threads, sign_up, test_settings
from tests.ledger_checks import test_encryptor

PARALLEL = 40
PHONE = "13800138000"
WRONG = "wrong horse 8"


@pytest.fixture
def enc() -> Encryptor:
    encryptor = test_encryptor()
    install_encryptor(encryptor)
    return encryptor


def _in_threads(fn: Callable[[int], Any]) -> list[Any]:
    """``PARALLEL`` attempts at once."""
    return in_threads(fn, PARALLEL)


def _codes(results: list[Any]) -> dict[str, int]:
    """How many results ended with each problem code (``ok`` for no error)."""
    counted: dict[str, int] = {}
    for result in results:
        if isinstance(result, DomainError):
            key = result.code
        elif isinstance(result, Exception):
            raise result  # anything else is a defect, not an outcome
        else:
            key = "ok"
        counted[key] = counted.get(key, 0) + 1
    return counted


def _retry_afters(results: list[Any]) -> set[bool]:
    return {r.retry_after >= 1 for r in results if isinstance(r, RateLimited)}


def _phone(i: int) -> str:
    return f"139{i:08d}"


def test_parallel_wrong_logins_for_one_phone_check_exactly_the_limit(
    db: Database, tmp_path: Path, enc: Encryptor
) -> None:
    settings = test_settings(tmp_path, db, login_failures_per_phone=10)
    sign_up(db, settings, enc, PHONE)
    results = _in_threads(
        lambda i: service.login(
            db,
            phone=PHONE,
            password=WRONG,
            device=service.Device(ip=f"10.1.0.{i}"),
            settings=settings,
            encryptor=enc,
        )
    )
    assert _codes(results) == {"invalid_credentials": 10, "login_rate_limited": 30}
    assert _retry_afters(results) == {True}


def test_parallel_wrong_logins_from_one_address_check_exactly_the_limit(
    db: Database, tmp_path: Path, enc: Encryptor
) -> None:
    settings = test_settings(tmp_path, db, login_failures_per_ip=10)
    results = _in_threads(
        lambda i: service.login(
            db,
            phone=_phone(i),  # unknown phones cost a full (dummy) hash too
            password=WRONG,
            device=service.Device(ip="203.0.113.9"),
            settings=settings,
            encryptor=enc,
        )
    )
    assert _codes(results) == {"invalid_credentials": 10, "login_rate_limited": 30}


def test_a_right_password_gives_its_slot_back(db: Database, tmp_path: Path, enc: Encryptor) -> None:
    settings = test_settings(tmp_path, db, login_failures_per_ip=2)
    sign_up(db, settings, enc, PHONE)
    device = service.Device(ip="203.0.113.9")
    for _ in range(5):  # successes do not use up the address's failures
        service.login(db, phone=PHONE, password=PASSWORD, device=device, settings=settings)
    for _ in range(2):
        with pytest.raises(DomainError, match="Wrong phone"):
            service.login(db, phone=PHONE, password=WRONG, device=device, settings=settings)
    with pytest.raises(RateLimited):
        service.login(db, phone=PHONE, password=PASSWORD, device=device, settings=settings)


def test_parallel_wrong_password_rechecks_check_exactly_the_limit(
    db: Database, tmp_path: Path, enc: Encryptor
) -> None:
    settings = test_settings(tmp_path, db)
    user = sign_up(db, settings, enc, PHONE).user
    results = _in_threads(
        lambda _i: service.change_password(
            db, user_id=user.id, old_password=WRONG, new_password="brand new horse 9"
        )
    )
    assert _codes(results) == {"password_incorrect": 5, "password_rate_limited": 35}
    with pytest.raises(RateLimited):  # the right password too waits for the window
        service.check_password(db, user_id=user.id, password=PASSWORD)


def test_parallel_pin_sets_recheck_the_password_exactly_the_limit(
    db: Database, tmp_path: Path, enc: Encryptor
) -> None:
    settings = test_settings(tmp_path, db)
    user = sign_up(db, settings, enc, PHONE).user

    def set_pin(_i: int) -> None:  # what POST /v1/me/payment-pin does
        service.check_password(db, user_id=user.id, password=WRONG)
        db.transact(lambda uow: pins.set_payment_pin(uow, user_id=user.id, pin="502817"))

    assert _codes(_in_threads(set_pin)) == {"password_incorrect": 5, "password_rate_limited": 35}
    with db.uow(readonly=True) as uow:
        assert uow.session.scalar(select(func.count()).select_from(PaymentPin)) == 0


def test_parallel_pin_changes_check_exactly_the_allowed_wrong_pins(
    db: Database, tmp_path: Path, enc: Encryptor
) -> None:
    settings = test_settings(tmp_path, db)
    user = sign_up(db, settings, enc, PHONE).user
    db.transact(lambda uow: pins.set_payment_pin(uow, user_id=user.id, pin="502817"))
    results = _in_threads(
        lambda _i: pins.change_payment_pin(
            db, user_id=user.id, old_pin="739164", new_pin="260419", settings=settings
        )
    )
    incorrect = [r for r in results if isinstance(r, PinIncorrect)]
    assert sorted(r.attempts_left for r in incorrect) == [1, 2, 3, 4]
    assert sum(isinstance(r, PinLocked) for r in results) == PARALLEL - 4
    with db.uow(readonly=True) as uow:
        locked_until = uow.session.scalar(select(PaymentPin.locked_until))
        locks = uow.session.scalar(
            select(func.count()).select_from(UserEvent).where(UserEvent.kind == "pin_locked")
        )
    assert locked_until is not None
    assert locks == 1  # the fifth wrong PIN locked it; no further PIN was checked


def _code_rows(db: Database) -> tuple[int, int]:
    with db.uow(readonly=True) as uow:
        issued = uow.session.scalar(select(func.count()).select_from(SmsCode))
        queued = uow.session.scalar(select(func.count()).select_from(OutboxMessage))
    return int(issued or 0), int(queued or 0)


def test_parallel_sms_sends_to_one_phone_issue_exactly_the_limit(
    db: Database, tmp_path: Path, enc: Encryptor
) -> None:
    settings = test_settings(tmp_path, db, sms_send_per_minute=3)
    results = _in_threads(
        lambda i: db.transact(
            lambda uow: service.send_sms_code(
                uow,
                phone=PHONE,
                purpose="register",
                client_ip=f"10.2.0.{i}",
                settings=settings,
                encryptor=enc,
            )
        )
    )
    assert _codes(results) == {"ok": 3, "sms_rate_limited": 37}
    assert _code_rows(db) == (3, 3)


def test_parallel_sms_sends_from_one_address_issue_exactly_the_limit(
    db: Database, tmp_path: Path, enc: Encryptor
) -> None:
    settings = test_settings(tmp_path, db, sms_send_per_ip_per_hour=7)
    results = _in_threads(
        lambda i: db.transact(
            lambda uow: service.send_sms_code(
                uow,
                phone=_phone(i),
                purpose="register",
                client_ip="203.0.113.9",
                settings=settings,
                encryptor=enc,
            )
        )
    )
    assert _codes(results) == {"ok": 7, "sms_rate_limited": 33}
    assert _code_rows(db) == (7, 7)


def _send(db: Database, settings: Any, enc: Encryptor, phone: str) -> None:
    db.transact(
        lambda uow: service.send_sms_code(
            uow, phone=phone, purpose="register", settings=settings, encryptor=enc
        )
    )


def test_parallel_wrong_codes_for_one_phone_check_exactly_the_allowed_tries(
    db: Database, tmp_path: Path, enc: Encryptor
) -> None:
    settings = test_settings(tmp_path, db)
    _send(db, settings, enc, PHONE)
    results = _in_threads(
        lambda _i: codes.verify_code(
            db,
            settings=settings,
            encryptor=enc,
            phone="+8613800138000",
            purpose="register",
            code="1234567",  # never a 6-digit code: always wrong
        )
    )
    left = sorted(r.extra["attempts_left"] for r in results if isinstance(r, codes.SmsCodeInvalid))
    assert left == [0] * (PARALLEL - 4) + [1, 2, 3, 4]
    with db.uow(readonly=True) as uow:
        row = uow.session.execute(select(SmsCode.attempts, SmsCode.dead)).one()
    assert tuple(row) == (5, True)


def test_parallel_code_checks_from_one_address_check_exactly_the_limit(
    db: Database, tmp_path: Path, enc: Encryptor
) -> None:
    settings = test_settings(tmp_path, db, sms_verify_per_ip_per_hour=10)
    for i in range(PARALLEL):
        _send(db, settings, enc, _phone(i))
    results = _in_threads(
        lambda i: service.register(
            db,
            phone=_phone(i),
            code="1234567",
            password=PASSWORD,
            device=service.Device(ip="203.0.113.9"),
            settings=settings,
            encryptor=enc,
        )
    )
    assert _codes(results) == {"sms_code_invalid": 10, "sms_rate_limited": 30}
    with db.uow(readonly=True) as uow:
        tried = uow.session.scalar(
            select(func.count()).select_from(SmsCode).where(SmsCode.attempts > 0)
        )
    assert tried == 10


def test_a_reservation_is_one_statement_that_counts_and_records(db: Database) -> None:
    rule = ratelimit.Rule("test_reserve", 3, 60)
    results = _in_threads(lambda _i: ratelimit.reserve(db, (rule, "k")))
    assert sum(r is None for r in results) == 3
    assert all(isinstance(r, RateLimited) for r in results if r is not None)
    db.transact(lambda uow: ratelimit.release(uow, rule, "k"))
    ratelimit.reserve(db, (rule, "k"))  # the slot given back is free again
    with pytest.raises(RateLimited):
        ratelimit.reserve(db, (rule, "k"))
