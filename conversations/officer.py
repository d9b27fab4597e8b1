"""The loan officer's dialogue: find a client by external id, confirm the masked name, then run the survey for them.

Officers see the headline score and band after submitting (the survey flow's officer summary); the client's name is
masked by the shell ("Jo*** Ka***") so a borrowed phone does not reveal the client list.
"""

from __future__ import annotations

from conversations import survey
from conversations.dialogue import Context, EffectResult, State, Translate
from conversations.effects import FindClient
from conversations.nodes import Invalid, Node, Outcome, goto, parse_number, result_int, result_str
from conversations.screens import ScreenSpec
from gateway.messages import Choice

EXTERNAL_ID_MAX = 64  # as long as the importer lets an external id be


def _menu_screen(state: State, context: Context, _: Translate) -> ScreenSpec:
    items = (Choice("1", _("Survey for a client")),)
    return ScreenSpec(_("Officer menu"), items)


def _menu_input(state: State, text: str, context: Context, _: Translate) -> Outcome | Invalid:
    if parse_number(text, 1) is None:
        return Invalid(_("Please choose 1."))
    return Outcome(goto(state, "find_client", client_id=None, client_label=None))


def _find_screen(state: State, context: Context, _: Translate) -> ScreenSpec:
    return ScreenSpec(_("Enter the client ID:"), back=True, home=True)


def _find_input(state: State, text: str, context: Context, _: Translate) -> Outcome | Invalid:
    external_id = text.strip()
    if not external_id or len(external_id) > EXTERNAL_ID_MAX or not external_id.isprintable():
        return Invalid(_("Please type the client ID."))
    waiting = goto(state, "await_client", info_title=external_id).evolve(invalid=state.invalid)
    return Outcome(waiting, effects=(FindClient(external_id),), wait=True)


def _find_result(state: State, result: EffectResult, context: Context, _: Translate) -> Outcome | Invalid:
    client_id = result_int(result.data, "id")
    if result.kind != "client_found" or client_id is None:
        return Invalid(_("No client found with that ID."))  # counts as an invalid reply: ids are not guessed
    name = result_str(result.data, "masked_name") or ""
    external_id = state.info_title or ""
    label = name if external_id.upper() in name.upper() else f"{name} ({external_id})"
    # Keep a draft the shell found for this client (and the day it was started) until the officer confirms who it is.
    draft = result.data.get("draft")
    answers = survey.draft_answers(draft, context.survey) if isinstance(draft, dict) and context.survey else ()
    confirm = goto(state, "confirm_client", client_id=client_id, client_label=label.strip(), answers=answers)
    return Outcome(confirm.evolve(info_title=survey.draft_label(draft) if answers else None))


def _confirm_screen(state: State, context: Context, _: Translate) -> ScreenSpec:
    items = (Choice("1", _("Yes")), Choice("2", _("No")))
    return ScreenSpec(f"{state.client_label}?", items, back=True, home=True)


def _confirm_input(state: State, text: str, context: Context, _: Translate) -> Outcome | Invalid:
    choice = parse_number(text, 2)
    if choice is None:
        return Invalid(_("Please choose 1 or 2."))
    if choice == 2 or state.client_id is None:
        return Outcome(goto(state, "find_client", client_id=None, client_label=None))
    answers = {str(index): answer for index, answer in enumerate(state.answers) if answer is not None}
    draft = {"answers": answers, "started_at": state.info_title}
    return survey.begin(state, context, _, mode="officer", client_id=state.client_id, draft=draft)


def _back_to_menu(state: State, context: Context, _: Translate) -> Outcome:
    return Outcome(goto(state, "officer_menu"))


def _back_to_find(state: State, context: Context, _: Translate) -> Outcome:
    return Outcome(goto(state, "find_client", client_id=None, client_label=None))


NODES = (
    Node("officer_menu", _menu_screen, _menu_input),
    Node("find_client", _find_screen, _find_input, on_back=_back_to_menu, free_text=True),
    Node("await_client", on_result=_find_result, fallback="find_client"),
    Node("confirm_client", _confirm_screen, _confirm_input, on_back=_back_to_find),
)
