"""Client self-service behind a PIN: balances, mini-statement, progress, change PIN, and first-time activation.

The PIN is asked once per session; `State.pin_ok` remembers that it was verified, never the PIN itself. A new
PIN is entered twice: the first entry goes to the shell in `StagePin` (kept there as a hash), the second in
`SetPin`/`ChangePin`, which the shell accepts only when it matches. So no PIN ever sits in the dialogue state.
"""

from __future__ import annotations

import re

from conversations.dialogue import Context, EffectResult, State, Translate
from conversations.effects import (
    ActivateAccount,
    ChangePin,
    CheckPinStatus,
    Effect,
    FetchBalances,
    FetchProgress,
    FetchStatement,
    SetPin,
    StagePin,
    VerifyPin,
)
from conversations.nodes import (
    N_,
    Invalid,
    Node,
    Outcome,
    ascii_digits,
    goto,
    home_node,
    result_int,
    result_lines,
    result_str,
)
from conversations.screens import ScreenSpec

_PIN = re.compile(r"[0-9]{4}")  # accounts.pins.PIN_LENGTH: a PIN is 4 digits
_CODE = re.compile(r"[A-Za-z0-9-]{4,32}")

FETCHES: dict[str, tuple[type[FetchBalances | FetchStatement | FetchProgress], str]] = {
    "balances": (FetchBalances, N_("Balances")),
    "statement": (FetchStatement, N_("Mini-statement")),
    "progress": (FetchProgress, N_("My progress")),
}
PIN_ACTIONS = frozenset({*FETCHES, "change_pin"})


def require_pin(state: State, context: Context, _: Translate, action: str, client_id: int) -> Outcome:
    """Run `action` now if the PIN was verified this session; otherwise find out whether the client has a PIN and
    whether it is locked (`_pin_status_result`), then ask for it or for the activation code."""
    if state.pin_ok:
        return run_action(state, context, _, action)
    waiting = goto(state, "await_pin_status", after_pin=action)
    return Outcome(waiting, effects=(CheckPinStatus(client_id),), wait=True)


def _pin_status_result(state: State, result: EffectResult, context: Context, _: Translate) -> Outcome:
    if result.kind == "pin_active":
        return Outcome(goto(state, "pin_entry"))
    if result.kind in ("pin_locked", "pin_needs_activation"):  # as after a wrong PIN: the lock lifts by itself
        return _pin_result(state, result, context, _)
    return _unavailable(state, context, _)


def run_action(state: State, context: Context, _: Translate, action: str | None) -> Outcome:
    """Start a PIN-protected action once the PIN is known to be right."""
    if action == "change_pin":
        return Outcome(goto(state, "new_pin", pin_purpose="change", after_pin=None))
    if action in FETCHES and state.client_id is not None:
        effect_type, title = FETCHES[action]
        return Outcome(goto(state, "await_lines", info_title=title), effects=(effect_type(state.client_id),), wait=True)
    return Outcome(goto(state, home_node(state, context)))


def _unavailable(state: State, context: Context, _: Translate) -> Outcome:
    notice = _("This service is not available right now. Please try later.")
    return Outcome(goto(state, home_node(state, context), after_pin=None), notice=notice)


def _to_home(state: State, context: Context, _: Translate) -> Outcome:
    return Outcome(goto(state, home_node(state, context), after_pin=None, pin_purpose=None))


def _secret_input(
    state: State, text: str, pattern: re.Pattern[str], reason: str, make: type[Effect], waiting: str
) -> Outcome | Invalid:
    """Send a typed secret straight out in an effect; the state only records that we are waiting."""
    secret = ascii_digits(text.strip())  # "٤٨٢٦" from an Arabic keyboard is the PIN 4826
    if state.client_id is None or not pattern.fullmatch(secret):
        return Invalid(reason)
    effect = make(state.client_id, secret)  # type: ignore[call-arg]
    return Outcome(goto(state, waiting), effects=(effect,), wait=True)


# --- verify ---------------------------------------------------------------------------------------------------------


def _pin_screen(state: State, context: Context, _: Translate) -> ScreenSpec:
    return ScreenSpec(_("Enter your PIN:"), back=True, home=True)


def _pin_format(_: Translate) -> str:
    return _("A PIN has 4 digits.")


def _pin_input(state: State, text: str, context: Context, _: Translate) -> Outcome | Invalid:
    return _secret_input(state, text, _PIN, _pin_format(_), VerifyPin, "await_pin")


def _pin_result(state: State, result: EffectResult, context: Context, _: Translate) -> Outcome:
    if result.kind == "pin_ok":
        return run_action(goto(state, "menu", pin_ok=True), context, _, state.after_pin)
    if result.kind == "pin_wrong":
        left = result_int(result.data, "attempts_left")
        notice = (
            _("Wrong PIN. %(n)d try left.", plural="Wrong PIN. %(n)d tries left.", n=left)
            if left is not None
            else _("Wrong PIN.")
        )
        return Outcome(goto(state, "pin_entry"), notice=notice)
    if result.kind == "pin_locked":
        minutes = result_int(result.data, "minutes") or 0
        return Outcome(goto(state, "end", after_pin=None), final=_locked_text(_, minutes))
    if result.kind == "pin_needs_activation":  # reset by an officer while this session was open
        return Outcome(goto(state, "activation_code", after_pin=state.after_pin))
    return _unavailable(state, context, _)


def _locked_text(_: Translate, minutes: int) -> str:
    return _(
        "Too many wrong PINs. Try again in %(n)d minute.",
        plural="Too many wrong PINs. Try again in %(n)d minutes.",
        n=max(1, minutes),
    )


# --- activation and new PIN -----------------------------------------------------------------------------------


def _activation_screen(state: State, context: Context, _: Translate) -> ScreenSpec:
    prompt = _("Your PIN is not set yet. Enter the activation code from your branch:")
    return ScreenSpec(prompt, back=True, home=True)


def _code_format(_: Translate) -> str:
    return _("Please type the code you were given.")


def _activation_input(state: State, text: str, context: Context, _: Translate) -> Outcome | Invalid:
    return _secret_input(state, text, _CODE, _code_format(_), ActivateAccount, "await_activation")


def _activation_result(state: State, result: EffectResult, context: Context, _: Translate) -> Outcome:
    if result.kind == "activation_ok":
        return Outcome(goto(state, "new_pin", pin_purpose="set"))
    if result.kind == "activation_bad":
        return Outcome(goto(state, "activation_code"), notice=_("That code is not valid."))
    return _unavailable(state, context, _)


def _new_pin_screen(state: State, context: Context, _: Translate) -> ScreenSpec:
    return ScreenSpec(_("Choose a new PIN (4 digits):"), back=True, home=True)


def _new_pin_input(state: State, text: str, context: Context, _: Translate) -> Outcome | Invalid:
    return _secret_input(state, text, _PIN, _pin_format(_), StagePin, "await_stage")


def _rejected(state: State, result: EffectResult, _: Translate) -> Outcome:
    reason = result_str(result.data, "reason_msgid")
    return Outcome(goto(state, "new_pin"), notice=_(reason) if reason else _("Please choose another PIN."))


def _stage_result(state: State, result: EffectResult, context: Context, _: Translate) -> Outcome:
    if result.kind == "pin_staged":
        return Outcome(goto(state, "confirm_pin"))
    if result.kind == "pin_rejected":
        return _rejected(state, result, _)
    return _unavailable(state, context, _)


def _confirm_screen(state: State, context: Context, _: Translate) -> ScreenSpec:
    return ScreenSpec(_("Enter the new PIN again:"), back=True, home=True)


def _confirm_input(state: State, text: str, context: Context, _: Translate) -> Outcome | Invalid:
    make = ChangePin if state.pin_purpose == "change" else SetPin
    return _secret_input(state, text, _PIN, _pin_format(_), make, "await_set_pin")


def _set_result(state: State, result: EffectResult, context: Context, _: Translate) -> Outcome:
    if result.kind == "pin_set":
        verified = goto(state, "menu", pin_ok=True, pin_purpose=None)
        if state.after_pin in FETCHES:
            return run_action(verified, context, _, state.after_pin)
        notice = _("Your PIN has been changed.") if state.pin_purpose == "change" else _("Your PIN is set.")
        return Outcome(goto(verified, home_node(verified, context), after_pin=None), notice=notice)
    if result.kind == "pin_mismatch":
        return Outcome(goto(state, "new_pin"), notice=_("The PINs did not match. Try again."))
    if result.kind == "pin_stage_expired":  # the new PIN is kept (as a hash) for 5 minutes only
        return Outcome(goto(state, "new_pin"), notice=_("That took too long. Please choose your new PIN again."))
    if result.kind == "pin_rejected":
        return _rejected(state, result, _)
    return _unavailable(state, context, _)


# --- information screens ----------------------------------------------------------------------------------------


def _lines_result(state: State, result: EffectResult, context: Context, _: Translate) -> Outcome:
    if result.kind != "lines":
        return _unavailable(state, context, _)
    lines = [line for line in result_lines(result.data, "lines") if line.strip()]
    return Outcome(goto(state, "info", lines=tuple(lines), after_pin=None))


def _info_screen(state: State, context: Context, _: Translate) -> ScreenSpec:
    title = _(state.info_title) if state.info_title else ""
    body = list(state.lines) or [_("Nothing to show yet.")]
    return ScreenSpec("\n".join([title, *body]), back=True, home=True)


def _info_input(state: State, text: str, context: Context, _: Translate) -> Outcome | Invalid:
    return Invalid(_("Reply 0 to go back."))


def _info_back(state: State, context: Context, _: Translate) -> Outcome:
    return Outcome(goto(state, home_node(state, context), lines=(), info_title=None))


NODES = (
    Node("await_pin_status", on_result=_pin_status_result, fallback="menu"),
    Node("pin_entry", _pin_screen, _pin_input, on_back=_to_home, free_text=True),
    Node("await_pin", on_result=_pin_result, fallback="pin_entry"),
    Node("activation_code", _activation_screen, _activation_input, on_back=_to_home, free_text=True),
    Node("await_activation", on_result=_activation_result, fallback="activation_code"),
    Node("new_pin", _new_pin_screen, _new_pin_input, on_back=_to_home, free_text=True),
    Node("await_stage", on_result=_stage_result, fallback="new_pin"),
    Node("confirm_pin", _confirm_screen, _confirm_input, on_back=_to_home, free_text=True),
    Node("await_set_pin", on_result=_set_result, fallback="new_pin"),
    Node("await_lines", on_result=_lines_result, fallback="menu"),
    Node("info", _info_screen, _info_input, on_back=_info_back),
)
