"""Scoring on small in-test scorecards: answers, errors, headline, portfolio rate."""

from __future__ import annotations

import pytest

from scoring.errors import InvalidAnswers, ScoringError, UnknownLine
from scoring.scorecard import (
    Answer,
    PovertyLine,
    Question,
    Scorecard,
    headline,
    portfolio_poverty_rate,
    score,
)


def flat(value: float) -> tuple[float, ...]:
    return (value,) * 101


def falling() -> tuple[float, ...]:
    return tuple(1 - s / 100 for s in range(101))


def per_line_card() -> Scorecard:
    questions = (
        Question(1, "Region?", (Answer("A. North", (0, 10)), Answer("B. South", (60, 50)))),
        Question(2, "Roof?", (Answer("A. Grass", (0, 0)), Answer("B. Tin", (20, 45)), Answer("C. Tiles", (45, 55)))),
    )
    lines = (PovertyLine("national", "National", falling()), PovertyLine("usd-2-15", "$2.15/day", flat(0.25)))
    return Scorecard("TST-2024", "Test", "per-line", "en", questions, lines)


def classic_card(lines: tuple[PovertyLine, ...] = ()) -> Scorecard:
    questions = (
        Question(1, "Members?", (Answer("Five or more", (0,)), Answer("None", (30,)))),
        Question(2, "TV?", (Answer("No", (0,)), Answer("Yes", (70,)))),
    )
    return Scorecard("TST-2009", "Classic", "classic", "en", questions, lines)


def test_per_line_scores_each_line_with_its_own_points() -> None:
    result = score(per_line_card(), [1, 2])

    assert [(line.slug, line.score) for line in result.lines] == [("national", 20), ("usd-2-15", 55)]
    assert [line.likelihood for line in result.lines] == pytest.approx([0.8, 0.25])
    assert result.total is None


def test_score_above_100_is_capped_at_100_for_score_and_lookup() -> None:
    result = score(per_line_card(), [2, 3])  # raw totals 105 and 105

    assert [line.score for line in result.lines] == [100, 100]
    assert result.lines[0].likelihood == pytest.approx(0.0)


def test_classic_repeats_single_score_on_every_line() -> None:
    card = classic_card((PovertyLine("a", "A", falling()), PovertyLine("b", "B", flat(0.5))))
    result = score(card, [2, 1])

    assert result.total == 30
    assert [line.score for line in result.lines] == [30, 30]
    assert [line.likelihood for line in result.lines] == pytest.approx([0.7, 0.5])


def test_classic_without_likelihoods_still_gives_the_total() -> None:
    result = score(classic_card(), [2, 2])
    assert result.total == 100
    assert result.lines == ()


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        ([1], [(2, 3, "Q2: reply 1-3 (missing)")]),
        ([3, 1], [(1, 2, "Q1: reply 1-2 (got 3)")]),
        ([0, 4], [(1, 2, "Q1: reply 1-2 (got 0)"), (2, 3, "Q2: reply 1-3 (got 4)")]),
        ([1, 1, 1], [(3, None, "Q3: no such question (TST-2024 has 2)")]),
        (["1", 1], [(1, 2, "Q1: reply 1-2 (got '1')")]),
        ([-1, 1], [(1, 2, "Q1: reply 1-2 (got -1)")]),
        ([True, 1.0], [(1, 2, "Q1: reply 1-2 (got True)"), (2, 3, "Q2: reply 1-3 (got 1.0)")]),
    ],
)
def test_invalid_answers_name_question_and_allowed_range(answers: list, expected: list) -> None:
    with pytest.raises(InvalidAnswers) as caught:
        score(per_line_card(), answers)
    assert [(p.question, p.allowed_max, str(p)) for p in caught.value.problems] == expected


def test_card_without_points_cannot_score() -> None:
    card = Scorecard("MAR-2007", "Morocco", "classic", "fr", (), (PovertyLine("x", "X", flat(0.1)),))
    with pytest.raises(ScoringError, match="cannot score"):
        score(card, [])


def test_headline_picks_the_configured_line() -> None:
    result = score(per_line_card(), [1, 2])
    assert headline(result, "usd-2-15").score == 55
    with pytest.raises(UnknownLine, match="national, usd-2-15"):
        headline(result, "usd-1-90")


def test_portfolio_rate_is_mean_of_likelihoods_not_share_above_half() -> None:
    assert portfolio_poverty_rate([0.9, 0.2, 0.1, 0.2]) == pytest.approx(0.35)
    assert portfolio_poverty_rate(iter([0.6])) == pytest.approx(0.6)


@pytest.mark.parametrize("values", [[], [1.2], [-0.1, 0.5]])
def test_portfolio_rate_rejects_empty_or_non_fraction(values: list[float]) -> None:
    with pytest.raises(ValueError):
        portfolio_poverty_rate(values)
