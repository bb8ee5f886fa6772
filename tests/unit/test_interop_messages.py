"""Pure: the FSPIOP-shaped message models (interop/messages.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from citywallet.interop.conditions import condition_of, new_fulfilment
from citywallet.interop.messages import (
    ErrorCode,
    ErrorMessage,
    PartyLookupResult,
    PartyRef,
    QuoteRequest,
    QuoteResponse,
    SettlementNotice,
    TransferFulfil,
    TransferPrepare,
    error,
)

FULFILMENT = new_fulfilment()
PREPARE: dict[str, Any] = {
    "transferId": "b51ec534-ee48-4575-b6a9-ead2955b8069",
    "payerFsp": "provider-a",
    "payeeFsp": "provider-b",
    "amount": {"amount": 12345, "currency": "CNY"},
    "ilpCondition": condition_of(FULFILMENT),
    "expiration": "2026-12-07T14:00:00Z",
}


def _prepare(**changes: Any) -> TransferPrepare:
    return TransferPrepare.model_validate_json(json.dumps({**PREPARE, **changes}))


def test_a_prepare_round_trips_through_the_wire() -> None:
    prepare = _prepare()
    assert prepare.amount.amount == 12345
    assert TransferPrepare.model_validate_json(prepare.wire()) == prepare
    assert json.loads(prepare.wire())["ilpCondition"] == PREPARE["ilpCondition"]


def test_the_digest_ignores_formatting_but_not_content() -> None:
    spaced = json.dumps(dict(reversed(PREPARE.items())), indent=2)
    assert TransferPrepare.model_validate_json(spaced).digest() == _prepare().digest()
    assert _prepare(amount={"amount": 12346, "currency": "CNY"}).digest() != _prepare().digest()


@pytest.mark.parametrize(
    "changes",
    [
        {"amount": {"amount": "123.45", "currency": "CNY"}},  # FSPIOP's decimal string: not ours
        {"amount": {"amount": 123.0, "currency": "CNY"}},
        {"amount": {"amount": 0, "currency": "CNY"}},
        {"amount": {"amount": -5, "currency": "CNY"}},
        {"amount": {"amount": 5, "currency": "USD"}},
        {"amount": {"amount": 5}, "extra": 1},
        {"ilpCondition": PREPARE["ilpCondition"] + "="},
        {"ilpCondition": PREPARE["ilpCondition"][:-1]},
        {"payeeFsp": "provider-a"},
        {"payerFsp": "Provider A"},
        {"transferId": "B51EC534-EE48-4575-B6A9-EAD2955B8069"},
        {"transferId": "not-a-uuid"},
        {"expiration": "2026-12-07T14:00:00"},  # no time zone
        {"surprise": True},
    ],
)
def test_bad_prepares_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        _prepare(**changes)


def test_a_prepare_lacking_a_member_is_refused() -> None:
    body = {k: v for k, v in PREPARE.items() if k != "ilpCondition"}
    with pytest.raises(ValidationError):
        TransferPrepare.model_validate_json(json.dumps(body))


def test_fulfil_carries_a_fulfilment_with_committed_only() -> None:
    committed = TransferFulfil.model_validate_json(
        json.dumps(
            {
                "fulfilment": FULFILMENT,
                "completedTimestamp": "2026-12-07T13:31:00Z",
                "transferState": "COMMITTED",
            }
        )
    )
    assert committed.fulfilment == FULFILMENT
    for body in (
        {"completedTimestamp": "2026-12-07T13:31:00Z", "transferState": "COMMITTED"},
        {
            "fulfilment": FULFILMENT,
            "completedTimestamp": "2026-12-07T13:31:00Z",
            "transferState": "ABORTED",
        },
        {
            "fulfilment": "short",
            "completedTimestamp": "2026-12-07T13:31:00Z",
            "transferState": "COMMITTED",
        },
    ):
        with pytest.raises(ValidationError):
            TransferFulfil.model_validate_json(json.dumps(body))


QUOTE = {
    "transferAmount": {"amount": 10000, "currency": "CNY"},
    "payeeReceiveAmount": {"amount": 9990, "currency": "CNY"},
    "payerFee": {"amount": 0, "currency": "CNY"},
    "payeeFee": {"amount": 10, "currency": "CNY"},
    "expiration": "2026-12-07T13:35:00Z",
    "ilpCondition": condition_of(FULFILMENT),
}


def test_a_quote_response_must_add_up() -> None:
    assert QuoteResponse.model_validate_json(json.dumps(QUOTE)).payee_fee.amount == 10
    wrong = {**QUOTE, "payeeReceiveAmount": {"amount": 10000, "currency": "CNY"}}
    with pytest.raises(ValidationError, match="must equal transferAmount"):
        QuoteResponse.model_validate_json(json.dumps(wrong))


def test_a_quote_request_is_between_two_participants() -> None:
    body = {
        "quoteId": "7c23e80c-d078-4077-8263-2c047876fcf6",
        "transactionId": "85feac2f-39b2-491b-817e-4a03203d4f14",
        "payer": {"partyIdType": "MSISDN", "partyIdentifier": "13800138000", "fspId": "a"},
        "payee": {"partyIdType": "MSISDN", "partyIdentifier": "13900139000", "fspId": "b"},
        "amountType": "SEND",
        "amount": {"amount": 10000, "currency": "CNY"},
        "expiration": "2026-12-07T13:35:00Z",
    }
    assert QuoteRequest.model_validate_json(json.dumps(body)).amount_type == "SEND"
    same = {**body, "payee": {**body["payee"], "fspId": "a"}}
    with pytest.raises(ValidationError, match="same participant"):
        QuoteRequest.model_validate_json(json.dumps(same))


def test_party_lookup_result_shows_only_a_masked_name() -> None:
    body = {
        "party": {
            "partyIdType": "MSISDN",
            "partyIdentifier": "13800138000",
            "fspId": "provider-b",
            "maskedName": "*明",
        }
    }
    assert json.loads(PartyLookupResult.model_validate_json(json.dumps(body)).wire()) == body
    with pytest.raises(ValidationError):
        PartyLookupResult.model_validate_json(json.dumps({"party": {**body["party"], "name": "x"}}))


def test_errors_use_fspiop_numbers() -> None:
    assert ErrorCode.MODIFIED_REQUEST == "3106"
    assert ErrorCode.TRANSFER_EXPIRED == "3303"
    assert ErrorCode.PAYER_FSP_INSUFFICIENT_LIQUIDITY == "4001"
    assert all(len(code) == 4 and code[0] in "12345" for code in ErrorCode)
    wire = error(ErrorCode.TRANSFER_EXPIRED, "Transfer expired").wire()
    assert json.loads(wire) == {
        "errorInformation": {"errorCode": "3303", "errorDescription": "Transfer expired"}
    }
    assert ErrorMessage.model_validate_json(wire).error_information.error_code == "3303"
    # A code we do not list is kept (tests/unit/test_interop_error_codes.py); 5 digits are not.
    assert ErrorMessage.model_validate_json(wire.replace(b"3303", b"9999")).error_information
    with pytest.raises(ValidationError):
        ErrorMessage.model_validate_json(wire.replace(b"3303", b"99999"))


def test_error_descriptions_default_to_fspiop_names() -> None:
    assert ErrorCode.PAYER_FSP_INSUFFICIENT_LIQUIDITY.description == (
        "Payer FSP insufficient liquidity"
    )
    assert ErrorCode.TRANSFER_ID_NOT_FOUND.description == "Transfer ID not found"
    assert ErrorCode.UNKNOWN_URI.description == "Unknown URI"
    body = error(ErrorCode.MODIFIED_REQUEST).error_information
    assert body.error_description == "Modified request"


@pytest.mark.parametrize(
    ("id_type", "identifier", "ok"),
    [
        ("MSISDN", "13900139000", True),
        ("MSISDN", "mch_123", False),
        ("BUSINESS", "mch_123", True),
        ("BUSINESS", "mch 123", False),
        ("BUSINESS", "x" * 65, False),
    ],
)
def test_a_party_reference_is_checked_by_its_type(id_type: str, identifier: str, ok: bool) -> None:
    wire = {"partyIdType": id_type, "partyIdentifier": identifier, "fspId": "provider-b"}
    if ok:
        assert PartyRef.model_validate(wire).party_identifier == identifier
    else:
        with pytest.raises(ValidationError):
            PartyRef.model_validate(wire)


def test_a_settlement_notice_carries_a_signed_net() -> None:
    notice = SettlementNotice.model_validate_json(
        '{"windowId": "7c23e80c-d078-4077-8263-2c047876fcf6", "netAmount": -2500,'
        ' "currency": "CNY", "transferCount": 3, "closedAt": "2026-12-07T05:30:00Z"}'
    )
    assert notice.net_amount == -2500
    assert b'"netAmount":-2500' in notice.wire()
