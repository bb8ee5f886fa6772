"""Every text marked for translation in the pages has its Chinese, and the language of a
request is the visitor's choice, else the browser's, else Chinese."""

from __future__ import annotations

from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir

from citywallet.web import i18n

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "src" / "citywallet" / "web"


def marked_texts() -> set[str]:
    method_map = [("**.py", "python"), ("templates/**.html", "jinja2")]
    options = {"templates/**.html": {"extensions": "jinja2.ext.i18n"}}
    found: set[str] = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        WEB, method_map, options_map=options, keywords={"_": None, "N_": None, "gettext": None}
    ):
        found.add(message if isinstance(message, str) else message[0])
    return found


def test_every_marked_text_has_its_chinese() -> None:
    texts = marked_texts()
    assert "Log in" in texts  # the extraction sees templates
    chinese = i18n.translations("zh_CN")
    missing = sorted(t for t in texts if t not in chinese.messages)
    assert missing == [], f"add to translations/zh_CN/LC_MESSAGES/*.po: {missing}"


def test_catalogue_entries_are_used_or_are_error_texts() -> None:
    texts = marked_texts()
    stale = sorted(
        key
        for key in i18n.translations("zh_CN").messages
        if key not in texts and not key.startswith("error:")
    )
    assert stale == [], f"no longer used, remove from the catalogue: {stale}"


@pytest.mark.parametrize(
    ("cookie", "header", "expected"),
    [
        (None, None, "zh_CN"),
        (None, "en-US,en;q=0.9", "en"),
        (None, "zh-TW,zh;q=0.9,en;q=0.8", "zh_CN"),
        (None, "fr-FR,fr;q=0.9,en;q=0.5,zh;q=0.4", "en"),
        (None, "de;q=0.9,zh-CN;q=0.95", "zh_CN"),
        ("en", "zh-CN", "en"),
        ("xx", "en", "en"),
        (None, "fr", "zh_CN"),
    ],
)
def test_language_of_a_request(cookie: str | None, header: str | None, expected: str) -> None:
    assert i18n.negotiate(cookie, header) == expected


def test_a_refusal_reads_in_chinese_or_falls_back_to_its_english_detail() -> None:
    chinese, english = i18n.translations("zh_CN"), i18n.translations("en")
    assert chinese.error("invalid_credentials", "Wrong phone number or password.") != (
        "Wrong phone number or password."
    )
    assert english.error("invalid_credentials", "Wrong.") == "Wrong."
    assert chinese.error("no_such_code_anywhere", "As said.") == "As said."
