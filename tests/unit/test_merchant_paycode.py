"""Customer-presented payment codes: layout, Luhn, TOTP windows, foreign wallets (DOMAIN.md §3)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from citywallet.merchant import paycode
from citywallet.merchant.paycode import PaycodeError

SECRET = paycode.new_secret()
# RFC 6238 appendix B: the SHA-256 seed and its 8-digit codes at 30-second steps. Our step is
# 60 s, so the same counters come at twice the time.
RFC_SECRET = base64.b32encode(b"12345678901234567890123456789012").decode()
RFC_VECTORS = [
    (59, "46119246"),
    (1111111109, "68084774"),
    (1111111111, "67062674"),
    (1234567890, "91819424"),
    (2000000000, "90698825"),
    (20000000000, "77737706"),
]

slots = st.integers(1, 10**8 - 1).map(lambda n: f"{n:08d}")
moments = st.floats(360, 4_102_444_800, allow_nan=False)  # 1970 + 6 steps, up to 2100
FOREIGN_PREFIXES = [f"{n}" for n in (*range(10, 16), *range(25, 31), 62)]


def error_code(code: str) -> str:
    with pytest.raises(PaycodeError) as caught:
        paycode.parse(code)
    return caught.value.code


@pytest.mark.parametrize(("rfc_time", "otp"), RFC_VECTORS)
def test_rfc_6238_sha256_vectors(rfc_time: int, otp: str) -> None:
    at = (rfc_time // 30) * paycode.STEP_SECONDS
    code = paycode.generate(RFC_SECRET, "00000001", at)
    assert paycode.parse(code) == ("00000001", otp)
    assert paycode.verify(RFC_SECRET, otp, at) == rfc_time // 30


def test_layout() -> None:
    code = paycode.generate(SECRET, "12345678", 1_700_000_000)
    assert len(code) == paycode.LENGTH == 19
    assert code.startswith(paycode.PREFIX)
    assert code[2:10] == "12345678"
    assert paycode.luhn_valid(code)


def test_new_secret_and_slot() -> None:
    secret = paycode.new_secret()
    assert len(base64.b32decode(secret + "=" * (-len(secret) % 8))) == 32
    assert secret != paycode.new_secret()
    for _ in range(200):
        slot = paycode.new_slot()
        assert len(slot) == 8
        assert slot.isdigit()
        assert int(slot) != 0


def test_luhn_known_numbers() -> None:
    assert paycode.luhn_valid("79927398713")
    assert not paycode.luhn_valid("79927398710")
    assert paycode.luhn_check_digit("7992739871") == "3"
    assert not paycode.luhn_valid("７９９２７３９８７１３")  # full-width digits
    assert not paycode.luhn_valid("0")


@pytest.mark.parametrize(
    ("code", "wallet"),
    [
        ("134567890123456789", "wechat_pay"),  # 18 digits, 10–15
        ("101234567890123456", "wechat_pay"),
        ("281234567890123456", "alipay"),  # 16–24 digits, 25–30
        ("2512345678901234", "alipay"),
        ("301234567890123456789012", "alipay"),
        ("6212345678901234567", "unionpay"),  # 62…
        ("8812345678123456781", None),
        ("1345678901234567890", None),  # 19 digits: not WeChat's length
        ("28123", None),
        ("", None),
        ("abc", None),
    ],
)
def test_foreign_wallets(code: str, wallet: str | None) -> None:
    assert paycode.foreign_wallet(code) == wallet
    if wallet is not None:
        assert error_code(code) == "paycode_foreign"


@pytest.mark.parametrize(
    "code",
    [
        "",
        "881234567812345678",  # 18 digits
        "88123456781234567812",  # 20 digits
        "88123456781234567a1",
        "８８１２３４５６７８１２３４５６７８１",  # full-width digits
        "7712345678123456781",  # not our prefix
    ],
)
def test_malformed_codes(code: str) -> None:
    assert error_code(code) == "paycode_malformed"


def test_bad_check_digit_and_zero_slot_are_malformed() -> None:
    code = paycode.generate(SECRET, "12345678", 1_700_000_000)
    wrong = code[:-1] + str((int(code[-1]) + 1) % 10)
    assert error_code(wrong) == "paycode_malformed"
    body = "88" + "00000000" + "12345678"
    assert error_code(body + paycode.luhn_check_digit(body)) == "paycode_malformed"
    with pytest.raises(PaycodeError):
        paycode.generate(SECRET, "00000000", 0)
    with pytest.raises(PaycodeError):
        paycode.generate(SECRET, "1234567", 0)


def test_verify_refuses_malformed_otps_and_bad_windows() -> None:
    assert paycode.verify(SECRET, "1234567", 0) is None
    assert paycode.verify(SECRET, "1234567a", 0) is None
    with pytest.raises(ValueError, match="window"):
        paycode.verify(SECRET, "12345678", 0, window=-1)


def test_window_edges() -> None:
    at = 1_700_000_000.0
    step = paycode.counter_at(at)
    _, otp = paycode.parse(paycode.generate(SECRET, "12345678", at))
    start = step * paycode.STEP_SECONDS
    assert paycode.verify(SECRET, otp, start, window=0) == step
    assert paycode.verify(SECRET, otp, start + 59.999, window=0) == step
    assert paycode.verify(SECRET, otp, start + 60, window=0) is None
    assert paycode.verify(SECRET, otp, start + 60, window=1) == step
    assert paycode.verify(SECRET, otp, start + 120, window=1) is None
    assert paycode.verify(SECRET, otp, start - 0.001, window=1) == step
    assert paycode.verify(SECRET, otp, start - 60.001, window=1) is None
    assert paycode.verify(paycode.new_secret(), otp, at) is None


def test_the_first_steps_after_the_epoch() -> None:
    _, otp = paycode.parse(paycode.generate(SECRET, "12345678", 0))
    assert paycode.verify(SECRET, otp, 0, window=3) == 0
    assert paycode.verify(SECRET, otp, 61, window=1) == 0
    with pytest.raises(ValueError, match="epoch"):
        paycode.generate(SECRET, "12345678", -1)


# --- properties ---------------------------------------------------------------------------


@given(slots, moments)
@settings(max_examples=200)
def test_generated_codes_parse_and_collide_with_no_other_wallet(slot: str, at: float) -> None:
    code = paycode.generate(SECRET, slot, at)
    assert len(code) == 19
    assert code.isdigit()
    assert paycode.luhn_valid(code)
    assert paycode.foreign_wallet(code) is None
    assert not any(code.startswith(prefix) for prefix in FOREIGN_PREFIXES)
    parsed_slot, otp = paycode.parse(code)
    assert parsed_slot == slot
    assert paycode.verify(SECRET, otp, at) == paycode.counter_at(at)


@given(slots, moments, st.integers(0, 3), st.integers(-6, 6))
@settings(max_examples=200)
def test_verify_accepts_within_the_window_and_not_outside(
    slot: str, at: float, window: int, steps_later: int
) -> None:
    _, otp = paycode.parse(paycode.generate(SECRET, slot, at))
    later = at + steps_later * paycode.STEP_SECONDS
    found = paycode.verify(SECRET, otp, later, window=window)
    if abs(steps_later) <= window:
        assert found == paycode.counter_at(at)
    else:
        assert found is None


@given(slots, moments)
@settings(max_examples=100)
def test_every_single_digit_change_is_caught(slot: str, at: float) -> None:
    code = paycode.generate(SECRET, slot, at)
    for i, digit in enumerate(code):
        for other in "0123456789":
            if other != digit:
                changed = code[:i] + other + code[i + 1 :]
                assert not paycode.luhn_valid(changed)
                with pytest.raises(PaycodeError):
                    paycode.parse(changed)


@given(slots, moments)
@settings(max_examples=100)
def test_adjacent_transpositions_are_caught_exactly_as_luhn_promises(slot: str, at: float) -> None:
    code = paycode.generate(SECRET, slot, at)
    for i in range(len(code) - 1):
        a, b = code[i], code[i + 1]
        swapped = code[:i] + b + a + code[i + 2 :]
        # Luhn catches every adjacent transposition except 09 <-> 90 (and no-op swaps).
        undetectable = a == b or {a, b} == {"0", "9"}
        assert paycode.luhn_valid(swapped) == undetectable
        if not undetectable:
            with pytest.raises(PaycodeError):
                paycode.parse(swapped)
