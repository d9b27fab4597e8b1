"""Every known fault of the PPI sources (shared/ppi/README.md) is reported, by name, on the shipped files."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest

from scoring.checks import Finding
from scoring.loader import DEFAULT_DIRECTORY, validate


@cache
def shipped_findings() -> tuple[Finding, ...]:
    return tuple(validate())


def findings(scorecard_id: str, code: str) -> list[Finding]:
    return [f for f in shipped_findings() if Path(f.file).stem == scorecard_id and f.code == code]


def fields(scorecard_id: str, code: str) -> list[str]:
    return [f.field for f in findings(scorecard_id, code)]


def test_shipped_scorecards_have_no_errors() -> None:
    assert [f for f in shipped_findings() if f.level == "error"] == []


@pytest.mark.parametrize(
    ("scorecard_id", "fragment"),
    [
        ("SLE-2011", "add up to 99"),
        ("IND-GF", "add up to 101"),
        ("ETH-2023", "add up to 60"),
        ("MMR-2019", "add up to 82"),
    ],
)
def test_points_not_adding_to_100_are_reported(scorecard_id: str, fragment: str) -> None:
    assert any(fragment in f.message for f in findings(scorecard_id, "points-sum-not-100"))


@pytest.mark.parametrize(
    ("scorecard_id", "field"),
    [
        ("KEN-2024", "questions[7].answers[1].points"),
        ("KHM-2023", "questions[1].answers[1].points"),
        ("BOL-2023", "questions[5].answers[3].points"),
    ],
)
def test_blank_point_cells_are_reported(scorecard_id: str, field: str) -> None:
    assert fields(scorecard_id, "blank-points") == [field]


def test_blank_points_on_one_line_only_name_that_line() -> None:
    (finding,) = findings("KHM-2023", "blank-points")
    assert "bottom-20th-percentile" in finding.message


@pytest.mark.parametrize(("scorecard_id", "question", "letter"), [("KEN-2024", 2, "G"), ("BOL-2023", 5, "C")])
def test_duplicate_answer_letters_are_reported(scorecard_id: str, question: int, letter: str) -> None:
    hits = [f for f in findings(scorecard_id, "duplicate-answer-label") if f.field.startswith(f"questions[{question}]")]
    assert len(hits) == 2
    assert all(f"letter {letter!r}" in f.message for f in hits)


@pytest.mark.parametrize(
    ("scorecard_id", "line_label", "band_index"),
    [
        ("ECU-2008", "below_5_00_per_day_2005_ppp", 4),
        ("ECU-2008", "below_usaid_extreme", 9),
        ("KEN-2008", "below_national_food", 13),
        ("PSE-2010", "below_usaid_extreme", 1),
    ],
)
def test_likely_typo_bands_are_reported(scorecard_id: str, line_label: str, band_index: int) -> None:
    hits = [f for f in findings(scorecard_id, "likely-typo-band") if line_label in f.message]
    assert [f.field.rsplit("[", 1)[1] for f in hits] == [f"{band_index}]"]


def test_exactly_the_four_known_typo_bands_are_flagged() -> None:
    assert len([f for f in shipped_findings() if f.code == "likely-typo-band"]) == 4


def test_non_monotone_classic_tables_are_warnings() -> None:
    hits = findings("KEN-2008", "non-monotone-likelihood")
    assert hits and all(f.level == "warning" for f in hits)


@pytest.mark.parametrize(
    ("scorecard_id", "published", "lookup"),
    [
        ("ETH-2023", "$2.15/day 2017 PPP", "$1.25/day 2005 PPP"),
        ("PER-2024", "$1.90/day 2011 PPP", "$1.90/day 2017 PPP"),
    ],
)
def test_label_mismatches_between_sheets_are_reported(scorecard_id: str, published: str, lookup: str) -> None:
    assert any(published in f.message and lookup in f.message for f in findings(scorecard_id, "label-mismatch"))


def test_encoding_damage_is_reported() -> None:
    assert any("Ou?m?" in f.message for f in findings("BEN-2010", "encoding-damage"))
    assert len(findings("GTM-2010", "encoding-damage")) >= 10


def test_questions_ending_in_a_question_mark_are_not_encoding_damage() -> None:
    assert findings("KEN-2024", "encoding-damage") == []
    assert findings("SLV-2021", "encoding-damage") == []  # Spanish, with ¿...? and accents


def test_literal_none_answers_are_reported_and_kept_as_answers() -> None:
    assert "questions[0].answers[6].text" in fields("AFG-2007", "literal-none-answer")
    document = json.loads((DEFAULT_DIRECTORY / "AFG-2007.json").read_text(encoding="utf-8"))
    assert document["questions"][0]["answers"][6] == {"text": "None", "letter": None, "points": 29}


def test_morocco_likelihoods_only_and_points_only_surveys_are_reported() -> None:
    assert fields("MAR-2007", "no-points") == ["questions"]
    assert fields("SLE-2011", "no-likelihoods") == ["poverty_lines"]


def test_every_warning_has_a_decision_written_in_its_file() -> None:
    for finding in shipped_findings():
        document = json.loads(Path(finding.file).read_text(encoding="utf-8"))
        decided = {(d["fault"], d["where"]) for d in document["decisions"]}
        assert (finding.code, finding.field) in decided, finding
