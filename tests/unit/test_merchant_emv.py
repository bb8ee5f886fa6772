"""EMVCo MPM codec: CRC, data objects, our authenticated merchant codes (DOMAIN.md §3)."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from citywallet.merchant import emv
from citywallet.merchant.emv import EmvError, MerchantCode

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))

STATIC = MerchantCode(
    merchant_id="mch_N8rY2kq0VfZ1tLx5aB3c",
    store_id="sto_Qw4Er5Ty6Ui7Op8As9Df",
    mcc="5812",
    merchant_name="LAO WANG NOODLES",
    merchant_city="BEIJING",
    name_zh="老王面馆",
    city_zh="北京",
)
DYNAMIC = dataclasses.replace(
    STATIC, amount=1230, order_ref="ord_Zx1Cv2Bn3Mm4Kk5Jj6Hh", terminal="TILL-3"
)


def with_crc(body: str) -> str:
    """``body`` + ``6304`` + its CRC: a payload whose checksum is right whatever it says."""
    body += "6304"
    return body + f"{emv.crc16_ccitt_false(body.encode('utf-8')):04X}"


def reencode(payload: str, **changes: str) -> str:
    """``payload`` with some top-level values replaced (or added) and the CRC recomputed."""
    objects = {k: v for k, v in emv.decode_objects(payload).items() if k != "63"}
    objects.update(changes)
    return emv.encode_objects(list(objects.items()))


def error_code(payload: str, key: bytes = KEY) -> str:
    with pytest.raises(EmvError) as caught:
        emv.parse(payload, key=key)
    return caught.value.code


# --- strategies ---------------------------------------------------------------------------

ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
ans = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
any_text_char = st.one_of(
    st.sampled_from("北京上海广州深圳老王面馆咖啡茶餐厅便利店·（）"),
    st.characters(codec="utf-8", exclude_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")),
)


@st.composite
def merchant_codes(draw: st.DrawFn) -> MerchantCode:
    amount = draw(st.none() | st.integers(1, 9_999_999_999))
    name_zh = draw(st.just("") | st.text(any_text_char, min_size=1, max_size=25))
    return MerchantCode(
        merchant_id="mch_" + draw(st.text(ID_CHARS, min_size=1, max_size=20)),
        store_id="sto_" + draw(st.text(ID_CHARS, min_size=1, max_size=20)),
        mcc=draw(st.from_regex(r"[0-9]{4}", fullmatch=True)),
        merchant_name=draw(st.text(ans, min_size=1, max_size=25)),
        merchant_city=draw(st.text(ans, min_size=1, max_size=15)),
        name_zh=name_zh,
        city_zh=draw(st.just("") | st.text(any_text_char, min_size=1, max_size=15))
        if name_zh
        else "",
        amount=amount,
        order_ref=None if amount is None else draw(st.text(ans, min_size=1, max_size=25)),
        terminal=draw(st.none() | st.text(ans, min_size=1, max_size=25)),
        provider=draw(st.none() | st.from_regex(r"[a-z0-9][a-z0-9-]{0,31}", fullmatch=True)),
    )


# --- CRC and data objects -----------------------------------------------------------------


def test_crc_check_value() -> None:
    assert emv.crc16_ccitt_false(b"123456789") == 0x29B1
    assert emv.crc16_ccitt_false(b"") == 0xFFFF


def test_published_example_is_rebuilt_exactly() -> None:
    # The worked example of the Banco Central do Brasil's Pix manual (an EMV MPM network):
    # rebuilding it object by object must give the published string, CRC 1D3D included.
    published = (
        "00020126580014br.gov.bcb.pix0136123e4567-e12b-12d1-a456-426655440000"
        "5204000053039865802BR5913Fulano de Tal6008BRASILIA62070503***63041D3D"
    )
    built = emv.encode_objects(
        [
            ("00", "01"),
            ("26", [("00", "br.gov.bcb.pix"), ("01", "123e4567-e12b-12d1-a456-426655440000")]),
            ("52", "0000"),
            ("53", "986"),
            ("58", "BR"),
            ("59", "Fulano de Tal"),
            ("60", "BRASILIA"),
            ("62", [("05", "***")]),
        ]
    )
    assert built == published
    objects = emv.decode_objects(published)
    assert list(objects) == ["00", "26", "52", "53", "58", "59", "60", "62", "63"]
    assert objects["63"] == "1D3D"
    assert emv.decode_template(objects["26"]) == {
        "00": "br.gov.bcb.pix",
        "01": "123e4567-e12b-12d1-a456-426655440000",
    }
    assert error_code(published) == "qr_foreign"


def test_lengths_count_characters_and_crc_runs_over_utf8() -> None:
    payload = emv.build(STATIC, key=KEY)
    assert "64200002ZH0104老王面馆0202北京6304" in payload
    assert payload[-4:] == f"{emv.crc16_ccitt_false(payload[:-4].encode('utf-8')):04X}"
    assert len(payload.encode("utf-8")) > len(payload)


def test_encode_objects_refuses_what_decode_would_refuse() -> None:
    with pytest.raises(EmvError) as caught:
        emv.encode_objects([("00", "01"), ("59", "A"), ("59", "B")])
    assert caught.value.code == "qr_duplicate_id"
    with pytest.raises(EmvError) as caught:
        emv.encode_objects([("00", "01"), ("62", [("05", "A"), ("05", "B")])])
    assert caught.value.code == "qr_duplicate_id"
    with pytest.raises(EmvError) as caught:
        emv.encode_objects([("00", "01"), ("59", "x" * 100)])
    assert caught.value.code == "qr_too_long"
    with pytest.raises(EmvError) as caught:
        emv.encode_objects([("00", "01"), *((f"{i}", "x" * 99) for i in range(80, 86))])
    assert caught.value.code == "qr_too_long"
    for bad in ([("59", "A")], [("00", "01"), ("5", "A")], [("00", "01"), ("63", "ABCD")]):
        with pytest.raises(EmvError) as caught:
            emv.encode_objects(bad)
        assert caught.value.code == "qr_malformed"


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ("", "qr_not_emv"),
        ("https://example.com/pay?to=mch_1", "qr_not_emv"),
        ("wxp://f2f0abcdef", "qr_not_emv"),
        ("8812345678123456781", "qr_not_emv"),
        ("0002", "qr_truncated"),
        (with_crc("000201" + "5A04abcd"), "qr_malformed"),  # ID not two digits
        (with_crc("000201" + "59x4abcd"), "qr_malformed"),  # length not two digits
        (with_crc("000201" + "5900"), "qr_malformed"),  # empty value
        (with_crc("000201" + "5999ab"), "qr_truncated"),
        ("000201" + "5904abcd", "qr_truncated"),  # no CRC at all
        (with_crc("000201" + "5904abcd")[:-4] + "0000", "qr_crc_mismatch"),
        ("000201" + "5904abch" + "6304dead", "qr_crc_mismatch"),  # DEAD, but lower-case
        (with_crc("000201" + "5904abcd5904abcd"), "qr_duplicate_id"),
        (with_crc("000201" + "".join(f"{i}99" + "x" * 99 for i in range(80, 85))), "qr_too_long"),
        ("000201" + "6304ABCD" + "5904abcd", "qr_malformed"),  # CRC not last
        ("000201" + "5902\ud800x6304ABCD", "qr_malformed"),  # not valid Unicode
    ],
)
def test_decode_objects_refusals(payload: str, code: str) -> None:
    with pytest.raises(EmvError) as caught:
        emv.decode_objects(payload)
    assert caught.value.code == code
    assert error_code(payload) == code


def test_upper_case_crc_is_the_one_accepted() -> None:
    assert emv.decode_objects("000201" + "5904abch" + "6304DEAD")["59"] == "abch"


def test_decode_template_checks_structure() -> None:
    assert emv.decode_template("0002ZH0102北京") == {"00": "ZH", "01": "北京"}
    for value, code in (("0002ZH0002EN", "qr_duplicate_id"), ("0005ZH", "qr_truncated")):
        with pytest.raises(EmvError) as caught:
            emv.decode_template(value)
        assert caught.value.code == code


# --- our codes ----------------------------------------------------------------------------


def test_static_and_dynamic_payloads() -> None:
    static = emv.build(STATIC, key=KEY)
    assert static.startswith("000201010211")
    assert "5303156" in static
    assert "54" not in emv.decode_objects(static)
    assert "62" not in emv.decode_objects(static)
    dynamic = emv.build(DYNAMIC, key=KEY)
    objects = emv.decode_objects(dynamic)
    assert objects["01"] == "12"
    assert objects["54"] == "12.30"
    assert emv.decode_template(objects["62"]) == {"05": DYNAMIC.order_ref, "07": "TILL-3"}
    account = emv.decode_template(objects[emv.ACCOUNT_TEMPLATE_ID])
    assert account["00"] == emv.NETWORK_GUID
    assert (account["01"], account["02"]) == (DYNAMIC.merchant_id, DYNAMIC.store_id)
    assert len(account["03"]) == 16
    assert account["03"] == account["03"].upper()
    assert emv.parse(static, key=KEY) == STATIC
    assert emv.parse(dynamic, key=KEY) == DYNAMIC


@pytest.mark.parametrize(
    ("fen", "text"), [(1, "0.01"), (5, "0.05"), (100, "1.00"), (1230, "12.30")]
)
def test_amount_is_yuan_with_two_decimals(fen: int, text: str) -> None:
    payload = emv.build(dataclasses.replace(DYNAMIC, amount=fen), key=KEY)
    assert emv.decode_objects(payload)["54"] == text
    assert emv.parse(payload, key=KEY).amount == fen


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"amount": 100, "order_ref": None}, "qr_malformed"),  # dynamic needs an order
        ({"amount": None, "order_ref": "ord_1"}, "qr_malformed"),  # static has none
        ({"amount": 0}, "qr_malformed"),
        ({"amount": -5}, "qr_malformed"),
        ({"amount": 10**13}, "qr_malformed"),  # 14 characters as yuan
        ({"mcc": "581"}, "qr_malformed"),
        ({"merchant_name": "老王面馆"}, "qr_malformed"),  # ID 59 is Latin
        ({"merchant_name": "X" * 26}, "qr_malformed"),
        ({"merchant_city": "X" * 16}, "qr_malformed"),
        ({"merchant_name": ""}, "qr_malformed"),
        ({"name_zh": "", "city_zh": "北京"}, "qr_malformed"),
        ({"name_zh": "老王\n面馆"}, "qr_malformed"),
        ({"terminal": "T" * 26}, "qr_malformed"),
        ({"merchant_id": "mch 1"}, "qr_malformed"),
        ({"merchant_id": "m" * 30, "store_id": "s" * 20}, "qr_too_long"),
        ({"country": "cn"}, "qr_malformed"),
        ({"currency": "840"}, "qr_unsupported_currency"),
    ],
)
def test_invalid_codes_are_refused_when_made(changes: dict[str, object], code: str) -> None:
    with pytest.raises(EmvError) as caught:
        dataclasses.replace(DYNAMIC, **changes)  # type: ignore[arg-type]
    assert caught.value.code == code


def test_short_key_is_refused() -> None:
    with pytest.raises(EmvError) as caught:
        emv.build(STATIC, key=b"short")
    assert caught.value.code == "qr_key_invalid"


def test_foreign_code_with_another_guid() -> None:
    foreign = emv.encode_objects(
        [
            ("00", "01"),
            ("01", "11"),
            ("26", [("00", "com.example.pay"), ("01", "2088123456789012"), ("02", "S01")]),
            ("52", "5812"),
            ("53", "156"),
            ("58", "CN"),
            ("59", "LAO WANG NOODLES"),
            ("60", "BEIJING"),
            ("64", [("00", "ZH"), ("01", "老王面馆")]),
        ]
    )
    assert emv.decode_objects(foreign)["26"].startswith("0015com.example.pay")
    assert error_code(foreign) == "qr_foreign"


def test_other_networks_templates_beside_ours_are_ignored() -> None:
    payload = emv.build(DYNAMIC, key=KEY)
    shared = reencode(payload, **{"26": "0015com.example.pay01061234560302S1", "15": "6212"})
    assert emv.parse(shared, key=KEY) == DYNAMIC


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"53": "840"}, "qr_unsupported_currency"),
        ({"01": "11"}, "qr_malformed"),  # a dynamic code claiming to be static
        ({"54": "12.3"}, "qr_malformed"),
        ({"54": "012.30"}, "qr_malformed"),
        ({"55": "01"}, "qr_malformed"),  # tip indicators are not ours to honour
        ({"62": "0524ord_Zx1Cv2Bn3Mm4Kk5Jj6Hh0706TILL-30102X1"}, "qr_malformed"),
        ({"64": "0002EN0104老王面馆0202北京"}, "qr_malformed"),
        ({"64": "0104老王面馆0202北京"}, "qr_malformed"),
        ({"29": "0018org.citywallet.pay0101X"}, "qr_malformed"),
        ({"59": "LAO WANG NOODLEZ"}, "qr_tampered"),
        ({"54": "1.23"}, "qr_tampered"),
        ({"52": "5411"}, "qr_tampered"),
        ({"62": "0524ord_Zx1Cv2Bn3Mm4Kk5Jj6Hh0706TILL-4"}, "qr_tampered"),
        ({"64": "0002ZH0104老李面馆0202北京"}, "qr_tampered"),
    ],
)
def test_edits_with_a_recomputed_crc_are_refused(changes: dict[str, str], code: str) -> None:
    assert error_code(reencode(emv.build(DYNAMIC, key=KEY), **changes)) == code


def test_our_template_twice_is_refused() -> None:
    payload = emv.build(DYNAMIC, key=KEY)
    twice = reencode(payload, **{"30": emv.decode_objects(payload)["29"]})
    assert error_code(twice) == "qr_malformed"


def test_a_code_from_another_key_is_tampered() -> None:
    assert error_code(emv.build(DYNAMIC, key=OTHER_KEY)) == "qr_tampered"


# --- properties ---------------------------------------------------------------------------


@given(merchant_codes())
@settings(max_examples=200)
def test_round_trip(code: MerchantCode) -> None:
    payload = emv.build(code, key=KEY)
    assert len(payload) <= emv.MAX_PAYLOAD
    assert emv.parse(payload, key=KEY) == code
    # Declared lengths are character counts, wherever the characters come from.
    objects = emv.decode_objects(payload)
    if code.name_zh:
        assert f"01{len(code.name_zh):02d}{code.name_zh}" in objects["64"]


def _replacements(ch: str) -> list[str]:
    options = [chr((ord(ch) - 0x20 + 1) % 95 + 0x20) if " " <= ch <= "~" else "A", "中", "7"]
    return [c for c in options if c != ch]


@given(merchant_codes())
@settings(max_examples=25, deadline=None)
def test_every_single_character_change_is_detected(code: MerchantCode) -> None:
    payload = emv.build(code, key=KEY)
    for i, ch in enumerate(payload):
        for replacement in _replacements(ch):
            with pytest.raises(EmvError):
                emv.parse(payload[:i] + replacement + payload[i + 1 :], key=KEY)


@given(merchant_codes(), st.data())
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
def test_any_random_single_character_change_is_detected(
    code: MerchantCode, data: st.DataObject
) -> None:
    payload = emv.build(code, key=KEY)
    i = data.draw(st.integers(0, len(payload) - 1))
    replacement = data.draw(st.characters(codec="utf-8").filter(lambda c: c != payload[i]))
    with pytest.raises(EmvError):
        emv.parse(payload[:i] + replacement + payload[i + 1 :], key=KEY)


@given(merchant_codes())
@settings(max_examples=25, deadline=None)
def test_truncation_anywhere_is_refused(code: MerchantCode) -> None:
    payload = emv.build(code, key=KEY)
    for end in range(len(payload)):
        with pytest.raises(EmvError):
            emv.parse(payload[:end], key=KEY)


@given(merchant_codes(), st.sampled_from(["52", "53", "58", "59", "60"]))
@settings(max_examples=50)
def test_duplicate_ids_are_refused(code: MerchantCode, tag: str) -> None:
    payload = emv.build(code, key=KEY)
    value = emv.decode_objects(payload)[tag]
    doubled = with_crc(payload[:-8] + f"{tag}{len(value):02d}{value}")
    assert error_code(doubled) == "qr_duplicate_id"


@given(merchant_codes())
@settings(max_examples=50)
def test_oversize_is_refused(code: MerchantCode) -> None:
    payload = emv.build(code, key=KEY)
    padding = "".join(f"{tag}99" + "0" * 99 for tag in ("80", "81", "82", "83", "84"))
    assert error_code(with_crc(payload[:-8] + padding)) == "qr_too_long"


@given(merchant_codes(), st.sampled_from(["mch_", "sto_", "name", "city", "mcc", "amount"]))
@settings(max_examples=100)
def test_edit_with_recomputed_crc_is_tampered(code: MerchantCode, what: str) -> None:
    payload = emv.build(code, key=KEY)
    objects = emv.decode_objects(payload)
    account = emv.decode_template(objects["29"])
    if what in ("mch_", "sto_"):
        sub = "01" if what == "mch_" else "02"
        account[sub] = what + ("x" if account[sub] != what + "x" else "y")
        forged = reencode(payload, **{"29": emv.encode_template(list(account.items()))})
    elif what == "amount":
        assume(code.amount is not None and code.amount > 1)
        assert code.amount is not None
        lower = code.amount - 1
        forged = reencode(payload, **{"54": f"{lower // 100}.{lower % 100:02d}"})
    elif what == "mcc":
        forged = reencode(payload, **{"52": "0000" if code.mcc != "0000" else "0001"})
    else:
        tag, value = ("59", code.merchant_name) if what == "name" else ("60", code.merchant_city)
        forged = reencode(payload, **{tag: "X" if value != "X" else "Y"})
    assert error_code(forged) == "qr_tampered"


@given(merchant_codes())
@settings(max_examples=30)
def test_foreign_guid_is_foreign(code: MerchantCode) -> None:
    payload = emv.build(code, key=KEY)
    objects = emv.decode_objects(payload)
    account = emv.decode_template(objects["29"])
    account["00"] = "com.example.pay"
    forged = reencode(payload, **{"29": emv.encode_template(list(account.items()))})
    assert error_code(forged) == "qr_foreign"


# --- well-formed EMVCo before "foreign" (issue 12 item 4) ----------------------------------

FOREIGN_OBJECTS: list[tuple[str, str]] = [
    ("00", "01"),
    ("01", "11"),
    ("26", "0015com.example.pay01062088120302S1"),
    ("52", "5812"),
    ("53", "156"),
    ("58", "CN"),
    ("59", "Shop"),
    ("60", "Beijing"),
]


def foreign_without(*tags: str, **changes: str) -> str:
    """A well-formed code of another network, with ``tags`` left out and ``changes`` made."""
    objects = dict(FOREIGN_OBJECTS)
    objects.update(changes)
    return emv.encode_objects([(t, v) for t, v in objects.items() if t not in tags])


def test_the_issue_example_without_an_account_is_malformed() -> None:
    payload = "0002010102115204581253031565802CN5904Shop6007Beijing630496EE"
    assert emv.decode_objects(payload)["63"] == "96EE"  # the CRC is right
    assert error_code(payload) == "qr_malformed"


def test_a_well_formed_foreign_code_is_foreign() -> None:
    assert error_code(foreign_without()) == "qr_foreign"
    assert error_code(foreign_without("01")) == "qr_foreign"  # ID 01 is optional in EMVCo
    assert error_code(foreign_without("26", **{"02": "4000123456789017"})) == "qr_foreign"
    assert error_code(foreign_without(**{"53": "840", "58": "US"})) == "qr_foreign"


@pytest.mark.parametrize(
    ("tags", "changes", "code"),
    [
        (("26",), {}, "qr_malformed"),  # no merchant account information at all
        (("52",), {}, "qr_malformed"),
        (("53",), {}, "qr_malformed"),
        (("58",), {}, "qr_malformed"),
        (("59",), {}, "qr_malformed"),
        (("60",), {}, "qr_malformed"),
        ((), {"26": "0106208812"}, "qr_malformed"),  # template 26–51 without its GUID (00)
        ((), {"26": "0015com.example.pa"}, "qr_truncated"),  # a template ends inside a sub-ID
        ((), {"01": "13"}, "qr_malformed"),  # point of initiation is 11 or 12
        ((), {"52": "58A2"}, "qr_malformed"),
        ((), {"53": "15"}, "qr_malformed"),
        ((), {"58": "cn"}, "qr_malformed"),
        ((), {"59": "S" * 26}, "qr_malformed"),
        ((), {"60": "B" * 16}, "qr_malformed"),
        ((), {"54": "12,30"}, "qr_malformed"),
        ((), {"54": "1" * 14}, "qr_malformed"),
        ((), {"62": "05"}, "qr_truncated"),  # a template ends inside a sub-ID
        ((), {"64": "0002ZH"}, "qr_malformed"),  # the language template has a name (01)
    ],
)
def test_foreign_codes_missing_or_breaking_mandatory_fields_are_malformed(
    tags: tuple[str, ...], changes: dict[str, str], code: str
) -> None:
    assert error_code(foreign_without(*tags, **changes)) == code


@pytest.mark.parametrize("tag", ["52", "53", "58", "59", "60"])
def test_our_codes_missing_a_mandatory_field_are_malformed(tag: str) -> None:
    objects = dict(emv.decode_objects(emv.build(DYNAMIC, key=KEY)))
    del objects[tag], objects["63"]
    assert error_code(emv.encode_objects(list(objects.items()))) == "qr_malformed"


# --- boundaries -----------------------------------------------------------------------------


def _refusal(make: Callable[..., object], *args: object, **kwargs: object) -> tuple[str, str]:
    """The code and message of the EmvError that ``make(*args, **kwargs)`` raises."""
    with pytest.raises(EmvError) as caught:
        make(*args, **kwargs)
    return caught.value.code, str(caught.value)


def test_values_and_payloads_may_be_exactly_as_long_as_allowed() -> None:
    assert emv.encode_template([("59", "x" * 99)]) == "5999" + "x" * 99
    assert _refusal(emv.encode_template, [("59", "x" * 100)]) == (
        "qr_too_long",
        "ID 59 is longer than 99 characters.",
    )
    # 000201 (6) + four objects of 103 characters (412) + one of 86 + the CRC object (8) = 512
    filler = [(f"{80 + i}", "x" * 99) for i in range(4)]
    exact = emv.encode_objects([("00", "01"), *filler, ("84", "x" * 82)])
    assert len(exact) == emv.MAX_PAYLOAD
    assert emv.decode_objects(exact)["84"] == "x" * 82
    assert _refusal(emv.encode_objects, [("00", "01"), *filler, ("84", "x" * 83)]) == (
        "qr_too_long",
        "The payload exceeds 512 characters.",
    )
    assert _refusal(emv.decode_objects, exact[:-12] + "x" + exact[-12:]) == (
        "qr_too_long",
        "The payload exceeds 512 characters.",
    )


@pytest.mark.parametrize(
    ("objects", "refusal"),
    [
        ([("59", "A")], ("qr_malformed", "A payload starts with ID 00 = 01.")),
        ([], ("qr_malformed", "A payload starts with ID 00 = 01.")),
        ([("00", "02")], ("qr_malformed", "A payload starts with ID 00 = 01.")),
        (
            [("00", "01"), ("63", "ABCD")],
            ("qr_malformed", "ID 63 (the CRC) is appended, not given."),
        ),
        ([("00", "01"), ("5", "A")], ("qr_malformed", "ID '5' is not two digits.")),
        ([("00", "01"), ("59", "")], ("qr_malformed", "ID 59 has an empty value.")),
        ([("00", "01"), ("59", "A"), ("59", "B")], ("qr_duplicate_id", "ID 59 appears twice.")),
    ],
)
def test_encode_objects_refusals(objects: list[tuple[str, str]], refusal: tuple[str, str]) -> None:
    assert _refusal(emv.encode_objects, objects) == refusal


@pytest.mark.parametrize(
    ("payload", "refusal"),
    [
        ("0", ("qr_truncated", "The payload ends after its first characters.")),
        ("00020", ("qr_truncated", "The payload ends after its first characters.")),
        ("", ("qr_not_emv", "This is not an EMV payment code.")),
        ("000301", ("qr_not_emv", "This is not an EMV payment code.")),
        ("000201590", ("qr_truncated", "The payload ends inside a data object.")),
        ("0002015904abc", ("qr_truncated", "ID 59 runs past the end.")),
        ("000201" + "5904abcd", ("qr_truncated", "The payload ends before its CRC (ID 63).")),
        (with_crc("000201" + "5A04abcd"), ("qr_malformed", "'5A' is not a two-digit ID.")),
        (with_crc("000201" + "5900"), ("qr_malformed", "ID 59 has no valid length.")),
        (
            with_crc("000201" + "5904abcd")[:-4] + "0000",
            ("qr_crc_mismatch", "The code's checksum does not match; scan it again."),
        ),
        (
            "000201" + "6303ABC",
            ("qr_malformed", "The CRC (ID 63) is not the last four characters."),
        ),
        (
            "000201" + "6304ABCD" + "5904abcd",
            ("qr_malformed", "The CRC (ID 63) is not the last four characters."),
        ),
        (
            "000201" + "5902\ud800x6304ABCD",
            ("qr_malformed", "The payload is not valid Unicode text."),
        ),
        (with_crc("000201" + "5904abcd5904abcd"), ("qr_duplicate_id", "ID 59 appears twice.")),
    ],
)
def test_decode_objects_refusals_say_why(payload: str, refusal: tuple[str, str]) -> None:
    assert _refusal(emv.decode_objects, payload) == refusal


def test_names_keys_amounts_and_ids_at_their_limits() -> None:
    longest = dataclasses.replace(
        DYNAMIC,
        merchant_id="m" * 29,
        store_id="s" * 20,  # 49 characters together: the room left in the template
        merchant_name="N" * 25,
        merchant_city="C" * 15,
        name_zh="名" * 25,
        city_zh="城" * 15,
        amount=10**12 - 1,  # 9999999999.99: 13 characters
        order_ref="o" * 25,
        terminal="t" * 25,
    )
    key = bytes(16)
    assert emv.parse(emv.build(longest, key=key), key=key) == longest
    assert emv.decode_objects(emv.build(longest, key=key))["54"] == "9999999999.99"
    assert _refusal(dataclasses.replace, longest, store_id="s" * 21) == (
        "qr_too_long",
        "merchant_id and store_id have 49 characters together.",
    )
    assert _refusal(dataclasses.replace, longest, amount=10**12) == (
        "qr_malformed",
        "amount has at most 13 characters as yuan.",
    )
    assert _refusal(emv.build, longest, key=bytes(15)) == (
        "qr_key_invalid",
        "The QR key has at least 16 bytes.",
    )
    for field, limit in (
        ("merchant_name", 25),
        ("merchant_city", 15),
        ("name_zh", 25),
        ("city_zh", 15),
        ("order_ref", 25),
        ("terminal", 25),
    ):
        assert _refusal(dataclasses.replace, longest, **{field: "x" * (limit + 1)}) == (
            "qr_malformed",
            f"{field} has 1 to {limit} characters.",
        )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"amount": True}, "amount is a positive number of fen."),
        ({"amount": 1.5}, "amount is a positive number of fen."),
        ({"amount": 0}, "amount is a positive number of fen."),
        ({"amount": 100, "order_ref": None}, "A dynamic code carries an order reference."),
        ({"amount": None, "order_ref": "ord_1"}, "A static code has no order reference."),
        ({"store_id": "sto 1"}, "store_id is letters, digits, '_' and '-'."),
        ({"merchant_id": ""}, "merchant_id is letters, digits, '_' and '-'."),
        ({"mcc": "58a2"}, "mcc is four digits (ISO 18245)."),
        ({"country": "CHN"}, "country is two upper-case letters (ISO 3166-1)."),
        ({"merchant_city": "北京"}, "merchant_city is printable ASCII only."),
        ({"order_ref": "订单"}, "order_ref is printable ASCII only."),
        ({"name_zh": "老王\u200b面馆"}, "name_zh contains control or unassigned characters."),
        ({"city_zh": "北\x7f京"}, "city_zh contains control or unassigned characters."),
        (
            {"name_zh": "", "city_zh": "北京"},
            "city_zh needs name_zh (ID 64 always carries a name).",
        ),
    ],
)
def test_invalid_codes_say_why(changes: dict[str, object], message: str) -> None:
    assert _refusal(dataclasses.replace, DYNAMIC, **changes) == ("qr_malformed", message)


def test_an_unsupported_currency_says_so() -> None:
    assert _refusal(dataclasses.replace, DYNAMIC, currency="84") == (
        "qr_unsupported_currency",
        "Currency '84' is not supported (only 156, CNY).",
    )
    payload = reencode(emv.build(DYNAMIC, key=KEY), **{"53": "840"})
    assert _refusal(emv.parse, payload, key=KEY) == (
        "qr_unsupported_currency",
        "Currency 840 is not supported (only 156, CNY).",
    )


@pytest.mark.parametrize(("tag", "ours"), [("26", True), ("51", True), ("25", False)])
def test_our_account_template_may_sit_in_any_merchant_account_id(tag: str, ours: bool) -> None:
    """IDs 26–51 hold merchant account templates; 02–25 are the card networks' accounts."""
    payload = emv.build(STATIC, key=KEY)
    objects = {k: v for k, v in emv.decode_objects(payload).items() if k not in ("29", "63")}
    objects[tag] = emv.decode_objects(payload)["29"]
    moved = emv.encode_objects(list(objects.items()))
    if ours:
        assert emv.parse(moved, key=KEY) == STATIC
    else:
        assert _refusal(emv.parse, moved, key=KEY) == (
            "qr_foreign",
            "This code belongs to another payment network; pay it with that network's app.",
        )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"55": "01"}, "The code carries IDs this wallet does not support: ['55']."),
        ({"65": "x"}, "The code carries IDs this wallet does not support: ['65']."),
        (
            {"01": "11"},
            "The point of initiation does not match the amount (11 static, 12 dynamic).",
        ),
        ({"54": "12.3"}, "The amount is yuan with exactly two decimals."),
        ({"64": "0002EN0104老王面馆"}, "Template 64 carries language ZH and a name."),
        (
            {"62": "0524ord_Zx1Cv2Bn3Mm4Kk5Jj6Hh0102X1"},
            "Template 62 carries sub-IDs this wallet does not read.",
        ),
        ({"29": "0018org.citywallet.pay0101X"}, "Our account template has exactly sub-IDs 00–03."),
    ],
)
def test_parse_refusals_say_why(changes: dict[str, str], message: str) -> None:
    payload = reencode(emv.build(DYNAMIC, key=KEY), **changes)
    assert _refusal(emv.parse, payload, key=KEY) == ("qr_malformed", message)


@pytest.mark.parametrize("tag", ["01", "52", "53", "58", "59", "60"])
def test_every_mandatory_id_is_required(tag: str) -> None:
    payload = emv.build(STATIC, key=KEY)
    objects = {k: v for k, v in emv.decode_objects(payload).items() if k not in (tag, "63")}
    code, message = _refusal(emv.parse, emv.encode_objects(list(objects.items())), key=KEY)
    expected = (
        "The code lacks its point of initiation (ID 01)."  # optional in EMVCo, not in ours
        if tag == "01"
        else f"The code lacks mandatory IDs ['{tag}']."
    )
    assert (code, message) == ("qr_malformed", expected)


def test_a_tampered_code_says_so() -> None:
    payload = reencode(emv.build(DYNAMIC, key=KEY), **{"59": "LAO WANG NOODLEZ"})
    assert _refusal(emv.parse, payload, key=KEY) == (
        "qr_tampered",
        "This code was not issued by CityWallet or has been altered.",
    )


def test_our_template_twice_says_so() -> None:
    payload = emv.build(DYNAMIC, key=KEY)
    twice = reencode(payload, **{"30": emv.decode_objects(payload)["29"]})
    assert _refusal(emv.parse, twice, key=KEY) == (
        "qr_malformed",
        "The code carries our account template twice.",
    )


@pytest.mark.parametrize(
    ("value", "refusal"),
    [
        ("0002ZH590", ("qr_truncated", "The payload ends inside a data object.")),
        ("0002ZH5901", ("qr_truncated", "ID 59 runs past the end.")),  # exactly 4 left
        ("0002ZH5900", ("qr_malformed", "ID 59 has no valid length.")),
    ],
)
def test_a_template_ending_early_says_where(value: str, refusal: tuple[str, str]) -> None:
    assert _refusal(emv.decode_template, value) == refusal


def test_a_code_from_another_country_keeps_its_country() -> None:
    code = dataclasses.replace(DYNAMIC, country="HK", merchant_city="HONG KONG")
    payload = emv.build(code, key=KEY)
    assert emv.decode_objects(payload)["58"] == "HK"
    assert emv.parse(payload, key=KEY) == code


@pytest.mark.parametrize("code", [STATIC, DYNAMIC])
def test_the_mac_is_hmac_sha256_over_the_fields_one_per_line(code: MerchantCode) -> None:
    """Recomputed from the rule as written: a versioned label, then every field; None is ""."""
    fields = [
        "CW-EMV-MAC-1",
        code.merchant_id,
        code.store_id,
        code.mcc,
        code.currency,
        code.country,
        "" if code.amount is None else str(code.amount),
        code.order_ref or "",
        code.terminal or "",
        code.merchant_name,
        code.merchant_city,
        code.name_zh,
        code.city_zh,
    ]
    mac = hmac.new(KEY, "\n".join(fields).encode("utf-8"), hashlib.sha256).hexdigest()
    account = emv.decode_template(emv.decode_objects(emv.build(code, key=KEY))["29"])
    assert account["03"] == mac[:16].upper()
