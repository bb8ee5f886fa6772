"""The MCC table (merchant/mcc.py): every four-digit code is described, the ISO 18245 groups
cover 0000–9999 without gaps or overlaps, named codes are named in Chinese and English, and
the spending categories are the ones the residents' overview shows."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from citywallet.merchant import mcc
from citywallet.merchant.rules import validate_mcc
from citywallet.wallet import spending

CJK = re.compile(r"[\u4e00-\u9fff]")
codes = st.integers(min_value=0, max_value=9999).map(lambda n: f"{n:04d}")


def test_the_groups_cover_every_code_once_in_order() -> None:
    assert mcc.GROUPS[0].first == 0
    assert mcc.GROUPS[-1].last == 9999
    for before, after in zip(mcc.GROUPS, mcc.GROUPS[1:], strict=False):
        assert after.first == before.last + 1
        assert before.first <= before.last


@given(codes)
def test_every_code_is_described(code: str) -> None:
    info = mcc.describe(code)
    assert info.group.first <= int(code) <= info.group.last
    assert info.category in mcc.CATEGORY_NAMES
    assert CJK.search(info.name_zh)
    assert info.name_en
    assert mcc.label(code, "zh_CN") == f"{info.name_zh}（{code}）"
    assert mcc.label(code, "en") == f"{info.name_en} ({code})"
    assert spending.category_of(code) == info.category  # one table for both


@given(st.text(max_size=6).filter(lambda s: not re.fullmatch(r"[0-9]{4}", s)))
def test_a_malformed_code_is_unknown_and_other(code: str) -> None:
    assert mcc.group_of(code) is mcc.UNKNOWN_GROUP
    assert mcc.category_of(code) == "other"
    assert mcc.describe(code).name_zh == "未知类别"


def test_the_table_is_full_and_every_entry_is_a_valid_code_in_both_languages() -> None:
    assert len(mcc.NAMES) >= 250
    for code, (zh, en) in mcc.NAMES.items():
        if int(code) >= 742:
            assert validate_mcc(code) == code
        assert CJK.search(zh), code
        assert en, code
        assert not CJK.search(en), code
    assert list(mcc.NAMES) == sorted(mcc.NAMES)  # the table is kept in code order


def test_known_codes_read_as_people_say_them() -> None:
    assert (mcc.describe("5812").name_zh, mcc.describe("5812").category_zh) == ("餐厅", "餐饮")
    assert mcc.describe("5814").category_zh == "餐饮"
    assert mcc.describe("5411").name_zh == "超市"
    assert mcc.describe("4111").category_en == "Transport"
    assert mcc.describe("5942").name_zh == "书店"
    assert mcc.describe("7832").name_zh == "电影院"
    assert mcc.describe("7832").category_zh == "休闲娱乐"
    assert mcc.describe("3012").name_zh == "航空公司"  # named by its range
    assert mcc.describe("3012").category == "travel"
    assert mcc.describe("0742").category == "other"
    assert mcc.describe("9311").group.name_zh == "政府服务"


def test_the_picker_lists_every_named_code_in_order() -> None:
    chosen = mcc.choices("zh_CN")
    assert [c for c, _n, _g in chosen] == sorted(mcc.NAMES)
    assert ("5812", "餐厅", "其他商店") in chosen
    assert ("5812", "Eating places and restaurants", "Miscellaneous stores") in mcc.choices("en")
