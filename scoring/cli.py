"""`scorecards` command group (click, as used by Flask's CLI): list, show, validate and score scorecards.

The lead registers it on the app's CLI with `make_scorecards_group(headline_settings=...)`, where the
provider returns the MFI's headline line slug and optional bands (or None when PPI is not configured).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

import click

from scoring.errors import InvalidAnswers, ScoringError
from scoring.loader import list_scorecards, load_scorecard, validate
from scoring.scorecard import Bands, ScoreResult, band_for, headline, headline_slug, score

T = TypeVar("T")
HeadlineSettings = Callable[[], tuple[str, Bands | None] | None]


def make_scorecards_group(
    headline_settings: HeadlineSettings | None = None, directory: Path | None = None
) -> click.Group:
    """Build the `scorecards` group; `directory` overrides the shipped scorecards folder (tests)."""

    @click.group(name="scorecards", help="PPI scorecards shipped with the service.")
    def group() -> None:
        pass

    @group.command(name="list")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
    def list_command(as_json: bool) -> None:
        """List the scorecards."""
        summaries = list_scorecards(directory)
        if as_json:
            click.echo(json.dumps([asdict(s) for s in summaries], indent=2, ensure_ascii=False))
            return
        for s in summaries:
            note = "" if s.scoreable else "  (not scoreable)"
            click.echo(
                f"{s.id:<14} {s.family:<9} {s.language:<3} {s.questions:>2} questions {len(s.lines):>2} lines{note}"
            )

    @group.command(name="show")
    @click.argument("scorecard_id")
    def show_command(scorecard_id: str) -> None:
        """Show one scorecard's questions, answers and poverty lines."""
        card = guarded(lambda: load_scorecard(scorecard_id, directory=directory))
        click.echo(f"{card.id}: {card.title} [{card.family}, {card.language}]")
        for question in card.questions:
            click.echo(f"Q{question.number}. {question.text}")
            for position, answer in enumerate(question.answers, start=1):
                click.echo(f"   {position}) {answer.text}  [{', '.join(map(str, answer.points))}]")
        for line in card.lines:
            click.echo(f"line {line.slug}: {line.label}")

    @group.command(name="validate")
    @click.argument("scorecard_id", required=False)
    def validate_command(scorecard_id: str | None) -> None:
        """Validate one scorecard or all; exits non-zero when there are errors."""
        findings = guarded(lambda: validate(scorecard_id, directory))
        for f in findings:
            click.echo(f"{f.level}: {f.code}: {Path(f.file).name}: {f.field}: {f.message}")
        errors = sum(1 for f in findings if f.level == "error")
        click.echo(f"{errors} error(s), {len(findings) - errors} warning(s)")
        if errors:
            raise SystemExit(1)

    @group.command(name="score")
    @click.argument("scorecard_id")
    @click.option("--answers", required=True, help="Answer positions, 1-based, comma-separated: 3,1,2,...")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    def score_command(scorecard_id: str, answers: str, as_json: bool) -> None:
        """Score one answer set."""
        card = guarded(lambda: load_scorecard(scorecard_id, directory=directory))
        result = guarded(lambda: score(card, parse_answers(answers)))
        document = result_document(result, headline_settings() if headline_settings else None)
        if as_json:
            click.echo(json.dumps(document, indent=2, ensure_ascii=False))
            return
        if result.total is not None:
            click.echo(f"score: {result.total}")
        for line in document["lines"]:
            click.echo(f"{line['id']}: score {line['score']}, likelihood {line['likelihood']:.1%}  ({line['label']})")
        if "headline" in document:
            click.echo(f"headline: {json.dumps(document['headline'], ensure_ascii=False)}")

    return group


def parse_answers(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise click.ClickException(f"--answers must be whole numbers separated by commas, got {text!r}") from exc


def guarded(action: Callable[[], T]) -> T:
    """Run `action`, turning scoring errors into one clear line and a non-zero exit."""
    try:
        return action()
    except InvalidAnswers as exc:
        raise click.ClickException("invalid answers: " + "; ".join(map(str, exc.problems))) from exc
    except ScoringError as exc:
        raise click.ClickException(str(exc)) from exc


def result_document(result: ScoreResult, settings: tuple[str, Bands | None] | None) -> dict[str, Any]:
    document: dict[str, Any] = {
        "scorecard": result.scorecard_id,
        "lines": [
            {"id": line.slug, "label": line.label, "score": line.score, "likelihood": line.likelihood}
            for line in result.lines
        ],
    }
    if result.total is not None:
        document["score"] = result.total
    if settings is not None:
        configured, bands = settings
        slug = headline_slug([line.slug for line in result.lines], configured)  # as a survey on this scorecard
        line = guarded(lambda: headline(result, slug)) if slug is not None else None
        score = line.score if line is not None else result.total
        band = band_for(bands, score).label if bands and score is not None else None
        likelihood = line.likelihood if line is not None else None
        document["headline"] = {"line": slug, "score": score, "likelihood": likelihood, "band": band}
    return document


scorecards = make_scorecards_group()


if __name__ == "__main__":
    scorecards()
