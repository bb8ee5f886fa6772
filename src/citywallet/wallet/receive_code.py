"""The personal receive code (收钱码): a resident's static QR that another resident scans to
pay them. Pure: no database, no web.

The payload is an EMVCo merchant-presented code, as the national schemes that put people's
own receive codes on EMVCo do (Thailand's PromptPay, Singapore's PayNow, Brazil's Pix): one
scanner and one checksum for merchants' and residents' codes. Data objects ``ID(2) LEN(2)
VALUE``, the CRC-16/CCITT-FALSE over the UTF-8 bytes of everything up to and including
``6304`` (docs/wallet.md, "Receive code"):

====  ==========================================================================
ID    value
====  ==========================================================================
00    ``01`` (payload format)
01    ``11``: a static code, reusable (also when it carries an amount)
26    account template: sub-ID 00 ``org.citywallet.p2p`` (our network's P2P GUID),
      sub-ID 01 the payee's public user id (``usr_…``)
52    ``0000`` (no merchant category: a person)
53    ``156`` (CNY)
54    the amount in yuan with two decimals, only when the payee set one
58    ``CN``
59    ``CITYWALLET USER`` (the name shown is the payee's masked real name, read at the
      payer's provider, never taken from the code)
60    ``CN``
63    the CRC, four upper-case hex digits
====  ==========================================================================

The code is not signed: nothing in it is trusted. The payer's app shows the payee's masked
real name and the amount from its own records before the PIN, so an altered code can only
name another existing resident, whom the payer then sees.
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass

from citywallet.platform.errors import InvalidInput

P2P_GUID = "org.citywallet.p2p"
TEMPLATE_ID = "26"
NAME = "CITYWALLET USER"
MAX_AMOUNT = 99_999_999_99  # fen: what fits the ten-character amount field with decimals
MAX_PAYLOAD = 512

_USER_ID = re.compile(r"usr_[A-Za-z0-9_-]{1,36}")
_AMOUNT = re.compile(r"(0|[1-9][0-9]*)\.[0-9]{2}")
_FIXED = {"00": "01", "01": "11", "52": "0000", "53": "156", "58": "CN", "59": NAME, "60": "CN"}
_ALLOWED = frozenset({*_FIXED, TEMPLATE_ID, "54", "63"})


class ReceiveCodeError(InvalidInput):
    """A receive code that is broken (checksum, structure, fields)."""

    code = "qr_malformed"
    title = "This code cannot be read"


@dataclass(frozen=True, slots=True)
class ReceiveCode:
    """Whom a receive code pays, and the amount its owner set (``None``: the payer enters it)."""

    user_id: str
    amount: int | None = None


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF) of ``data``."""
    return binascii.crc_hqx(data, 0xFFFF)


def _crc_hex(text: str) -> str:
    return f"{crc16(text.encode('utf-8')):04X}"


def _tlv(tag: str, value: str) -> str:
    return f"{tag}{len(value):02d}{value}"


def _check(code: ReceiveCode) -> None:
    if not _USER_ID.fullmatch(code.user_id):
        raise ReceiveCodeError("The code names no resident.")
    if code.amount is not None and not 0 < code.amount <= MAX_AMOUNT:
        raise ReceiveCodeError("The amount must be above zero.", code="invalid_amount")


def build(code: ReceiveCode) -> str:
    """The EMVCo payload of ``code``."""
    _check(code)
    account = _tlv("00", P2P_GUID) + _tlv("01", code.user_id)
    parts = [_tlv("00", "01"), _tlv("01", "11"), _tlv(TEMPLATE_ID, account)]
    parts += [_tlv("52", "0000"), _tlv("53", "156")]
    if code.amount is not None:
        parts.append(_tlv("54", f"{code.amount // 100}.{code.amount % 100:02d}"))
    parts += [_tlv("58", "CN"), _tlv("59", NAME), _tlv("60", "CN")]
    body = "".join(parts) + "6304"
    return body + _crc_hex(body)


def _walk(text: str) -> dict[str, str]:
    """The data objects of ``text`` (each ID once), or ReceiveCodeError."""
    objects: dict[str, str] = {}
    at = 0
    while at < len(text):
        tag, size = text[at : at + 2], text[at + 2 : at + 4]
        if len(size) < 2 or not (tag.isdigit() and tag.isascii()):
            raise ReceiveCodeError("The code ends inside a data object.")
        if not (size.isdigit() and size.isascii()) or size == "00":
            raise ReceiveCodeError(f"ID {tag} has no valid length.")
        end = at + 4 + int(size)
        if end > len(text) or tag in objects:
            raise ReceiveCodeError(f"ID {tag} is cut short or appears twice.")
        objects[tag] = text[at + 4 : end]
        at = end
    return objects


def claims(payload: str) -> bool:
    """Whether ``payload`` says it is a receive code (an EMV payload naming our P2P GUID):
    such a payload is parsed here, not as a merchant's code."""
    guid = _tlv("00", P2P_GUID)
    return payload.startswith("000201") and guid in payload


def parse(payload: str) -> ReceiveCode:
    """The receive code in ``payload``: checksum, every field and nothing else, in the order
    :func:`build` writes them; else ReceiveCodeError (``qr_crc_mismatch``,
    ``qr_unsupported_currency``, ``invalid_amount``, ``qr_malformed``)."""
    if len(payload) > MAX_PAYLOAD or not payload.startswith("000201"):
        raise ReceiveCodeError("This is not a receive code.")
    try:
        payload.encode("utf-8")
    except UnicodeEncodeError:
        raise ReceiveCodeError("This is not a receive code.") from None
    if payload[-8:-4] != "6304" or len(payload) < 12:
        raise ReceiveCodeError("The code ends before its checksum.")
    if payload[-4:] != _crc_hex(payload[:-4]):
        raise ReceiveCodeError(
            "The code's checksum does not match; scan it again.", code="qr_crc_mismatch"
        )
    objects = _walk(payload)
    if next(reversed(objects)) != "63" or not set(objects) <= _ALLOWED:
        raise ReceiveCodeError("The code carries data a receive code does not have.")
    if objects.get("53") not in (None, "156"):
        raise ReceiveCodeError(
            "Only codes in yuan (CNY) can be paid.", code="qr_unsupported_currency"
        )
    if any(objects.get(tag) != value for tag, value in _FIXED.items()):
        raise ReceiveCodeError("The code is not a well-formed receive code.")
    account = _walk(objects.get(TEMPLATE_ID, ""))
    if account.get("00") != P2P_GUID or set(account) != {"00", "01"}:
        raise ReceiveCodeError("The code's account template is not a receive code's.")
    amount: int | None = None
    if "54" in objects:
        if not _AMOUNT.fullmatch(objects["54"]):
            raise ReceiveCodeError("The amount is yuan with exactly two decimals.")
        amount = int(objects["54"].replace(".", ""))
    code = ReceiveCode(account["01"], amount)
    if build(code) != payload:  # data objects out of their order: not one of ours
        raise ReceiveCodeError("The code is not a well-formed receive code.")
    return code
