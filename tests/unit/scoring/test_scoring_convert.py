"""The converter: small pure helpers always; full regeneration when the shared sources are present."""

from __future__ import annotations

from pathlib import Path

import pytest

from scoring.convert import answer_letter, convert_all, detect_language, slugify, write_scorecards
from scoring.loader import DEFAULT_DIRECTORY, SCORECARD_GLOB

# The shared sources sit beside the checkout (../shared/ppi), as on the developers' machines and in CI.
SOURCES = Path(__file__).resolve().parents[3].parent / "shared" / "ppi"


@pytest.mark.parametrize(
    ("label", "slug"),
    [
        ("$1.90/día 2011 PPP", "usd-1-90-dia-2011-ppp"),
        ("200% National Poverty Line", "200-pct-national-poverty-line"),
        ("below_1_25_per_day_2005_ppp", "below-1-25-per-day-2005-ppp"),
        ("Bottom 20th Percentile", "bottom-20th-percentile"),
    ],
)
def test_slugs_are_stable_ascii(label: str, slug: str) -> None:
    assert slugify(label) == slug


@pytest.mark.parametrize(
    ("text", "letter"),
    [("A. Mombasa", "A"), ("A.Alibori", "A"), ("A Phom Penh", "A"), ("a) Nyarugenge", "A"), ("None", None)],
)
def test_answer_letters_are_read_from_published_prefixes(text: str, letter: str | None) -> None:
    assert answer_letter(text) == letter


def test_language_is_detected_from_text() -> None:
    assert detect_language(["¿En qué entidad se encuentra el hogar?", "Sí"])[0] == "es"
    assert detect_language(["How many members are there in the household?"])[0] == "en"
    assert detect_language(["Il n'y a pas chef de famille féminin"])[0] == "fr"


@pytest.mark.skipif(not SOURCES.is_dir(), reason="shared PPI sources not present")
def test_regenerating_gives_the_committed_files_byte_for_byte(tmp_path: Path) -> None:
    written = write_scorecards(convert_all(SOURCES), tmp_path)

    shipped = sorted(DEFAULT_DIRECTORY.glob(SCORECARD_GLOB))
    assert [p.name for p in written] == [p.name for p in shipped]
    for new, old in zip(written, shipped, strict=True):
        assert new.read_bytes() == old.read_bytes(), new.name
