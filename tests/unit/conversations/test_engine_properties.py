"""Whole-engine guarantees: purity, and random conversations that never raise, never overflow a screen and never
keep a PIN in the state."""

from __future__ import annotations

import ast
import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conversation_kit import JANE, KENYA, OTIENO, SMALL, assert_step_is_sound, identity
from hypothesis import HealthCheck, given, settings, target
from hypothesis import strategies as st

from conversations.dialogue import ClientRef, Context, EffectResult, Event, Start, State, UserInput
from conversations.engine import advance
from conversations.scripts import ScriptQuestion, SurveyScript

ROOT = Path(__file__).parents[3]
PURE_MODULES = ("engine", "scripts", "screens", "dialogue", "effects", "nodes", "menus", "survey", "account")
PURE_MODULES += ("preferences", "officer")
FORBIDDEN_IMPORTS = {"flask", "sqlalchemy", "redis", "rq", "os", "time", "datetime", "random", "requests", "httpx"}
FORBIDDEN_NAMES = {"environ", "getenv", "now", "utcnow", "today", "open", "print"}


def test_engine_modules_import_no_framework_storage_clock_or_environment() -> None:
    for name in PURE_MODULES:
        tree = ast.parse((ROOT / "conversations" / f"{name}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                roots = {(node.module or "").split(".")[0]}
            else:
                roots = set()
            assert not roots & FORBIDDEN_IMPORTS, f"conversations/{name}.py imports {roots & FORBIDDEN_IMPORTS}"
            used = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else None
            assert used not in FORBIDDEN_NAMES, f"conversations/{name}.py uses {used}"


def test_importing_the_engine_loads_no_framework_or_storage_library() -> None:
    code = "import sys, conversations.engine, conversations.scripts; print(' '.join(sorted(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    roots = {module.split(".")[0] for module in loaded.stdout.split()}
    assert not roots & {"flask", "sqlalchemy", "redis", "rq", "babel", "httpx", "telegram", "twilio"}


# --- random conversations ----------------------------------------------------------------------------------------

SECRET = re.compile(r"[5-9]{6}")  # what `pins` generates; no other value in a state looks like it
PIN_NODES = {"pin_entry", "new_pin", "confirm_pin", "activation_code"}
RESULT_KINDS = (
    "pin_ok", "pin_wrong", "pin_locked", "activation_ok", "activation_bad", "pin_staged", "pin_set", "pin_mismatch",
    "pin_rejected", "lines", "service_unavailable", "consent_text", "consent_recorded", "language_set",
    "survey_submitted", "client_found", "client_not_found", "answer_saved", "pin_needs_activation", "pin_stage_expired",
    "pin_active", "nonsense",
)  # fmt: skip

wordy = st.text(alphabet=st.characters(blacklist_categories=("Nd", "Cs")), max_size=200)
long_labels = st.lists(wordy, min_size=1, max_size=50)
random_surveys = st.builds(
    lambda questions: SurveyScript("random", tuple(ScriptQuestion(text, tuple(opts)) for text, opts in questions)),
    st.lists(st.tuples(wordy, long_labels), min_size=1, max_size=4),
)
contexts = st.builds(
    Context,
    channel=st.sampled_from(["ussd", "sms", "telegram"]),
    role=st.sampled_from(["client", "client", "officer", "unknown"]),
    clients=st.sampled_from([(JANE,), (JANE, OTIENO), (ClientRef(9, "Ñandú Çelik 🙂" * 5),)]),
    survey=st.one_of(st.none(), st.just(SMALL), st.just(KENYA), random_surveys),
    draft=st.one_of(st.none(), st.just({"answers": {"0": 1, "1": 2}, "started_at": "3 May"}), st.just({"x": 1})),
    show_band_to_client=st.booleans(),
    languages=st.just((("en", "English"), ("sw", "Kiswahili"), ("ar", "العربية"))),
    sms_max_segments=st.integers(1, 3),
)
pins = st.from_regex(r"[5-9]{6}", fullmatch=True)
texts = st.one_of(
    st.sampled_from(["1", "2", "3", "4", "5", "6", "7", "23", "98", "0", "00", "", " 1 ", "x"]),
    st.text(max_size=300),
    pins,
)
data_values = st.one_of(st.none(), st.integers(-5, 100), st.text(max_size=400), st.lists(wordy, max_size=8))
results = st.builds(
    EffectResult,
    kind=st.sampled_from(RESULT_KINDS),
    data=st.dictionaries(
        st.sampled_from(
            [
                "attempts_left",
                "minutes",
                "lines",
                "text",
                "what_is_shared",
                "version",
                "current",
                "band",
                "headline_score",
                "id",
                "masked_name",
                "reason_msgid",
                "draft",
            ]
        ),
        data_values,
    ),  # fmt: skip
)
events = st.lists(st.one_of(texts.map(UserInput), results, st.just(Start())), min_size=1, max_size=30)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(context=contexts, script=events)
def test_random_conversations_never_raise_and_every_reply_fits(context: Context, script: list[Event]) -> None:
    state: State | None = None
    typed_pins: set[str] = set()
    for event in script:
        if isinstance(event, UserInput) and state is not None and state.node in PIN_NODES:
            typed_pins.add(event.text.strip())
        step = advance(state, event, context, identity)
        assert_step_is_sound(step, context)
        stored = json.dumps(step.state.to_json())
        state = State.from_json(json.loads(stored))
        assert state == step.state
        for secret in {pin for pin in typed_pins if SECRET.fullmatch(pin)}:
            assert secret not in stored
            assert all(secret not in reply.text for reply in step.replies)
        if not step.replies:
            assert step.effects and any(effect.needs_result for effect in step.effects)
    target(float(len(typed_pins)), label="PIN prompts answered")  # steer examples towards the PIN screens


def test_a_state_changed_with_evolve_equals_the_one_dataclasses_replace_makes_and_stays_frozen() -> None:
    start = State(node="survey.question", answers=(1, None, 3), question=1, client_id=7)
    changed = start.evolve(page=2, notice="Choose 1-3", answers=(1, 2, 3))
    assert changed == dataclasses.replace(start, page=2, notice="Choose 1-3", answers=(1, 2, 3))
    assert start.page == 0 and start.answers == (1, None, 3)  # the original is untouched
    assert State.from_json(changed.to_json()) == changed
    with pytest.raises(TypeError, match="no field 'pgae'"):
        start.evolve(pgae=2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        changed.page = 3  # type: ignore[misc]


def test_a_stored_state_with_values_of_the_wrong_type_falls_back_to_each_fields_default() -> None:
    stored = State(node="survey.question", answers=(1, 2), client_id=4, notice="x").to_json()
    stored |= {"page": "2", "answers": [1, "2"], "client_id": True, "notice": 5, "consent_current": "yes"}
    state = State.from_json(stored)
    assert (state.node, state.page, state.answers, state.client_id, state.notice) == (
        "survey.question",
        0,
        (),
        None,
        None,
    )
    assert state.consent_current is None
    assert State.from_json({**stored, "lines": ["a", "b"], "answers": [None, 3]}).answers == (None, 3)
