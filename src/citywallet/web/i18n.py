"""Languages of the pages: Simplified Chinese (the default) and English.

Templates and page code are written in English and marked for translation (``_("…")`` in
Jinja, :func:`N_` for module-level strings). The Chinese texts live in gettext catalogues,
``translations/zh_CN/LC_MESSAGES/<domain>.po``, one domain per app (``common``, ``app``,
``merchant``, ``operator``) so the apps' texts stay apart; they are read with Babel when the
process starts (no compiled ``.mo`` files to keep in step). ``pybabel extract -F babel.cfg``
lists what is marked; ``tests/web/test_i18n.py`` fails if a marked text has no Chinese.

Error messages: a ``DomainError`` shows its English ``detail`` in English, and in Chinese the
catalogue entry ``error:<code>`` when there is one (else the English detail).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from babel import Locale
from babel.messages.pofile import read_po

CATALOGUES = Path(__file__).parent / "translations"
LANGUAGES = ("zh_CN", "en")
DEFAULT = "zh_CN"
LANG_COOKIE = "cw_lang"
LABELS = {"zh_CN": "中文", "en": "English"}


def N_(message: str) -> str:  # noqa: N802 — the gettext convention for "mark, translate later"
    """Mark a module-level text for extraction; translate it where it is shown."""
    return message


@dataclass(frozen=True)
class Translations:
    """The texts of one language."""

    lang: str
    messages: dict[str, str]

    @property
    def locale(self) -> Locale:
        return Locale.parse(self.lang)

    @property
    def html_lang(self) -> str:
        return "zh-CN" if self.lang == "zh_CN" else "en"

    def gettext(self, message: str) -> str:
        return self.messages.get(message) or message

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        if self.lang == "zh_CN":  # one form in Chinese
            return self.messages.get(singular) or singular
        return singular if n == 1 else plural

    def error(self, code: str, detail: str) -> str:
        """The text of a refusal with a stable ``code``."""
        return self.messages.get(f"error:{code}") or detail


@cache
def translations(lang: str) -> Translations:
    """The texts of ``lang`` (one of :data:`LANGUAGES`), read once."""
    messages: dict[str, str] = {}
    folder = CATALOGUES / lang / "LC_MESSAGES"
    for path in sorted(folder.glob("*.po")) if folder.is_dir() else []:
        with path.open("rb") as handle:
            catalog = read_po(handle, locale=lang)
        for message in catalog:
            if not message.id or message.fuzzy:
                continue
            key = message.id if isinstance(message.id, str) else message.id[0]
            text = (
                message.string if isinstance(message.string, str) else (message.string or [""])[0]
            )
            if text:
                messages[key] = text
    return Translations(lang, messages)


def negotiate(cookie: str | None, accept_language: str | None) -> str:
    """The language of a request: the visitor's choice (cookie), else the browser's first
    language we have (``Accept-Language``), else Chinese."""
    if cookie in LANGUAGES:
        return str(cookie)
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        ranked.append((-quality, position, tag.strip().lower()))
    for _quality, _position, tag in sorted(ranked):
        if tag.startswith("zh"):
            return "zh_CN"
        if tag.startswith("en"):
            return "en"
    return DEFAULT
