"""Pure identity rules: phone numbers, resident ID numbers, masking, tiers, PINs, passwords.

No database, no clock (callers pass ``today``), no randomness: everything here is
unit-tested on its own.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import phonenumbers
from stdnum import numdb
from stdnum.cn import ric
from stdnum.exceptions import InvalidComponent

from citywallet.platform.errors import InvalidInput

SMS_PURPOSES = ("register", "reset_pin", "reset_password", "step_up")


# --- phone numbers ------------------------------------------------------------------------


def normalize_phone(raw: str) -> str:
    """A mainland China mobile number in E.164 (``+8613800138000``), from any common format.

    Accepts ``13800138000``, ``138 0013 8000``, ``+86 138-0013-8000``, ``0086…`` and
    ``86…``; refuses landlines, other countries and numbers that cannot exist.
    """
    text = raw.strip()
    if len(text) > 32:
        raise InvalidInput("That is not a mainland mobile number.", code="invalid_phone")
    digits = re.sub(r"[\s\-().]", "", text)
    if digits.startswith("0086"):
        digits = "+86" + digits[4:]
    elif digits.startswith("86") and len(digits) == 13:
        digits = "+" + digits
    try:
        number = phonenumbers.parse(digits, "CN")
    except phonenumbers.NumberParseException:
        raise InvalidInput("That is not a mainland mobile number.", code="invalid_phone") from None
    if (
        number.country_code != 86
        or not phonenumbers.is_valid_number(number)
        or phonenumbers.number_type(number) != phonenumbers.PhoneNumberType.MOBILE
    ):
        raise InvalidInput("That is not a mainland mobile number.", code="invalid_phone")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def mask_phone(e164: str) -> str:
    """``+8613812341234`` → ``138****1234``."""
    national = e164.removeprefix("+86")
    return national[:3] + "*" * (len(national) - 7) + national[-4:]


# --- resident ID numbers ------------------------------------------------------------------


@dataclass(frozen=True)
class ResidentId:
    """A valid 18-character resident ID number (GB 11643-1999) and what it encodes."""

    number: str
    birth_date: date
    sequence: str  # digits 15-17: order code (odd for men, even for women)


def validate_resident_id(raw: str, *, today: date) -> ResidentId:
    """Check length, digits, the GB 11643 check digit, the birth date and the region code."""
    number = raw.strip().replace(" ", "").upper()
    if not re.fullmatch(r"[0-9]{17}[0-9X]", number):
        raise _bad_id("A resident ID number has 17 digits and a check digit (0-9 or X).")
    if number[-1] != ric.calc_check_digit(number):
        raise _bad_id("The check digit does not match: please check the number.")
    try:
        birth = ric.get_birth_date(number)
    except InvalidComponent:
        raise _bad_id("The birth date in the number is not possible.") from None
    if birth > today or birth.year < 1900:
        raise _bad_id("The birth date in the number is not possible.")
    if not region_code_known(number[:6]):
        raise _bad_id("The region code in the number does not exist.")
    return ResidentId(number=number, birth_date=birth, sequence=number[14:17])


def region_code_known(code: str) -> bool:
    """Whether a six-digit administrative division code (GB/T 2260) has existed in any year.

    Not only in the birth year, as ``stdnum.cn.ric.validate`` demands: an ID number carries
    the region that issued it (first-generation cards from 1984), so someone born in 1980
    holds a Luohu number, 440303, though that code dates from 1983; and a number keeps its
    code after the division is renamed or merged.
    """
    found = {
        key: value for _, props in numdb.get("cn/loc").info(code) for key, value in props.items()
    }
    return bool(found.get("county"))


def birth_date_of(number: str) -> date:
    """The birth date encoded in a (validated) resident ID number."""
    return ric.get_birth_date(number)


def _bad_id(detail: str) -> InvalidInput:
    return InvalidInput(detail, code="invalid_id_number")


def mask_id_number(number: str) -> str:
    """First character and last character only: ``1****************X``."""
    return number[0] + "*" * (len(number) - 2) + number[-1]


# --- names --------------------------------------------------------------------------------


def normalize_name(raw: str) -> str:
    """A legal name as written on the ID card: trimmed, NFC, no digits or control characters."""
    name = unicodedata.normalize("NFC", " ".join(raw.split()))
    if not 1 <= len(name) <= 50 or any(
        ch.isdigit() or unicodedata.category(ch).startswith("C") for ch in name
    ):
        raise InvalidInput("Enter the name exactly as on the ID card.", code="invalid_name")
    return name


def mask_name(name: str) -> str:
    """Every character but the last masked, as payment apps show names: ``张三`` → ``*三``."""
    return "*" * (len(name) - 1) + name[-1]


# --- tiers --------------------------------------------------------------------------------


def tier_for_checks(checks: int, thresholds: Sequence[int]) -> int:
    """The highest tier (0..len(thresholds)) whose number of external checks is met.

    ``thresholds`` are ascending: the default ``(1, 3, 5)`` gives PBOC Class I/II/III.
    """
    return sum(1 for needed in thresholds if checks >= needed)


def checks_to_next_tier(checks: int, thresholds: Sequence[int]) -> int | None:
    """How many more external checks the next tier needs (``None`` at the top tier)."""
    tier = tier_for_checks(checks, thresholds)
    if tier >= len(thresholds):
        return None
    return thresholds[tier] - checks


# --- payment PIN --------------------------------------------------------------------------


def pin_weakness(
    pin: str,
    *,
    phone: str | None = None,
    birth_date: date | None = None,
    id_number: str | None = None,
) -> str | None:
    """Why ``pin`` is too easy to guess, or ``None`` if it is acceptable.

    Refused: anything but 6 digits; runs (123456, 654321, 890123); two or fewer distinct
    digits (111111, 112211); repeated pairs or triples (121212, 123123); the phone's last
    six digits; the birth date (YYMMDD, MMDDYY, DDMMYY); the ID number's last six digits.
    """
    if not re.fullmatch(r"[0-9]{6}", pin):
        return "A payment PIN is exactly 6 digits."
    digits = [int(c) for c in pin]
    steps = {(b - a) % 10 for a, b in itertools.pairwise(digits)}
    if steps in ({1}, {9}):
        return "A run of consecutive digits is too easy to guess."
    if len(set(pin)) <= 2:
        return "Use more than two different digits."
    if pin == pin[:2] * 3 or pin == pin[:3] * 2:
        return "A repeated pattern is too easy to guess."
    if phone and pin == re.sub(r"\D", "", phone)[-6:]:
        return "Do not use the end of your phone number."
    if birth_date:
        yy, mm, dd = f"{birth_date:%y}", f"{birth_date:%m}", f"{birth_date:%d}"
        if pin in {yy + mm + dd, mm + dd + yy, dd + mm + yy}:
            return "Do not use your birth date."
    if id_number and pin == id_number[-6:]:
        return "Do not use the end of your ID number."
    return None


# --- passwords ----------------------------------------------------------------------------

COMMON_PASSWORDS = frozenset(
    {"password", "password1", "12345678", "123456789", "qwerty123", "1qaz2wsx", "abc12345",
     "iloveyou", "a1234567", "woaini1314", "qwertyuiop", "11111111", "88888888", "aa123456"}
)  # fmt: skip


def password_weakness(password: str) -> str | None:
    """Why a login password is not acceptable, or ``None``."""
    if not 8 <= len(password) <= 128:
        return "A password has 8 to 128 characters."
    if password.lower() in COMMON_PASSWORDS:
        return "That password is one of the most common ones."
    classes = sum(
        bool(re.search(pattern, password))
        for pattern in (r"[a-z]", r"[A-Z]", r"\d", r"[^a-zA-Z\d]")
    )
    if classes < 2:
        return "Mix at least two of: lower case, upper case, digits, symbols."
    return None


# --- SMS text -----------------------------------------------------------------------------

_PURPOSE_TEXT = {
    "register": "注册",
    "reset_pin": "重置支付密码",
    "reset_password": "重置登录密码",
    "step_up": "确认大额或新设备付款",
}


def sms_code_text(purpose: str, code: str, ttl_seconds: int) -> str:
    """The text of a verification code message (mainland format: brand in 【】 first)."""
    minutes = max(1, ttl_seconds // 60)
    return (
        f"【城市钱包】验证码 {code}，用于{_PURPOSE_TEXT[purpose]}，{minutes}分钟内有效。"
        f"请勿告诉他人。Your CityWallet code is {code}."
    )
