"""EMVCo Merchant-Presented Mode QR payloads: the codes a merchant prints or shows (DOMAIN.md §3).

Any wallet that speaks EMV MPM can read the public part of our codes (name, city, amount,
currency), which is why the format is EMVCo's and not our own. What makes a code *ours* is the
merchant account template (ID 29) with our network's GUID; it carries the merchant and store
ids and a MAC: a truncated HMAC-SHA256, under a platform key, over every field of the code.
The CRC only catches misreads; anybody can recompute it, so the MAC is what stops a forged or
edited code (another merchant id, a smaller amount) from being paid.

A deployment connected to the interoperability switch names itself in its codes: the
*routing* template (ID 80, unreserved, sub-ID 00 our GUID, sub-ID 01 the switch participant
id of the merchant's provider), also covered by the MAC. It is not a sub-ID of template 29
because that template is full: its value holds at most 99 characters and the GUID, a
merchant id, a store id and the MAC already take 98. Another provider's wallet cannot check
our MAC (the key is ours); :func:`parse_public` reads such a *foreign* code without it, and
the merchant's provider authenticates the payload itself (docs/interop.md, "Merchant QR
across providers"). Codes without the routing template are today's single-deployment codes.

Lengths count characters, not UTF-8 bytes (UnionPay International's MPM spec says so); the
CRC-16/CCITT-FALSE runs over the UTF-8 bytes of the whole payload including ``6304``.
Decoding is strict: a payload either parses to exactly the code that was built or raises
``EmvError`` with a stable ``code``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

NETWORK_GUID = "org.citywallet.pay"
ACCOUNT_TEMPLATE_ID = "29"  # one of the merchant account templates 26–51
ROUTING_TEMPLATE_ID = "80"  # unreserved template: which switch participant holds the merchant
LANGUAGE_ZH = "ZH"
SUPPORTED_CURRENCIES = frozenset({"156"})  # ISO 4217 numeric: CNY
MAX_PAYLOAD = 512  # characters
MAX_VALUE = 99  # two length digits
MAC_HEX_CHARS = 16
MIN_KEY_BYTES = 16

POINT_STATIC = "11"
POINT_DYNAMIC = "12"
# IDs this parser reads (61, the postal code, is accepted and not used); other networks'
# accounts (02–51) and unreserved templates (80–99) are allowed and ignored; anything else
# (tip indicators 55–57, RFU 65–79) is refused: we would not honour what it asks.
_KNOWN_IDS = frozenset({"00", "01", "52", "53", "54", "58", "59", "60", "61", "62", "63", "64"})
_IGNORED_IDS = frozenset(
    {*(f"{i:02d}" for i in range(2, 52)), *(f"{i:02d}" for i in range(80, 100))}
)

_ID = re.compile(r"[0-9]{2}")
_LEN = re.compile(r"[0-9]{2}")
_PUBLIC_ID = re.compile(r"[A-Za-z0-9_\-]+")
_PARTICIPANT = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")  # a switch participant id
_MCC = re.compile(r"[0-9]{4}")
_CURRENCY = re.compile(r"[0-9]{3}")
_COUNTRY = re.compile(r"[A-Z]{2}")
_ANS = re.compile(r"[\x20-\x7e]+")  # EMV "ans": printable ASCII
_AMOUNT = re.compile(r"(0|[1-9][0-9]*)\.[0-9]{2}")
# EMVCo MPM: what any well-formed code has, whichever network it belongs to.
_EMVCO_MANDATORY = ("52", "53", "58", "59", "60")
_EMVCO_FORMATS = {
    "01": re.compile(r"1[12]"),
    "52": _MCC,
    "53": _CURRENCY,
    "54": re.compile(r"(?=.{1,13}$)[0-9]+(\.[0-9]*)?"),
    "58": _COUNTRY,
    "59": re.compile(r".{1,25}"),
    "60": re.compile(r".{1,15}"),
}
_CRC_TAG = "6304"


class EmvError(ValueError):
    """A payload or code that is not a valid CityWallet EMV code; ``code`` says why."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


# --- CRC ----------------------------------------------------------------------------------


# Runs once at import, before mutmut picks a mutant, so mutating it tests nothing; the CRC
# check-value test pins the table.
def _crc_table() -> tuple[int, ...]:  # pragma: no mutate block
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
        table.append(crc & 0xFFFF)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16_ccitt_false(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, xorout 0) of ``data``."""
    crc = 0xFFFF
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC_TABLE[(crc >> 8) ^ byte]
    return crc


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates
        raise EmvError("The payload is not valid Unicode text.", code="qr_malformed") from exc


def _crc_hex(text: str) -> str:
    return f"{crc16_ccitt_false(_utf8(text)):04X}"


# --- data objects -------------------------------------------------------------------------


def encode_template(objects: Sequence[tuple[str, str]]) -> str:
    """The ``ID LEN VALUE`` concatenation of ``objects`` (a template's value; no CRC)."""
    seen: set[str] = set()
    parts = []
    for tag, value in objects:
        if not _ID.fullmatch(tag):
            raise EmvError(f"ID {tag!r} is not two digits.", code="qr_malformed")
        if tag in seen:
            raise EmvError(f"ID {tag} appears twice.", code="qr_duplicate_id")
        seen.add(tag)
        if not value:
            raise EmvError(f"ID {tag} has an empty value.", code="qr_malformed")
        if len(value) > MAX_VALUE:
            raise EmvError(f"ID {tag} is longer than {MAX_VALUE} characters.", code="qr_too_long")
        parts.append(f"{tag}{len(value):02d}{value}")
    return "".join(parts)


def encode_objects(objects: Sequence[tuple[str, str | Sequence[tuple[str, str]]]]) -> str:
    """A full payload: ``objects`` (nested sequences become templates) + ``6304`` + CRC."""
    if not objects or tuple(objects[0]) != ("00", "01"):
        raise EmvError("A payload starts with ID 00 = 01.", code="qr_malformed")
    flat: list[tuple[str, str]] = []
    for tag, value in objects:
        if tag == "63":
            raise EmvError("ID 63 (the CRC) is appended, not given.", code="qr_malformed")
        flat.append((tag, value if isinstance(value, str) else encode_template(value)))
    body = encode_template(flat) + _CRC_TAG
    if len(body) + 4 > MAX_PAYLOAD:
        raise EmvError(f"The payload exceeds {MAX_PAYLOAD} characters.", code="qr_too_long")
    return body + _crc_hex(body)


def _walk(text: str) -> dict[str, str]:
    objects: dict[str, str] = {}
    at = 0
    while at < len(text):
        if len(text) - at < 4:
            raise EmvError("The payload ends inside a data object.", code="qr_truncated")
        tag, size = text[at : at + 2], text[at + 2 : at + 4]
        if not _ID.fullmatch(tag):
            raise EmvError(f"{tag!r} is not a two-digit ID.", code="qr_malformed")
        if not _LEN.fullmatch(size) or size == "00":
            raise EmvError(f"ID {tag} has no valid length.", code="qr_malformed")
        end = at + 4 + int(size)
        if end > len(text):
            raise EmvError(f"ID {tag} runs past the end.", code="qr_truncated")
        if tag in objects:
            raise EmvError(f"ID {tag} appears twice.", code="qr_duplicate_id")
        objects[tag] = text[at + 4 : end]
        at = end
    return objects


def decode_objects(payload: str) -> dict[str, str]:
    """The top-level data objects of ``payload`` in order, after checking structure and CRC."""
    if not payload.startswith("000201"):
        if payload and "000201".startswith(payload):
            raise EmvError("The payload ends after its first characters.", code="qr_truncated")
        raise EmvError("This is not an EMV payment code.", code="qr_not_emv")
    if len(payload) > MAX_PAYLOAD:
        raise EmvError(f"The payload exceeds {MAX_PAYLOAD} characters.", code="qr_too_long")
    _utf8(payload)
    if payload[-8:-4] == _CRC_TAG and payload[-4:] != _crc_hex(payload[:-4]):
        raise EmvError("The code's checksum does not match; scan it again.", code="qr_crc_mismatch")
    objects = _walk(payload)
    if "63" not in objects:
        raise EmvError("The payload ends before its CRC (ID 63).", code="qr_truncated")
    if next(reversed(objects)) != "63" or len(objects["63"]) != 4:
        raise EmvError("The CRC (ID 63) is not the last four characters.", code="qr_malformed")
    return objects


def decode_template(value: str) -> dict[str, str]:
    """The data objects of a template value (IDs 26–51, 62, 64), structure-checked."""
    return _walk(value)


# --- our codes ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MerchantCode:
    """What a CityWallet merchant code says: static (no amount) or dynamic (amount + order)."""

    merchant_id: str
    store_id: str
    mcc: str
    merchant_name: str  # printable ASCII, ≤ 25 (ID 59)
    merchant_city: str  # printable ASCII, ≤ 15 (ID 60)
    name_zh: str = ""  # ID 64/01, ≤ 25
    city_zh: str = ""  # ID 64/02, ≤ 15 (needs name_zh)
    amount: int | None = None  # fen
    order_ref: str | None = None  # ID 62/05, ≤ 25
    terminal: str | None = None  # ID 62/07, ≤ 25
    currency: str = "156"
    country: str = "CN"
    provider: str | None = None  # ID 80/01: the switch participant holding the merchant

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def dynamic(self) -> bool:
        """Whether this code carries an amount and is used once."""
        return self.amount is not None


def _malformed(message: str) -> EmvError:
    return EmvError(message, code="qr_malformed")


def _check_text(value: str, field: str, limit: int, *, ascii_only: bool) -> None:
    if not value or len(value) > limit:
        raise _malformed(f"{field} has 1 to {limit} characters.")
    if ascii_only and not _ANS.fullmatch(value):
        raise _malformed(f"{field} is printable ASCII only.")
    if any(unicodedata.category(ch).startswith("C") for ch in value):
        raise _malformed(f"{field} contains control or unassigned characters.")


def _validate(code: MerchantCode) -> None:
    for field, value in (("merchant_id", code.merchant_id), ("store_id", code.store_id)):
        if not _PUBLIC_ID.fullmatch(value):
            raise _malformed(f"{field} is letters, digits, '_' and '-'.")
    template_room = MAX_VALUE - (4 + len(NETWORK_GUID)) - 4 - 4 - (4 + MAC_HEX_CHARS)
    if len(code.merchant_id) + len(code.store_id) > template_room:
        raise EmvError(
            f"merchant_id and store_id have {template_room} characters together.",
            code="qr_too_long",
        )
    if code.provider is not None and not _PARTICIPANT.fullmatch(code.provider):
        raise _malformed("provider is a switch participant id (a-z, 0-9, '-'; 1 to 32).")
    if not _MCC.fullmatch(code.mcc):
        raise _malformed("mcc is four digits (ISO 18245).")
    if not _CURRENCY.fullmatch(code.currency) or code.currency not in SUPPORTED_CURRENCIES:
        raise EmvError(
            f"Currency {code.currency!r} is not supported (only 156, CNY).",
            code="qr_unsupported_currency",
        )
    if not _COUNTRY.fullmatch(code.country):
        raise _malformed("country is two upper-case letters (ISO 3166-1).")
    _check_text(code.merchant_name, "merchant_name", 25, ascii_only=True)
    _check_text(code.merchant_city, "merchant_city", 15, ascii_only=True)
    if code.name_zh:
        _check_text(code.name_zh, "name_zh", 25, ascii_only=False)
    if code.city_zh:
        if not code.name_zh:
            raise _malformed("city_zh needs name_zh (ID 64 always carries a name).")
        _check_text(code.city_zh, "city_zh", 15, ascii_only=False)
    for field, ref in (("order_ref", code.order_ref), ("terminal", code.terminal)):
        if ref is not None:
            _check_text(ref, field, 25, ascii_only=True)
    if code.amount is None:
        if code.order_ref is not None:
            raise _malformed("A static code has no order reference.")
        return
    if isinstance(code.amount, bool) or not isinstance(code.amount, int) or code.amount < 1:
        raise _malformed("amount is a positive number of fen.")
    if len(_format_amount(code.amount)) > 13:
        raise _malformed("amount has at most 13 characters as yuan.")
    if code.order_ref is None:
        raise _malformed("A dynamic code carries an order reference.")


def _format_amount(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def _mac(code: MerchantCode, key: bytes) -> str:
    if len(key) < MIN_KEY_BYTES:
        raise EmvError(f"The QR key has at least {MIN_KEY_BYTES} bytes.", code="qr_key_invalid")
    # One field per line; no field can hold a newline and None is "" (never a valid value).
    fields: tuple[str, ...] = (
        "CW-EMV-MAC-1",
        code.merchant_id,
        code.store_id,
        code.mcc,
        code.currency,
        code.country,
        "" if code.amount is None else str(code.amount),
        code.order_ref or "",
        code.terminal or "",
        code.merchant_name,
        code.merchant_city,
        code.name_zh,
        code.city_zh,
    )
    if code.provider is not None:  # appended only when present: today's codes keep their MAC
        fields += (code.provider,)
    digest = hmac.new(key, "\n".join(fields).encode("utf-8"), hashlib.sha256).hexdigest()
    return digest[:MAC_HEX_CHARS].upper()


def build(code: MerchantCode, *, key: bytes) -> str:
    """The EMV payload for ``code``, authenticated with the platform's QR ``key``."""
    account = [
        ("00", NETWORK_GUID),
        ("01", code.merchant_id),
        ("02", code.store_id),
        ("03", _mac(code, key)),
    ]
    objects: list[tuple[str, str | Sequence[tuple[str, str]]]] = [
        ("00", "01"),
        ("01", POINT_DYNAMIC if code.dynamic else POINT_STATIC),
        (ACCOUNT_TEMPLATE_ID, account),
        ("52", code.mcc),
        ("53", code.currency),
    ]
    if code.amount is not None:
        objects.append(("54", _format_amount(code.amount)))
    objects += [("58", code.country), ("59", code.merchant_name), ("60", code.merchant_city)]
    extra = [(tag, v) for tag, v in (("05", code.order_ref), ("07", code.terminal)) if v]
    if extra:
        objects.append(("62", extra))
    if code.name_zh:
        language = [("00", LANGUAGE_ZH), ("01", code.name_zh)]
        if code.city_zh:
            language.append(("02", code.city_zh))
        objects.append(("64", language))
    if code.provider is not None:
        objects.append((ROUTING_TEMPLATE_ID, [("00", NETWORK_GUID), ("01", code.provider)]))
    return encode_objects(objects)


def _check_emvco(objects: dict[str, str]) -> None:
    """Refuse a payload that is not a well-formed EMVCo MPM code (before asking whose it is).

    EMVCo requires at least one merchant account (IDs 02–51; 26–51 are templates whose
    sub-ID 00 names the network), the MCC, currency, country, name and city; a code without
    them is broken, not another network's (``qr_foreign`` is only for well-formed codes).
    """
    if not any(2 <= int(tag) <= 51 for tag in objects):
        raise _malformed("The code has no merchant account information (IDs 02–51).")
    missing = [tag for tag in _EMVCO_MANDATORY if tag not in objects]
    if missing:
        raise _malformed(f"The code lacks mandatory IDs {missing}.")
    for tag, pattern in _EMVCO_FORMATS.items():
        if tag in objects and not pattern.fullmatch(objects[tag]):
            raise _malformed(f"ID {tag} is not in its EMVCo format.")
    for tag, value in objects.items():
        if 26 <= int(tag) <= 51 and "00" not in decode_template(value):
            raise _malformed(f"Template {tag} does not name its network (sub-ID 00).")
    if "62" in objects:
        decode_template(objects["62"])
    if "64" in objects and not {"00", "01"} <= set(decode_template(objects["64"])):
        raise _malformed("Template 64 carries a language and a name.")


def _our_account(objects: dict[str, str]) -> dict[str, str]:
    ours = []
    for tag, value in objects.items():
        if 26 <= int(tag) <= 51:
            template = decode_template(value)
            if template.get("00") == NETWORK_GUID:
                ours.append(template)
    if not ours:
        raise EmvError(
            "This code belongs to another payment network; pay it with that network's app.",
            code="qr_foreign",
        )
    if len(ours) > 1:
        raise _malformed("The code carries our account template twice.")
    if set(ours[0]) != {"00", "01", "02", "03"}:
        raise _malformed("Our account template has exactly sub-IDs 00–03.")
    return ours[0]


def _sub(objects: dict[str, str], tag: str, allowed: set[str]) -> dict[str, str]:
    if tag not in objects:
        return {}
    template = decode_template(objects[tag])
    if not set(template) <= allowed:
        raise _malformed(f"Template {tag} carries sub-IDs this wallet does not read.")
    return template


def _routing(objects: dict[str, str]) -> str | None:
    """The participant id in our routing template (ID 80), or ``None`` without one. An ID 80
    of another network (another GUID, or not a template at all) is not ours and ignored."""
    if ROUTING_TEMPLATE_ID not in objects:
        return None
    try:
        template = decode_template(objects[ROUTING_TEMPLATE_ID])
    except EmvError:
        return None
    if template.get("00") != NETWORK_GUID:
        return None
    if set(template) != {"00", "01"} or not _PARTICIPANT.fullmatch(template["01"]):
        raise _malformed("Our routing template has sub-ID 01, a switch participant id.")
    return template["01"]


def _decode_code(payload: str) -> tuple[MerchantCode, str]:
    """The code ``payload`` says, with the MAC text it carries (unchecked)."""
    objects = decode_objects(payload)
    _check_emvco(objects)
    account = _our_account(objects)
    unknown = [tag for tag in objects if tag not in _KNOWN_IDS and tag not in _IGNORED_IDS]
    if unknown:
        raise _malformed(f"The code carries IDs this wallet does not support: {unknown}.")
    if "01" not in objects:  # optional in EMVCo; our codes always say static or dynamic
        raise _malformed("The code lacks its point of initiation (ID 01).")
    if objects["53"] not in SUPPORTED_CURRENCIES:
        raise EmvError(
            f"Currency {objects['53']} is not supported (only 156, CNY).",
            code="qr_unsupported_currency",
        )
    extra = _sub(objects, "62", {"05", "07"})
    language = _sub(objects, "64", {"00", "01", "02"})
    if language and (language.get("00") != LANGUAGE_ZH or "01" not in language):
        raise _malformed("Template 64 carries language ZH and a name.")
    amount: int | None = None
    if "54" in objects:
        if not _AMOUNT.fullmatch(objects["54"]):
            raise _malformed("The amount is yuan with exactly two decimals.")
        amount = int(objects["54"].replace(".", ""))
    code = MerchantCode(
        merchant_id=account["01"],
        store_id=account["02"],
        mcc=objects["52"],
        merchant_name=objects["59"],
        merchant_city=objects["60"],
        name_zh=language.get("01", ""),
        city_zh=language.get("02", ""),
        amount=amount,
        order_ref=extra.get("05"),
        terminal=extra.get("07"),
        currency=objects["53"],
        country=objects["58"],
        provider=_routing(objects),
    )
    if objects["01"] != (POINT_DYNAMIC if code.dynamic else POINT_STATIC):
        raise _malformed(
            "The point of initiation does not match the amount (11 static, 12 dynamic)."
        )
    return code, account["03"]


def parse_public(payload: str) -> MerchantCode:
    """The fields of a CityWallet-scheme code in ``payload`` (its provider included) *without*
    checking its MAC: for routing a code of another provider, which alone can authenticate it.
    Never pay on this alone; the merchant's provider checks the payload with :func:`parse`."""
    return _decode_code(payload)[0]


def is_foreign(code: MerchantCode, participant_id: str) -> bool:
    """Whether ``code`` names a provider other than ``participant_id`` (ours; "" when this
    deployment is not connected to a switch)."""
    return code.provider is not None and code.provider != participant_id


def parse(payload: str, *, key: bytes) -> MerchantCode:
    """The merchant code in ``payload``, if it is ours, intact and authentic; else EmvError.

    A foreign code (another provider's) fails here as ``qr_tampered``: its MAC is under
    another key; read it with :func:`parse_public` instead."""
    code, mac = _decode_code(payload)
    if not hmac.compare_digest(mac.encode("utf-8"), _mac(code, key).encode("ascii")):
        raise EmvError(
            "This code was not issued by CityWallet or has been altered.", code="qr_tampered"
        )
    return code
