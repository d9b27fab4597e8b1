"""Loading scorecard files: validation on load, errors naming file and field, overlays, listing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from scoring.errors import ScorecardError, UnknownScorecard
from scoring.loader import DEFAULT_DIRECTORY, list_scorecards, load_for_reader, load_scorecard, validate
from scoring.scorecard import score


@pytest.fixture
def cards(tmp_path: Path) -> Path:
    """A scorecards folder with the schema and two shipped scorecards."""
    for name in ("schema.json", "KEN-2024.json", "PAK-2009.json"):
        shutil.copy(DEFAULT_DIRECTORY / name, tmp_path / name)
    return tmp_path


def edit(path: Path, change: object) -> None:
    document = json.loads(path.read_text(encoding="utf-8"))
    change(document)  # type: ignore[operator]
    path.write_text(json.dumps(document), encoding="utf-8")


def write_overlay(cards: Path, scorecard_id: str, language: str, questions: list[dict]) -> None:
    (cards / "overlays").mkdir(exist_ok=True)
    overlay = {"scorecard": scorecard_id, "language": language, "questions": questions}
    (cards / "overlays" / f"{scorecard_id}.{language}.json").write_text(json.dumps(overlay), encoding="utf-8")


def pak_overlay(answer_counts: list[int]) -> list[dict]:
    return [
        {"text": f"Swali {i + 1}?", "answers": [f"Jibu {j + 1}" for j in range(n)]} for i, n in enumerate(answer_counts)
    ]


def test_shipped_folder_is_found_next_to_the_package() -> None:
    assert DEFAULT_DIRECTORY == Path(__file__).resolve().parents[3] / "scorecards"
    assert load_scorecard("KEN-2024").language == "en"
    assert load_scorecard("MEX-2024").language == "es"


def test_unknown_id_raises_a_clear_error(cards: Path) -> None:
    with pytest.raises(UnknownScorecard, match="unknown scorecard 'XYZ-1999'"):
        load_scorecard("XYZ-1999", directory=cards)
    with pytest.raises(UnknownScorecard):
        load_scorecard("../KEN-2024", directory=cards)


def test_schema_error_names_file_and_field(cards: Path) -> None:
    edit(cards / "KEN-2024.json", lambda d: d["poverty_lines"][2]["lookup"].__setitem__(5, 1.7))

    with pytest.raises(ScorecardError) as caught:
        load_scorecard("KEN-2024", directory=cards)
    assert caught.value.file.endswith("KEN-2024.json")
    assert caught.value.field == "$.poverty_lines[2].lookup[5]"
    errors = [f for f in validate("KEN-2024", cards) if f.level == "error"]
    assert [(f.code, f.field) for f in errors] == [("schema", "$.poverty_lines[2].lookup[5]")]


def test_points_shape_error_names_the_answer(cards: Path) -> None:
    edit(cards / "KEN-2024.json", lambda d: d["questions"][1]["answers"][0]["points"].pop())

    with pytest.raises(ScorecardError, match="points-shape") as caught:
        load_scorecard("KEN-2024", directory=cards)
    assert caught.value.field == "questions[1].answers[0].points"


def test_id_must_match_file_name(cards: Path) -> None:
    shutil.copy(cards / "PAK-2009.json", cards / "PAK-2010.json")
    assert [f.code for f in validate("PAK-2010", cards) if f.level == "error"] == ["id-mismatch"]


def test_invalid_json_is_an_error_not_a_crash(cards: Path) -> None:
    (cards / "PAK-2009.json").write_text("{not json", encoding="utf-8")
    (error,) = [f for f in validate(None, cards) if f.level == "error"]
    assert error.file.endswith("PAK-2009.json")


def test_overlay_replaces_text_by_position_and_keeps_points(cards: Path) -> None:
    english = load_scorecard("PAK-2009", directory=cards)
    write_overlay(cards, "PAK-2009", "sw", pak_overlay([len(q.answers) for q in english.questions]))

    swahili = load_scorecard("PAK-2009", language="sw", directory=cards)

    assert swahili.language == "sw"
    assert swahili.questions[0].text == "Swali 1?"
    assert swahili.questions[0].answers[1].text == "Jibu 2"
    assert swahili.questions[0].answers[1].points == english.questions[0].answers[1].points
    answers = [1] * len(english.questions)
    assert score(swahili, answers).lines == score(english, answers).lines


def test_overlay_null_entries_keep_the_published_text(cards: Path) -> None:
    english = load_scorecard("PAK-2009", directory=cards)
    questions = pak_overlay([len(q.answers) for q in english.questions])
    questions[0]["text"] = None
    questions[0]["answers"][0] = None
    write_overlay(cards, "PAK-2009", "ur", questions)

    translated = load_scorecard("PAK-2009", language="ur", directory=cards)
    assert translated.questions[0].text == english.questions[0].text
    assert translated.questions[0].answers[0].text == english.questions[0].answers[0].text


def test_overlay_with_wrong_shape_is_rejected(cards: Path) -> None:
    english = load_scorecard("PAK-2009", directory=cards)
    counts = [len(q.answers) for q in english.questions]
    counts[2] += 1
    write_overlay(cards, "PAK-2009", "sw", pak_overlay(counts))

    with pytest.raises(ScorecardError, match="overlay-shape") as caught:
        load_scorecard("PAK-2009", language="sw", directory=cards)
    assert caught.value.field == "$.questions[2].answers"
    assert any(f.code == "overlay-shape" for f in validate("PAK-2009", cards))


def test_an_overlay_in_the_scorecards_own_language_corrects_what_readers_see(cards: Path) -> None:
    published = load_scorecard("PAK-2009", directory=cards)
    assert published.language == "en"
    questions: list[dict] = [{"text": None, "answers": [None] * len(q.answers)} for q in published.questions]
    questions[1]["text"] = "A corrected question?"
    write_overlay(cards, "PAK-2009", "en", questions)

    for reader in ("en", "fr"):  # English readers, and readers of a language nobody translated it into
        seen = load_for_reader("PAK-2009", reader, directory=cards)
        assert seen.questions[1].text == "A corrected question?"
        assert seen.questions[0].text == published.questions[0].text
        assert seen.questions[1].answers == published.questions[1].answers  # texts and points as published
    assert load_scorecard("PAK-2009", directory=cards).questions[1].text == published.questions[1].text


def test_the_shipped_english_corrections_of_kenya_2024() -> None:
    published = load_scorecard("KEN-2024")
    seen = load_for_reader("KEN-2024", "en")
    assert published.questions[7].text.endswith("Ripe Bananast?")  # the typo is the workbook's, kept as published
    assert seen.questions[7].text.endswith("any Ripe Bananas?")
    assert seen.questions[2].answers[8].text == "G. Concrete or cement or terrazzo"
    assert [a.points for a in seen.questions[2].answers] == [a.points for a in published.questions[2].answers]


def test_missing_overlay_language_is_an_error(cards: Path) -> None:
    with pytest.raises(ScorecardError, match="no 'sw' overlay"):
        load_scorecard("PAK-2009", language="sw", directory=cards)


def test_list_summarises_each_file(cards: Path) -> None:
    summaries = {s.id: s for s in list_scorecards(cards)}
    assert sorted(summaries) == ["KEN-2024", "PAK-2009"]
    assert summaries["KEN-2024"].family == "per-line"
    assert len(summaries["KEN-2024"].lines) == 12
    assert summaries["PAK-2009"].questions == 10
