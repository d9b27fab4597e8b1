"""Read and validate the scorecard files in `scorecards/` (shipped with the code) into `Scorecard` objects.

Every load validates: JSON Schema (`scorecards/schema.json`) first, then the structural checks in
`scoring.checks`; an error raises `ScorecardError` naming the file and the JSON path. Warnings (the known
faults of the published sources, documented in each file's `decisions`) never block loading; `validate()`
reports them. Translation overlays (`scorecards/overlays/<ID>.<lang>.json`) replace question and answer
text by position and are checked to have the scorecard's shape.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema

from scoring import checks
from scoring.checks import Finding
from scoring.errors import ScorecardError, UnknownScorecard
from scoring.scorecard import MAX_SCORE, Answer, PovertyLine, Question, Scorecard

DEFAULT_DIRECTORY = Path(__file__).resolve().parent.parent / "scorecards"
SCHEMA_FILE = "schema.json"
OVERLAY_DIRECTORY = "overlays"
SCORECARD_GLOB = "[A-Z][A-Z][A-Z]-*.json"


@dataclass(frozen=True)
class ScorecardSummary:
    id: str
    title: str
    country: str
    year: int | None
    family: str
    language: str
    questions: int
    lines: tuple[str, ...]
    scoreable: bool
    overlays: tuple[str, ...]


def load_scorecard(scorecard_id: str, language: str | None = None, directory: Path | None = None) -> Scorecard:
    """The validated scorecard as published, or with the `language` overlay applied when a language is given. An
    overlay in the scorecard's own language corrects its display text (a typo in the source); without one, that
    language gives the published text."""
    return _load(scorecard_id, language, str(_directory(directory)))


def load_for_reader(scorecard_id: str, language: str, directory: Path | None = None) -> Scorecard:
    """The scorecard as a reader of `language` sees it: in that language when someone translated it, else in the
    language it was published in, with that language's corrections when it has them."""
    base = _directory(directory)
    if _overlay_path(base, scorecard_id, language).exists():
        return load_scorecard(scorecard_id, language, base)
    published = load_scorecard(scorecard_id, None, base)
    return load_scorecard(scorecard_id, published.language, base)


def _overlay_path(directory: Path, scorecard_id: str, language: str) -> Path:
    return directory / OVERLAY_DIRECTORY / f"{scorecard_id}.{language}.json"


@lru_cache(maxsize=256)
def _load(scorecard_id: str, language: str | None, directory: str) -> Scorecard:
    path = scorecard_path(scorecard_id, Path(directory))
    document = read_document(path)
    raise_on_error(document_findings(document, path))
    card = build_scorecard(document)
    if language is None:
        return card
    overlay_path = _overlay_path(Path(directory), scorecard_id, language)
    if not overlay_path.exists():
        if language == card.language:
            return card
        raise ScorecardError(str(overlay_path), "", f"no {language!r} overlay for {scorecard_id}")
    overlay = read_document(overlay_path)
    raise_on_error(overlay_findings(overlay, document, overlay_path))
    return apply_overlay(card, overlay)


def list_scorecards(directory: Path | None = None) -> list[ScorecardSummary]:
    """A summary of every scorecard file, sorted by id (files are read, not fully validated)."""
    root = _directory(directory)
    return [summarise(read_document(path), root) for path in sorted(root.glob(SCORECARD_GLOB))]


def validate(scorecard_id: str | None = None, directory: Path | None = None) -> list[Finding]:
    """Findings for one scorecard (and its overlays) or, with no id, for every file in the directory."""
    root = _directory(directory)
    paths = [scorecard_path(scorecard_id, root)] if scorecard_id else sorted(root.glob(SCORECARD_GLOB))
    findings: list[Finding] = []
    for path in paths:
        findings += validate_file(path)
    return findings


def validate_file(path: Path) -> list[Finding]:
    try:
        document = read_document(path)
    except ScorecardError as exc:
        return [Finding("error", checks.SCHEMA, exc.file, exc.field, exc.message)]
    findings = document_findings(document, path)
    for overlay_path in sorted((path.parent / OVERLAY_DIRECTORY).glob(f"{path.stem}.*.json")):
        try:
            findings += overlay_findings(read_document(overlay_path), document, overlay_path)
        except ScorecardError as exc:
            findings.append(Finding("error", checks.SCHEMA, exc.file, exc.field, exc.message))
    return findings


def _directory(directory: Path | None) -> Path:
    return _DEFAULT_RESOLVED if directory is None else directory.resolve()


# Resolved once: `Path.resolve()` walks the path with a system call per part, and the default is resolved on every
# survey scored (twice on the USSD hop that submits one).
_DEFAULT_RESOLVED = DEFAULT_DIRECTORY.resolve()


def scorecard_path(scorecard_id: str, directory: Path) -> Path:
    path = directory / f"{scorecard_id}.json"
    if "/" in scorecard_id or scorecard_id.startswith(".") or not path.is_file():
        known = ", ".join(p.stem for p in sorted(directory.glob(SCORECARD_GLOB))[:8])
        raise UnknownScorecard(str(path), "", f"unknown scorecard {scorecard_id!r} (known: {known}, ...)")
    return path


def read_document(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ScorecardError(str(path), "", f"cannot read JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise ScorecardError(str(path), "$", "top level must be an object")
    return document


def raise_on_error(findings: list[Finding]) -> None:
    errors = [f for f in findings if f.level == "error"]
    if errors:
        first = errors[0]
        more = f" (and {len(errors) - 1} more errors)" if len(errors) > 1 else ""
        raise ScorecardError(first.file, first.field, f"{first.code}: {first.message}{more}")


# ------------------------------------------------------------------------------------------------- validation


@lru_cache(maxsize=4)
def _validator(directory: str, definition: str | None) -> jsonschema.protocols.Validator:
    schema = json.loads((Path(directory) / SCHEMA_FILE).read_text(encoding="utf-8"))
    if definition is not None:
        schema = {"$ref": f"#/$defs/{definition}", "$defs": schema["$defs"]}
    return jsonschema.Draft202012Validator(schema)


def schema_findings(document: dict[str, Any], path: Path, definition: str | None = None) -> list[Finding]:
    validator = _validator(str(schema_directory(path)), definition)
    return [
        Finding("error", checks.SCHEMA, str(path), error.json_path, error.message)
        for error in sorted(validator.iter_errors(document), key=lambda e: e.json_path)
    ]


def schema_directory(path: Path) -> Path:
    """The schema sits beside the scorecards; overlays live one level down. Fall back to the shipped schema."""
    for candidate in (path.parent, path.parent.parent):
        if (candidate / SCHEMA_FILE).is_file():
            return candidate
    return DEFAULT_DIRECTORY


def document_findings(document: dict[str, Any], path: Path) -> list[Finding]:
    findings = schema_findings(document, path)
    if findings:
        return findings
    if document["id"] != path.stem:
        findings.append(Finding("error", checks.ID_MISMATCH, str(path), "$.id", f"id {document['id']!r} != file name"))
    return findings + checks.check_document(document, str(path))


def overlay_findings(overlay: dict[str, Any], document: dict[str, Any], path: Path) -> list[Finding]:
    findings = schema_findings(overlay, path, "overlay")
    if findings:
        return findings

    def shape_error(field: str, message: str) -> Finding:
        return Finding("error", checks.OVERLAY_SHAPE, str(path), field, message)

    if overlay["scorecard"] != document["id"]:
        findings.append(shape_error("$.scorecard", f"overlay is for {overlay['scorecard']!r}, not {document['id']!r}"))
    if len(overlay["questions"]) != len(document["questions"]):
        message = f"{len(overlay['questions'])} questions, scorecard has {len(document['questions'])}"
        return findings + [shape_error("$.questions", message)]
    for index, (ours, theirs) in enumerate(zip(overlay["questions"], document["questions"], strict=True)):
        if len(ours["answers"]) != len(theirs["answers"]):
            message = f"{len(ours['answers'])} answers, Q{index + 1} has {len(theirs['answers'])}"
            findings.append(shape_error(f"$.questions[{index}].answers", message))
    return findings


# --------------------------------------------------------------------------------------------------- building


def build_scorecard(document: dict[str, Any]) -> Scorecard:
    family = document["family"]
    bands = document.get("likelihood_bands", [])
    lines = tuple(
        PovertyLine(line["slug"], line["label"], tuple(line["lookup"]) if family == "per-line" else expand(bands, line))
        for line in document["poverty_lines"]
    )
    questions = tuple(build_question(question) for question in document["questions"])
    return Scorecard(
        id=document["id"],
        title=document["title"],
        family=family,
        language=document["language"],
        questions=questions,
        lines=lines,
        country=document["country"],
        year=document["year"],
    )


def build_question(question: dict[str, Any]) -> Question:
    answers = tuple(
        Answer(a["text"], tuple(a["points"]) if isinstance(a["points"], list) else (a["points"],), a["letter"])
        for a in question["answers"]
    )
    text = question["text"] or question["nickname"]
    return Question(question["number"], text, answers, question.get("note"), question.get("nickname"))


def expand(bands: list[list[int]], line: dict[str, Any]) -> tuple[float, ...]:
    """Classic band likelihoods as one value per score 0-100 (a score takes the value of its band)."""
    by_score: list[float] = []
    for (low, high), likelihood in zip(bands, line["band_likelihoods"], strict=True):
        by_score += [likelihood] * (min(high, MAX_SCORE) - low + 1)
    return tuple(by_score[: MAX_SCORE + 1])


def apply_overlay(card: Scorecard, overlay: dict[str, Any]) -> Scorecard:
    questions = tuple(
        replace(
            question,
            text=ours.get("text") or question.text,
            note=ours.get("note") or question.note,
            answers=tuple(
                replace(answer, text=text or answer.text)
                for answer, text in zip(question.answers, ours["answers"], strict=True)
            ),
        )
        for question, ours in zip(card.questions, overlay["questions"], strict=True)
    )
    return replace(card, questions=questions, language=overlay["language"])


def summarise(document: dict[str, Any], root: Path) -> ScorecardSummary:
    overlays = tuple(sorted(p.name.split(".")[1] for p in (root / OVERLAY_DIRECTORY).glob(f"{document['id']}.*.json")))
    return ScorecardSummary(
        id=document["id"],
        title=document["title"],
        country=document["country"],
        year=document["year"],
        family=document["family"],
        language=document["language"],
        questions=len(document["questions"]),
        lines=tuple(line["slug"] for line in document["poverty_lines"]),
        scoreable=bool(document["questions"]),
        overlays=overlays,
    )
