"""Merchant API request signatures (HMAC, Ed25519) and webhook signatures."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from citywallet.merchant import signing
from citywallet.merchant.signing import SignatureError, SignedHeader

DOC = Path(__file__).parents[2] / "docs" / "merchant-signing.md"

# The worked examples of docs/merchant-signing.md.
HMAC_SECRET = "cwsk_EXAMPLE-ONLY-never-use-this-secret-0000"
HMAC_KEY_ID = "key_Xn3fLq8ZpR2vT6mW9cYb"
ED_KEY_ID = "key_Ed7pQ2rS5tU8vW1xY4zA"
TS = 1767225600  # 2026-01-01T00:00:00Z
POST_NONCE = "3f9a1c7e5b2d4a6f8e0c"
POST_PATH = "/v1/merchant/orders"
POST_BODY = (
    b'{"out_trade_no":"T20260101-0001","amount":1230,'
    b'"description":"Two bowls of noodles","store_id":"sto_Qw4Er5Ty6Ui7Op8As9Df"}'
)
GET_NONCE = "a1b2c3d4e5f60718293a"
GET_PATH = "/v1/merchant/orders?status=paid&limit=20"
# RFC 8032 §7.1 test 1: a published key, so the example can be checked with any Ed25519 library.
ED_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
ED_PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
WEBHOOK_SECRET = "whsec_EXAMPLE-ONLY-never-use-this-secret-000"
OLD_WEBHOOK_SECRET = "whsec_EXAMPLE-ONLY-the-previous-secret-0000"
WEBHOOK_TS = 1767225660
WEBHOOK_BODY = (
    b'{"id":"evt_Lm4Nb7Vc1Xz9Qa2Ws5Ed","type":"order.paid",'
    b'"order_id":"ord_Zx1Cv2Bn3Mm4Kk5Jj6Hh","amount":1230}'
)

EXPECTED = {
    "post_canonical": (
        "POST\n/v1/merchant/orders\n1767225600\n3f9a1c7e5b2d4a6f8e0c\n"
        "70216f92198fed686eb1cc8b222d2d7780d9f0f0fdc3bab883f2e05b4cbd3442\n"
    ),
    "hmac_authorization": (
        "CW1-HMAC-SHA256 key_id=key_Xn3fLq8ZpR2vT6mW9cYb,timestamp=1767225600,"
        "nonce=3f9a1c7e5b2d4a6f8e0c,signature=3jKR7TW2EvgGvSJe+JYq/LfYVnGZQurshu24i4KNE3c="
    ),
    "ed_authorization": (
        "CW1-ED25519 key_id=key_Ed7pQ2rS5tU8vW1xY4zA,timestamp=1767225600,"
        "nonce=a1b2c3d4e5f60718293a,signature=TD808vreB0Ilc4IEeNPFAI8IjlmPFnpOzBvYJZbCei3I"
        "SRAj8QTeiHGnC2Wa9KjXrw0xJeg+rVkSqu3MJy/MDQ=="
    ),
    "webhook": ("t=1767225660,v1=5812803d62e1757290c1739e801eab7462969c4b3a221edb1c6a8076e31acfc4"),
    "webhook_rotation": (
        "t=1767225660,v1=5812803d62e1757290c1739e801eab7462969c4b3a221edb1c6a8076e31acfc4,"
        "v1=ebf695f2263a34b021942a8ca8bf84d0a6d396d100e7b80388d57d3bb5429a8d"
    ),
}

nonces = st.text(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-", min_size=16, max_size=64
)
methods = st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE"])
paths = st.text(min_size=1, max_size=80).map(lambda s: "/" + s)
timestamps = st.integers(0, 10**12 - 1)
bodies = st.binary(max_size=300)


def signature_error(call: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(SignatureError) as caught:
        call(*args, **kwargs)
    return caught.value.code


# --- the documented examples --------------------------------------------------------------


def test_worked_examples() -> None:
    post = signing.canonical_request("POST", POST_PATH, TS, POST_NONCE, POST_BODY)
    assert post.decode() == EXPECTED["post_canonical"]
    hmac_header = signing.format_authorization(
        signing.HMAC_SCHEME, HMAC_KEY_ID, TS, POST_NONCE, signing.sign_hmac(HMAC_SECRET, post)
    )
    assert hmac_header == EXPECTED["hmac_authorization"]

    get = signing.canonical_request("get", GET_PATH, TS, GET_NONCE, b"")
    assert get.endswith(hashlib.sha256(b"").hexdigest().encode() + b"\n")
    ed_private = base64.b64encode(ED_SEED).decode()
    ed_header = signing.format_authorization(
        signing.ED25519_SCHEME, ED_KEY_ID, TS, GET_NONCE, signing.sign_ed25519(ed_private, get)
    )
    assert ed_header == EXPECTED["ed_authorization"]
    parsed = signing.parse_authorization(ed_header)
    assert signing.verify_ed25519(ED_PUBLIC, get, parsed.signature)

    webhook = signing.webhook_signature(WEBHOOK_SECRET, WEBHOOK_TS, WEBHOOK_BODY)
    assert webhook == EXPECTED["webhook"]
    rotation = signing.webhook_signature(
        WEBHOOK_SECRET, WEBHOOK_TS, WEBHOOK_BODY, older_secrets=[OLD_WEBHOOK_SECRET]
    )
    assert rotation == EXPECTED["webhook_rotation"]


def test_the_document_shows_the_computed_values() -> None:
    text = DOC.read_text(encoding="utf-8")
    for value in EXPECTED.values():
        for line in value.splitlines():
            assert line in text, line
    assert base64.b64encode(ED_SEED).decode() in text
    assert base64.b64encode(ED_PUBLIC).decode() in text


def _client_snippet() -> dict[str, Any]:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    client = [block for block in blocks if "def authorization(" in block]
    assert len(client) == 1
    namespace: dict[str, Any] = {"__name__": "merchant_client"}
    exec(compile(client[0], "merchant-signing.md", "exec"), namespace)
    return namespace


def test_the_documented_client_agrees_with_the_server() -> None:
    client = _client_snippet()
    assert (
        client["authorization"](
            HMAC_KEY_ID, HMAC_SECRET, "POST", POST_PATH, POST_BODY, timestamp=TS, nonce=POST_NONCE
        )
        == EXPECTED["hmac_authorization"]
    )
    ed_private = base64.b64encode(ED_SEED).decode()
    assert (
        client["authorization"](
            ED_KEY_ID, ed_private, "GET", GET_PATH, b"", ed25519=True, timestamp=TS, nonce=GET_NONCE
        )
        == EXPECTED["ed_authorization"]
    )
    fresh = client["authorization"](HMAC_KEY_ID, HMAC_SECRET, "POST", POST_PATH, POST_BODY)
    header = signing.parse_authorization(fresh)
    message = signing.canonical_request(
        "POST", POST_PATH, header.timestamp, header.nonce, POST_BODY
    )
    assert signing.verify_hmac(HMAC_SECRET, message, header.signature)

    check = client["webhook_is_authentic"]
    now = WEBHOOK_TS + 10
    assert check(WEBHOOK_SECRET, EXPECTED["webhook"], WEBHOOK_BODY, now=now)
    assert check(OLD_WEBHOOK_SECRET, EXPECTED["webhook_rotation"], WEBHOOK_BODY, now=now)
    assert not check(WEBHOOK_SECRET, EXPECTED["webhook"], WEBHOOK_BODY + b" ", now=now)
    assert not check(WEBHOOK_SECRET, EXPECTED["webhook"], WEBHOOK_BODY, now=now + 400)
    assert not check(WEBHOOK_SECRET, "t=١٢,v1=ab", WEBHOOK_BODY, now=now)


# --- request signatures -------------------------------------------------------------------


def test_canonical_request_layout() -> None:
    message = signing.canonical_request("post", "/v1/x?a=1&b=2", 42, "n" * 16, b"{}")
    assert (
        message
        == (
            b"POST\n/v1/x?a=1&b=2\n42\n"
            + b"n" * 16
            + b"\n"
            + hashlib.sha256(b"{}").hexdigest().encode()
        )
        + b"\n"
    )


def test_hmac_round_trip_and_refusals() -> None:
    message = b"hello"
    signature = signing.sign_hmac("s3cret", message)
    assert len(base64.b64decode(signature)) == 32
    assert signing.verify_hmac("s3cret", message, signature)
    assert not signing.verify_hmac("s3cret", b"hello!", signature)
    assert not signing.verify_hmac("other", message, signature)
    assert not signing.verify_hmac("s3cret", message, "not base64!")
    assert not signing.verify_hmac("s3cret", message, signature.rstrip("="))
    assert not signing.verify_hmac("s3cret", message, "")


def test_ed25519_keys_in_every_accepted_form() -> None:
    private_b64, public = signing.new_ed25519_keypair()
    assert len(base64.b64decode(private_b64)) == 32
    assert len(public) == 32
    message = b"hello"
    raw = base64.b64decode(private_b64)
    pem = Ed25519PrivateKey.from_private_bytes(raw).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    signatures = {
        signing.sign_ed25519(form, message)
        for form in (private_b64, private_b64.encode(), raw, pem, pem.decode())
    }
    assert len(signatures) == 1  # Ed25519 is deterministic
    (signature,) = signatures
    assert signing.verify_ed25519(public, message, signature)
    assert not signing.verify_ed25519(public, b"hello!", signature)
    assert not signing.verify_ed25519(signing.new_ed25519_keypair()[1], message, signature)
    assert not signing.verify_ed25519(public, message, "AAAA")
    assert signature_error(signing.verify_ed25519, public[:31], message, signature) == (
        "signature_key_invalid"
    )


@pytest.mark.parametrize(
    "key", ["", "not base64!", base64.b64encode(b"x" * 31).decode(), b"x" * 31]
)
def test_unusable_private_keys(key: str | bytes) -> None:
    assert signature_error(signing.sign_ed25519, key, b"m") == "signature_key_invalid"


def test_non_ed25519_pem_is_refused() -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert signature_error(signing.sign_ed25519, pem, b"m") == "signature_key_invalid"


# --- the Authorization header -------------------------------------------------------------


def test_header_round_trip_and_scheme_case() -> None:
    header = signing.parse_authorization(EXPECTED["hmac_authorization"])
    assert header == SignedHeader(
        scheme="CW1-HMAC-SHA256",
        key_id=HMAC_KEY_ID,
        timestamp=TS,
        nonce=POST_NONCE,
        signature="3jKR7TW2EvgGvSJe+JYq/LfYVnGZQurshu24i4KNE3c=",
    )
    relaxed = "cw1-hmac-sha256  " + ", ".join(
        EXPECTED["hmac_authorization"].split(" ")[1].split(",")
    )
    assert signing.parse_authorization(relaxed) == header
    reordered = (
        "CW1-HMAC-SHA256 signature=3jKR7TW2EvgGvSJe+JYq/LfYVnGZQurshu24i4KNE3c=,"
        f"nonce={POST_NONCE},timestamp={TS},key_id={HMAC_KEY_ID}"
    )
    assert signing.parse_authorization(reordered) == header


HMAC_SIG = base64.b64encode(b"\x01" * 32).decode()
ED_SIG = base64.b64encode(b"\x01" * 64).decode()
GOOD_FIELDS = f"key_id=key_1,timestamp=1700000000,nonce={'n' * 16}"


@pytest.mark.parametrize(
    ("header", "code"),
    [
        ("", "signature_missing"),
        ("   ", "signature_missing"),
        ("Bearer abc", "signature_scheme_unsupported"),
        ("CW2-HMAC-SHA256 " + GOOD_FIELDS, "signature_scheme_unsupported"),
        ("CW1-HMAC-SHA256", "signature_malformed"),
        ("CW1-HMAC-SHA256 " + GOOD_FIELDS, "signature_malformed"),  # no signature
        (f"CW1-HMAC-SHA256 {GOOD_FIELDS},signature={HMAC_SIG},extra=1", "signature_malformed"),
        (
            f"CW1-HMAC-SHA256 {GOOD_FIELDS},signature={HMAC_SIG},nonce={'m' * 16}",
            "signature_malformed",
        ),
        (f"CW1-HMAC-SHA256 {GOOD_FIELDS},signature", "signature_malformed"),
        (f"CW1-HMAC-SHA256 {GOOD_FIELDS},signature={ED_SIG}", "signature_malformed"),  # 64 bytes
        (f"CW1-ED25519 {GOOD_FIELDS},signature={HMAC_SIG}", "signature_malformed"),  # 32 bytes
        (f"CW1-HMAC-SHA256 {GOOD_FIELDS},signature={HMAC_SIG.rstrip('=')}", "signature_malformed"),
        (f"CW1-HMAC-SHA256 {GOOD_FIELDS},signature={HMAC_SIG[:-2]}B=", "signature_malformed"),
        (f"CW1-HMAC-SHA256 {GOOD_FIELDS},signature=!!{HMAC_SIG[2:]}", "signature_malformed"),
        (
            f"CW1-HMAC-SHA256 key_id=key_1,timestamp=1700000000,nonce={'n' * 15},"
            f"signature={HMAC_SIG}",
            "signature_malformed",
        ),  # nonce too short
        (
            f"CW1-HMAC-SHA256 key_id=key_1,timestamp=1700000000,nonce={'n' * 65},"
            f"signature={HMAC_SIG}",
            "signature_malformed",
        ),
        (
            f"CW1-HMAC-SHA256 key_id=key_1,timestamp=1700000000,nonce={'n' * 15}.,"
            f"signature={HMAC_SIG}",
            "signature_malformed",
        ),
        (
            f"CW1-HMAC-SHA256 key_id=key_1,timestamp=01700000000,nonce={'n' * 16},"
            f"signature={HMAC_SIG}",
            "signature_malformed",
        ),  # leading zero: the signed text would differ
        (
            f"CW1-HMAC-SHA256 key_id=key_1,timestamp=-5,nonce={'n' * 16},signature={HMAC_SIG}",
            "signature_malformed",
        ),
        (
            f"CW1-HMAC-SHA256 key_id=key 1,timestamp=1700000000,nonce={'n' * 16},"
            f"signature={HMAC_SIG}",
            "signature_malformed",
        ),
        (
            f"CW1-HMAC-SHA256 key_id=,timestamp=1700000000,nonce={'n' * 16},signature={HMAC_SIG}",
            "signature_malformed",
        ),
    ],
)
def test_malformed_headers(header: str, code: str) -> None:
    assert signature_error(signing.parse_authorization, header) == code


def test_timestamp_window_edges() -> None:
    signing.check_timestamp(1000, 1000)
    signing.check_timestamp(1000, 1300)
    signing.check_timestamp(1000, 700)
    signing.check_timestamp(1000, 1030, window=30)
    assert signature_error(signing.check_timestamp, 1000, 1300.001) == "signature_expired"
    assert signature_error(signing.check_timestamp, 1000, 699.999) == "signature_expired"
    assert signature_error(signing.check_timestamp, 1000, 1031, window=30) == "signature_expired"


@given(methods, paths, timestamps, nonces, bodies)
@settings(max_examples=100)
def test_signed_requests_round_trip_through_the_header(
    method: str, path: str, timestamp: int, nonce: str, body: bytes
) -> None:
    message = signing.canonical_request(method, path, timestamp, nonce, body)
    header = signing.format_authorization(
        signing.HMAC_SCHEME, "key_1", timestamp, nonce, signing.sign_hmac("s", message)
    )
    parsed = signing.parse_authorization(header)
    again = signing.canonical_request(method, path, parsed.timestamp, parsed.nonce, body)
    assert signing.verify_hmac("s", again, parsed.signature)


@given(
    methods,
    paths,
    timestamps,
    nonces,
    bodies,
    st.sampled_from(["method", "path", "timestamp", "nonce", "body"]),
    st.data(),
)
@settings(max_examples=300)
def test_any_change_breaks_both_signatures(
    method: str,
    path: str,
    timestamp: int,
    nonce: str,
    body: bytes,
    what: str,
    data: st.DataObject,
) -> None:
    original = {
        "method": method,
        "path": path,
        "timestamp": timestamp,
        "nonce": nonce,
        "body": body,
    }
    strategy = {"method": methods, "path": paths, "timestamp": timestamps, "nonce": nonces}.get(
        what, bodies
    )
    changed = {**original, what: data.draw(strategy)}
    assume(changed[what] != original[what])
    signed = signing.canonical_request(**original)  # type: ignore[arg-type]
    tampered = signing.canonical_request(**changed)  # type: ignore[arg-type]
    assert not signing.verify_hmac("s3cret", tampered, signing.sign_hmac("s3cret", signed))
    ed_signature = signing.sign_ed25519(base64.b64encode(ED_SEED).decode(), signed)
    assert signing.verify_ed25519(ED_PUBLIC, signed, ed_signature)
    assert not signing.verify_ed25519(ED_PUBLIC, tampered, ed_signature)


# --- webhooks -----------------------------------------------------------------------------


def test_webhook_round_trip_rotation_and_refusals() -> None:
    body = WEBHOOK_BODY
    header = signing.webhook_signature(WEBHOOK_SECRET, WEBHOOK_TS, body)
    signing.verify_webhook(WEBHOOK_SECRET, header, body, now=WEBHOOK_TS)
    rotated = signing.webhook_signature(
        WEBHOOK_SECRET, WEBHOOK_TS, body, older_secrets=[OLD_WEBHOOK_SECRET]
    )
    for secret in (WEBHOOK_SECRET, OLD_WEBHOOK_SECRET):
        signing.verify_webhook(secret, rotated, body, now=WEBHOOK_TS)
    verify = signing.verify_webhook
    assert signature_error(verify, "whsec_other", rotated, body, now=WEBHOOK_TS) == (
        "signature_mismatch"
    )
    assert signature_error(verify, WEBHOOK_SECRET, header, body + b"\n", now=WEBHOOK_TS) == (
        "signature_mismatch"
    )
    moved = header.replace(f"t={WEBHOOK_TS}", f"t={WEBHOOK_TS + 1}")
    assert signature_error(verify, WEBHOOK_SECRET, moved, body, now=WEBHOOK_TS) == (
        "signature_mismatch"
    )


def test_webhook_tolerance_edges() -> None:
    header = signing.webhook_signature(WEBHOOK_SECRET, WEBHOOK_TS, WEBHOOK_BODY)
    for now in (WEBHOOK_TS + 300, WEBHOOK_TS - 300):
        signing.verify_webhook(WEBHOOK_SECRET, header, WEBHOOK_BODY, now=now)
    for late in (WEBHOOK_TS + 300.5, WEBHOOK_TS - 301):
        code = signature_error(
            signing.verify_webhook, WEBHOOK_SECRET, header, WEBHOOK_BODY, now=late
        )
        assert code == "signature_expired"
    signing.verify_webhook(WEBHOOK_SECRET, header, WEBHOOK_BODY, now=WEBHOOK_TS + 10, tolerance=10)


def test_webhook_ignores_other_schemes_and_spaces() -> None:
    header = signing.webhook_signature(WEBHOOK_SECRET, WEBHOOK_TS, WEBHOOK_BODY)
    extended = "v0=abc, " + header.replace(",", ", ") + ",v2=future"
    signing.verify_webhook(WEBHOOK_SECRET, extended, WEBHOOK_BODY, now=WEBHOOK_TS)


V1 = "v1=" + "a" * 64


@pytest.mark.parametrize(
    "header",
    [
        "",
        "t=1767225660",
        V1,
        f"t=1767225660,{V1[:-1]}",
        f"t=1767225660,{V1.upper()}",
        f"t=1767225660,t=1767225661,{V1}",
        f"t=abc,{V1}",
        f"t=-1,{V1}",
        f"t=1767225660,{V1},garbage",
        f"t=1767225660,v0={'a' * 64}",
    ],
)
def test_malformed_webhook_headers(header: str) -> None:
    code = signature_error(
        signing.verify_webhook, WEBHOOK_SECRET, header, WEBHOOK_BODY, now=WEBHOOK_TS
    )
    assert code == "signature_malformed"


@given(st.text(min_size=1, max_size=60), timestamps, bodies, bodies)
@settings(max_examples=100)
def test_webhook_signature_binds_the_body(secret: str, t: int, body: bytes, other: bytes) -> None:
    header = signing.webhook_signature(secret, t, body)
    signing.verify_webhook(secret, header, body, now=t)
    if other != body:
        code = signature_error(signing.verify_webhook, secret, header, other, now=t)
        assert code == "signature_mismatch"
