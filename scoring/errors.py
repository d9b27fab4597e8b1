"""Errors raised by the scoring package.

ScoringError
├── ScorecardError        a scorecard file (or overlay) is missing or invalid: names file and field
│   └── UnknownScorecard  no file for that id
├── InvalidAnswers        missing, extra or out-of-range answers (`.problems` says which and what is allowed)
├── BandsError            band text that is not contiguous, overlapping, or does not cover 0-100
└── UnknownLine           a poverty-line slug the scorecard does not have
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class ScoringError(Exception):
    """Base class of every error in `scoring`."""


class ScorecardError(ScoringError):
    """A scorecard or overlay file cannot be used."""

    def __init__(self, file: str, field: str, message: str) -> None:
        super().__init__(f"{file}: {field}: {message}" if field else f"{file}: {message}")
        self.file = file
        self.field = field
        self.message = message


class UnknownScorecard(ScorecardError, LookupError):
    """No scorecard file has this id."""


@dataclass(frozen=True)
class AnswerProblem:
    """One problem with an answer set; `allowed_max` is None when the question does not exist."""

    question: int
    allowed_max: int | None
    message: str

    def __str__(self) -> str:
        return self.message


class InvalidAnswers(ScoringError, ValueError):
    """The answers do not fit the scorecard: one problem per question concerned."""

    def __init__(self, problems: Sequence[AnswerProblem]) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = list(problems)


class BandsError(ScoringError, ValueError):
    """Band definitions must be contiguous, non-overlapping and cover 0-100."""


class UnknownLine(ScoringError, LookupError):
    """The poverty-line slug is not one of the scorecard's lines."""
