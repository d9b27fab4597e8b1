"""Turning a scorecard (duck-typed) into the engine's survey script."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from conversations.scripts import ScriptQuestion, SurveyScript, survey_script


def _answer(text: str) -> SimpleNamespace:
    return SimpleNamespace(text=text, points=(0,))


def test_scorecard_becomes_questions_in_number_order_with_published_options() -> None:
    scorecard = SimpleNamespace(
        id="kenya_2024",
        questions=[
            SimpleNamespace(number=2, text="Roof  material?", answers=[_answer("A. Grass"), _answer("B. Iron")]),
            SimpleNamespace(number=1, text="County?", answers=[_answer("A. Mombasa"), _answer("AB. Elgeyo Marakwet")]),
        ],
    )
    assert survey_script(scorecard) == SurveyScript(
        "kenya_2024",
        (
            ScriptQuestion("County?", ("Mombasa", "Elgeyo Marakwet")),
            ScriptQuestion("Roof material?", ("Grass", "Iron")),
        ),
    )


def test_labels_without_letter_prefix_are_kept() -> None:
    scorecard = SimpleNamespace(
        id=3, questions=[SimpleNamespace(number=1, text="Radio?", answers=[_answer("No"), _answer("Yes, working")])]
    )
    script = survey_script(scorecard)
    assert script.scorecard_id == "3"
    assert script.questions[0].options == ("No", "Yes, working")


def test_answers_may_carry_their_text_as_label() -> None:
    scorecard = SimpleNamespace(
        id="x", questions=[SimpleNamespace(number=1, text="Radio?", answers=[SimpleNamespace(label="B. Yes")])]
    )
    assert survey_script(scorecard).questions[0].options == ("Yes",)


@pytest.mark.slow  # loading and validating ~75 scorecard files takes seconds; the paging itself is fast
def test_every_published_scorecard_question_fits_ussd_with_every_option_reachable() -> None:
    from pathlib import Path

    from conversations.screens import Budget, ScreenSpec, paginate
    from gateway.messages import Choice
    from scoring.loader import load_scorecard

    scorecard_ids = sorted(
        path.stem for path in (Path(__file__).parents[3] / "scorecards").glob("*.json") if path.stem != "schema"
    )
    assert "KEN-2024" in scorecard_ids
    for scorecard_id in scorecard_ids:
        script = survey_script(load_scorecard(scorecard_id))
        for question in script.questions:
            items = tuple(Choice(str(n), label) for n, label in enumerate(question.options, start=1))
            pages = paginate(ScreenSpec(f"10/10 {question.text}", items, back=True, home=True), Budget("ussd"))
            assert all(Budget("ussd").fits(page.text) for page in pages), scorecard_id
            keys = [c.key for page in pages for c in page.choices if c.key not in ("98", "0", "00")]
            assert keys == [item.key for item in items], scorecard_id
