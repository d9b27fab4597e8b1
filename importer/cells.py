"""Parsing of single CSV cells: text, identifiers, ISO dates, money, phone numbers, languages, currencies.

Each parser returns the clean value or records a `RowError` naming the row and column, so one row can report
every problem it has at once. Messages never repeat a phone number back (they end up in terminals and tickets).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

import phonenumbers
from babel import Locale, UnknownLocaleError
from babel.numbers import is_currency

ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
AMOUNT = re.compile(r"^-?\d{1,14}(\.\d{1,2})?$")
CENTS = Decimal("0.01")
_TERRITORIES = frozenset(code for code in map(str, Locale("en").territories) if len(code) == 2 and code.isalpha())


@dataclass(frozen=True)
class RowError:
    row: int
    column: str | None
    message: str

    def __str__(self) -> str:
        where = f"row {self.row}, column {self.column}" if self.column else f"row {self.row}"
        return f"{where}: {self.message}"


@dataclass
class Cells:
    """One row's cells plus the errors found while reading them."""

    row: int
    raw: dict[str, str]
    errors: list[RowError] = field(default_factory=list)

    def has(self, column: str) -> bool:
        return column in self.raw

    def error(self, column: str | None, message: str) -> None:
        self.errors.append(RowError(self.row, column, message))

    def text(self, column: str, *, required: bool = False, max_length: int = 200) -> str | None:
        value = " ".join(self.raw.get(column, "").split())
        if not value:
            if required:
                self.error(column, "is required")
            return None
        if len(value) > max_length:
            self.error(column, f"is longer than {max_length} characters")
            return None
        return value

    def identifier(self, column: str, *, required: bool = False) -> str | None:
        value = self.text(column, required=required, max_length=64)
        if value is not None and not value.isprintable():
            self.error(column, "contains control characters")
            return None
        return value

    def choice(self, column: str, options: Iterable[str], *, default: str | None = None) -> str | None:
        value = self.text(column, required=default is None, max_length=32)
        if value is None:
            return default
        normalised = "_".join(value.lower().split())
        allowed = tuple(options)
        if normalised not in allowed:
            self.error(column, f"must be one of {', '.join(allowed)}")
            return None
        return normalised

    def iso_date(self, column: str, *, required: bool = False) -> date | None:
        value = self.text(column, required=required, max_length=10)
        if value is None:
            return None
        try:
            if not ISO_DATE.match(value):
                raise ValueError
            return date.fromisoformat(value)
        except ValueError:
            self.error(column, "is not a date in the form yyyy-mm-dd")
            return None

    def amount(self, column: str, *, required: bool = False, minimum: Decimal | None = None) -> Decimal | None:
        value = self.text(column, required=required, max_length=20)
        if value is None:
            return None
        if not AMOUNT.match(value):
            self.error(column, "is not an amount (digits with up to 2 decimals and a dot, e.g. 1500.50)")
            return None
        amount = Decimal(value).quantize(CENTS)
        if minimum is not None and amount < minimum:
            self.error(column, "must be more than 0" if minimum > 0 else f"must be at least {minimum}")
            return None
        return amount

    def phone(self, column: str, region: str, value: str | None = None) -> str | None:
        raw = self.raw.get(column, "") if value is None else value
        number = parse_phone(raw, region)
        if number is None:
            self.error(column, f"not a valid phone number for {region}")
            return None
        if phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.FIXED_LINE:
            self.error(column, "is a landline; SMS and USSD need a mobile number")
            return None
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)

    def language(self, column: str) -> str | None:
        value = self.text(column, max_length=32)
        if value is None:
            return None
        try:
            code = str(Locale.parse(value.replace("-", "_")))
        except (ValueError, UnknownLocaleError):
            code = ""
        if not code or len(code) > 8:  # the column holds 8 characters (en, sw, en_KE)
            self.error(column, "is not a language code (e.g. sw, en, fr)")
            return None
        return code

    def country(self, column: str) -> str | None:
        value = self.text(column, max_length=2)
        if value is None:
            return None
        if value.upper() not in _TERRITORIES:
            self.error(column, "is not an ISO 3166 two-letter country code (e.g. KE)")
            return None
        return value.upper()

    def currency(self, column: str, *, default: str) -> str | None:
        value = self.text(column, max_length=3)
        if value is None:
            return default
        if not is_currency(value.upper()):
            self.error(column, "is not an ISO 4217 currency code (e.g. KES)")
            return None
        return value.upper()


def parse_phone(raw: str, region: str) -> phonenumbers.PhoneNumber | None:
    """A valid number from what people type: national, international, or "00"-prefixed; None when invalid."""
    text = raw.strip()
    candidates = [text]
    if text.startswith("00"):
        candidates.append("+" + text[2:])  # the "00" international prefix, even where the local one differs
    for candidate in candidates:
        try:
            number = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return number
    return None


def normalise_phone(raw: str, region: str) -> str | None:
    """E.164 form of `raw` read in `region`, or None when it is not a valid number."""
    number = parse_phone(raw, region)
    return None if number is None else phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
