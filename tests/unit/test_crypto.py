"""Field encryption, key ids, rotation and lookup hashes (pure, no database)."""

from __future__ import annotations

import base64

import pytest

from citywallet.platform.crypto import CryptoError, Encryptor, Keyring, parse_keyring

K1, K2 = bytes(range(32)), bytes(range(100, 132))  # fixed, so test ids are stable


def test_round_trip_and_fresh_nonce() -> None:
    enc = Encryptor(Keyring({"k1": K1}, "k1"))
    first = enc.encrypt(b"110101199003074518")
    second = enc.encrypt(b"110101199003074518")
    assert first != second  # a fresh nonce every time
    assert first.startswith("v1.k1.")
    assert b"110101199003074518" not in base64.b64decode(first.split(".", 2)[2])
    assert enc.decrypt(first) == enc.decrypt(second) == b"110101199003074518"
    assert enc.decrypt(enc.encrypt(b"")) == b""


def test_aad_binds_the_ciphertext_to_its_context() -> None:
    enc = Encryptor(Keyring({"k1": K1}, "k1"))
    token = enc.encrypt(b"6222020200112233445", aad=b"user:1")
    assert enc.decrypt(token, aad=b"user:1") == b"6222020200112233445"
    with pytest.raises(CryptoError):
        enc.decrypt(token, aad=b"user:2")  # pasted into another row
    with pytest.raises(CryptoError):
        enc.decrypt(token)


def test_wrong_key_or_unknown_kid_or_tampering_is_refused() -> None:
    token = Encryptor(Keyring({"k1": K1}, "k1")).encrypt(b"secret")
    with pytest.raises(CryptoError):
        Encryptor(Keyring({"k1": K2}, "k1")).decrypt(token)  # same id, other key
    with pytest.raises(CryptoError):
        Encryptor(Keyring({"k2": K2}, "k2")).decrypt(token)  # key id unknown
    version, kid, body = token.split(".", 2)
    raw = bytearray(base64.b64decode(body))
    raw[-1] ^= 1
    tampered = f"{version}.{kid}.{base64.b64encode(bytes(raw)).decode()}"
    with pytest.raises(CryptoError):
        Encryptor(Keyring({"k1": K1}, "k1")).decrypt(tampered)
    with pytest.raises(CryptoError):
        Encryptor(Keyring({"k1": K1}, "k1")).decrypt("v2." + token.split(".", 1)[1])


def test_rewrap_moves_to_the_current_key() -> None:
    old = Encryptor(Keyring({"k1": K1}, "k1"))
    token = old.encrypt(b"13800138000", aad=b"phone")
    rotated = Encryptor(Keyring({"k1": K1, "k2": K2}, "k2"))
    assert rotated.key_id(token) == "k1"
    rewrapped = rotated.rewrap(token, aad=b"phone")
    assert rotated.key_id(rewrapped) == "k2"
    assert rotated.decrypt(rewrapped, aad=b"phone") == b"13800138000"
    assert rotated.rewrap(rewrapped, aad=b"phone") == rewrapped  # already current: unchanged
    with pytest.raises(CryptoError):
        old.decrypt(rewrapped, aad=b"phone")  # the old ring cannot read the new key


def test_lookup_hash_is_stable_across_rotation_and_keyed() -> None:
    before = Encryptor(Keyring({"k1": K1}, "k1"))
    after = Encryptor(Keyring({"k1": K1, "k2": K2}, "k2"))
    assert before.lookup_hash("13800138000") == after.lookup_hash("13800138000")
    assert before.lookup_hash("13800138000") != before.lookup_hash("13800138001")
    other_platform = Encryptor(Keyring({"k1": K2}, "k1"))
    assert other_platform.lookup_hash("13800138000") != before.lookup_hash("13800138000")
    assert len(before.lookup_hash("x")) == 64


def test_parse_keyring_first_is_current() -> None:
    spec = f"k2:{base64.b64encode(K2).decode()}, k1:{base64.b64encode(K1).decode()}"
    ring = parse_keyring(spec)
    assert ring.current == "k2"
    assert ring.keys == {"k2": K2, "k1": K1}
    # Putting the new key first (the environment's way to rotate) keeps lookup hashes.
    assert Encryptor(ring).lookup_hash("a") == Encryptor(Keyring({"k1": K1}, "k1")).lookup_hash("a")


@pytest.mark.parametrize(
    "spec",
    [
        f"k1:{base64.b64encode(b'short').decode()}",  # not 32 bytes
        f"k.1:{base64.b64encode(K1).decode()}",  # a dot would break the envelope
    ],
)
def test_parse_keyring_rejects_bad_keys(spec: str) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        parse_keyring(spec)


def test_keyring_current_must_exist() -> None:
    with pytest.raises(ValueError, match="current"):
        Keyring({"k1": K1}, "k2")


def test_lookup_hash_survives_retiring_the_first_data_key() -> None:
    lookup = bytes(range(32, 64))
    before = Encryptor(Keyring({"k1": K1}, "k1", lookup))
    retired = Encryptor(Keyring({"k2": bytes(32)}, "k2", lookup))
    assert before.lookup_hash("13800138000") == retired.lookup_hash("13800138000")
