"""What an SMS costs and whether a USSD screen fits, for the languages our clients read."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.encoding import (
    fits_ussd,
    is_gsm7,
    normalise_for_sms,
    segment_count,
    sms_encoding,
    sms_length,
    ussd_budget,
)

ENCODING_TABLE = [
    # (text, encoding, length in septets or UTF-16 units)
    ("Salio lako ni KES 1,500", "GSM-7", 23),
    ("Jibu swali 1: Je, una redio?", "GSM-7", 28),  # Swahili
    ("€", "GSM-7", 2),
    ("^", "GSM-7", 2),
    ("{}", "GSM-7", 4),
    ("[~]|\\", "GSM-7", 10),
    ("Réponse reçue", "UCS-2", 13),  # ç is not in GSM 03.38
    ("Déjà payé à l'agence", "GSM-7", 20),  # é, à are
    ("Ça va très bien", "GSM-7", 15),  # capital Ç is
    ("Prêt à rembourser", "UCS-2", 17),  # ê is not
    ("Año pequeño", "GSM-7", 11),  # ñ is
    ("Acción rápida", "UCS-2", 13),  # ó, á are not
    ("رصيدك 1500", "UCS-2", 10),  # Arabic
    ("आपका शेष", "UCS-2", 8),  # Hindi
    ("Asante 😀", "UCS-2", 9),  # emoji is a surrogate pair
]


@pytest.mark.parametrize(("text", "encoding", "length"), ENCODING_TABLE, ids=[row[0] for row in ENCODING_TABLE])
def test_encoding_and_length_follow_gsm_03_38(text: str, encoding: str, length: int) -> None:
    assert sms_encoding(text) == encoding
    assert is_gsm7(text) == (encoding == "GSM-7")
    assert sms_length(text) == length


SEGMENT_TABLE = [
    ("empty", "", 1),
    ("160 plain", "a" * 160, 1),
    ("161 plain", "a" * 161, 2),
    ("306 plain", "a" * 306, 2),
    ("307 plain", "a" * 307, 3),
    ("80 euros fill one", "€" * 80, 1),
    ("81 euros spill", "€" * 81, 2),
    ("escape pair never split", "a" * 152 + "€" + "a" * 7, 2),
    ("escape pair pushed to next segment", "a" * 152 + "€" * 77, 3),
    ("70 ucs2", "ê" * 70, 1),
    ("71 ucs2", "ê" * 71, 2),
    ("134 ucs2", "ê" * 134, 2),
    ("135 ucs2", "ê" * 135, 3),
    ("one unicode char in 152 gsm", "a" * 152 + "ê", 3),
    ("surrogate pair not split", "ê" * 66 + "😀" + "ê" * 3, 2),
]


@pytest.mark.parametrize(("text", "segments"), [row[1:] for row in SEGMENT_TABLE], ids=[r[0] for r in SEGMENT_TABLE])
def test_segment_count_matches_operator_billing(text: str, segments: int) -> None:
    assert segment_count(text) == segments


NORMALISE_TABLE = [
    ("babel sw_KE currency nbsp", "Ksh\u00a01,500.00", "Ksh 1,500.00"),
    ("babel fr narrow nbsp", "1\u202f500 FCFA", "1 500 FCFA"),
    ("typographic apostrophe", "l\u2019épargne", "l'épargne"),
    ("direction marks in latin text", "\u200fKES 1,500\u200e", "KES 1,500"),
    ("arabic letter mark in digits", "1\u061c500", "1500"),
    ("decomposed accent recomposed", "pay\u0065\u0301", "payé"),
    ("arabic keeps its direction marks", "\u200fرصيدك 1\u00a0500", "\u200fرصيدك 1 500"),
    ("ellipsis spelt out when it makes gsm7", "Asante\u2026", "Asante..."),
    ("ellipsis kept in ucs2 text", "Prêt\u2026", "Prêt\u2026"),
    ("plain text unchanged", "Salio: KES 1,500", "Salio: KES 1,500"),
]


@pytest.mark.parametrize(("raw", "expected"), [r[1:] for r in NORMALISE_TABLE], ids=[r[0] for r in NORMALISE_TABLE])
def test_normalise_for_sms_removes_characters_that_only_force_ucs2(raw: str, expected: str) -> None:
    assert normalise_for_sms(raw) == expected


def test_babel_formatted_amount_becomes_gsm7_after_normalising() -> None:
    from babel.numbers import format_currency

    formatted = format_currency(1500, "KES", locale="sw_KE")
    assert normalise_for_sms(formatted).isascii()
    assert sms_encoding(normalise_for_sms(formatted)) == "GSM-7"


USSD_TABLE = [
    ("182 gsm fits", "a" * 182, 182, True),
    ("183 gsm overflows", "a" * 183, 182, False),
    ("91 euros fill the screen", "€" * 91, 182, True),
    ("92 euros overflow", "€" * 92, 182, False),
    ("80 ucs2 fits", "ê" * 80, 80, True),
    ("81 ucs2 overflows", "ê" * 81, 80, False),
    ("hindi uses the ucs2 budget", "आ" * 81, 80, False),
]


@pytest.mark.parametrize(("text", "budget", "fits"), [r[1:] for r in USSD_TABLE], ids=[r[0] for r in USSD_TABLE])
def test_ussd_screen_budget_depends_on_alphabet(text: str, budget: int, fits: bool) -> None:
    assert ussd_budget(text) == budget
    assert fits_ussd(text) is fits


def test_ussd_budget_limits_are_configurable() -> None:
    assert ussd_budget("a", limit=160) == 160
    assert fits_ussd("a" * 161, limit=160) is False
    assert ussd_budget("ê", ucs2_limit=70) == 70


@given(st.text())
def test_normalising_never_makes_a_message_more_expensive(text: str) -> None:
    assert segment_count(normalise_for_sms(text)) <= segment_count(text)


@given(st.text(alphabet=st.sampled_from("abc €^{}[]~|\\")))
def test_gsm7_segments_never_exceed_a_naive_upper_bound(text: str) -> None:
    length = sms_length(text)
    assert segment_count(text) >= (1 if length <= 160 else -(-length // 153))
    assert segment_count(text) <= max(1, -(-length // 152))


def test_the_extension_table_matches_the_gsm0338_codec():
    from gateway.encoding import GSM7_CODEC, GSM7_EXTENSION

    double = set()
    for code_point in range(0x10000):
        try:
            if len(chr(code_point).encode(GSM7_CODEC)) == 2:
                double.add(chr(code_point))
        except UnicodeEncodeError:
            continue
    assert double == GSM7_EXTENSION
