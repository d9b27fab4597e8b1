"""The `scorecards` click group, run with click's CliRunner."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner

from scoring.cli import make_scorecards_group
from scoring.loader import DEFAULT_DIRECTORY
from scoring.scorecard import parse_bands

KEN_2024_ANSWERS = "1,1,1,1,1,1,1,1,1,1"


def run(*args: str, group: object = None) -> tuple[int, str]:
    result = CliRunner().invoke(group or make_scorecards_group(), list(args))  # type: ignore[arg-type]
    return result.exit_code, result.output


def test_list_json_includes_every_scorecard() -> None:
    code, output = run("list", "--json")
    assert code == 0
    ids = {item["id"] for item in json.loads(output)}
    assert {"KEN-2024", "IND-GF", "MAR-2007"} <= ids


def test_list_marks_cards_that_cannot_score() -> None:
    code, output = run("list")
    assert code == 0
    assert "MAR-2007" in output and "not scoreable" in output


def test_show_prints_questions_and_answer_positions() -> None:
    code, output = run("show", "HTI-2006")
    assert code == 0
    assert "Q1. ppi_haiti_2006" in output
    assert "   1) " in output


def test_score_json_lists_every_line_without_headline_when_no_settings() -> None:
    code, output = run("score", "KEN-2024", "--answers", KEN_2024_ANSWERS, "--json")
    document = json.loads(output)
    assert code == 0
    assert document["scorecard"] == "KEN-2024"
    assert len(document["lines"]) == 12
    assert set(document["lines"][0]) == {"id", "label", "score", "likelihood"}
    assert "headline" not in document


def test_score_json_adds_headline_from_injected_settings() -> None:
    bands = parse_bands("0-24:Very poor,25-44:Poor,45-69:At risk,70-100:Non-poor")
    group = make_scorecards_group(lambda: ("food-poverty-line", bands))

    code, output = run("score", "KEN-2024", "--answers", KEN_2024_ANSWERS, "--json", group=group)

    document = json.loads(output)
    food = next(line for line in document["lines"] if line["id"] == "food-poverty-line")
    assert code == 0
    assert document["headline"] == {
        "line": "food-poverty-line",
        "score": food["score"],
        "likelihood": food["likelihood"],
        "band": "Non-poor" if food["score"] >= 70 else document["headline"]["band"],
    }


def test_headline_settings_returning_none_means_no_headline() -> None:
    code, output = run(
        "score", "PAK-2009", "--answers", "1,1,1,1,1,1,1,1,1,1", "--json", group=make_scorecards_group(lambda: None)
    )
    assert code == 0
    assert "headline" not in json.loads(output)


def test_bad_answers_print_one_clear_line_and_fail() -> None:
    code, output = run("score", "KEN-2024", "--answers", "1,1,99")
    assert code != 0
    assert output.strip().count("\n") == 0
    assert "Q3: reply 1-" in output and "Q4: reply" in output


def test_non_numeric_answers_fail_clearly() -> None:
    code, output = run("score", "KEN-2024", "--answers", "a,b")
    assert code != 0
    assert "whole numbers" in output


def test_unknown_scorecard_fails_with_one_line() -> None:
    code, output = run("score", "XYZ-1999", "--answers", "1")
    assert code != 0
    assert "unknown scorecard 'XYZ-1999'" in output
    assert output.strip().count("\n") == 0


def test_validate_passes_on_shipped_files_with_warnings() -> None:
    code, output = run("validate", "KEN-2024")
    assert code == 0
    assert "blank-points" in output
    assert output.strip().endswith("warning(s)")


def test_validate_fails_on_errors(tmp_path: Path) -> None:
    for name in ("schema.json", "PAK-2009.json"):
        shutil.copy(DEFAULT_DIRECTORY / name, tmp_path / name)
    (tmp_path / "PAK-2009.json").write_text('{"id": "PAK-2009"}', encoding="utf-8")

    code, output = run("validate", group=make_scorecards_group(directory=tmp_path))

    assert code == 1
    assert "error: schema: PAK-2009.json" in output
