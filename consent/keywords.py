"""Read a yes/no consent answer typed in any of our languages (SMS, Telegram, or a USSD free-text reply).

Pure: no database, no clock. Only the first word decides ("Yes please" is a yes), and a reply that also contains
the opposite word ("yes no") is not understood, because guessing consent is worse than asking again.
"""

from __future__ import annotations

import re
import unicodedata

YES_WORDS = frozenset({"yes", "ndio", "ndiyo", "oui", "si", "हाँ", "हां", "نعم"})
NO_WORDS = frozenset({"no", "hapana", "non", "नहीं", "नही", "لا"})
# Spanish "sí" is Swahili "si", "is not": "Si sawa" means "not OK". It counts as yes only as the whole reply.
YES_ONLY_ALONE = frozenset({"si"})

_ARABIC_MARKS = re.compile("[\u064b-\u0652\u0640]")  # harakat and tatweel do not change the word


def parse_consent_reply(text: str) -> bool | None:
    """True for yes, False for no, None when the reply is neither (or both)."""
    words = [_normalise(word) for word in _words(text)]
    if not words:
        return None
    first = _meaning(words[0])
    if first is None or (words[0] in YES_ONLY_ALONE and len(words) > 1):
        return None
    if any(_meaning(word) is (not first) for word in words[1:]):
        return None
    return first


def _words(text: str) -> list[str]:
    # Devanagari vowel signs are combining marks, which \w does not always match: split on spaces and punctuation.
    cleaned = re.sub(r"[\s.,!?¡¿;:'\"()\-।]+", " ", text)
    return [word for word in cleaned.split(" ") if word]


def _normalise(word: str) -> str:
    word = _ARABIC_MARKS.sub("", unicodedata.normalize("NFC", word.casefold()))
    if word.isascii() or _is_latin(word):
        decomposed = unicodedata.normalize("NFD", word)
        word = "".join(char for char in decomposed if not unicodedata.combining(char))
    return word


def _is_latin(word: str) -> bool:
    return all("LATIN" in unicodedata.name(char, "") for char in word if char.isalpha())


def _meaning(word: str) -> bool | None:
    if word in YES_WORDS:
        return True
    if word in NO_WORDS:
        return False
    return None
