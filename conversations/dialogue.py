"""The plain data the conversation engine reads and returns: state, events, context and step.

Kept apart from the engine's logic so the shell (`service.py`) can build and store these values without
pulling in the flows. State is a frozen dataclass that round-trips through JSON (it lives in Redis between
hops); it never holds a PIN or an activation code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from conversations.effects import Effect
from conversations.scripts import SurveyScript
from gateway.messages import Reply

Translate = Callable[..., str]
"""`translate(msgid, **params)`, or `translate(singular, plural=..., n=..., **params)`; %-style named params."""

STATE_VERSION = 1


@dataclass(frozen=True)
class Start:
    """A new session (first USSD hop, or a new SMS/Telegram conversation). `interrupted`: a USSD session whose live
    state was lost starts again at the menu, and says so."""

    interrupted: bool = False


@dataclass(frozen=True)
class UserInput:
    """What the user typed this hop, already split off by the shell."""

    text: str


@dataclass(frozen=True)
class EffectResult:
    """The shell's answer to an effect that needed IO."""

    kind: str
    data: Mapping[str, Any] = field(default_factory=dict)


Event = Start | UserInput | EffectResult


@dataclass(frozen=True)
class ClientRef:
    """A client registered on the calling phone."""

    id: int
    display_name: str


@dataclass(frozen=True)
class Context:
    """Everything the shell knows about this caller, passed in on every call.

    `draft` is the durable draft found for the client: {"answers": {"<question index>": <option position>},
    "started_at": "<display label>"}. `features` switches main-menu entries off by name (survey, balances,
    statement, progress, consent, language, change_pin); a missing name means on.
    """

    channel: str = "ussd"
    role: str = "client"
    clients: tuple[ClientRef, ...] = ()
    survey: SurveyScript | None = None
    draft: Mapping[str, Any] | None = None
    show_band_to_client: bool = False
    languages: tuple[tuple[str, str], ...] = ()
    features: Mapping[str, bool] = field(default_factory=dict)
    sms_max_segments: int = 2


@dataclass(frozen=True)
class State:
    """Where the dialogue is. JSON round-trip with `to_json()`/`from_json()`."""

    node: str = "start"
    page: int = 0
    invalid: int = 0
    notice: str | None = None
    client_id: int | None = None
    client_label: str | None = None
    mode: str = "self"
    scorecard_id: str | None = None
    answers: tuple[int | None, ...] = ()
    question: int = 0
    reviewing: bool = False
    pin_ok: bool = False
    pin_purpose: str | None = None
    after_pin: str | None = None
    info_title: str | None = None
    lines: tuple[str, ...] = ()
    shared_lines: tuple[str, ...] = ()
    consent_version: str | None = None
    consent_current: bool | None = None
    consent_granted: bool | None = None
    version: int = STATE_VERSION

    def to_json(self) -> dict[str, Any]:
        """A dict of JSON types (tuples become lists). Every field is a scalar or a tuple of scalars, so this reads
        the fields directly: `dataclasses.asdict` deep-copies them, a cost on every hop."""
        return {name: list(value) if type(value) is tuple else value for name, value in self.__dict__.items()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> State:
        """Rebuild a state; a missing, foreign or older-version payload gives a fresh state instead of an error."""
        if not isinstance(data, Mapping) or data.get("version") != STATE_VERSION:
            return cls()
        return _built({name: coerce(data.get(name, default), default) for name, (default, coerce) in _COERCE.items()})

    def evolve(self, **changes: Any) -> State:
        """This state with `changes`: what `dataclasses.replace` gives, at a fifth of its cost. `replace` runs the
        generated `__init__` again, which sets each of the 21 fields through `object.__setattr__` (the price of
        `frozen`); every hop makes four or five states. Only field names are accepted; the values are typed by the
        caller, as with `replace`."""
        unknown = changes.keys() - _STATE_DEFAULTS.keys()
        if unknown:
            raise TypeError(f"State has no field {sorted(unknown)[0]!r}")
        return _built({**self.__dict__, **changes})


def _built(values: dict[str, Any]) -> State:
    """A State holding exactly `values` (every field), made without its `__init__` (see `State.evolve`)."""
    state = object.__new__(State)
    state.__dict__.update(values)
    return state


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _answers(value: Any, default: Any) -> Any:
    ok = isinstance(value, list | tuple) and all(v is None or _is_int(v) for v in value)
    return tuple(value) if ok else ()


def _texts(value: Any, default: Any) -> Any:
    return tuple(value) if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value) else ()


def _optional_int(value: Any, default: Any) -> Any:
    return value if value is None or _is_int(value) else default


def _optional_str(value: Any, default: Any) -> Any:
    return value if value is None or isinstance(value, str) else default


def _optional_bool(value: Any, default: Any) -> Any:
    return value if value is None or isinstance(value, bool) else default


def _same_type(value: Any, default: Any) -> Any:
    return value if type(value) is type(default) else default


_STATE_FIELDS = fields(State)
_STATE_DEFAULTS = {spec.name: getattr(State(), spec.name) for spec in _STATE_FIELDS}
_CHECKS = {
    "answers": _answers,
    "lines": _texts,
    "shared_lines": _texts,
    "client_id": _optional_int,
    **dict.fromkeys(
        ("notice", "client_label", "scorecard_id", "pin_purpose", "after_pin", "info_title", "consent_version"),
        _optional_str,
    ),
    "consent_current": _optional_bool,
    "consent_granted": _optional_bool,
}
# Each field's default and the check of its stored value (a value of the wrong type gives the default).
_COERCE: dict[str, tuple[Any, Callable[[Any, Any], Any]]] = {
    name: (default, _CHECKS.get(name, _same_type)) for name, default in _STATE_DEFAULTS.items()
}


@dataclass(frozen=True)
class Step:
    """What one call to `advance` produced."""

    state: State
    replies: tuple[Reply, ...] = ()
    effects: tuple[Effect, ...] = ()
    finished: bool = False
