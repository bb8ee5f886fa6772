"""Merchant codes that name their provider (the switch participant) for cross-provider QR."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from citywallet.merchant import emv
from citywallet.merchant.emv import EmvError, MerchantCode
from tests.unit.test_merchant_emv import DYNAMIC, KEY, OTHER_KEY, STATIC, merchant_codes, reencode

OURS = dataclasses.replace(DYNAMIC, provider="provider-a")
# The real ids are 24 characters: template 29 has no room left for a participant id.
REAL = dataclasses.replace(
    OURS,
    merchant_id="mch_" + "A" * 20,
    store_id="sto_" + "B" * 20,
    provider="provider-with-a-32-character-id1"[:32],
)


def test_the_routing_template_names_the_provider_and_is_parsed_back() -> None:
    payload = emv.build(OURS, key=KEY)
    objects = emv.decode_objects(payload)
    assert emv.decode_template(objects[emv.ROUTING_TEMPLATE_ID]) == {
        "00": emv.NETWORK_GUID,
        "01": "provider-a",
    }
    assert set(emv.decode_template(objects["29"])) == {"00", "01", "02", "03"}
    assert emv.parse(payload, key=KEY) == OURS
    assert emv.parse_public(payload) == OURS


def test_real_length_ids_with_the_longest_participant_id_fit() -> None:
    payload = emv.build(REAL, key=KEY)
    assert len(emv.decode_objects(payload)["29"]) <= emv.MAX_VALUE
    assert emv.parse(payload, key=KEY).provider == REAL.provider


def test_codes_without_a_provider_keep_their_payload_and_mac() -> None:
    # Today's printed codes must keep working: no ID 80, the same MAC as before.
    payload = emv.build(STATIC, key=KEY)
    assert emv.ROUTING_TEMPLATE_ID not in emv.decode_objects(payload)
    assert emv.parse(payload, key=KEY).provider is None
    assert emv.parse_public(payload).provider is None


def test_a_foreign_code_is_read_without_our_key_and_refused_by_parse() -> None:
    theirs = emv.build(OURS, key=OTHER_KEY)  # another provider's key: we cannot check it
    code = emv.parse_public(theirs)
    assert code == OURS
    assert emv.is_foreign(code, "provider-b")
    assert emv.is_foreign(code, "")  # not connected: every named provider is another
    assert not emv.is_foreign(code, "provider-a")
    assert not emv.is_foreign(STATIC, "provider-b")  # no provider: a local code
    with pytest.raises(EmvError) as caught:
        emv.parse(theirs, key=KEY)
    assert caught.value.code == "qr_tampered"


@pytest.mark.parametrize(
    "routing",
    [
        "0018org.citywallet.pay0110provider-b",  # another provider named: MAC breaks
        "0018org.citywallet.pay",  # provider dropped but template kept
        "0015com.example.pay0110provider-a",  # someone else's template 80: ours is gone
    ],
)
def test_editing_the_provider_is_tampered(routing: str) -> None:
    forged = reencode(emv.build(OURS, key=KEY), **{"80": routing})
    with pytest.raises(EmvError) as caught:
        emv.parse(forged, key=KEY)
    assert caught.value.code in {"qr_tampered", "qr_malformed"}


def test_removing_the_routing_template_is_tampered() -> None:
    payload = emv.build(OURS, key=KEY)
    objects = {k: v for k, v in emv.decode_objects(payload).items() if k not in {"63", "80"}}
    with pytest.raises(EmvError) as caught:
        emv.parse(emv.encode_objects(list(objects.items())), key=KEY)
    assert caught.value.code == "qr_tampered"


@pytest.mark.parametrize(
    "routing",
    [
        "0018org.citywallet.pay0110Provider-A",  # not a participant id
        "0018org.citywallet.pay0110provider-a0201x",  # sub-IDs beyond 01
        "0018org.citywallet.pay",
    ],
)
def test_a_malformed_routing_template_is_malformed_even_publicly(routing: str) -> None:
    forged = reencode(emv.build(STATIC, key=KEY), **{"80": routing})
    with pytest.raises(EmvError) as caught:
        emv.parse_public(forged)
    assert caught.value.code == "qr_malformed"


def test_another_networks_template_80_is_ignored() -> None:
    payload = reencode(emv.build(STATIC, key=KEY), **{"80": "0015com.example.pay0103abc"})
    assert emv.parse(payload, key=KEY) == STATIC


def test_an_invalid_provider_is_refused_when_made() -> None:
    for bad in ("", "Provider", "-x", "x" * 33, "a b"):
        with pytest.raises(EmvError) as caught:
            dataclasses.replace(STATIC, provider=bad)
        assert caught.value.code == "qr_malformed"


@given(merchant_codes(), st.binary(min_size=16, max_size=32))
@settings(max_examples=100)
def test_parse_public_reads_any_keys_code_exactly(code: MerchantCode, key: bytes) -> None:
    payload = emv.build(code, key=key)
    assert emv.parse_public(payload) == code
    if key != KEY:
        with pytest.raises(EmvError):
            emv.parse(payload, key=KEY)


@given(merchant_codes(), st.from_regex(r"[a-z0-9][a-z0-9-]{0,31}", fullmatch=True))
@settings(max_examples=100)
def test_a_code_moved_to_another_provider_is_tampered(code: MerchantCode, other: str) -> None:
    moved = dataclasses.replace(code, provider=other)
    if moved == code:
        return
    payload = emv.build(code, key=KEY)
    forged_mac = emv.decode_template(emv.decode_objects(payload)["29"])["03"]
    forged = emv.build(moved, key=KEY)
    account = emv.decode_template(emv.decode_objects(forged)["29"])
    account["03"] = forged_mac  # keep the original MAC, name another provider
    edited = reencode(forged, **{"29": emv.encode_template(list(account.items()))})
    with pytest.raises(EmvError) as caught:
        emv.parse(edited, key=KEY)
    assert caught.value.code == "qr_tampered"


def test_a_scan_routes_only_another_providers_readable_codes() -> None:
    from citywallet.merchant.payments import foreign_code, foreign_preview

    theirs = emv.build(OURS, key=OTHER_KEY)  # OURS names provider-a
    assert foreign_code(theirs, participant_id="provider-b") == OURS
    assert foreign_code(" " + theirs + "\n", participant_id="provider-b") == OURS
    assert foreign_code(theirs, participant_id="provider-a") is None  # ours: checked by MAC
    assert foreign_code(emv.build(STATIC, key=KEY), participant_id="provider-b") is None
    assert foreign_code("not a code", participant_id="provider-b") is None
    shown = foreign_preview(OURS)
    assert (shown.kind, shown.provider, shown.amount, shown.order_id) == (
        "dynamic", "provider-a", OURS.amount, OURS.order_ref,
    )  # fmt: skip
    assert (shown.merchant_name, shown.restricted_usable) == (OURS.name_zh, 0)
