"""The PPI survey dialogue: resume or restart a draft, one question per screen, review, change an answer, submit.

Used by clients (mode "self") and by officers surveying a client (mode "officer"). Every answer goes to the
durable draft at once (`SaveAnswer`), so a dropped USSD session resumes at the first unanswered question.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from conversations.dialogue import Context, EffectResult, State, Translate
from conversations.effects import DiscardDraft, SaveAnswer, SubmitSurvey
from conversations.nodes import Invalid, Node, Outcome, goto, home_node, parse_number, result_int, result_str
from conversations.screens import ScreenSpec
from conversations.scripts import SurveyScript
from gateway.messages import Choice

REVIEW_LABEL_LENGTH = 24
SURVEY_NODES = frozenset({"resume", "question", "review", "change_pick", "await_submit"})


def begin(
    state: State, context: Context, _: Translate, *, mode: str, client_id: int, draft: Mapping[str, Any] | None
) -> Outcome:
    """Enter the survey for `client_id`: offer to resume a draft that has answers, else start at question 1."""
    survey = context.survey
    if survey is None or not survey.questions:
        return Outcome(goto(state, home_node(state, context)), notice=_("No survey is open right now."))
    answers = draft_answers(draft, survey)
    state = goto(
        state,
        "resume" if any(a is not None for a in answers) else "question",
        mode=mode,
        client_id=client_id,
        scorecard_id=survey.scorecard_id,
        answers=answers,
        question=0,
        reviewing=False,
        info_title=draft_label(draft),
    )
    return Outcome(state)


def draft_answers(draft: Mapping[str, Any] | None, survey: SurveyScript) -> tuple[int | None, ...]:
    """Answers by question index from a draft, keeping only those that are valid for this survey."""
    answers: list[int | None] = [None] * len(survey.questions)
    stored = draft.get("answers") if isinstance(draft, Mapping) else None
    drafted_for = draft.get("scorecard_id") if isinstance(draft, Mapping) else None
    if not isinstance(stored, Mapping) or (isinstance(drafted_for, str) and drafted_for != survey.scorecard_id):
        return tuple(answers)
    for key, position in stored.items():
        index = int(key) if isinstance(key, int | str) and str(key).isdecimal() else -1
        if 0 <= index < len(answers) and isinstance(position, int) and not isinstance(position, bool):
            if 1 <= position <= len(survey.questions[index].options):
                answers[index] = position
    return tuple(answers)


def draft_label(draft: Mapping[str, Any] | None) -> str | None:
    """The day a draft was started, as the shell formatted it for the resume screen."""
    label = draft.get("started_at") if isinstance(draft, Mapping) else None
    return label[:20] if isinstance(label, str) and label.strip() else None


def _survey(state: State, context: Context) -> SurveyScript | None:
    """The active survey if it is still the one this dialogue started with."""
    survey = context.survey
    if survey is None or survey.scorecard_id != state.scorecard_id or len(survey.questions) != len(state.answers):
        return None
    return survey


def _gone(state: State, context: Context, _: Translate) -> Outcome:
    return Outcome(goto(state, home_node(state, context)), notice=_("This survey has changed. Please start again."))


def _unavailable_screen(_: Translate) -> ScreenSpec:
    return ScreenSpec(_("This survey has changed. Please start again."), home=True)


def _next_question(state: State, after: int) -> State:
    """The first unanswered question after `after` (then from the start); the review when all are answered."""
    order = [*range(after + 1, len(state.answers)), *range(0, after + 1)]
    for index in order:
        if state.answers[index] is None:
            return goto(state, "question", question=index, reviewing=False)
    return goto(state, "review", reviewing=False)


# --- resume -----------------------------------------------------------------------------------------------------


def _resume_screen(state: State, context: Context, _: Translate) -> ScreenSpec:
    title = (
        _("You started a survey on %(date)s.", date=state.info_title)
        if state.info_title
        else _("You have an unfinished survey.")
    )
    items = (Choice("1", _("Continue survey")), Choice("2", _("Start again")))
    return ScreenSpec(title, items, back=True, home=True)


def _resume_input(state: State, text: str, context: Context, _: Translate) -> Outcome | Invalid:
    choice = parse_number(text, 2)
    if choice is None:
        return Invalid(_("Please choose 1 or 2."))
    if _survey(state, context) is None or state.client_id is None:
        return _gone(state, context, _)
    if choice == 1:
        return Outcome(_next_question(state, -1))
    fresh = state.evolve(answers=(None,) * len(state.answers))
    return Outcome(goto(fresh, "question", question=0), effects=(DiscardDraft(state.client_id, state.mode),))


def _to_home(state: State, context: Context, _: Translate) -> Outcome:
    return Outcome(goto(state, home_node(state, context)))


# --- one question -------------------------------------------------------------------------------------------------


def _question_screen(state: State, context: Context, _: Translate) -> ScreenSpec:
    survey = _survey(state, context)
    if survey is None or not 0 <= state.question < len(survey.questions):
        return _unavailable_screen(_)
    question = survey.questions[state.question]
    title = f"{state.question + 1}/{len(survey.questions)} {question.text}"
    items = tuple(Choice(str(position), label) for position, label in enumerate(question.options, start=1))
    return ScreenSpec(title, items, back=True, home=True)


def _invalid_option(_: Translate, highest: int) -> str:
    return _("Please reply with a number from 1 to %(n)d.", n=highest)


def _question_input(state: State, text: str, context: Context, _: Translate) -> Outcome | Invalid:
    survey = _survey(state, context)
    if survey is None or state.client_id is None or not 0 <= state.question < len(survey.questions):
        return _gone(state, context, _)
    options = survey.questions[state.question].options
    position = parse_number(text, len(options))
    if position is None:
        return Invalid(_invalid_option(_, len(options)))
    answers = list(state.answers)
    answers[state.question] = position
    answered = state.evolve(answers=tuple(answers))
    save = SaveAnswer(state.client_id, state.question, position, survey.scorecard_id, state.mode)
    following = (
        goto(answered, "review", reviewing=False) if state.reviewing else _next_question(answered, state.question)
    )
    return Outcome(following, effects=(save,))


def _question_back(state: State, context: Context, _: Translate) -> Outcome:
    if state.reviewing:
        return Outcome(goto(state, "review", reviewing=False))
    if state.question > 0:
        return Outcome(goto(state, "question", question=state.question - 1))
    return _to_home(state, context, _)


# --- review and change ---------------------------------------------------------------------------------------------


def _review_screen(state: State, context: Context, _: Translate) -> ScreenSpec:
    survey = _survey(state, context)
    if survey is None:
        return _unavailable_screen(_)
    lines = [_("Check your answers:")]
    for index, (question, position) in enumerate(zip(survey.questions, state.answers, strict=True), start=1):
        label = question.options[position - 1] if position else "-"
        lines.append(_("Q%(n)d: %(answer)s", n=index, answer=_shorten(label)))
    items = (Choice("1", _("Submit")), Choice("2", _("Change an answer")))
    return ScreenSpec("\n".join(lines), items, back=True, home=True)


def _shorten(label: str) -> str:
    # "..." rather than "…": the ellipsis character is not GSM-7 and would cut the USSD budget to 80.
    return label if len(label) <= REVIEW_LABEL_LENGTH else label[: REVIEW_LABEL_LENGTH - 3].rstrip() + "..."


def _review_input(state: State, text: str, context: Context, _: Translate) -> Outcome | Invalid:
    choice = parse_number(text, 2)
    if choice is None:
        return Invalid(_("Please choose 1 or 2."))
    survey = _survey(state, context)
    if survey is None or state.client_id is None:
        return _gone(state, context, _)
    if choice == 2:
        return Outcome(goto(state, "change_pick"))
    if any(answer is None for answer in state.answers):
        return Outcome(_next_question(state, -1))
    answers = tuple(answer or 0 for answer in state.answers)
    submit = SubmitSurvey(state.client_id, answers, state.mode, survey.scorecard_id)
    return Outcome(goto(state, "await_submit"), effects=(submit,), wait=True)


def _review_back(state: State, context: Context, _: Translate) -> Outcome:
    return Outcome(goto(state, "question", question=max(0, len(state.answers) - 1)))


def _change_screen(state: State, context: Context, _: Translate) -> ScreenSpec:
    prompt = _("Which question do you want to change? Reply 1 to %(n)d.", n=len(state.answers))
    return ScreenSpec(prompt, back=True, home=True)


def _change_input(state: State, text: str, context: Context, _: Translate) -> Outcome | Invalid:
    number = parse_number(text, len(state.answers))
    if number is None:
        return Invalid(_invalid_option(_, len(state.answers)))
    return Outcome(goto(state, "question", question=number - 1, reviewing=True))


def _change_back(state: State, context: Context, _: Translate) -> Outcome:
    return Outcome(goto(state, "review"))


# --- submit -------------------------------------------------------------------------------------------------------


def _submit_result(state: State, result: EffectResult, context: Context, _: Translate) -> Outcome:
    done = goto(state, "end", answers=(), scorecard_id=None)
    if result.kind != "survey_submitted":
        return Outcome(goto(state, "review"), notice=_("We could not submit your survey now. Your answers are saved."))
    band = result_str(result.data, "band")
    if state.mode == "officer":
        return Outcome(done, final=_officer_summary(state, result, band, _))
    lines = [_("Thank you! Your survey is complete.")]
    if context.show_band_to_client and band:
        lines.append(_("Your result: %(band)s", band=band))
    return Outcome(done, final="\n".join(lines))


def _officer_summary(state: State, result: EffectResult, band: str | None, _: Translate) -> str:
    lines = [_("Survey saved for %(client)s.", client=state.client_label or "")]
    score = result_int(result.data, "headline_score")
    if score is not None:
        lines.append(_("Score: %(score)d", score=score))
    if band:
        lines.append(_("Band: %(band)s", band=band))
    return "\n".join(lines)


NODES = (
    Node("resume", _resume_screen, _resume_input, on_back=_to_home),
    Node("question", _question_screen, _question_input, on_back=_question_back),
    Node("review", _review_screen, _review_input, on_back=_review_back),
    Node("change_pick", _change_screen, _change_input, on_back=_change_back),
    Node("await_submit", on_result=_submit_result, fallback="review"),
)
