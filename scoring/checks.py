"""Checks on a scorecard document (the parsed JSON), shared by the converter and the loader's `validate`.

Pure: a document in, findings out. Warnings are the known faults of the published sources (kept as published
and explained in the file's `decisions`); errors are shapes the scoring code cannot work with. The converter
writes a decision for each warning code, so the same names appear in files, decisions and reports.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

MAX_SCORE = 100
MAX_LINE_POINTS = 255  # scoring packs one line's total in a byte
TYPO_JUMP = 0.45  # a band this far from both neighbours, in the same direction, looks like a typing error

# Warning codes (known faults of the sources).
POINTS_SUM = "points-sum-not-100"
BLANK_POINTS = "blank-points"
DUPLICATE_LETTER = "duplicate-answer-label"
NON_MONOTONE = "non-monotone-likelihood"
LIKELY_TYPO = "likely-typo-band"
LABEL_MISMATCH = "label-mismatch"
ENCODING_DAMAGE = "encoding-damage"
LITERAL_NONE = "literal-none-answer"
NO_POINTS = "no-points"
NO_LIKELIHOODS = "no-likelihoods"

# Error codes (the file cannot be scored as it stands).
SCHEMA = "schema"
ID_MISMATCH = "id-mismatch"
QUESTION_NUMBERING = "question-numbering"
DUPLICATE_LINE = "duplicate-line-slug"
POINTS_SHAPE = "points-shape"
LOOKUP_SHAPE = "lookup-shape"
BANDS_SHAPE = "bands-shape"
POINTS_TOO_LARGE = "points-too-large"
OVERLAY_SHAPE = "overlay-shape"

Level = Literal["error", "warning"]

# '?' or U+FFFD standing in for a lost character: "Ou?m?", "S?", "ni?os"; or UTF-8 read as Latin-1 ("Ã©").
DAMAGED_ANSWER = re.compile(r"\ufffd|[^\W\d_]\?|\?[^\W\d_]|Ã[\x80-\xbf©¡³±º]")
DAMAGED_QUESTION = re.compile(r"\ufffd|\?[^\W\d_]|Ã[\x80-\xbf©¡³±º]")
LETTER_PREFIX = re.compile(r"^\s*[A-Za-z](?:\s*[.)]\s*|\s+)")


@dataclass(frozen=True)
class Finding:
    """One validation result: `code` is a stable name, `field` a JSON path inside `file`."""

    level: Level
    code: str
    file: str
    field: str
    message: str


def check_document(document: dict[str, Any], file: str = "") -> list[Finding]:
    """All findings for a schema-valid scorecard document: structural errors first, then fault warnings."""
    findings = list(structure_errors(document, file))
    if not any(f.level == "error" for f in findings):
        findings += fault_warnings(document, file)
    return findings


def structure_errors(document: dict[str, Any], file: str) -> Iterator[Finding]:
    def error(code: str, field: str, message: str) -> Finding:
        return Finding("error", code, file, field, message)

    questions, lines = document["questions"], document["poverty_lines"]
    for index, question in enumerate(questions):
        if question["number"] != index + 1:
            yield error(QUESTION_NUMBERING, f"questions[{index}].number", f"expected {index + 1}")
    for slug, count in Counter(line["slug"] for line in lines).items():
        if count > 1:
            yield error(DUPLICATE_LINE, "poverty_lines", f"slug {slug!r} appears {count} times")
    if document["family"] == "per-line":
        shape = list(per_line_errors(questions, lines, error))
    else:
        shape = list(classic_errors(document, questions, lines, error))
    yield from shape
    if shape:
        return  # totals cannot be computed over mis-shaped points
    for index, total in enumerate(max_totals(document)):
        if total > MAX_LINE_POINTS:
            yield error(POINTS_TOO_LARGE, f"poverty_lines[{index}]", f"maximum total {total} > {MAX_LINE_POINTS}")


def per_line_errors(questions: list[Any], lines: list[Any], error: Any) -> Iterator[Finding]:
    for q, question in enumerate(questions):
        for a, answer in enumerate(question["answers"]):
            points = answer["points"]
            if not isinstance(points, list) or len(points) != len(lines):
                yield error(
                    POINTS_SHAPE, f"questions[{q}].answers[{a}].points", f"need one value per line ({len(lines)})"
                )
    for index, line in enumerate(lines):
        if len(line.get("lookup", [])) != MAX_SCORE + 1:
            yield error(LOOKUP_SHAPE, f"poverty_lines[{index}].lookup", "need a likelihood for every score 0-100")


def classic_errors(document: dict[str, Any], questions: list[Any], lines: list[Any], error: Any) -> Iterator[Finding]:
    for q, question in enumerate(questions):
        for a, answer in enumerate(question["answers"]):
            if not isinstance(answer["points"], int):
                yield error(POINTS_SHAPE, f"questions[{q}].answers[{a}].points", "classic points are one integer")
    if not lines:
        return
    bands = document.get("likelihood_bands") or []
    if not bands_cover_scores(bands):
        yield error(BANDS_SHAPE, "likelihood_bands", "bands must start at 0, be contiguous and reach 100")
    for index, line in enumerate(lines):
        if len(line.get("band_likelihoods", [])) != len(bands):
            yield error(BANDS_SHAPE, f"poverty_lines[{index}].band_likelihoods", f"need {len(bands)} values")


def bands_cover_scores(bands: Sequence[Sequence[int]]) -> bool:
    expected = 0
    for low, high in bands:
        if low != expected or high < low:
            return False
        expected = high + 1
    return expected > MAX_SCORE


def max_totals(document: dict[str, Any]) -> list[int]:
    """Highest reachable total per line (classic: one total)."""
    questions = document["questions"]
    if document["family"] == "classic":
        return [sum(max(a["points"] for a in q["answers"]) for q in questions)] if questions else []
    width = len(document["poverty_lines"])
    return [sum(max(a["points"][i] for a in q["answers"]) for q in questions) for i in range(width)]


def fault_warnings(document: dict[str, Any], file: str) -> list[Finding]:
    def warn(code: str, field: str, message: str) -> Finding:
        return Finding("warning", code, file, field, message)

    findings: list[Finding] = []
    if not document["questions"]:
        findings.append(warn(NO_POINTS, "questions", "the source has no points: this scorecard cannot score"))
    if not document["poverty_lines"]:
        findings.append(warn(NO_LIKELIHOODS, "poverty_lines", "no likelihood table: scoring gives the total only"))
    findings += points_sum_warnings(document, warn)
    findings += answer_warnings(document["questions"], warn)
    findings += line_warnings(document["poverty_lines"], warn)
    return findings


def points_sum_warnings(document: dict[str, Any], warn: Any) -> list[Finding]:
    findings = []
    lines = document["poverty_lines"]
    for index, total in enumerate(max_totals(document)):
        if total != MAX_SCORE:
            where = f"poverty_lines[{index}]" if document["family"] == "per-line" else "questions"
            name = f"line {lines[index]['label']!r}" if document["family"] == "per-line" else "the scorecard"
            findings.append(warn(POINTS_SUM, where, f"maximum points for {name} add up to {total}, not 100"))
    return findings


def answer_warnings(questions: list[Any], warn: Any) -> list[Finding]:
    findings = []
    for q, question in enumerate(questions):
        text = question.get("text") or ""
        if DAMAGED_QUESTION.search(text):
            findings.append(warn(ENCODING_DAMAGE, f"questions[{q}].text", f"lost characters in {text!r}"))
        letters = Counter(a["letter"] for a in question["answers"] if a.get("letter"))
        for a, answer in enumerate(question["answers"]):
            where = f"questions[{q}].answers[{a}]"
            findings += single_answer_warnings(question["number"], answer, letters, where, warn)
    return findings


def single_answer_warnings(
    number: int, answer: dict[str, Any], letters: Counter[str], where: str, warn: Any
) -> list[Finding]:
    findings = []
    text = answer["text"]
    if answer.get("blank_points_in_source"):
        lines = ", ".join(answer["blank_points_in_source"])
        findings.append(
            warn(BLANK_POINTS, f"{where}.points", f"Q{number} {text!r}: blank point cell ({lines}) read as 0")
        )
    if answer.get("letter") and letters[answer["letter"]] > 1:
        findings.append(warn(DUPLICATE_LETTER, f"{where}.letter", f"Q{number}: letter {answer['letter']!r} repeats"))
    if DAMAGED_ANSWER.search(text):
        findings.append(warn(ENCODING_DAMAGE, f"{where}.text", f"Q{number}: lost characters in {text!r}"))
    if LETTER_PREFIX.sub("", text, count=1).strip() == "None" or text.strip() == "None":
        findings.append(warn(LITERAL_NONE, f"{where}.text", f"Q{number}: answer is the word 'None', not missing"))
    return findings


def line_warnings(lines: list[Any], warn: Any) -> list[Finding]:
    findings = []
    for index, line in enumerate(lines):
        where = f"poverty_lines[{index}]"
        if "lookup_label" in line:
            message = f"scorecard sheet says {line['label']!r}, look-up sheet says {line['lookup_label']!r}"
            findings.append(warn(LABEL_MISMATCH, f"{where}.lookup_label", message))
        values = line.get("band_likelihoods") or line.get("lookup") or []
        key = "band_likelihoods" if "band_likelihoods" in line else "lookup"
        rises = [i for i in range(1, len(values)) if values[i] > values[i - 1]]
        if rises:
            message = f"line {line['label']!r} rises with the score at {len(rises)} place(s), first at index {rises[0]}"
            findings.append(warn(NON_MONOTONE, f"{where}.{key}", message))
        if key == "band_likelihoods":
            for i in likely_typos(values):
                message = f"line {line['label']!r} band {i}: {values[i]} between {values[i - 1]} and {values[i + 1]}"
                findings.append(warn(LIKELY_TYPO, f"{where}.band_likelihoods[{i}]", message))
    return findings


def likely_typos(values: Sequence[float]) -> list[int]:
    """Inner bands that jump by TYPO_JUMP or more away from both neighbours in the same direction."""
    found = []
    for i in range(1, len(values) - 1):
        before, after = values[i] - values[i - 1], values[i] - values[i + 1]
        if before * after > 0 and min(abs(before), abs(after)) >= TYPO_JUMP:
            found.append(i)
    return found
