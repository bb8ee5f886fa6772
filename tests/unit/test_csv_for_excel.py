"""CSV files for Excel (platform/csvfile.py) and the merchant statement's Excel form: a UTF-8
BOM, Chinese headers and line types on request; machine readers keep the keys, no BOM."""

from __future__ import annotations

import csv
import io
from datetime import date

from hypothesis import given
from hypothesis import strategies as st

from citywallet.merchant.statements import (
    CSV_HEADER,
    CSV_HEADER_ZH,
    Statement,
    statement_csv,
)
from citywallet.platform import csvfile
from tests.unit.test_merchant_statements import _line


def test_header_language_of_a_query_parameter() -> None:
    for value in ("zh", "ZH", "zh_CN", "zh-CN"):
        assert csvfile.header_lang(value) == "zh"
    for value in ("", None, "en", "fr", "keys"):
        assert csvfile.header_lang(value) == "en"


@given(st.lists(st.lists(st.text(max_size=8), min_size=2, max_size=2), max_size=5))
def test_rows_round_trip_after_the_bom(rows: list[list[str]]) -> None:
    text = csvfile.write(["甲", "b"], rows, bom=True)
    assert text.startswith("\ufeff甲,b\r\n")
    read = list(csv.reader(io.StringIO(text[1:], newline="")))
    assert read == [["甲", "b"], *rows]
    assert text.encode("utf-8")[:3] == b"\xef\xbb\xbf"


def test_the_statement_for_excel_has_a_bom_and_chinese_headers_and_types() -> None:
    lines = (
        _line("payment", 10000, 38, 9962, order_no="T-1"),
        _line("refund", -3000, -11, 6973, order_no="T-1", refund_no="R-1"),
    )
    found = Statement("mch_x", date(2031, 3, 14), "Asia/Shanghai", "CNY", 0, 0, lines, {})
    text = statement_csv(found, bom=True, headers="zh")
    assert text.startswith(csvfile.BOM)
    rows = list(csv.reader(io.StringIO(text[1:], newline="")))
    assert (
        tuple(rows[0])
        == CSV_HEADER_ZH
        == ("时间", "类型", "商户订单号", "商户退款单号", "金额", "手续费", "净额", "余额")
    )
    assert [r[1] for r in rows[1:]] == ["收款", "退款"]
    assert rows[1][4:] == ["100.00", "0.38", "99.62", "99.62"]
    # the default stays what machine readers parse
    plain = statement_csv(found)
    assert not plain.startswith(csvfile.BOM)
    assert plain.split("\r\n")[0] == ",".join(CSV_HEADER)
    assert statement_csv(found, bom=True).startswith(csvfile.BOM + ",".join(CSV_HEADER))
