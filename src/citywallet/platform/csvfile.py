"""CSV files people open in Excel: a UTF-8 byte-order mark (without it Excel on Windows
reads UTF-8 as the local code page and Chinese turns to mojibake), CRLF line ends, and
headers in Chinese or English.

Pure: the columns are ``(key, English header, Chinese header)``; machine readers (the
signed merchant API) keep the English keys and no BOM unless they ask.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

BOM = "\ufeff"
HEADER_LANGS = ("en", "zh")


def header_lang(value: str | None) -> str:
    """The header language a query parameter asks for (``zh``/``zh_CN``/``zh-CN`` → ``zh``)."""
    return "zh" if (value or "").lower().replace("-", "_") in ("zh", "zh_cn") else "en"


def headers(columns: Sequence[tuple[str, str, str]], lang: str) -> list[str]:
    """The header row: column keys (``key``), English or Chinese names."""
    if lang == "zh":
        return [zh for _key, _en, zh in columns]
    if lang == "en":
        return [en for _key, en, _zh in columns]
    return [key for key, _en, _zh in columns]


def write(header: Sequence[str], rows: Iterable[Sequence[object]], *, bom: bool) -> str:
    """The CSV text: an optional BOM, the header, the rows, CRLF line ends."""
    buffer = io.StringIO()
    if bom:
        buffer.write(BOM)
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()
