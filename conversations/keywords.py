"""SMS and Telegram keywords, recognised before the dialogue: HELP, STOP/START (message opt-out), LANG <code>,
and the officer's `PPI <client-id> [answers...]`.

Keywords are accepted in every supported language, case- and accent-insensitively, so a client can text the word
they know. Consent replies (YES/NO in six languages) are parsed by `consent.keywords`.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

HELP_WORDS = {"HELP", "MSAADA", "AIDE", "AYUDA", "मदद", "مساعدة"}
STOP_WORDS = {"STOP", "ACHA", "ARRET", "ALTO", "रोकें", "रोको", "توقف", "قف"}
START_WORDS = {"START", "ANZA", "DEMARRER", "COMMENCER", "INICIO", "EMPEZAR", "शुरू", "ابدأ", "ابدا"}
LANG_WORDS = {"LANG", "LUGHA", "LANGUE", "IDIOMA", "भाषा", "لغة"}
MENU_WORDS = {"MENU", "MENYU", "मेनू", "القائمة"}

_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class Keyword:
    """A recognised keyword: `name` is help|stop|start|lang|menu|ppi; `args` the words after it."""

    name: str
    args: tuple[str, ...] = ()


def fold(word: str) -> str:
    """Upper-case without accents: 'Arrêt' -> 'ARRET'. Devanagari and Arabic marks are kept (they carry meaning)."""
    decomposed = unicodedata.normalize("NFKD", word.strip())
    # Only the generic Latin accents are named "COMBINING ..."; Indic and Arabic signs have script names.
    without_accents = "".join(c for c in decomposed if not unicodedata.name(c, "").startswith("COMBINING"))
    return unicodedata.normalize("NFC", without_accents).upper()


def parse_keyword(text: str) -> Keyword | None:
    """The keyword at the start of an SMS, or None when the text is an ordinary reply."""
    words = _SPACES.split(text.strip())
    if not words or not words[0]:
        return None
    head, args = fold(words[0]), tuple(words[1:])
    if head == "PPI":
        return Keyword("ppi", args)
    for name, vocabulary in (
        ("help", HELP_WORDS),
        ("stop", STOP_WORDS),
        ("start", START_WORDS),
        ("lang", LANG_WORDS),
        ("menu", MENU_WORDS),
    ):
        if head in vocabulary and (name in ("lang", "ppi") or not args):
            return Keyword(name, args)
    return None
