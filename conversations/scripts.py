"""Turn a scorecard into the plain survey script the conversation engine walks through.

The engine must not depend on the scoring package (it is pure and tested alone), so the scorecard is read by
duck typing: anything with `.id` and `.questions`, each question with `.number`, `.text` and `.answers`, each
answer with `.text` (scoring.scorecard.Answer) or `.label`. Published order is kept: option position n (1-based)
is the scorecard's n-th answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# PPI source files letter their answers ("A. Mombasa", "AB. Elgeyo Marakwet"); the screen numbers them instead.
_LETTER_PREFIX = re.compile(r"^\s*[A-Z]{1,2}[.)]\s+")


@dataclass(frozen=True)
class ScriptQuestion:
    """One survey question as shown: its text and its answer labels in published order."""

    text: str
    options: tuple[str, ...]


@dataclass(frozen=True)
class SurveyScript:
    """The active scorecard's questions, ready for the engine."""

    scorecard_id: str
    questions: tuple[ScriptQuestion, ...]


def survey_script(scorecard_like: Any) -> SurveyScript:
    """Build a `SurveyScript` from a scorecard-like object (questions sorted by their number)."""
    questions = sorted(scorecard_like.questions, key=lambda question: question.number)
    return SurveyScript(
        scorecard_id=str(scorecard_like.id),
        questions=tuple(_script_question(question) for question in questions),
    )


def _script_question(question: Any) -> ScriptQuestion:
    return ScriptQuestion(
        text=" ".join(str(question.text).split()),
        options=tuple(option_label(_answer_text(answer)) for answer in question.answers),
    )


def _answer_text(answer: Any) -> str:
    text = getattr(answer, "text", None)
    return str(text if text is not None else answer.label)


def option_label(label: str) -> str:
    """An answer label without the source's letter prefix and with collapsed whitespace."""
    return " ".join(_LETTER_PREFIX.sub("", label).split()) or label.strip()
