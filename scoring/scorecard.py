"""Pure PPI scoring: a scorecard and an answer set in, per-poverty-line scores and likelihoods out.

No files, clock or environment here (the loader builds `Scorecard`s); tests use small in-test scorecards.

Speed: at construction every answer's points are packed into one integer, one byte per poverty line
(classic scorecards repeat their single score in every byte). Scoring is then one integer sum over the
questions; `int.to_bytes` splits it back into per-line totals, which cannot carry into each other because
the loader rejects any line whose maximum total exceeds 255. Scores above 100 (published points can add up
to 101-103) are capped at 100, the top of every look-up table.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from operator import getitem
from typing import Literal, NamedTuple

from scoring.errors import AnswerProblem, BandsError, InvalidAnswers, ScoringError, UnknownLine

MAX_SCORE = 100
BYTE = 8
_CAP_AT_MAX = bytes(min(value, MAX_SCORE) for value in range(256))

Family = Literal["per-line", "classic"]


@dataclass(frozen=True)
class Answer:
    """One published answer: `points` has one value per poverty line (per-line family) or one value (classic)."""

    text: str
    points: tuple[int, ...]
    letter: str | None = None


@dataclass(frozen=True)
class Question:
    """A question with its answers in published order; `text` is the nickname when the source had no text."""

    number: int
    text: str
    answers: tuple[Answer, ...]
    note: str | None = None
    nickname: str | None = None


@dataclass(frozen=True)
class PovertyLine:
    """A poverty line: published label, stable slug, likelihood (0-1) for every score 0-100."""

    slug: str
    label: str
    likelihoods: tuple[float, ...]


@dataclass(frozen=True)
class Scorecard:
    """A scorecard version, ready to score (points are packed once here, see the module docstring)."""

    id: str
    title: str
    family: Family
    language: str
    questions: tuple[Question, ...]
    lines: tuple[PovertyLine, ...]
    country: str = ""
    year: int | None = None
    _packed: tuple[dict[int, int], ...] = field(init=False, repr=False, compare=False)
    _answer_counts: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _width: int = field(init=False, repr=False, compare=False)
    _lookups: tuple[tuple[float, ...], ...] = field(init=False, repr=False, compare=False)
    _slugs: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _labels: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        width = len(self.lines) if self.family == "per-line" else max(1, len(self.lines))
        packed = tuple(
            {position: pack(self.family, a.points, width) for position, a in enumerate(q.answers, start=1)}
            for q in self.questions
        )
        object.__setattr__(self, "_width", width)
        object.__setattr__(self, "_packed", packed)
        object.__setattr__(self, "_answer_counts", tuple(len(q.answers) for q in self.questions))
        object.__setattr__(self, "_lookups", tuple(line.likelihoods for line in self.lines))
        object.__setattr__(self, "_slugs", tuple(line.slug for line in self.lines))
        object.__setattr__(self, "_labels", tuple(line.label for line in self.lines))

    @property
    def scoreable(self) -> bool:
        return bool(self.questions)

    def line(self, slug: str) -> PovertyLine:
        for line in self.lines:
            if line.slug == slug:
                return line
        raise UnknownLine(f"{self.id} has no poverty line {slug!r}; lines: {', '.join(self.line_slugs())}")

    def line_slugs(self) -> list[str]:
        return [line.slug for line in self.lines]


def pack(family: Family, points: tuple[int, ...], width: int) -> int:
    """One integer holding a byte per line: classic repeats its single value, per-line stores one per line."""
    if family == "classic":
        points = points * width
    if len(points) != width or not all(0 <= p < 256 for p in points):
        raise ScoringError(f"points {points} do not fit {width} line(s) of 0-255")
    return sum(p << (BYTE * i) for i, p in enumerate(points))


class LineResult(NamedTuple):
    """One poverty line's result (a named tuple: immutable, and cheap to build a million times)."""

    slug: str
    label: str
    score: int
    likelihood: float


@dataclass(frozen=True)
class ScoreResult:
    """Scores per poverty line; `total` is the single classic score (also given for classic cards with no lines)."""

    scorecard_id: str
    lines: tuple[LineResult, ...]
    total: int | None


def score_fast(card: Scorecard, answers: Sequence[int]) -> tuple[bytes, tuple[float, ...]]:
    """The scoring core: (score per packed line, likelihood per poverty line). Used by `score` and batch jobs.

    Each question's packed points sit in a dict keyed by answer position, so the lookup itself rejects
    positions out of range; `set(map(type, ...))` rejects non-integers (bool, float, str) in C.
    """
    if not card.questions:
        raise ScoringError(f"{card.id} has no points and cannot score")
    try:
        if len(answers) != len(card._packed) or set(map(type, answers)) != _INT_ONLY:
            raise KeyError
        total = sum(map(getitem, card._packed, answers))
    except (KeyError, TypeError):
        raise InvalidAnswers(answer_problems(card, answers)) from None
    scores = total.to_bytes(card._width, "little").translate(_CAP_AT_MAX)
    return scores, tuple(map(getitem, card._lookups, scores))


_INT_ONLY = {int}


def score(card: Scorecard, answers: Sequence[int]) -> ScoreResult:
    """Score 1-based answer positions (published order, one per question) on every poverty line."""
    scores, likelihoods = score_fast(card, answers)
    lines = tuple(map(LineResult, card._slugs, card._labels, scores, likelihoods))
    return ScoreResult(card.id, lines, scores[0] if card.family == "classic" else None)


def answer_problems(card: Scorecard, answers: Sequence[object]) -> list[AnswerProblem]:
    """Every missing, extra or out-of-range answer, named by question and allowed range."""
    problems = []
    for question, count in zip(card.questions, card._answer_counts, strict=True):
        given = answers[question.number - 1] if question.number <= len(answers) else None
        if not (type(given) is int and 0 < given <= count):
            state = "missing" if given is None else f"got {given!r}"
            problems.append(AnswerProblem(question.number, count, f"Q{question.number}: reply 1-{count} ({state})"))
    for extra in range(len(card.questions) + 1, len(answers) + 1):
        message = f"Q{extra}: no such question ({card.id} has {len(card.questions)})"
        problems.append(AnswerProblem(extra, None, message))
    return problems


def headline(result: ScoreResult, line_slug: str) -> LineResult:
    """The line an MFI reports as its headline."""
    for line in result.lines:
        if line.slug == line_slug:
            return line
    slugs = ", ".join(line.slug for line in result.lines)
    raise UnknownLine(f"{result.scorecard_id} has no poverty line {line_slug!r}; lines: {slugs}")


def headline_slug(slugs: Sequence[str], configured: str | None) -> str | None:
    """The line a survey on a scorecard with these lines reports: the MFI's configured headline line when the
    scorecard has it, else the scorecard's first line (an older or another country's scorecard), else none."""
    if configured in slugs:
        return configured
    return slugs[0] if slugs else None


def portfolio_poverty_rate(likelihoods: Iterable[float]) -> float:
    """Expected share of poor clients: the mean of their likelihoods (not the share above some cut-off)."""
    values = list(likelihoods)
    if not values:
        raise ValueError("no likelihoods: the poverty rate of an empty portfolio is undefined")
    if any(not 0.0 <= value <= 1.0 for value in values):
        raise ValueError("likelihoods must be fractions between 0 and 1")
    return sum(values) / len(values)


# ------------------------------------------------------------------------------------------------------ bands


@dataclass(frozen=True)
class Band:
    low: int
    high: int
    label: str

    def __contains__(self, score: object) -> bool:
        return isinstance(score, int) and self.low <= score <= self.high


Bands = tuple[Band, ...]


BAND_LABEL_MAX = 64  # the length of the band columns of surveys and clients
_ASCII_NUMBER = re.compile(r"[0-9]{1,3}")


def parse_bands(text: str) -> Bands:
    """Parse `"0-24:Very poor,25-44:Poor,..."` into bands that are contiguous, non-overlapping and cover 0-100."""
    bands = sorted((parse_band(part) for part in text.split(",") if part.strip()), key=lambda b: (b.low, b.high))
    if not bands:
        raise BandsError("no bands given; expected e.g. 0-24:Very poor,25-100:Other")
    if bands[0].low != 0:
        raise BandsError(f"bands must start at 0; the lowest starts at {bands[0].low}")
    for before, after in zip(bands, bands[1:], strict=False):
        if after.low <= before.high:
            raise BandsError(f"bands overlap: {describe(before)} and {describe(after)}")
        if after.low > before.high + 1:
            raise BandsError(f"gap between bands: nothing covers {before.high + 1}-{after.low - 1}")
    if bands[-1].high != MAX_SCORE:
        raise BandsError(f"bands must end at {MAX_SCORE}; the highest ends at {bands[-1].high}")
    return tuple(bands)


def parse_band(part: str) -> Band:
    span, separator, label = part.partition(":")
    low_text, dash, high_text = span.strip().partition("-")
    numbers = [text.strip() for text in (low_text, high_text)]
    # ASCII digits only: str.isdigit() also takes "²", which int() refuses.
    if not separator or not dash or not label.strip() or not all(_ASCII_NUMBER.fullmatch(n) for n in numbers):
        raise BandsError(f"cannot read band {part.strip()!r}; expected LOW-HIGH:Label such as 0-24:Very poor")
    low, high = int(numbers[0]), int(numbers[1])
    if low > high:
        raise BandsError(f"band {part.strip()!r} ends before it starts")
    if len(label.strip()) > BAND_LABEL_MAX:
        raise BandsError(f"band label {label.strip()[:20]!r}... is longer than {BAND_LABEL_MAX} characters")
    return Band(low, high, label.strip())


def describe(band: Band) -> str:
    return f"{band.low}-{band.high}:{band.label}"


def band_for(bands: Bands, score: int) -> Band:
    """The band holding `score`."""
    for band in bands:
        if band.low <= score <= band.high:
            return band
    raise BandsError(f"no band holds score {score}")
