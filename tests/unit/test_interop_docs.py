"""The worked examples of docs/interop.md are valid messages and true signatures."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from citywallet.interop import messages
from citywallet.interop.conditions import condition_of
from citywallet.interop.signing import SignedHeaders, verify

DOC = (Path(__file__).parents[2] / "docs" / "interop.md").read_text(encoding="utf-8")
EXAMPLES = re.findall(r"<!-- model: (\w+) -->\n```json\n(.*?)```", DOC, flags=re.DOTALL)


def test_the_doc_has_an_example_of_every_message() -> None:
    assert {name for name, _ in EXAMPLES} == {
        "PartyLookupResult",
        "QuoteRequest",
        "QuoteResponse",
        "TransferPrepare",
        "TransferFulfil",
        "ErrorMessage",
    }


@pytest.mark.parametrize(("name", "body"), EXAMPLES, ids=[name for name, _ in EXAMPLES])
def test_each_example_is_a_valid_message(name: str, body: str) -> None:
    model = getattr(messages, name)
    parsed = model.model_validate_json(body)
    assert model.model_validate_json(parsed.wire()) == parsed


def test_the_example_fulfilment_fulfils_the_example_condition() -> None:
    bodies = {name: json.loads(body) for name, body in EXAMPLES}
    condition = bodies["TransferPrepare"]["ilpCondition"]
    assert condition == bodies["QuoteResponse"]["ilpCondition"]
    assert condition_of(bodies["TransferFulfil"]["fulfilment"]) == condition


def test_the_example_signature_verifies() -> None:
    header = re.search(r'```json\n(\{"protectedHeader".*?\})\n```', DOC, flags=re.DOTALL)
    assert header is not None
    headers = SignedHeaders(
        "provider-a", "provider-b", "/transfers", "POST", "Mon, 07 Dec 2026 05:30:00 GMT"
    )
    key = Ed25519PrivateKey.from_private_bytes(bytes(32)).public_key()
    verify(key, header.group(1), headers, b"{}")
