"""Golden cases: expected scores and likelihoods computed by make_golden.py from the raw published CSVs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scoring.loader import load_scorecard
from scoring.scorecard import score

CASES = json.loads(Path(__file__).with_name("golden_cases.json").read_text(encoding="utf-8"))


def test_golden_file_covers_enough_cases_and_scorecards() -> None:
    assert len(CASES) >= 200
    assert len({case["scorecard"] for case in CASES}) >= 12


@pytest.mark.parametrize("case", CASES, ids=[f"{c['scorecard']}-{i}" for i, c in enumerate(CASES)])
def test_score_matches_published_tables(case: dict) -> None:
    result = score(load_scorecard(case["scorecard"]), case["answers"])

    assert [line.label for line in result.lines] == [line["label"] for line in case["lines"]]
    assert [line.score for line in result.lines] == [line["score"] for line in case["lines"]]
    assert [line.likelihood for line in result.lines] == pytest.approx(
        [line["likelihood"] for line in case["lines"]], abs=1e-9
    )
    assert result.total == case["total"]
