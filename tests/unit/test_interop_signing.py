"""Pure: FSPIOP-Signature, a detached JWS with Ed25519 / EdDSA (interop/signing.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from citywallet.interop import b64url
from citywallet.interop.signing import (
    SignatureError,
    SignedHeaders,
    check_date,
    compact,
    sign,
    verify,
)

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
OTHER = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
HEADERS = SignedHeaders(
    source="provider-a",
    destination="provider-b",
    uri="/transfers",
    method="POST",
    date="Mon, 07 Dec 2026 13:30:00 GMT",
)
BODY = b'{"transferId":"b51ec534-ee48-4575-b6a9-ead2955b8069"}'


def _reason(value: str, headers: SignedHeaders = HEADERS, body: bytes = BODY) -> str:
    with pytest.raises(SignatureError) as caught:
        verify(KEY.public_key(), value, headers, body)
    return caught.value.reason


def _resigned(protected: dict[str, object]) -> str:
    """A header whose protected part is ``protected``, validly signed with KEY."""
    protected_b64 = b64url.encode(json.dumps(protected).encode())
    signature = KEY.sign(f"{protected_b64}.{b64url.encode(BODY)}".encode())
    return json.dumps({"protectedHeader": protected_b64, "signature": b64url.encode(signature)})


@given(
    body=st.binary(max_size=300),
    source=st.from_regex(r"[a-z0-9-]{1,32}", fullmatch=True),
    destination=st.none() | st.from_regex(r"[a-z0-9-]{1,32}", fullmatch=True),
    method=st.sampled_from(["GET", "POST", "PUT"]),
)
def test_what_is_signed_verifies(
    body: bytes, source: str, destination: str | None, method: str
) -> None:
    headers = SignedHeaders(source, destination, "/transfers/x", method, HEADERS.date)
    value = sign(KEY, headers, body)
    verify(KEY.public_key(), value, headers, body)


def test_the_protected_header_is_the_fspiop_one() -> None:
    value = json.loads(sign(KEY, HEADERS, BODY))
    protected = json.loads(b64url.decode(value["protectedHeader"]))
    assert protected == {
        "alg": "EdDSA",
        "FSPIOP-Source": "provider-a",
        "FSPIOP-Destination": "provider-b",
        "FSPIOP-URI": "/transfers",
        "FSPIOP-HTTP-Method": "POST",
        "Date": HEADERS.date,
    }
    assert len(b64url.decode(value["signature"])) == 64
    assert compact(json.dumps(value)) == f"{value['protectedHeader']}..{value['signature']}"


def test_a_callback_without_destination_leaves_it_out() -> None:
    headers = SignedHeaders("switch", None, "/transfers/x", "PUT", HEADERS.date)
    value = json.loads(sign(KEY, headers, BODY))
    assert "FSPIOP-Destination" not in json.loads(b64url.decode(value["protectedHeader"]))
    with_destination = SignedHeaders("switch", "provider-a", "/transfers/x", "PUT", HEADERS.date)
    assert _reason(json.dumps(value), headers=with_destination) == "header_mismatch"


@given(st.binary(max_size=100))
def test_a_changed_body_does_not_verify(other: bytes) -> None:
    value = sign(KEY, HEADERS, BODY)
    if other != BODY:
        assert _reason(value, body=other) == "signature_mismatch"


@pytest.mark.parametrize(
    "changed",
    [
        SignedHeaders("provider-c", "provider-b", "/transfers", "POST", HEADERS.date),
        SignedHeaders("provider-a", "provider-c", "/transfers", "POST", HEADERS.date),
        SignedHeaders("provider-a", "provider-b", "/quotes", "POST", HEADERS.date),
        SignedHeaders("provider-a", "provider-b", "/transfers", "PUT", HEADERS.date),
        SignedHeaders("provider-a", "provider-b", "/transfers", "POST", "Tue, 08 Dec 2026"),
    ],
)
def test_changed_routing_headers_do_not_verify(changed: SignedHeaders) -> None:
    assert _reason(sign(KEY, HEADERS, BODY), headers=changed) == "header_mismatch"


def test_another_key_does_not_verify() -> None:
    assert _reason(sign(OTHER, HEADERS, BODY)) == "signature_mismatch"


def test_wrong_algorithms_are_refused() -> None:
    for alg in ("RS256", "none", "HS256", None):
        protected: dict[str, object] = {**HEADERS.protected(), "alg": alg}
        assert _reason(_resigned(protected)) == "wrong_alg"
    del protected["alg"]
    assert _reason(_resigned(protected)) == "wrong_alg"


def test_extra_protected_members_are_refused() -> None:
    crit = {**HEADERS.protected(), "crit": ["exp"], "exp": 1}
    assert _reason(_resigned(crit)) == "malformed"


def test_a_resigned_header_with_the_right_members_verifies() -> None:
    verify(KEY.public_key(), _resigned(HEADERS.protected()), HEADERS, BODY)


GOOD = json.loads(sign(KEY, HEADERS, BODY))


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "malformed"),
        ("not json", "malformed"),
        ("[]", "malformed"),
        (json.dumps({"signature": GOOD["signature"]}), "malformed"),
        (json.dumps({**GOOD, "kid": "x"}), "malformed"),
        (json.dumps({**GOOD, "signature": 5}), "malformed"),
        (json.dumps({**GOOD, "protectedHeader": GOOD["protectedHeader"] + "="}), "bad_base64"),
        (json.dumps({**GOOD, "signature": GOOD["signature"] + "=="}), "bad_base64"),
        (json.dumps({**GOOD, "signature": GOOD["signature"][:-4]}), "bad_base64"),
        (json.dumps({**GOOD, "signature": "+" + GOOD["signature"][1:]}), "bad_base64"),
        (json.dumps({**GOOD, "protectedHeader": b64url.encode(b"\xff\xfe")}), "malformed"),
        (json.dumps({**GOOD, "protectedHeader": b64url.encode(b"[1,2]")}), "malformed"),
    ],
)
def test_malformed_signatures_are_refused_with_their_reason(value: str, reason: str) -> None:
    assert _reason(value) == reason


def test_every_single_character_change_of_the_signature_is_caught() -> None:
    signature = GOOD["signature"]
    for i in range(len(signature)):
        flipped = "A" if signature[i] != "A" else "B"
        value = json.dumps({**GOOD, "signature": signature[:i] + flipped + signature[i + 1 :]})
        assert _reason(value) in ("signature_mismatch", "bad_base64")


NOW = datetime(2026, 12, 7, 13, 30, tzinfo=UTC)


@pytest.mark.parametrize("offset", [-300, 0, 300])
def test_a_date_within_the_window_passes(offset: int) -> None:
    check_date("Mon, 07 Dec 2026 13:30:00 GMT", NOW + timedelta(seconds=offset))


@pytest.mark.parametrize(
    ("date", "now"),
    [
        ("Mon, 07 Dec 2026 13:30:00 GMT", NOW + timedelta(seconds=301)),
        ("Mon, 07 Dec 2026 13:30:00 GMT", NOW - timedelta(seconds=301)),
        ("yesterday", NOW),
        ("", NOW),
        ("Mon, 07 Dec 2026 13:30:00 -0000", NOW),  # RFC 5322 "unknown zone": no time zone
    ],
)
def test_a_stale_or_unreadable_date_is_refused(date: str, now: datetime) -> None:
    with pytest.raises(SignatureError) as caught:
        check_date(date, now)
    assert caught.value.reason == "stale_date"
