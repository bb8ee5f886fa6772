"""How a bank card is named to people: the bank's short name and the card's last four
digits, ``工商银行(0000)`` in Chinese and ``ICBC (0000)`` in English, as Chinese wallets and
banks' own apps show a card.

Pure: no database, no web. Banks are found by their code (``ICBC``) or by the full name a
card row keeps (``Industrial and Commercial Bank of China`` or ``中国工商银行``); a bank not
known here keeps the name it came with.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BankName:
    """A bank's names: code, Chinese short form, English short form, full names."""

    code: str
    short_zh: str
    short_en: str
    full_zh: str
    full_en: str


BANKS: tuple[BankName, ...] = (
    BankName("ICBC", "工商银行", "ICBC", "中国工商银行", "Industrial and Commercial Bank of China"),
    BankName("CCB", "建设银行", "CCB", "中国建设银行", "China Construction Bank"),
    BankName("ABC", "农业银行", "ABC", "中国农业银行", "Agricultural Bank of China"),
    BankName("BOC", "中国银行", "BOC", "中国银行", "Bank of China"),
    BankName("BOCOM", "交通银行", "BOCOM", "交通银行", "Bank of Communications"),
    BankName("CMB", "招商银行", "CMB", "招商银行", "China Merchants Bank"),
    BankName("PSBC", "邮储银行", "PSBC", "中国邮政储蓄银行", "Postal Savings Bank of China"),
    BankName("CIB", "兴业银行", "CIB", "兴业银行", "Industrial Bank"),
    BankName("CITIC", "中信银行", "CITIC", "中信银行", "China CITIC Bank"),
    BankName("CEB", "光大银行", "CEB", "中国光大银行", "China Everbright Bank"),
    BankName("CMBC", "民生银行", "CMBC", "中国民生银行", "China Minsheng Bank"),
    BankName("SPDB", "浦发银行", "SPDB", "上海浦东发展银行", "Shanghai Pudong Development Bank"),
    BankName("HXB", "华夏银行", "HXB", "华夏银行", "Hua Xia Bank"),
    BankName("CGB", "广发银行", "CGB", "广发银行", "China Guangfa Bank"),
    BankName("PAB", "平安银行", "PAB", "平安银行", "Ping An Bank"),
    BankName("BOB", "北京银行", "BOB", "北京银行", "Bank of Beijing"),
    BankName("BOSC", "上海银行", "BOSC", "上海银行", "Bank of Shanghai"),
)
_LOOKUP: dict[str, BankName] = {
    key.casefold(): bank
    for bank in BANKS
    for key in (bank.code, bank.short_zh, bank.full_zh, bank.full_en)
}


def find(code_or_name: str) -> BankName | None:
    """The bank with this code or name, or ``None``."""
    return _LOOKUP.get(code_or_name.strip().casefold())


def short_name(code_or_name: str, lang: str) -> str:
    """The bank's short name in ``lang`` (``zh_CN`` or English); an unknown bank's own name."""
    bank = find(code_or_name)
    if bank is None:
        return code_or_name.strip()
    return bank.short_zh if lang.startswith("zh") else bank.short_en


def card_label(code_or_name: str, last4: str, lang: str) -> str:
    """A card as people name it: ``工商银行(0000)`` or ``ICBC (0000)``."""
    name = short_name(code_or_name, lang)
    if lang.startswith("zh"):
        return f"{name}({last4})"
    return f"{name} ({last4})"
