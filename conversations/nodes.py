"""The building blocks of the dialogue: a node (one kind of screen) and what its handlers return.

Each flow module (`menus`, `survey`, `account`, `preferences`, `officer`) defines nodes; the engine looks the
current node up, handles navigation ("98", "0", "00") itself, and turns an `Outcome` into a `Step`. Keeping the
node contract here lets flows hand over to each other by node name without importing each other.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from conversations.dialogue import Context, EffectResult, State, Translate
from conversations.effects import Effect
from conversations.screens import ScreenSpec


def N_(msgid: str) -> str:
    """Mark a msgid kept in a table so `pybabel extract -k N_` finds it; translated later, where it is shown."""
    return msgid


@dataclass(frozen=True)
class Outcome:
    """What a handler decided: the new state (its `node` is shown next), effects, and an optional notice.

    `wait` means an effect needs the shell's answer before anything is shown; `final` ends the session with
    `final` as the last message.
    """

    state: State
    effects: tuple[Effect, ...] = ()
    notice: str | None = None
    wait: bool = False
    final: str | None = None


@dataclass(frozen=True)
class Invalid:
    """The input did not make sense here; `reason` is a translated short explanation."""

    reason: str


Screen = Callable[[State, Context, Translate], ScreenSpec]
InputHandler = Callable[[State, str, Context, Translate], "Outcome | Invalid"]
# A result handler may find the input invalid after all (an id the shell does not know): the engine then counts it
# as an invalid reply on the `fallback` node's screen.
ResultHandler = Callable[[State, EffectResult, Context, Translate], "Outcome | Invalid"]
BackHandler = Callable[[State, Context, Translate], Outcome]


@dataclass(frozen=True)
class Node:
    """One kind of screen. A node with `on_result` is a pending node: it waits for the shell's effect result.

    `free_text` nodes (PIN, codes, ids) take what was typed as data, so "98" is not "More" there.
    `fallback` is where a pending node goes if the user types while it waits.
    """

    name: str
    screen: Screen | None = None
    on_input: InputHandler | None = None
    on_result: ResultHandler | None = None
    on_back: BackHandler | None = None
    free_text: bool = False
    fallback: str | None = None


_NUMBER = re.compile(r"[0-9]{1,4}")


def parse_number(text: str, highest: int) -> int | None:
    """The whole number typed (in any script's digits) if it is between 1 and `highest`, else None."""
    cleaned = ascii_digits(text.strip().rstrip("."))
    if not _NUMBER.fullmatch(cleaned):
        return None
    number = int(cleaned)
    return number if 1 <= number <= highest else None


def ascii_digits(text: str) -> str:
    """Arabic-Indic, Devanagari or Bengali digits as ASCII ones (phones in ar, ur, hi, bn may send them)."""
    return "".join(str(unicodedata.decimal(char)) if char.isdecimal() else char for char in text[:16]) + text[16:]


def goto(state: State, node: str, **changes: Any) -> State:
    """The state moved to `node` (first page, no notice, invalid counter reset), with other `changes`."""
    return state.evolve(node=node, page=0, invalid=0, notice=None, **changes)


def home_node(state: State, context: Context) -> str:
    """Where "00" leads: the officer menu, the client menu, or choosing who is speaking."""
    if context.role == "officer":
        return "officer_menu"
    return "menu" if state.client_id is not None else "who"


def feature_on(context: Context, name: str) -> bool:
    return bool(context.features.get(name, True))


def result_str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) else None


def result_int(data: Mapping[str, Any], key: str) -> int | None:
    value = data.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def result_lines(data: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = data.get(key)
    if isinstance(value, str):
        return tuple(value.split("\n"))
    if isinstance(value, list | tuple):
        return tuple(str(line) for line in value)
    return ()
