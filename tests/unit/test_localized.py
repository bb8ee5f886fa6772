"""Codes shown to people in the page's language (web/localized.py): audit details the
console writes, ledger kinds, account events, generated device names."""

from __future__ import annotations

from citywallet.ledger.types import AccountCode, TransferCode
from citywallet.web import i18n, localized

ZH, EN = i18n.translations("zh_CN"), i18n.translations("en")


def test_audit_details_read_in_chinese_and_stay_as_written_in_english() -> None:
    written = {
        "罗湖区餐饮消费红包; budget 100.00": "罗湖区餐饮消费红包；预算 100.00 元",
        "batch of 1000": "一批 1000 个",
        "12 registrations; list hash abc123": "12 人报名；名单哈希 abc123",
        "3 winners; seed 9f00": "3 人中签；随机种子 9f00",
        "3 winners": "3 人中签",
        "ok; 5 accounts, 9 transfers, 2 blocks": "全部检查通过；5 个账户、9 笔转账、2 个区块",
        "2 problems; 5 accounts, 9 transfers, 2 blocks": (
            "发现 2 个问题；5 个账户、9 笔转账、2 个区块"
        ),
    }
    for stored, chinese in written.items():
        assert localized.audit_detail(ZH, stored) == chinese
    assert localized.audit_detail(EN, "batch of 1000") == "a batch of 1000"
    assert localized.audit_detail(EN, "3 winners; seed 9f00") == "3 winners; seed 9f00"
    assert localized.audit_detail(ZH, "something else") == "something else"


def test_every_ledger_kind_and_account_event_has_its_chinese() -> None:
    assert set(localized.ACCOUNT_KINDS) == {c.name for c in AccountCode}
    assert set(localized.TRANSFER_KINDS) == {c.name for c in TransferCode}
    helpers = localized.helpers(ZH)
    assert helpers["account_kind"]("CUSTOMER_WALLET") == "居民钱包"
    assert helpers["transfer_kind"]("P2P") == "居民间转账"
    assert helpers["event_kind"]("consent_withdrawn") == "撤回授权"
    assert helpers["event_kind"]("registered") == "开户"
    assert helpers["account_kind"]("SOMETHING_NEW") == "SOMETHING_NEW"
    for text in (*localized.ACCOUNT_KINDS.values(), *localized.EVENT_KINDS.values()):
        assert ZH.gettext(text) != text, text


def test_generated_device_names_read_in_the_pages_language() -> None:
    zh, en = localized.helpers(ZH)["device_label"], localized.helpers(EN)["device_label"]
    assert zh("Android") == "安卓手机"
    assert zh("Windows") == "Windows 电脑"
    assert zh("") == zh(None) == "未知设备"
    assert zh("Pixel 8 of Li") == "Pixel 8 of Li"  # a name the device gave stays
    assert en("Android") == "Android phone"
    assert localized.helpers(ZH)["card_label"]("ICBC", "0000") == "工商银行(0000)"
    assert localized.helpers(ZH)["mcc_label"]("5812") == "餐厅（5812）"


def test_a_funding_lines_card_reads_as_the_banks_short_name() -> None:
    assert localized.counterparty("ICBC ····1234", "zh_CN") == "工商银行(1234)"
    assert localized.counterparty("CCB ····0000", "en") == "CCB (0000)"
    assert localized.counterparty("**丰 (139****0002)", "zh_CN") == "**丰 (139****0002)"
