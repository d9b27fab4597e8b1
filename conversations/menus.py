"""Where a session starts and the client's main menu: who is speaking on a shared phone, then the seven services.

Each menu entry hands over to its flow (survey, PIN-protected account services, consent, language); entries can be
switched off with `Context.features` without renumbering the others, so printed instructions stay valid.
"""

from __future__ import annotations

from collections.abc import Iterable

from conversations import account, officer, preferences, survey
from conversations.dialogue import Context, State, Translate
from conversations.nodes import N_, Invalid, Node, Outcome, ascii_digits, feature_on, goto, parse_number
from conversations.screens import ScreenSpec
from gateway.messages import Choice

MAIN_MENU: tuple[tuple[str, str, str], ...] = (
    ("1", "survey", N_("PPI survey")),
    ("2", "balances", N_("Balances")),
    ("3", "statement", N_("Mini-statement")),
    ("4", "progress", N_("My progress")),
    ("5", "consent", N_("Data sharing")),
    ("6", "language", N_("Language")),
    ("7", "change_pin", N_("Change PIN")),
)


def switched_off(names: Iterable[str]) -> dict[str, bool]:
    """`Context.features` for main-menu entries switched off by name; ValueError names any unknown one."""
    known = {name for _key, name, _label in MAIN_MENU}
    unknown = sorted(set(names) - known)
    if unknown:
        raise ValueError(f"unknown menu entries {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return {name: False for name in names}


def begin(context: Context, _: Translate, *, interrupted: bool = False) -> Outcome:
    """The first screen of a session, chosen from who is calling; after an `interrupted` session, with a notice
    that the answers given so far are kept."""
    fresh = State()
    notice = _("Your session was interrupted. Your answers are saved.") if interrupted else None
    if context.role == "officer":
        return Outcome(goto(fresh, "officer_menu"), notice=notice)
    if context.role != "client" or not context.clients:
        text = _("This phone number is not registered with us. Please visit your branch.")
        return Outcome(goto(fresh, "end"), final=text)
    if len(context.clients) == 1:
        return Outcome(goto(fresh, "menu", client_id=context.clients[0].id), notice=notice)
    return Outcome(goto(fresh, "who"), notice=notice)


def _who_screen(state: State, context: Context, _: Translate) -> ScreenSpec:
    items = tuple(Choice(str(n), client.display_name) for n, client in enumerate(context.clients, start=1))
    return ScreenSpec(_("Who is speaking?"), items)


def _who_input(state: State, text: str, context: Context, _: Translate) -> Outcome | Invalid:
    number = parse_number(text, len(context.clients))
    if number is None:
        return Invalid(_("Please reply with a number from 1 to %(n)d.", n=max(1, len(context.clients))))
    return Outcome(goto(state, "menu", client_id=context.clients[number - 1].id, pin_ok=False))


def _menu_entries(context: Context) -> tuple[tuple[str, str, str], ...]:
    return tuple(entry for entry in MAIN_MENU if feature_on(context, entry[1]))


def _menu_screen(state: State, context: Context, _: Translate) -> ScreenSpec:
    items = tuple(Choice(key, _(label)) for key, _name, label in _menu_entries(context))
    return ScreenSpec(_("Main menu"), items, back=len(context.clients) > 1)


def _menu_input(state: State, text: str, context: Context, _: Translate) -> Outcome | Invalid:
    chosen = {key: name for key, name, _label in _menu_entries(context)}.get(ascii_digits(text.strip().rstrip(".")))
    if chosen is None:
        return Invalid(_("Please choose from the menu."))
    return start_service(state, context, _, chosen)


def start_service(state: State, context: Context, _: Translate, service: str) -> Outcome:
    """Hand over to the flow behind a main-menu entry."""
    if state.client_id is None:
        return Outcome(goto(state, "who"))
    if service == "survey":
        return survey.begin(state, context, _, mode="self", client_id=state.client_id, draft=context.draft)
    if service == "consent":
        return preferences.begin_consent(state, context, _)
    if service == "language":
        return preferences.begin_language(state, context, _)
    return account.require_pin(state, context, _, service, state.client_id)


def _menu_back(state: State, context: Context, _: Translate) -> Outcome:
    # Only offered on a shared phone: let someone else take the phone without hanging up.
    return Outcome(goto(state, "who", client_id=None, pin_ok=False))


NODES = (
    Node("who", _who_screen, _who_input),
    Node("menu", _menu_screen, _menu_input, on_back=_menu_back),
    *account.NODES,
    *survey.NODES,
    *preferences.NODES,
    *officer.NODES,
)
