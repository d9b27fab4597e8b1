"""The five translation catalogs are complete, current, compilable and safe to format on a phone.

A missing or fuzzy entry shows English to a Swahili or Arabic speaker; a wrong plural rule says "2 try left"; a
dropped placeholder hides an amount; one non-GSM character in a French or Spanish phone string halves a USSD screen
(182 -> 80 characters) and an SMS segment (160 -> 70). Each of those is a test here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.pofile import read_po

from gateway.encoding import is_gsm7
from locales import CATALOGS, SUPPORTED, gettext_for
from locales.check import extract, problems

TRANSLATED = tuple(code for code in SUPPORTED if code != "en")
PLURAL_FORMS = {
    "sw": "nplurals=2; plural=(n != 1);",
    "fr": "nplurals=2; plural=(n > 1);",
    "es": "nplurals=2; plural=(n != 1);",
    "hi": "nplurals=2; plural=(n != 1);",
    "ar": "nplurals=6; plural=(n==0 ? 0 : n==1 ? 1 : n==2 ? 2 : n%100>=3 && n%100<=10 ? 3 : n%100>=11 ? 4 : 5);",
}
GSM7_LANGUAGES = ("sw", "fr", "es")
WEB_ONLY_SOURCES = ("simulator/", "feeds/", "api/")  # browser pages: no SMS or USSD budget
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")
PLACEHOLDER_KIND = re.compile(r"%\((\w+)\)([sd])")
SAMPLE_VALUES = {
    "date": "12 Mar",
    "amount": "KES 1,200.00",
    "band": "Poor",
    "id": "C0002",
    "client": "Jo*** Ka***",
    "language": "Kiswahili",
    "problems": "Q3: reply 1-9",
}


@pytest.fixture(scope="module")
def found() -> list[str]:
    return problems()


def catalog(locale: str) -> Catalog:
    with (CATALOGS / locale / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        return read_po(handle, locale=locale)


def entries(locale: str) -> Iterator[Message]:
    return (message for message in catalog(locale) if message.id)


def forms(message: Message) -> tuple[str, ...]:
    string = message.string
    return tuple(str(form) for form in string) if isinstance(string, list | tuple) else (str(string or ""),)


def test_template_is_current(found: list[str]) -> None:
    assert not [p for p in found if "messages.pot" in p], "run `python -m locales.check --update`"


@pytest.mark.parametrize("locale", TRANSLATED)
def test_every_entry_is_translated_not_fuzzy_and_compiles(found: list[str], locale: str) -> None:
    assert [p for p in found if p.startswith(f"{locale}:")] == []


@pytest.mark.parametrize("locale", TRANSLATED)
def test_plural_forms_header_is_right_and_every_form_filled(locale: str) -> None:
    loaded = catalog(locale)
    assert loaded.plural_forms == PLURAL_FORMS[locale]
    plurals = [m for m in entries(locale) if isinstance(m.id, list | tuple)]
    assert plurals, "the template has plural entries"
    for message in plurals:
        assert len(forms(message)) == loaded.num_plurals and all(forms(message)), message.id


def wrong_pin(locale: str, n: int) -> str:
    return gettext_for(locale)("Wrong PIN. %(n)d try left.", plural="Wrong PIN. %(n)d tries left.", n=n)


def test_arabic_uses_all_six_plural_forms() -> None:
    texts = {n: wrong_pin("ar", n) for n in (0, 1, 2, 3, 11, 100)}
    assert len({texts[0], texts[1], texts[2], texts[3], texts[100]}) == 5
    assert "3" in texts[3] and "11" in texts[11] and "100" in texts[100]
    assert wrong_pin("ar", 103) == texts[3].replace("3", "103")  # 103 takes the 3-10 form, as Arabic counts


def test_french_zero_is_singular_and_two_is_plural() -> None:
    assert wrong_pin("fr", 0).endswith("0 essai restant.")
    assert wrong_pin("fr", 2).endswith("2 essais restants.")


@pytest.mark.parametrize("locale", TRANSLATED)
def test_translations_keep_every_placeholder(locale: str) -> None:
    """A dropped %(amount)s hides the amount; only a plural form may leave out the count it spells in words."""
    for message in entries(locale):
        if isinstance(message.id, list | tuple):
            expected = set(PLACEHOLDER.findall(message.id[0])) - {"n"}
            for form in forms(message):
                assert set(PLACEHOLDER.findall(form)) - {"n"} == expected, (message.id, form)
        else:
            assert set(PLACEHOLDER.findall(forms(message)[0])) == set(PLACEHOLDER.findall(str(message.id))), message.id


def sample_params(text: str) -> dict[str, Any]:
    """A realistic value for every placeholder of `text` (numbers for %(x)d)."""
    return {name: 3 if kind == "d" else SAMPLE_VALUES.get(name, "ABC") for name, kind in PLACEHOLDER_KIND.findall(text)}


@pytest.mark.parametrize("locale", TRANSLATED)
def test_every_entry_formats_with_real_values(locale: str) -> None:
    translate = gettext_for(locale)
    for message in extract():
        if not message.id:
            continue
        if isinstance(message.id, list | tuple):
            params = sample_params(message.id[1])
            params.pop("n", None)
            text = translate(message.id[0], plural=message.id[1], n=3, **params)
        else:
            text = translate(message.id, **sample_params(message.id))
        assert "%(" not in text and text.strip(), message.id


@pytest.mark.parametrize("locale", GSM7_LANGUAGES)
def test_phone_strings_stay_in_gsm7(locale: str) -> None:
    """sw, fr and es fit GSM-7, so their USSD screens keep 182 characters and SMS segments 160."""
    for message in entries(locale):
        if all(path.startswith(WEB_ONLY_SOURCES) for path, _line in message.locations):
            continue
        for form in forms(message):
            assert is_gsm7(form), f"{locale}: {form!r} needs UCS-2"
