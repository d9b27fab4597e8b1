"""The client's own settings: data-sharing consent (grant or revoke) and the language of every later message.

Consent text comes from the shell (`FetchConsentText`) so the version recorded in the ledger is the version the
client actually read; the choice itself is fire-and-forget (`RecordConsent`).
"""

from __future__ import annotations

from conversations.dialogue import Context, EffectResult, State, Translate
from conversations.effects import FetchConsentText, RecordConsent, SetLanguage
from conversations.nodes import Invalid, Node, Outcome, goto, home_node, parse_number, result_lines, result_str
from conversations.screens import ScreenSpec
from gateway.messages import Choice


def begin_consent(state: State, context: Context, _: Translate) -> Outcome:
    """Ask the shell for the current consent text before showing the consent screen."""
    if state.client_id is None:
        return Outcome(goto(state, home_node(state, context)))
    return Outcome(goto(state, "await_consent"), effects=(FetchConsentText(state.client_id),), wait=True)


def begin_language(state: State, context: Context, _: Translate) -> Outcome:
    if not context.languages:
        return Outcome(goto(state, home_node(state, context)), notice=_("No other language is available."))
    return Outcome(goto(state, "language"))


def _to_home(state: State, context: Context, _: Translate) -> Outcome:
    return Outcome(goto(state, home_node(state, context), lines=(), shared_lines=()))


def _back_only(state: State, text: str, context: Context, _: Translate) -> Outcome | Invalid:
    return Invalid(_("Reply 0 to go back."))


# --- consent ------------------------------------------------------------------------------------------------------


def _consent_text_result(state: State, result: EffectResult, context: Context, _: Translate) -> Outcome:
    if result.kind != "consent_text":
        notice = _("This service is not available right now. Please try later.")
        return Outcome(goto(state, home_node(state, context)), notice=notice)
    current = result.data.get("current")
    return Outcome(
        goto(
            state,
            "consent",
            lines=result_lines(result.data, "text"),
            shared_lines=result_lines(result.data, "what_is_shared"),
            consent_version=result_str(result.data, "version") or "",
            consent_current=current if isinstance(current, bool) else None,
        )
    )


def _consent_screen(state: State, context: Context, _: Translate) -> ScreenSpec:
    lines = list(state.lines)
    if state.consent_current is True:
        lines.append(_("Now: you share your data."))
    elif state.consent_current is False:
        lines.append(_("Now: you do not share your data."))
    lines.append(_("Do you agree to share your data?"))
    items = (Choice("1", _("Yes")), Choice("2", _("No")), Choice("3", _("What is shared")))
    return ScreenSpec("\n".join(lines), items, back=True, home=True)


def _consent_input(state: State, text: str, context: Context, _: Translate) -> Outcome | Invalid:
    choice = parse_number(text, 3)
    if choice is None:
        return Invalid(_("Please choose 1, 2 or 3."))
    if choice == 3:
        return Outcome(goto(state, "consent_shared"))
    if state.client_id is None:
        return _to_home(state, context, _)
    granted = choice == 1
    record = RecordConsent(state.client_id, granted, state.consent_version or "")
    return Outcome(goto(state, "consent_done", consent_granted=granted), effects=(record,))


def _shared_screen(state: State, context: Context, _: Translate) -> ScreenSpec:
    body = "\n".join(state.shared_lines) or _("Nothing to show yet.")
    return ScreenSpec(body, back=True, home=True)


def _shared_back(state: State, context: Context, _: Translate) -> Outcome:
    return Outcome(goto(state, "consent"))


def _consent_done_screen(state: State, context: Context, _: Translate) -> ScreenSpec:
    text = (
        _("Thank you. You agreed to share your data.")
        if state.consent_granted
        else _("Saved. Your data will not be shared.")
    )
    return ScreenSpec(text, back=True, home=True)


# --- language -----------------------------------------------------------------------------------------------------


def _language_screen(state: State, context: Context, _: Translate) -> ScreenSpec:
    items = tuple(Choice(str(number), name) for number, (_code, name) in enumerate(context.languages, start=1))
    return ScreenSpec(_("Choose your language:"), items, back=True, home=True)


def _language_input(state: State, text: str, context: Context, _: Translate) -> Outcome | Invalid:
    number = parse_number(text, len(context.languages))
    if number is None:
        return Invalid(_("Please reply with a number from 1 to %(n)d.", n=max(1, len(context.languages))))
    if state.client_id is None:
        return _to_home(state, context, _)
    code, name = context.languages[number - 1]
    choice = goto(state, "await_language", lines=(name,))
    return Outcome(choice, effects=(SetLanguage(state.client_id, code),), wait=True)


def _language_set(state: State, result: EffectResult, context: Context, _: Translate) -> Outcome:
    # Drawn after the shell stored the language, so `_` is already the new language's: the confirmation reads in it.
    return Outcome(goto(state, "language_done"))


def _language_done_screen(state: State, context: Context, _: Translate) -> ScreenSpec:
    name = state.lines[0] if state.lines else ""
    return ScreenSpec(_("Language changed: %(language)s", language=name), back=True, home=True)


NODES = (
    Node("await_consent", on_result=_consent_text_result, fallback="menu"),
    Node("consent", _consent_screen, _consent_input, on_back=_to_home),
    Node("consent_shared", _shared_screen, _back_only, on_back=_shared_back),
    Node("consent_done", _consent_done_screen, _back_only, on_back=_to_home),
    Node("language", _language_screen, _language_input, on_back=_to_home),
    Node("await_language", on_result=_language_set, fallback="menu"),
    Node("language_done", _language_done_screen, _back_only, on_back=_to_home),
)
