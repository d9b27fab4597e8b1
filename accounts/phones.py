"""Phone numbers in E.164, the one form they are stored and compared in. Pure (phonenumbers only), so the channel
adapters, which must not import the database layer, and the account look-ups share one normaliser."""

from __future__ import annotations

from functools import lru_cache

import phonenumbers


@lru_cache(maxsize=4096)  # a USSD session sends the same number on every hop; parsing it was a tenth of a hop's work
def normalise_phone(raw: str, default_region: str | None = None) -> str | None:
    """E.164 form of `raw` ("0711 000111" with region KE -> "+254711000111"), or None when it is not a number.
    Without a region the number is international; a missing plus is added (Telegram contacts and some Africa's
    Talking numbers drop it)."""
    text = raw.strip()
    if not text:
        return None
    if default_region is None and not text.startswith("+"):
        text = "+" + text
    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
