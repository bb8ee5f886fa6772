"""The FSPIOP-shaped messages the switch and the providers exchange (docs/interop.md).

Strict pydantic models: no coercion, unknown members refused, field names in the wire's
camelCase (``transferId``...) through aliases. One deliberate departure from FSPIOP: amounts
are integers of minor units (fen) with the currency, as everywhere in CityWallet's API, not
decimal strings. Error codes are FSPIOP's own numbers: the ones we send are ``ErrorCode``;
any other 4-digit code a peer sends (FSPIOP lets schemes define their own) is kept as an
``OtherCode`` and understood by its category, the first digit.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    WithJsonSchema,
    model_validator,
)
from pydantic.alias_generators import to_camel

from citywallet.interop.conditions import check_condition, check_fulfilment

CURRENCY: Literal["CNY"] = "CNY"
MAX_AMOUNT = 10**15  # fen; far above any wallet limit, below every engine's BIGINT

ParticipantId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")]
MessageId = Annotated[
    str, Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
]
Msisdn = Annotated[str, Field(pattern=r"^\+?[0-9]{5,15}$")]
PartyIdType = Literal["MSISDN", "BUSINESS"]  # a resident's mobile number; a merchant's id
_IDENTIFIER = {
    "MSISDN": re.compile(r"\+?[0-9]{5,15}"),
    "BUSINESS": re.compile(r"[A-Za-z0-9_-]{1,64}"),
}


def check_identifier(id_type: str, identifier: str) -> None:
    """Raise ``ValueError`` unless ``identifier`` is well formed for ``id_type``."""
    pattern = _IDENTIFIER.get(id_type)
    if pattern is None or not pattern.fullmatch(identifier):
        raise ValueError(f"not a valid {id_type} identifier")


Condition = Annotated[str, AfterValidator(check_condition)]
Fulfilment = Annotated[str, AfterValidator(check_fulfilment)]
Fen = Annotated[int, Field(ge=0, le=MAX_AMOUNT)]
# A participant's display name from the switch's registry ("Provider B Wallet"), for people.
DisplayName = Annotated[str, Field(min_length=1, max_length=100)]


class ErrorCode(StrEnum):
    """FSPIOP error codes (API definition v1.1 §7.6) that the switch and providers send."""

    COMMUNICATION_ERROR = "1000"
    DESTINATION_COMMUNICATION_ERROR = "1001"
    GENERIC_SERVER_ERROR = "2000"
    INTERNAL_SERVER_ERROR = "2001"
    SERVER_TIMED_OUT = "2004"
    UNKNOWN_URI = "3002"
    GENERIC_VALIDATION_ERROR = "3100"
    MALFORMED_SYNTAX = "3101"
    MISSING_MANDATORY_ELEMENT = "3102"
    INVALID_SIGNATURE = "3105"
    MODIFIED_REQUEST = "3106"
    DESTINATION_FSP_ERROR = "3201"
    PAYER_FSP_ID_NOT_FOUND = "3202"
    PAYEE_FSP_ID_NOT_FOUND = "3203"
    PARTY_NOT_FOUND = "3204"
    QUOTE_ID_NOT_FOUND = "3205"
    TRANSFER_ID_NOT_FOUND = "3208"
    QUOTE_EXPIRED = "3302"
    TRANSFER_EXPIRED = "3303"
    PAYER_FSP_INSUFFICIENT_LIQUIDITY = "4001"
    PAYER_LIMIT_ERROR = "4200"
    PAYEE_FSP_REJECTED_QUOTE = "5103"
    PAYEE_REJECTED_TRANSACTION = "5104"
    PAYEE_FSP_REJECTED_TRANSACTION = "5105"
    PAYEE_UNSUPPORTED_CURRENCY = "5106"

    @property
    def description(self) -> str:
        """FSPIOP's name for the code: ``3303`` → "Transfer expired"."""
        acronyms = {"FSP", "ID", "URI"}
        text = " ".join(w if w in acronyms else w.lower() for w in self.name.split("_"))
        return text[0].upper() + text[1:]


class Category(StrEnum):
    """What an FSPIOP error code is about: its first digit (API definition v1.1 §7.6)."""

    COMMUNICATION = "1"
    SERVER = "2"
    CLIENT = "3"  # validation, id not found, expired
    PAYER = "4"
    PAYEE = "5"
    UNDEFINED = ""  # 0xxx, 6xxx-9xxx: FSPIOP defines none


class OtherCode(str):
    """A well-formed FSPIOP error code that ``ErrorCode`` does not list (a scheme-specific
    one, e.g. a payee error 5xxx): kept as its text, read by its category."""

    __slots__ = ()

    @property
    def value(self) -> str:
        """The code's text, as ``ErrorCode.value``."""
        return str(self)

    @property
    def description(self) -> str:
        """A name for a code we do not know: its category's."""
        kind = category(self).name.lower() if category(self) is not Category.UNDEFINED else ""
        return f"{kind.capitalize() or 'Unknown'} error {self}"


FspiopCode = ErrorCode | OtherCode
_CODE = re.compile(r"[0-9]{4}")


def parse_code(value: object) -> FspiopCode:
    """Any 4-digit code as text: a listed one as its ``ErrorCode``, else an ``OtherCode``.
    Anything else (5 digits, letters, a number instead of text) raises ``ValueError``."""
    if isinstance(value, ErrorCode):
        return value
    if not isinstance(value, str) or not _CODE.fullmatch(value):
        raise ValueError("an FSPIOP error code is 4 digits")
    try:
        return ErrorCode(value)
    except ValueError:
        return OtherCode(value)


def category(code: str) -> Category:
    """The category of a (well-formed) code, by its first digit."""
    try:
        return Category(code[:1])
    except ValueError:
        return Category.UNDEFINED


CodeField = Annotated[
    FspiopCode,
    PlainValidator(parse_code),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "pattern": "^[0-9]{4}$"}),
]


class Message(BaseModel):
    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=True,
    )

    def wire(self) -> bytes:
        """The JSON body as sent: camelCase members, no nulls."""
        return self.model_dump_json(by_alias=True, exclude_none=True).encode("utf-8")


class Amount(Message):
    amount: Fen
    currency: Literal["CNY"] = CURRENCY


class Party(Message):
    """A party as discovery returns it: who holds the alias and the masked real name."""

    party_id_type: Literal["MSISDN"] = "MSISDN"
    party_identifier: Msisdn
    fsp_id: ParticipantId
    masked_name: Annotated[str, Field(min_length=1, max_length=64)]
    # Our addition (optional, so FSPIOP's shape holds): the switch names the holder's
    # provider as its registry does, for the payer's pages; absent, people see ``fspId``.
    fsp_name: DisplayName | None = None


class PartyLookupResult(Message):
    """``PUT /parties/MSISDN/{id}``: the answer to a party lookup."""

    party: Party


class PartyRef(Message):
    """A resident (``MSISDN``: mobile number) or a merchant (``BUSINESS``: its merchant id)."""

    party_id_type: PartyIdType = "MSISDN"
    party_identifier: Annotated[str, Field(min_length=1, max_length=64)]
    fsp_id: ParticipantId

    @model_validator(mode="after")
    def _identifier(self) -> PartyRef:
        check_identifier(self.party_id_type, self.party_identifier)
        return self


class AliasRegistration(Message):
    """``POST /participants/{type}/{id}``: a provider tells the switch it holds an alias
    (a resident who verified their real name, or a merchant), with the name to show payers."""

    fsp_id: ParticipantId
    masked_name: Annotated[str, Field(min_length=1, max_length=64)]


class SettlementNotice(Message):
    """``PUT /settlementWindows/{windowId}``: the switch tells each participant its net for a
    closed window. ``netAmount`` is signed fen: positive, the participant pays it; negative,
    it receives it. Each provider posts it against its settlement account with the switch."""

    window_id: MessageId
    net_amount: Annotated[int, Field(ge=-MAX_AMOUNT, le=MAX_AMOUNT)]
    currency: Literal["CNY"] = CURRENCY
    transfer_count: Annotated[int, Field(ge=0)]
    closed_at: datetime


class QuoteRequest(Message):
    """``POST /quotes``: the payer's provider asks the payee's for terms."""

    quote_id: MessageId
    transaction_id: MessageId
    payer: PartyRef
    payee: PartyRef
    amount_type: Literal["SEND", "RECEIVE"]
    amount: Amount
    expiration: datetime
    # A merchant payment: the EMVCo payload the payer scanned, for the merchant's provider to
    # authenticate with its own key (its MAC, amount and order) before it quotes.
    qr_payload: Annotated[str, Field(min_length=1, max_length=512)] | None = None

    @model_validator(mode="after")
    def _distinct(self) -> QuoteRequest:
        if self.payer.fsp_id == self.payee.fsp_id:
            raise ValueError("payer and payee are at the same participant: no switch needed")
        if (self.qr_payload is not None) != (self.payee.party_id_type == "BUSINESS"):
            raise ValueError("a merchant (BUSINESS) payee comes with its QR payload, only it")
        return self


class QuoteResponse(Message):
    """``PUT /quotes/{id}``: the payee's terms.

    ``transferAmount`` moves through the switch; the payee's provider keeps ``payeeFee`` of it
    and credits ``payeeReceiveAmount``; the payer's provider charges ``payerFee`` on top, in
    its own books. The condition is the payee's: the prepare must carry it unchanged.
    """

    transfer_amount: Amount
    payee_receive_amount: Amount
    payer_fee: Amount
    payee_fee: Amount
    expiration: datetime
    ilp_condition: Condition
    # Our addition (optional): the payee's provider by its display name in the switch's
    # registry, set by the switch as it forwards the terms (whatever the payee wrote).
    payee_fsp_name: DisplayName | None = None

    @model_validator(mode="after")
    def _adds_up(self) -> QuoteResponse:
        if self.transfer_amount.amount == 0:
            raise ValueError("transferAmount must be positive")
        if self.payee_receive_amount.amount + self.payee_fee.amount != self.transfer_amount.amount:
            raise ValueError("payeeReceiveAmount + payeeFee must equal transferAmount")
        return self


class TransferPrepare(Message):
    """``POST /transfers``: the payer's provider asks the switch to move money."""

    transfer_id: MessageId
    payer_fsp: ParticipantId
    payee_fsp: ParticipantId
    amount: Amount
    ilp_condition: Condition
    expiration: datetime
    # Our extension: the payer's provider as the switch's registry names it, set by the
    # switch when it forwards the prepare (whatever the payer wrote), for the payee's receipt.
    payer_fsp_name: DisplayName | None = None

    @model_validator(mode="after")
    def _valid(self) -> TransferPrepare:
        if self.amount.amount == 0:
            raise ValueError("amount must be positive")
        if self.payer_fsp == self.payee_fsp:
            raise ValueError("payerFsp and payeeFsp must differ")
        if self.expiration.tzinfo is None:
            raise ValueError("expiration must carry a time zone")
        return self

    def digest(self) -> str:
        """SHA-256 of the canonical body: a resent prepare with another body is 3106."""
        return hashlib.sha256(self.wire()).hexdigest()


class TransferFulfil(Message):
    """``PUT /transfers/{id}``: the payee's provider commits (or the switch tells the state)."""

    fulfilment: Fulfilment | None = None
    completed_timestamp: datetime
    transfer_state: Literal["RESERVED", "COMMITTED", "ABORTED"]

    @model_validator(mode="after")
    def _fulfilment_iff_committed(self) -> TransferFulfil:
        if (self.transfer_state == "COMMITTED") != (self.fulfilment is not None):
            raise ValueError("a fulfilment comes with COMMITTED and only with it")
        return self


class ErrorInformation(Message):
    error_code: CodeField
    error_description: Annotated[str, Field(min_length=1, max_length=128)]


class ErrorMessage(Message):
    """``PUT .../{id}/error``: the answer when a request failed."""

    error_information: ErrorInformation


def error(code: FspiopCode, description: str | None = None) -> ErrorMessage:
    """The error body for ``code``; the description defaults to FSPIOP's name of the code."""
    return ErrorMessage(
        error_information=ErrorInformation(
            error_code=code, error_description=description or code.description
        )
    )
