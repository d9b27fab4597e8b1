"""Properties over every shipped, scoreable scorecard."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from scoring.loader import list_scorecards, load_scorecard
from scoring.scorecard import Scorecard, score

SCOREABLE = [s.id for s in list_scorecards() if s.scoreable]


@st.composite
def card_and_answers(draw: st.DrawFn) -> tuple[Scorecard, list[int]]:
    card = load_scorecard(draw(st.sampled_from(SCOREABLE)))
    answers = [draw(st.integers(min_value=1, max_value=len(q.answers))) for q in card.questions]
    return card, answers


def line_range(card: Scorecard, index: int) -> tuple[int, int]:
    position = 0 if card.family == "classic" else index
    low = sum(min(a.points[position] for a in q.answers) for q in card.questions)
    high = sum(max(a.points[position] for a in q.answers) for q in card.questions)
    return min(low, 100), min(high, 100)


@settings(max_examples=300)
@given(card_and_answers())
def test_scores_stay_within_each_lines_range_and_likelihoods_are_fractions(case: tuple[Scorecard, list[int]]) -> None:
    card, answers = case
    result = score(card, answers)
    assert len(result.lines) == len(card.lines)
    for index, line in enumerate(result.lines):
        low, high = line_range(card, index)
        assert low <= line.score <= high
        assert 0.0 <= line.likelihood <= 1.0
    if card.family == "classic":
        assert result.total is not None and 0 <= result.total <= 100


def test_lookup_is_defined_for_every_reachable_score() -> None:
    for scorecard_id in SCOREABLE:
        card = load_scorecard(scorecard_id)
        for index, line in enumerate(card.lines):
            low, high = line_range(card, index)
            assert len(line.likelihoods) == 101
            assert all(0.0 <= line.likelihoods[s] <= 1.0 for s in range(low, high + 1))


def test_every_source_scorecard_is_shipped() -> None:
    ids = {s.id for s in list_scorecards()}
    assert len(ids) == 31 + 42 + 1 + 1  # IPA sheets, Mifos points, Morocco likelihoods-only, India XML
    assert {"KEN-2024", "PHL-2023", "MEX-2024", "GHA-2019", "PAK-2009", "HTI-2006", "IND-2008"} <= ids
    assert {"BEN-2022-11Q", "BEN-2022-6Q", "IND-GF", "MAR-2007"} <= ids
