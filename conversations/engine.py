"""The conversation engine: one pure function from (state, event, context, translate) to the next step.

No Flask, no SQLAlchemy, no Redis, no clock: everything arrives as arguments and all IO leaves as effects, so
the whole dialogue (menus, survey, PIN, consent, language, officer flow) is tested with plain values.
Navigation is the same everywhere: "98" next page, "0" previous page or back, "00" main menu. Bad input is
never an exception: it repeats the screen with a short reason, and three in a row end the session politely.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from conversations import menus
from conversations.dialogue import (
    ClientRef,
    Context,
    EffectResult,
    Event,
    Start,
    State,
    Step,
    Translate,
    UserInput,
)
from conversations.effects import Effect
from conversations.nodes import Invalid, Node, Outcome, goto, home_node
from conversations.screens import (
    BACK_KEY,
    HOME_KEY,
    MORE_KEY,
    Budget,
    NavLabels,
    Page,
    ScreenSpec,
    one_screen,
    paginate,
    with_notice,
)
from conversations.survey import SURVEY_NODES
from gateway.messages import Reply

__all__ = ["ClientRef", "Context", "EffectResult", "Event", "Start", "State", "Step", "Translate", "UserInput"]
__all__ += ["MAX_INVALID_REPLIES", "advance"]

MAX_INVALID_REPLIES = 3
NODES: dict[str, Node] = {node.name: node for node in menus.NODES}


def advance(state: State | None, event: Event, context: Context, translate: Translate) -> Step:
    """Take one event (a start, what the user typed, or an effect's result) and return the next step."""
    _ = _safe_translator(translate)
    node = NODES.get(state.node) if state is not None else None
    if state is None or node is None or isinstance(event, Start):
        interrupted = isinstance(event, Start) and event.interrupted
        return _finish(menus.begin(context, _, interrupted=interrupted), context, _)
    if isinstance(event, EffectResult):
        if node.on_result is not None:
            outcome = node.on_result(state, event, context, _)
            if isinstance(outcome, Invalid):  # e.g. an id the shell does not know: asked again, and counted
                asking = state.evolve(node=node.fallback or home_node(state, context))
                return _invalid(asking, outcome.reason, context, _)
            return _finish(outcome, context, _)
        # The result of a fire-and-forget effect: show the same screen again (now in the current language).
        return _show(state, context, _)
    if not isinstance(event, UserInput):
        return _show(state, context, _)
    if node.on_result is not None:
        # The user typed while we waited for the shell: read it as typed where that effect was asked for.
        fallback = NODES.get(node.fallback or home_node(state, context))
        if fallback is None or fallback.on_result is not None:
            return _finish(menus.begin(context, _), context, _)
        state, node = goto(state, fallback.name), fallback
    return _handle_input(state, node, event.text, context, _)


def _handle_input(state: State, node: Node, text: str, context: Context, _: Translate) -> Step:
    key = text.strip()
    if key == HOME_KEY:
        home = goto(state, home_node(state, context), reviewing=False, after_pin=None, pin_purpose=None)
        return _show(home, context, _)
    if key == MORE_KEY and not node.free_text:
        if state.page + 1 < _page_count(state, node, context, _):
            return _show(state.evolve(page=state.page + 1, invalid=0), context, _)
        return _invalid(state, _("There is nothing more to show."), context, _)
    if key == BACK_KEY:
        if state.page > 0:
            page_count = _page_count(state, node, context, _)
            return _show(state.evolve(page=min(state.page, page_count) - 1, invalid=0), context, _)
        if node.on_back is not None:
            return _finish(node.on_back(state, context, _), context, _)
    if node.on_input is None:
        return _show(state, context, _)
    result = node.on_input(state, text, context, _)
    if isinstance(result, Invalid):
        return _invalid(state, result.reason, context, _)
    return _finish(result, context, _)


def _invalid(state: State, reason: str, context: Context, _: Translate) -> Step:
    """Repeat the screen with `reason`; after too many invalid replies in a row, end politely (drafts are kept)."""
    count = state.invalid + 1
    if count < MAX_INVALID_REPLIES:
        return _show(state.evolve(invalid=count, page=0, notice=reason), context, _)
    if state.node in SURVEY_NODES:
        goodbye = _("Too many invalid replies. Your answers are saved: dial again to continue.")
    else:
        goodbye = _("Too many invalid replies. Please try again later.")
    return _finish(Outcome(goto(state, "end"), final=goodbye), context, _)


def _finish(outcome: Outcome, context: Context, _: Translate) -> Step:
    if outcome.final is not None:
        return _final(outcome.state, outcome.final, outcome.effects, context, _)
    if outcome.wait:
        return Step(outcome.state, (), outcome.effects, finished=False)
    state = outcome.state.evolve(notice=outcome.notice, page=0) if outcome.notice else outcome.state
    return _show(state, context, _, effects=outcome.effects)


def _final(state: State, text: str, effects: tuple[Effect, ...], context: Context, _: Translate) -> Step:
    if context.channel in ("sms", "telegram"):
        replies = tuple(Reply(page.text, final=True) for page in _pages(ScreenSpec(text, final=True), context, _))
    else:  # a USSD session ends with exactly one screen
        replies = (Reply(one_screen(text, _budget(context)), final=True),)
    return Step(state.evolve(page=0, invalid=0), replies, effects, finished=True)


def _show(state: State, context: Context, _: Translate, *, effects: tuple[Effect, ...] = ()) -> Step:
    node = NODES.get(state.node)
    if node is None or node.screen is None:
        return _finish(menus.begin(context, _), context, _)
    spec = _screen(state, node, context, _)
    pages = _pages(spec, context, _)
    page_index = min(max(state.page, 0), len(pages) - 1)
    page = pages[page_index]
    reply = Reply(page.text, final=spec.final, choices=page.choices)
    return Step(state.evolve(page=page_index), (reply,), effects, finished=spec.final)


def _screen(state: State, node: Node, context: Context, _: Translate) -> ScreenSpec:
    """The node's screen, with the pending notice (error reason, confirmation) above its title."""
    spec = node.screen(state, context, _) if node.screen is not None else ScreenSpec("")
    return replace(spec, title=with_notice(state.notice, spec.title))


def _page_count(state: State, node: Node, context: Context, _: Translate) -> int:
    """How many pages the current screen has: rendered only for "More" and "Back", not for every answer."""
    return len(_pages(_screen(state, node, context, _), context, _))


def _pages(spec: ScreenSpec, context: Context, _: Translate) -> tuple[Page, ...]:
    return paginate(spec, _budget(context), NavLabels(more=_("More"), back=_("Back"), home=_("Menu")))


def _budget(context: Context) -> Budget:
    return Budget(context.channel, context.sms_max_segments)


def _safe_translator(translate: Translate) -> Translate:
    """Wrap `translate` so a broken catalog entry shows the English text instead of ending the session."""

    def safe(msgid: str, plural: str | None = None, n: int | None = None, **params: Any) -> str:
        if plural is None and n is not None:
            params["n"] = n  # a singular msgid may still use %(n)d
        try:
            text = translate(msgid, plural=plural, n=n, **params) if plural is not None else translate(msgid, **params)
        except (TypeError, KeyError, ValueError):
            text = None
        return text if isinstance(text, str) else _english(msgid, plural, n, params)

    return safe


def _english(msgid: str, plural: str | None, n: int | None, params: dict[str, Any]) -> str:
    text = plural if plural is not None and n != 1 else msgid
    try:
        return text % ({**params, "n": n} if n is not None else params) if "%(" in text else text
    except (TypeError, KeyError, ValueError):
        return text
