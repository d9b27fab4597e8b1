"""The survey dialogue: questions, paging of long option lists, drafts, review, submit, officer mode."""

from __future__ import annotations

from conversation_kit import JANE, KENYA, SMALL, Session, client_context, effect_kinds, officer_context

from conversations.effects import DiscardDraft, FindClient, SaveAnswer, SubmitSurvey
from conversations.screens import Budget


def _in_survey(**changes: object) -> Session:
    session = Session(client_context(**changes))
    session.start()
    session.type("1")
    return session


def test_first_question_shows_its_text_and_numbered_options() -> None:
    session = _in_survey()
    assert session.screen.startswith("1/3 Does the household own a radio?")
    assert "1 No" in session.screen and "2 Yes" in session.screen
    assert "0 Back" in session.screen and "00 Menu" in session.screen


def test_answer_is_saved_at_once_and_next_question_follows() -> None:
    session = _in_survey()
    step = session.type("2")
    assert step.effects == (SaveAnswer(JANE.id, 0, 2, "small_1", "self"),)
    assert session.screen.startswith("2/3 How many rooms?")


def test_invalid_choice_repeats_question_without_advancing() -> None:
    session = _in_survey()
    for bad in ("abc", "7", "", "0.5", "٣", "1" * 5000):
        step = session.type(bad)
        assert not step.effects
        assert "Please reply with a number from 1 to 2." in step.replies[0].text
        assert "Does the household own a radio?" in step.replies[0].text
        session.type("00", "1")  # reset the invalid counter without answering


def test_three_invalid_replies_end_politely_and_keep_the_draft() -> None:
    session = _in_survey()
    session.type("2")
    steps = [session.type(text) for text in ("x", "y", "z")]
    assert steps[-1].finished and steps[-1].replies[0].final
    assert "answers are saved" in steps[-1].replies[0].text
    assert not any(isinstance(effect, DiscardDraft) for step in session.steps for effect in step.effects)


def test_kenya_county_list_is_paged_with_real_option_numbers() -> None:
    session = _in_survey(survey=KENYA)
    pages = [session.screen]
    while "98 More" in session.screen:
        pages.append(session.type("98").replies[0].text)
    assert len(pages) > 2
    shown = "\n".join(pages)
    for number, county in enumerate(KENYA.questions[0].options, start=1):
        assert f"{number} {county}" in shown
    assert all(Budget("ussd").fits(page) for page in pages)


def _option_numbers(screen: str) -> list[int]:
    numbers = [int(line.split()[0]) for line in screen.split("\n") if line.split() and line.split()[0].isdigit()]
    return [number for number in numbers if number not in (0, 98)]


def test_paging_on_after_an_invalid_reply_skips_no_option() -> None:
    session = _in_survey(survey=KENYA)
    invalid = session.type("99").replies[0].text
    assert invalid.startswith("Please reply with a number")
    shown = _option_numbers(invalid) + _option_numbers(session.type("98").replies[0].text)
    assert shown == list(range(1, len(shown) + 1))


def test_number_typed_on_a_later_page_picks_that_option() -> None:
    session = _in_survey(survey=KENYA)
    session.type("98")
    step = session.type("23")
    assert step.effects == (SaveAnswer(JANE.id, 0, 23, "kenya_2024", "self"),)


def test_back_on_a_later_page_shows_the_previous_page() -> None:
    session = _in_survey(survey=KENYA)
    first = session.screen
    session.type("98")
    assert session.type("0").replies[0].text == first


def test_back_on_first_page_goes_to_the_previous_question() -> None:
    session = _in_survey()
    session.type("1")
    session.type("0")
    assert session.screen.startswith("1/3 Does the household own a radio?")


def test_double_zero_leaves_a_question_for_the_main_menu() -> None:
    session = _in_survey(survey=KENYA)
    session.type("98", "00")
    assert "1 PPI survey" in session.screen


def test_draft_offers_to_continue_or_start_again() -> None:
    session = _in_survey(draft={"answers": {"0": 2}, "started_at": "3 May"})
    assert "You started a survey on 3 May." in session.screen
    assert "1 Continue survey" in session.screen and "2 Start again" in session.screen


def test_continue_resumes_at_the_first_unanswered_question() -> None:
    session = _in_survey(draft={"answers": {"0": 2, "2": 1}, "started_at": "3 May"})
    session.type("1")
    assert session.screen.startswith("2/3 How many rooms?")
    session.type("3")
    assert "Check your answers" in session.screen


def test_start_again_discards_the_draft_and_starts_at_question_one() -> None:
    session = _in_survey(draft={"answers": {"0": 2}})
    step = session.type("2")
    assert step.effects == (DiscardDraft(JANE.id, "self"),)
    assert session.screen.startswith("1/3")


def test_draft_answers_that_do_not_fit_the_survey_are_ignored() -> None:
    session = _in_survey(draft={"answers": {"0": 9, "x": 1, "7": 1}})
    assert session.screen.startswith("1/3")


def test_review_lists_answers_and_submit_sends_them() -> None:
    session = _in_survey()
    session.type("2", "3", "1")
    assert "Q1: Yes" in session.screen and "Q2: Three or more" in session.screen and "Q3: Firewood" in session.screen
    assert "1 Submit" in session.screen and "2 Change an answer" in session.screen
    step = session.type("1")
    assert step.effects == (SubmitSurvey(JANE.id, (2, 3, 1), "self", "small_1"),)
    assert step.replies == () and not step.finished


def test_change_an_answer_then_return_to_review() -> None:
    session = _in_survey()
    session.type("2", "3", "1", "2")
    assert "Which question" in session.screen
    session.type("2")
    assert session.screen.startswith("2/3 How many rooms?")
    step = session.type("1")
    assert step.effects == (SaveAnswer(JANE.id, 1, 1, "small_1", "self"),)
    assert "Q2: One" in session.screen and "1 Submit" in session.screen


def test_client_sees_thanks_without_band_unless_allowed() -> None:
    session = _in_survey()
    session.type("2", "3", "1", "1")
    step = session.result("survey_submitted", band="Very poor", headline_score=31)
    assert step.finished and step.replies[0].final
    assert "Thank you" in step.replies[0].text
    assert "Very poor" not in step.replies[0].text and "31" not in step.replies[0].text


def test_client_sees_band_when_the_mfi_allows_it() -> None:
    session = _in_survey(show_band_to_client=True)
    session.type("2", "3", "1", "1")
    step = session.result("survey_submitted", band="Moderate", headline_score=55)
    assert "Your result: Moderate" in step.replies[0].text
    assert "55" not in step.replies[0].text


def test_failed_submit_keeps_answers_and_returns_to_review() -> None:
    session = _in_survey()
    session.type("2", "3", "1", "1")
    step = session.result("service_unavailable")
    assert "could not submit" in step.replies[0].text and "1 Submit" in step.replies[0].text


def test_no_survey_open_says_so_on_the_menu() -> None:
    session = _in_survey(survey=None)
    assert "No survey is open right now." in session.screen and "1 PPI survey" in session.screen


def test_survey_changed_between_hops_does_not_crash() -> None:
    session = _in_survey()
    session.context = client_context(survey=KENYA)
    step = session.type("1")
    assert "This survey has changed" in step.replies[0].text


def test_officer_finds_client_confirms_and_runs_the_survey() -> None:
    session = Session(officer_context())
    session.start()
    session.type("1")
    assert "Enter the client ID" in session.screen
    step = session.type(" c0002 ")
    assert step.effects == (FindClient("c0002"),)  # trimmed, as typed: the shell matches it in any case
    session.result("client_found", id=42, masked_name="Jo*** Ka*** (C0002)")
    assert session.screen.startswith("Jo*** Ka*** (C0002)?")
    assert "1 Yes" in session.screen and "2 No" in session.screen
    session.type("1")
    assert session.screen.startswith("1/3")
    answers = [session.type(text) for text in ("1", "2", "3")]
    assert answers[0].effects == (SaveAnswer(42, 0, 1, "small_1", "officer"),)
    submit = session.type("1")
    assert submit.effects == (SubmitSurvey(42, (1, 2, 3), "officer", "small_1"),)
    final = session.result("survey_submitted", band="Very poor", headline_score=31)
    assert "Score: 31" in final.replies[0].text and "Band: Very poor" in final.replies[0].text
    assert final.finished


def test_officer_no_on_confirmation_asks_for_another_id() -> None:
    session = Session(officer_context())
    session.start()
    session.type("1", "C0002")
    session.result("client_found", id=42, masked_name="Jo*** Ka***")
    assert session.screen.startswith("Jo*** Ka*** (C0002)?")
    session.type("2")
    assert "Enter the client ID" in session.screen


def test_officer_unknown_client_id_asks_again() -> None:
    session = Session(officer_context())
    session.start()
    session.type("1", "C9999")
    step = session.result("client_not_found")
    assert "No client found" in step.replies[0].text and "Enter the client ID" in step.replies[0].text


def test_three_unknown_client_ids_in_a_row_end_the_session() -> None:
    session = Session(officer_context())
    session.start()
    session.type("1")
    for attempt in range(3):
        session.type(f"C999{attempt}")
        step = session.result("client_not_found")
    assert step.finished and "Too many invalid replies" in step.replies[0].text


def test_a_wrong_reply_after_an_unknown_id_counts_towards_the_limit() -> None:
    session = Session(officer_context())
    session.start()
    session.type("1", "C9999")
    session.result("client_not_found")
    assert not session.type("C9998").finished
    assert session.result("client_not_found").replies[0].text.startswith("No client found")
    session.type("C0002")
    found = session.result("client_found", id=42, masked_name="Jo*** Ka*** (C0002)")
    assert not found.finished and "Jo*** Ka***" in found.replies[0].text


def test_officer_resumes_a_draft_found_with_the_client() -> None:
    session = Session(officer_context())
    session.start()
    session.type("1", "C0002")
    session.result("client_found", id=42, masked_name="Jo*** Ka***", draft={"answers": {"0": 1}})
    session.type("1")
    assert "1 Continue survey" in session.screen
    session.type("1")
    assert session.screen.startswith("2/3")
    assert effect_kinds(session.steps[-1]) == []
    assert SMALL.scorecard_id == "small_1"


def test_officer_sees_the_day_the_found_draft_was_started() -> None:
    session = Session(officer_context())
    session.start()
    session.type("1", "C0002")
    draft = {"answers": {"0": 1}, "scorecard_id": "small_1", "started_at": "3 May"}
    session.result("client_found", id=42, masked_name="Jo*** Ka***", draft=draft)
    assert session.screen.startswith("Jo*** Ka*** (C0002)?")  # the confirm screen is not about the draft
    session.type("1")
    assert "You started a survey on 3 May." in session.screen and "2 Start again" in session.screen


def test_draft_from_an_older_scorecard_is_not_offered() -> None:
    session = _in_survey(draft={"answers": {"0": 1}, "scorecard_id": "small_0", "started_at": "3 May"})
    assert session.screen.startswith("1/3")
