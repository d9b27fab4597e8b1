"""Translations for people who never see a browser: one `translate` function per language.

The engine and the jobs receive the function (there is no request context on USSD, SMS or Telegram). Catalogs are
compiled from `locales/<lang>/LC_MESSAGES/messages.po` in memory on first use, so a fresh checkout needs no build step.
"""

from __future__ import annotations

from functools import cache
from io import BytesIO
from pathlib import Path
from typing import Any, Protocol

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

CATALOGS = Path(__file__).resolve().parent
SUPPORTED = ("en", "sw", "fr", "es", "hi", "ar")
NATIVE_NAMES = {
    "en": "English",
    "sw": "Kiswahili",
    "fr": "Français",
    "es": "Español",
    "hi": "हिन्दी",
    "ar": "العربية",
}


class Translate(Protocol):
    def __call__(self, msgid: str, plural: str | None = None, n: int | None = None, **params: Any) -> str: ...


def N_(msgid: str) -> str:
    """Mark a string for extraction without translating it now (it is translated where it is shown)."""
    return msgid


def normalise_locale(code: str | None, default: str = "en") -> str:
    if not code:
        return default
    short = code.replace("-", "_").split("_")[0].lower()
    return short if short in SUPPORTED else default


@cache
def _translations(locale: str) -> NullTranslations:
    """Compile the catalog in memory once per process: nothing is written next to the code, so a read-only install
    works and two processes never race over a half-written .mo file."""
    po_path = CATALOGS / locale / "LC_MESSAGES" / "messages.po"
    if not po_path.exists():
        return NullTranslations()
    with po_path.open("rb") as source:
        catalog = read_po(source, locale=locale)
    compiled = BytesIO()
    write_mo(compiled, catalog, use_fuzzy=False)
    compiled.seek(0)
    return Translations(fp=compiled, domain="messages")


@cache
def gettext_for(locale: str | None) -> Translate:
    """The translate function for `locale` (unknown locales fall back to the English msgids)."""
    translations = _translations(normalise_locale(locale))

    def translate(msgid: str, plural: str | None = None, n: int | None = None, **params: Any) -> str:
        if plural is not None:
            count = 1 if n is None else n
            text = translations.ngettext(msgid, plural, count)
            params.setdefault("n", count)
        else:
            text = translations.gettext(msgid)
            if n is not None:
                params.setdefault("n", n)  # a singular message may still say %(n)d
        return text % params if params else text

    return translate
