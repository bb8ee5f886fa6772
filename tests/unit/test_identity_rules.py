"""Pure identity rules: phones, resident IDs, masking, tiers, PINs, passwords, sandbox verifier."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from citywallet.identity.gateways import SandboxIdentityVerifier
from citywallet.identity.rules import (
    checks_to_next_tier,
    mask_id_number,
    mask_name,
    mask_phone,
    normalize_name,
    normalize_phone,
    password_weakness,
    pin_weakness,
    sms_code_text,
    tier_for_checks,
    validate_resident_id,
)
from citywallet.platform.errors import InvalidInput
from tests.identity_support import resident_id

TODAY = date(2025, 6, 1)

# --- phone numbers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "13800138000",
        "138 0013 8000",
        "138-0013-8000",
        "+86 138 0013 8000",
        "+8613800138000",
        "008613800138000",
        "8613800138000",
        " (138) 0013-8000 ",
    ],
)
def test_common_formats_normalise_to_e164(raw: str) -> None:
    assert normalize_phone(raw) == "+8613800138000"


@pytest.mark.parametrize(
    "raw",
    [
        "010 6552 9988",  # Beijing landline
        "+1 650 253 0000",  # not China
        "+852 9123 4567",  # Hong Kong mobile: not mainland
        "1380013800",  # too short
        "138001380001",  # too long
        "12800138000",  # no such prefix
        "phone",
        "",
        "1" * 40,
    ],
)
def test_non_mainland_mobiles_are_refused(raw: str) -> None:
    with pytest.raises(InvalidInput) as info:
        normalize_phone(raw)
    assert info.value.code == "invalid_phone"


mobiles = st.builds(
    lambda prefix, rest: prefix + rest,
    st.sampled_from(["138", "139", "150", "186", "177", "199", "135", "188"]),
    st.text("0123456789", min_size=8, max_size=8),
)


@given(mobiles)
def test_normalising_is_idempotent_and_masking_keeps_only_the_ends(national: str) -> None:
    e164 = normalize_phone(national)
    assert e164 == "+86" + national
    assert normalize_phone(e164) == e164
    masked = mask_phone(e164)
    assert masked == national[:3] + "****" + national[-4:]


# --- resident ID numbers ------------------------------------------------------------------


def test_a_valid_id_number_validates_with_its_birth_date() -> None:
    number = resident_id("110101", "19900307", "001")
    checked = validate_resident_id(number.lower(), today=TODAY)
    assert checked.number == number.upper()
    assert checked.birth_date == date(1990, 3, 7)
    assert checked.sequence == "001"


def test_check_digit_x_is_accepted_in_either_case() -> None:
    number = next(
        n for seq in range(1000) if (n := resident_id(sequence=f"{seq:03d}")).endswith("X")
    )
    assert validate_resident_id(number.lower(), today=TODAY).number == number


@pytest.mark.parametrize(
    "number",
    [
        "11010119900307001",  # 17 characters
        "110101900307001",  # first-generation 15-digit number
        "11010119900307001A",  # bad check character
        "1101011990030700X1",  # letter inside
        "110101199002300010",  # 30 February
        "999999199003070010",  # no such region
    ],
)
def test_malformed_id_numbers_are_refused(number: str) -> None:
    with pytest.raises(InvalidInput) as info:
        validate_resident_id(number, today=TODAY)
    assert info.value.code == "invalid_id_number"


def test_a_wrong_check_digit_is_refused() -> None:
    number = resident_id()
    wrong = number[:-1] + ("0" if number[-1] != "0" else "1")
    with pytest.raises(InvalidInput, match="check digit"):
        validate_resident_id(wrong, today=TODAY)


def test_a_birth_date_in_the_future_is_refused() -> None:
    with pytest.raises(InvalidInput, match="birth date"):
        validate_resident_id(resident_id(birth="20300101"), today=TODAY)


@pytest.mark.parametrize(
    ("region", "birth"),
    [
        ("440303", "19800101"),  # Luohu district: its code dates from 1983
        ("441900", "19700615"),  # Dongguan: a prefecture-level city since 1988
        ("360426", "19550101"),  # De'an county's code, from 1983
        ("110221", "20050101"),  # Changping county: the code was retired in 1999
    ],
)
def test_a_region_code_of_any_year_is_accepted(region: str, birth: str) -> None:
    # The region is where the card was issued (first cards from 1984), not where the holder
    # was born, so the code need not have existed on the birth date.
    number = resident_id(region, birth, "012")
    assert validate_resident_id(number, today=TODAY).number == number


@pytest.mark.parametrize("region", ["999999", "440399", "000000"])
def test_an_unknown_region_code_is_refused(region: str) -> None:
    with pytest.raises(InvalidInput, match="region code") as info:
        validate_resident_id(resident_id(region, "19800101"), today=TODAY)
    assert info.value.code == "invalid_id_number"


def test_an_impossible_date_with_a_right_check_digit_is_refused() -> None:
    for birth in ("19900230", "19801301", "18991231"):
        with pytest.raises(InvalidInput, match="birth date"):
            validate_resident_id(resident_id("440303", birth), today=TODAY)


@given(
    st.sampled_from(["440303", "441900", "360426", "110221", "110101"]),
    st.dates(date(1900, 1, 1), TODAY),
    st.integers(0, 999).map(lambda n: f"{n:03d}"),
)
def test_known_regions_pass_with_any_possible_birth_date(
    region: str, birth: date, sequence: str
) -> None:
    number = resident_id(region, f"{birth:%Y%m%d}", sequence)
    checked = validate_resident_id(number, today=TODAY)
    assert (checked.number, checked.birth_date) == (number, birth)
    wrong = number[:-1] + ("0" if number[-1] != "0" else "1")
    with pytest.raises(InvalidInput, match="check digit"):
        validate_resident_id(wrong, today=TODAY)


ids = st.builds(
    resident_id,
    st.sampled_from(["110101", "310101"]),
    st.dates(date(1950, 1, 1), date(2005, 12, 31)).map(lambda d: f"{d:%Y%m%d}"),
    st.integers(0, 997).map(lambda n: f"{n:03d}"),
)


@given(ids, st.integers(0, 16), st.integers(1, 9))
def test_every_single_digit_error_is_caught(number: str, position: int, delta: int) -> None:
    assert validate_resident_id(number, today=TODAY).number == number
    digit = (int(number[position]) + delta) % 10
    typo = number[:position] + str(digit) + number[position + 1 :]
    with pytest.raises(InvalidInput):
        validate_resident_id(typo, today=TODAY)


@given(ids)
def test_id_masking_shows_first_and_last_character_only(number: str) -> None:
    masked = mask_id_number(number)
    assert len(masked) == 18
    assert masked[0] == number[0]
    assert masked[-1] == number[-1]
    assert set(masked[1:-1]) == {"*"}


# --- names --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "masked"),
    [("张三", "*三"), ("欧阳娜娜", "***娜"), ("买买提·艾力", "*****力"), ("李", "李")],
)
def test_names_mask_all_but_the_last_character(name: str, masked: str) -> None:
    assert mask_name(normalize_name(name)) == masked


@pytest.mark.parametrize("name", ["", "   ", "张3", "a\x00b", "x" * 51])
def test_implausible_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidInput):
        normalize_name(name)


def test_names_are_trimmed_and_spaces_collapsed() -> None:
    assert normalize_name("  Li   Wei ") == "Li Wei"


# --- tiers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("checks", "tier", "missing"), [(0, 0, 1), (1, 1, 2), (2, 1, 1), (3, 2, 2), (4, 2, 1),
                                    (5, 3, None), (9, 3, None)]
)  # fmt: skip
def test_pboc_classes_by_external_checks(checks: int, tier: int, missing: int | None) -> None:
    assert tier_for_checks(checks, (1, 3, 5)) == tier
    assert checks_to_next_tier(checks, (1, 3, 5)) == missing


@given(st.integers(0, 20), st.integers(0, 20))
def test_more_checks_never_lower_the_tier(a: int, b: int) -> None:
    low, high = sorted((a, b))
    assert tier_for_checks(low, (1, 3, 5)) <= tier_for_checks(high, (1, 3, 5))


def test_thresholds_are_configuration() -> None:
    assert tier_for_checks(2, (1, 2, 4)) == 2
    assert tier_for_checks(2, (3, 6, 9)) == 0


# --- payment PIN --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pin",
    ["123456", "654321", "012345", "890123", "111111", "000000", "121212", "123123",
     "112211", "100001", "12345", "1234567", "12a456", "５０２８１７"],
)  # fmt: skip
def test_easy_pins_are_refused(pin: str) -> None:
    assert pin_weakness(pin) is not None


@pytest.mark.parametrize("pin", ["502817", "739164", "260419", "918273"])
def test_ordinary_pins_are_accepted(pin: str) -> None:
    assert pin_weakness(pin) is None


def test_personal_pins_are_refused() -> None:
    phone, birth, number = "+8613812345879", date(1990, 3, 7), resident_id()
    assert pin_weakness("345879", phone=phone) is not None
    for pin in ("900307", "030790", "070390"):
        assert pin_weakness(pin, birth_date=birth) is not None
    assert number == "110101199003070011"
    assert pin_weakness("070011", id_number=number) is not None
    assert pin_weakness("502817", phone=phone, birth_date=birth, id_number=number) is None


@given(st.integers(0, 9), st.sampled_from([1, 9]))
def test_every_run_is_refused(start: int, step: int) -> None:
    pin = "".join(str((start + i * step) % 10) for i in range(6))
    assert pin_weakness(pin) is not None


@given(st.text("0123456789", min_size=2, max_size=2), st.text("0123456789", min_size=3, max_size=3))
def test_repeated_patterns_are_refused(pair: str, triple: str) -> None:
    assert pin_weakness(pair * 3) is not None
    assert pin_weakness(triple * 2) is not None


# --- passwords and messages ---------------------------------------------------------------


@pytest.mark.parametrize("password", ["short1", "password", "12345678", "abcdefgh", "x" * 129])
def test_weak_passwords_are_refused(password: str) -> None:
    assert password_weakness(password) is not None


def test_reasonable_passwords_are_accepted() -> None:
    assert password_weakness("correct horse 7") is None
    assert password_weakness("Tr0ub4dor&3") is None


def test_sms_text_holds_the_code_and_its_lifetime_but_no_phone() -> None:
    text = sms_code_text("register", "042917", 300)
    assert "042917" in text
    assert "5分钟" in text
    assert text.startswith("【城市钱包】")


# --- the sandbox identity verifier --------------------------------------------------------


def test_sandbox_verifier_magic_values() -> None:
    verifier = SandboxIdentityVerifier()
    assert verifier.verify("张三", resident_id(sequence="001")).reason == "ok"
    assert verifier.verify("张三", resident_id(sequence="001")).matched
    assert verifier.verify("张三", resident_id(sequence="999")).reason == "id_not_found"
    assert verifier.verify("张三", resident_id(sequence="998")).reason == "unavailable"
    assert verifier.verify("假张三", resident_id(sequence="001")).reason == "name_mismatch"
    assert not verifier.verify("假张三", resident_id(sequence="001")).matched


def test_sandbox_verifier_latency_and_failure_rate_are_configurable() -> None:
    waits: list[float] = []
    verifier = SandboxIdentityVerifier(latency_ms=200, failure_rate=1.0, sleep=waits.append)
    assert verifier.verify("张三", resident_id()).reason == "unavailable"
    assert len(waits) == 1
    assert 0.1 <= waits[0] <= 0.3
    calm = SandboxIdentityVerifier(latency_ms=0, failure_rate=0.0, sleep=waits.append)
    assert all(calm.verify("张三", resident_id()).matched for _ in range(50))
    assert len(waits) == 1
