"""SMS and USSD length arithmetic: which alphabet a text needs, how long it is, and what it costs.

One non-GSM character switches a whole SMS to UCS-2 (70/67 characters per segment instead of 160/153),
and Babel's locale-correct output often contains such characters (no-break spaces, direction marks).
The engine uses these functions to page text within a screen budget, and adapters use
`normalise_for_sms` so formatting alone never triples the cost of a message.

Counting rules (channels.md §4 and §5.1):
- GSM-7 length is in septets; the extension characters ``\\f ^ { } \\ [ ~ ] | €`` take two (ESC + char).
- UCS-2 length is in UTF-16 code units; characters outside the BMP (emoji) take two.
- A concatenated message never splits an escape pair or a surrogate pair across segments.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache
from typing import Literal

import gsm0338  # noqa: F401  (registers the "gsm03.38" codec)

Encoding = Literal["GSM-7", "UCS-2"]

GSM7_CODEC = "gsm03.38"
GSM7_SINGLE, GSM7_MULTI = 160, 153
UCS2_SINGLE, UCS2_MULTI = 70, 67
USSD_GSM7_LIMIT, USSD_UCS2_LIMIT = 182, 80
# The extension table: each is sent as ESC + character, two septets (checked against the gsm0338 codec in tests).
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

# Replacements that never change what a reader understands, whatever the alphabet.
_SAFE_REPLACEMENTS = str.maketrans(
    {
        "\u00a0": " ",  # no-break space (Babel: sw_KE currency)
        "\u202f": " ",  # narrow no-break space (Babel: fr grouping separator)
        "\u2007": " ",  # figure space
        "\u2009": " ",  # thin space
        "\u200a": " ",  # hair space
        "\u2002": " ",  # en space
        "\u2003": " ",  # em space
        "\u2018": "'",
        "\u2019": "'",  # typographic apostrophe (l’épargne)
        "\u201c": '"',
        "\u201d": '"',
        "\u2013": "-",
        "\u2014": "-",
        "\u2212": "-",  # minus sign
        "\u00ad": None,  # soft hyphen
        "\u200b": None,  # zero-width space
        "\u2060": None,  # word joiner
        "\ufeff": None,  # byte-order mark / zero-width no-break space
    }
)

# Worth doing only when the result is GSM-7: it makes the text longer.
_ELLIPSIS = str.maketrans({"\u2026": "..."})

# Invisible bidi controls: needed to display mixed Arabic/Latin text, useless in an all-GSM-7 text.
_DIRECTION_MARKS = str.maketrans(
    dict.fromkeys(
        "\u200e\u200f\u061c\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069",
        None,
    )
)


@lru_cache(maxsize=16384)  # the pager asks about the same screens many times per hop
def is_gsm7(text: str) -> bool:
    """True when every character of `text` is in the GSM 03.38 default alphabet or its extension table."""
    try:
        text.encode(GSM7_CODEC)
    except UnicodeEncodeError:
        return False
    return True


def sms_encoding(text: str) -> Encoding:
    """The alphabet an SMS carrying `text` must use."""
    return "GSM-7" if is_gsm7(text) else "UCS-2"


def _unit_costs(text: str) -> list[int]:
    """Per-character cost in the text's alphabet: septets for GSM-7, UTF-16 code units for UCS-2."""
    if is_gsm7(text):
        return [2 if char in GSM7_EXTENSION else 1 for char in text]
    return [2 if ord(char) > 0xFFFF else 1 for char in text]


@lru_cache(maxsize=16384)
def sms_length(text: str) -> int:
    """Length as the network counts it: septets (GSM-7) or UTF-16 code units (UCS-2)."""
    if is_gsm7(text):
        return len(text) + sum(char in GSM7_EXTENSION for char in text)
    return len(text) + sum(ord(char) > 0xFFFF for char in text)


def segment_count(text: str) -> int:
    """How many SMS segments `text` is billed as. An empty message still costs one segment."""
    costs = _unit_costs(text)
    single, multi = (GSM7_SINGLE, GSM7_MULTI) if is_gsm7(text) else (UCS2_SINGLE, UCS2_MULTI)
    if sum(costs) <= single:
        return 1
    segments, used = 1, 0
    for cost in costs:  # greedy packing keeps an ESC pair / surrogate pair inside one segment
        if used + cost > multi:
            segments, used = segments + 1, 0
        used += cost
    return segments


@lru_cache(maxsize=4096)  # a USSD survey shows the same few hundred screens to every client, one per hop
def normalise_for_sms(text: str) -> str:
    """Replace characters that force UCS-2 without adding meaning (Babel spaces, typographic punctuation).

    Direction marks (U+200E, U+200F, U+061C and the bidi embeddings/isolates) are removed, and "…" spelt
    "...", only when that makes the whole text GSM-7 and no longer in segments: in Arabic or Urdu text the
    marks keep numbers displayed correctly. The result never costs more segments than `text`.
    """
    cleaned = unicodedata.normalize("NFC", text).translate(_SAFE_REPLACEMENTS)
    candidate = cleaned.translate(_DIRECTION_MARKS).translate(_ELLIPSIS)
    if is_gsm7(candidate) and segment_count(candidate) <= segment_count(cleaned):
        return candidate
    return cleaned


def ussd_budget(text: str, limit: int = USSD_GSM7_LIMIT, ucs2_limit: int = USSD_UCS2_LIMIT) -> int:
    """Characters one USSD screen can carry for `text`: `limit` for GSM-7 text, `ucs2_limit` otherwise."""
    return limit if is_gsm7(text) else ucs2_limit


def fits_ussd(text: str, limit: int = USSD_GSM7_LIMIT, ucs2_limit: int = USSD_UCS2_LIMIT) -> bool:
    """True when `text` fits on one USSD screen (extension characters count double)."""
    return sms_length(text) <= ussd_budget(text, limit, ucs2_limit)
