"""The personal receive code's EMVCo payload: build → parse round trips, the checksum, and
every broken or foreign code refused (docs/wallet.md, "Receive code")."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from citywallet.merchant import emv
from citywallet.wallet import receive_code
from citywallet.wallet.receive_code import ReceiveCode, ReceiveCodeError

USER = "usr_N8rY2kq0VfZ1tLx5aB3c"
user_ids = st.from_regex(r"usr_[A-Za-z0-9_-]{1,36}", fullmatch=True)
amounts = st.none() | st.integers(min_value=1, max_value=receive_code.MAX_AMOUNT)


def with_crc(body: str) -> str:
    body += "6304"
    return body + f"{receive_code.crc16(body.encode('utf-8')):04X}"


def test_the_crc_is_ccitt_false_and_agrees_with_the_merchant_codec() -> None:
    assert receive_code.crc16(b"123456789") == 0x29B1  # the catalogue's check value
    for data in (b"", b"000201", "中文".encode()):
        assert receive_code.crc16(data) == emv.crc16_ccitt_false(data)


def test_a_pinned_payload() -> None:
    payload = receive_code.build(ReceiveCode(USER, 1234))
    assert payload == with_crc(
        "000201010211"
        "2650" "0018org.citywallet.p2p" "0124" + USER
        + "52040000" "5303156" "540512.34" "5802CN" "5915CITYWALLET USER" "6002CN"
    )  # fmt: skip
    assert receive_code.parse(payload) == ReceiveCode(USER, 1234)
    static = receive_code.build(ReceiveCode(USER))
    assert "54" not in emv.decode_objects(static)
    assert receive_code.parse(static) == ReceiveCode(USER, None)


@given(user_ids, amounts)
def test_build_then_parse_round_trips(user_id: str, amount: int | None) -> None:
    payload = receive_code.build(ReceiveCode(user_id, amount))
    assert receive_code.claims(payload)
    assert receive_code.parse(payload) == ReceiveCode(user_id, amount)
    objects = emv.decode_objects(payload)  # a well-formed EMVCo payload for any scanner
    assert objects["01"] == "11"
    assert emv.decode_template(objects["26"]) == {"00": receive_code.P2P_GUID, "01": user_id}


@given(user_ids, amounts, st.data())
def test_any_changed_character_is_refused_or_still_means_the_same(
    user_id: str, amount: int | None, data: st.DataObject
) -> None:
    payload = receive_code.build(ReceiveCode(user_id, amount))
    at = data.draw(st.integers(min_value=0, max_value=len(payload) - 1))
    other = data.draw(st.characters(codec="utf-8").filter(lambda c: c != payload[at]))
    changed = payload[:at] + other + payload[at + 1 :]
    with pytest.raises(ReceiveCodeError):
        receive_code.parse(changed)


@given(user_ids, amounts, st.data())
def test_a_cut_code_is_refused(user_id: str, amount: int | None, data: st.DataObject) -> None:
    payload = receive_code.build(ReceiveCode(user_id, amount))
    end = data.draw(st.integers(min_value=0, max_value=len(payload) - 1))
    with pytest.raises(ReceiveCodeError):
        receive_code.parse(payload[:end])


@given(st.text(max_size=300))
def test_any_text_parses_to_a_valid_code_or_is_refused(text: str) -> None:
    try:
        code = receive_code.parse(text)
    except ReceiveCodeError:
        return
    assert receive_code.build(code) == text  # only our own canonical payloads get through


@pytest.mark.parametrize(
    ("body", "code"),
    [
        # a merchant's code of our network is not a receive code
        ("0002010102112629" "0018org.citywallet.pay" "0103abc" "52040000" "5303156"
         "5802CN" "5915CITYWALLET USER" "6002CN", "qr_malformed"),
        # another currency
        ("0002010102112650" "0018org.citywallet.p2p" "0124" + USER + "52040000" "5303840"
         "5802CN" "5915CITYWALLET USER" "6002CN", "qr_unsupported_currency"),
        # a dynamic point of initiation
        ("0002010102122650" "0018org.citywallet.p2p" "0124" + USER + "52040000" "5303156"
         "5802CN" "5915CITYWALLET USER" "6002CN", "qr_malformed"),
        # an amount of zero, and one without its decimals
        ("0002010102112650" "0018org.citywallet.p2p" "0124" + USER + "52040000" "5303156"
         "54040.00" "5802CN" "5915CITYWALLET USER" "6002CN", "invalid_amount"),
        ("0002010102112650" "0018org.citywallet.p2p" "0124" + USER + "52040000" "5303156"
         "540212" "5802CN" "5915CITYWALLET USER" "6002CN", "qr_malformed"),
        # an extra sub-ID in the account template, and an extra data object
        ("0002010102112657" "0018org.citywallet.p2p" "0124" + USER + "0203abc" "52040000"
         "5303156" "5802CN" "5915CITYWALLET USER" "6002CN", "qr_malformed"),
        ("0002010102112650" "0018org.citywallet.p2p" "0124" + USER + "52040000" "5303156"
         "5802CN" "5915CITYWALLET USER" "6002CN" "62070503abc", "qr_malformed"),
        # no user id
        ("0002010102112626" "0018org.citywallet.p2p" "0104abcd" "52040000" "5303156"
         "5802CN" "5915CITYWALLET USER" "6002CN", "qr_malformed"),
    ],
)  # fmt: skip
def test_well_checksummed_but_wrong_codes_are_refused(body: str, code: str) -> None:
    with pytest.raises(ReceiveCodeError) as refused:
        receive_code.parse(with_crc(body))
    assert refused.value.code == code


def test_a_wrong_checksum_says_so() -> None:
    payload = receive_code.build(ReceiveCode(USER, 500))
    bad = payload[:-4] + ("0000" if payload[-4:] != "0000" else "0001")
    with pytest.raises(ReceiveCodeError) as refused:
        receive_code.parse(bad)
    assert refused.value.code == "qr_crc_mismatch"


def test_claims_only_payloads_naming_the_p2p_network() -> None:
    assert receive_code.claims(receive_code.build(ReceiveCode(USER)))
    assert not receive_code.claims("00020101021126290018org.citywallet.pay0103abc")
    assert not receive_code.claims("https://example.org/0018org.citywallet.p2p")


@pytest.mark.parametrize(
    "code",
    [ReceiveCode("mch_abc"), ReceiveCode(USER, 0), ReceiveCode(USER, -5),
     ReceiveCode(USER, receive_code.MAX_AMOUNT + 1), ReceiveCode("usr_")],
)  # fmt: skip
def test_build_refuses_what_parse_would(code: ReceiveCode) -> None:
    with pytest.raises(ReceiveCodeError):
        receive_code.build(code)
