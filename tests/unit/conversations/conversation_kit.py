"""Helpers for the engine tests: translators, scripts, contexts and a small driver that checks every step."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from conversations.dialogue import ClientRef, Context, EffectResult, Event, Start, State, Step, UserInput
from conversations.effects import CheckPinStatus
from conversations.engine import advance
from conversations.screens import Budget
from conversations.scripts import ScriptQuestion, SurveyScript

KENYA_COUNTIES = (
    "Mombasa", "Kwale", "Kilifi", "Tana River", "Lamu", "Taita Taveta", "Garissa", "Wajir", "Mandera", "Marsabit",
    "Isiolo", "Meru", "Tharaka Nithi", "Embu", "Kitui", "Machakos", "Makueni", "Nyandarua", "Nyeri", "Kirinyaga",
    "Muranga", "Kiambu", "Turkana", "West Pokot", "Samburu", "Trans Nzoia", "Uasin Gishu", "Elgeyo Marakwet", "Nandi",
    "Baringo", "Laikipia", "Nakuru", "Narok", "Kajiado", "Kericho", "Bomet", "Kakamega", "Vihiga", "Bungoma", "Busia",
    "Siaya", "Kisumu", "Homa Bay", "Migori", "Kisii", "Nyamira", "Nairobi",
)  # fmt: skip


def identity(msgid: str, plural: str | None = None, n: int | None = None, **params: Any) -> str:
    """A translator that keeps English and fills %-style parameters, as gettext would."""
    text = plural if plural is not None and n != 1 else msgid
    values = {**params, "n": n} if n is not None else params
    return text % values if values else text


def dict_translator(catalog: Mapping[str, str]) -> Any:
    """A translator that looks msgids up in `catalog` (falling back to English) before filling parameters."""

    def translate(msgid: str, plural: str | None = None, n: int | None = None, **params: Any) -> str:
        text = plural if plural is not None and n != 1 else msgid
        text = catalog.get(text, text)
        values = {**params, "n": n} if n is not None else params
        return text % values if values else text

    return translate


KENYA = SurveyScript(
    "kenya_2024",
    (
        ScriptQuestion("In which county does the household reside?", KENYA_COUNTIES),
        ScriptQuestion(
            "How many household members are 17 or younger?", ("Four or more", "Three", "Two", "One", "None")
        ),
        ScriptQuestion(
            "What is the main material of the roof?", ("Grass or other", "Iron sheets", "Tiles or concrete")
        ),
    ),
)

SMALL = SurveyScript(
    "small_1",
    (
        ScriptQuestion("Does the household own a radio?", ("No", "Yes")),
        ScriptQuestion("How many rooms?", ("One", "Two", "Three or more")),
        ScriptQuestion("Cooking fuel?", ("Firewood", "Charcoal", "Gas or electricity")),
    ),
)

JANE = ClientRef(7, "Jane")
OTIENO = ClientRef(8, "Otieno")


def client_context(**changes: Any) -> Context:
    base = Context(channel="ussd", role="client", clients=(JANE,), survey=SMALL, languages=(("en", "English"),
                   ("sw", "Kiswahili")))  # fmt: skip
    return replace(base, **changes)


def officer_context(**changes: Any) -> Context:
    return replace(Context(channel="ussd", role="officer", survey=SMALL), **changes)


def pin_status_result(pin: str, locked_minutes: int = 0) -> EffectResult:
    """What the shell answers to `CheckPinStatus` for a client whose PIN is `pin`: active, locked or not_set."""
    if pin == "locked":
        return EffectResult("pin_locked", {"minutes": locked_minutes})
    return EffectResult("pin_needs_activation" if pin == "not_set" else "pin_active")


@dataclass
class Session:
    """Drives the engine like the shell would, checking after every step that replies fit and state is JSON. Like
    the shell, it answers the engine's `CheckPinStatus` at once, from `pin` (active, locked or not_set)."""

    context: Context
    translate: Any = identity
    pin: str = "active"
    locked_minutes: int = 0
    state: State | None = None
    steps: list[Step] = field(default_factory=list)

    def send(self, event: Event) -> Step:
        step = advance(self.state, event, self.context, self.translate)
        assert_step_is_sound(step, self.context)
        self.state = State.from_json(json.loads(json.dumps(step.state.to_json())))
        assert self.state == step.state
        self.steps.append(step)
        if any(isinstance(effect, CheckPinStatus) for effect in step.effects):
            return self.send(pin_status_result(self.pin, self.locked_minutes))
        return step

    def start(self) -> Step:
        return self.send(Start())

    def type(self, *texts: str) -> Step:
        step = self.steps[-1] if self.steps else None
        for text in texts:
            step = self.send(UserInput(text))
        assert step is not None
        return step

    def result(self, kind: str, **data: Any) -> Step:
        return self.send(EffectResult(kind, data))

    @property
    def screen(self) -> str:
        return self.steps[-1].replies[-1].text


def assert_step_is_sound(step: Step, context: Context) -> None:
    budget = Budget(context.channel, context.sms_max_segments)
    for reply in step.replies:
        assert budget.fits(reply.text), f"reply does not fit {context.channel}: {reply.text!r}"
    json.dumps(step.state.to_json())


def effect_kinds(step: Step) -> list[str]:
    return [effect.kind for effect in step.effects]
