"""Receiving side of the transport: a signed request passes, anything else is refused with
the FSPIOP code the sender must see (no database, no network)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from citywallet.interop.messages import ErrorCode
from citywallet.interop.transport import Refused, check_request, signed_headers

NOW = datetime(2026, 12, 7, 5, 30, tzinfo=UTC)
KEY = Ed25519PrivateKey.from_private_bytes(bytes(32))
OTHER = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
BODY = b'{"transferId":"x"}'


def headers(key: Ed25519PrivateKey = KEY, *, body: bytes = BODY, now: datetime = NOW) -> dict:
    signed = signed_headers(
        key, source="provider-a", destination="switch", method="POST", path="/transfers",
        body=body, now=now,
    )  # fmt: skip
    return {name.lower(): value for name, value in signed.items()}


def check(sent: dict, *, body: bytes = BODY, path: str = "/transfers") -> str:
    keys = {"provider-a": KEY.public_key()}
    return check_request(sent, method="POST", path=path, body=body, key_of=keys.get, now=NOW)


def test_a_signed_request_names_its_sender() -> None:
    assert check(headers()) == "provider-a"


@pytest.mark.parametrize(
    ("sent", "kwargs", "code"),
    [
        (headers(), {"body": b'{"transferId":"y"}'}, ErrorCode.INVALID_SIGNATURE),
        (headers(), {"path": "/quotes"}, ErrorCode.INVALID_SIGNATURE),
        (headers(OTHER), {}, ErrorCode.INVALID_SIGNATURE),
        (headers(now=NOW - timedelta(seconds=301)), {}, ErrorCode.INVALID_SIGNATURE),
        ({**headers(), "fspiop-source": "provider-z"}, {}, ErrorCode.DESTINATION_FSP_ERROR),
        (
            {k: v for k, v in headers().items() if k != "date"},
            {},
            ErrorCode.MISSING_MANDATORY_ELEMENT,
        ),
    ],
    ids=["body changed", "uri changed", "wrong key", "stale date", "unknown sender", "no date"],
)
def test_anything_else_is_refused_with_its_code(sent: dict, kwargs: dict, code: ErrorCode) -> None:
    with pytest.raises(Refused) as refused:
        check(sent, **kwargs)
    assert refused.value.code is code
    assert refused.value.body().error_information.error_code is code
