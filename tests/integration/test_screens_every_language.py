"""Every screen of every flow, in every language, on every channel, fits what the phone can show.

The engine is driven (pure `advance`, no database) through every node with the real catalogs, the real KEN-2024
survey (with its Swahili overlay for sw), the real consent text and the real presenter lines for balances,
statement and progress. After each step: every reply fits its channel (USSD 182 GSM-7 / 80 UCS-2, SMS two
segments, Telegram 4096), no numbered choice is cut across pages, a USSD session's last screen is not truncated,
and a translated screen is not the English one. The SMS keyword replies of `conversations/commands.py` and the
session-level replies of `conversations/service.py` and `handlers.py` are rendered per language as well.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import cache
from typing import Any

import pytest

from accounts import pins
from accounts.corebanking import AccountBalance, StatementLine
from accounts.presenter import babel_locale, balance_lines, progress_lines, statement_lines
from consent.service import consent_text
from conversations.dialogue import ClientRef, Context, EffectResult, Event, Start, State, Step, UserInput
from conversations.effects import CheckPinStatus
from conversations.engine import NODES, advance
from conversations.screens import Budget
from conversations.scripts import SurveyScript, survey_script
from gateway import encoding
from gateway.messages import Reply
from locales import NATIVE_NAMES, SUPPORTED, Translate, gettext_for
from locales.check import extract
from scoring.loader import load_scorecard

CHANNELS = ("ussd", "sms", "telegram")
JANE, OTIENO = ClientRef(7, "Jane Wanjiru"), ClientRef(8, "Otieno Ochieng")
BAND = "Very poor"
SCREEN_NODES = frozenset(name for name, node in NODES.items() if node.screen is not None)


OVERLAYS = ("sw",)  # KEN-2024's translations; other languages read its published English


@cache
def kenya_survey(language: str) -> SurveyScript:
    return survey_script(load_scorecard("KEN-2024", language=language if language in OVERLAYS else None))


def published_english_only(shown: Shown, language: str) -> bool:
    """A question of a scorecard without this language's text, on a GSM-7 screen: its navigation words are the
    English ones by design (`screens._nav_in_the_screens_alphabet`), so it is the English screen."""
    return shown.node == "question" and language not in OVERLAYS and encoding.is_gsm7(shown.text)


@dataclass(frozen=True)
class Shown:
    node: str
    text: str


@dataclass
class Walk:
    """Drives the engine like the shell does and checks every reply against the channel's budget."""

    language: str
    context: Context
    translate: Translate
    state: State | None = None
    shown: list[Shown] = field(default_factory=list)
    pin_status: EffectResult = EffectResult("pin_active")  # the shell's answer to CheckPinStatus

    def __post_init__(self) -> None:
        self.base = self.context

    def send(self, event: Event, **context_changes: Any) -> Step:
        if context_changes:
            self.context = replace(self.context, **context_changes)
        step = advance(self.state, event, self.context, self.translate)
        self._check(step, event)
        self.state = step.state
        if step.replies:
            self.shown.append(Shown(step.state.node, step.replies[0].text))
        if any(isinstance(effect, CheckPinStatus) for effect in step.effects):
            return self.send(self.pin_status)
        return step

    def start(self, pin_status: str = "pin_active", **context_changes: Any) -> Step:
        """A new session, on the walk's own context with `context_changes`, for a client whose PIN status is
        `pin_status` (pin_active, pin_needs_activation, or locked for 12 minutes: pin_locked)."""
        self.state, self.context = None, replace(self.base, **context_changes)
        self.pin_status = EffectResult(pin_status, {"minutes": 12} if pin_status == "pin_locked" else {})
        return self.send(Start())

    def type(self, *texts: str) -> Step:
        step = Step(State())
        for text in texts:
            step = self.send(UserInput(text))
        return step

    def result(self, kind: str, **data: Any) -> Step:
        return self.send(EffectResult(kind, data))

    def _check(self, step: Step, event: Event) -> None:
        for reply in [*step.replies, *self._later_pages(step)]:
            assert self.budget.fits(reply.text), f"{self.language}/{self.context.channel}: too long: {reply.text!r}"
            for choice in reply.choices:
                assert f"{choice.key} {choice.label}" in reply.text, f"item cut across pages: {reply.text!r}"
        if step.finished and self.context.channel == "ussd":
            whole = advance(self.state, event, replace(self.context, channel="telegram"), self.translate)
            assert [r.text for r in step.replies] == [r.text for r in whole.replies], "last USSD screen was cut"

    @property
    def budget(self) -> Budget:
        return Budget(self.context.channel, self.context.sms_max_segments)

    def _later_pages(self, step: Step) -> Iterator[Reply]:
        """The pages after the one shown ("98"), rendered the way the engine re-shows a screen."""
        if step.finished or not step.replies:
            return
        for page in range(1, 100):
            again = advance(replace(step.state, page=page), EffectResult("shown_again"), self.context, self.translate)
            if again.state.page < page:
                return
            yield from again.replies


def new_walk(language: str, channel: str, **changes: Any) -> Walk:
    context = Context(
        channel=channel,
        role="client",
        clients=(JANE,),
        survey=kenya_survey(language),
        show_band_to_client=True,
        languages=tuple((code, NATIVE_NAMES[code]) for code in SUPPORTED),
    )
    return Walk(language, replace(context, **changes), gettext_for(language))


# --- what the shell would send back ---------------------------------------------------------------------------


def balances(language: str) -> list[str]:
    as_of = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
    accounts = [
        AccountBalance(
            "loan", "••1234", "Biashara Loan", "KES", Decimal("15400"), date(2026, 12, 1), Decimal("1250"),
            Decimal("500"), as_of, stale=True,
        ),
        AccountBalance("savings", "••5678", "Akiba Savings", "KES", Decimal("3200.50"), None, None, Decimal(0), as_of),
    ]  # fmt: skip
    return balance_lines(accounts, gettext_for(language), babel_locale(language, "KE"), "KES")


def statement(language: str) -> list[str]:
    kinds = ("disbursement", "repayment", "interest", "fee", "waiver", "write_off", "deposit", "withdrawal")
    lines = [
        StatementLine(date(2026, 11, day), kind, Decimal(1000 + 37 * day), "KES", "••1234")
        for day, kind in enumerate(kinds, start=1)
    ]
    return statement_lines(lines, gettext_for(language), babel_locale(language, "KE"), "KES", limit=8)


@dataclass(frozen=True)
class Surveyed:
    date_collected: date
    band: str | None


def progress(language: str) -> list[str]:
    history = [
        Surveyed(date(2025, 3, 2), BAND),
        Surveyed(date(2025, 9, 14), "Poor"),
        Surveyed(date(2026, 3, 1), "Poor"),
    ]
    return progress_lines(history, gettext_for(language), babel_locale(language, "KE"))


def consent_result(walk: Walk, current: bool | None) -> Step:
    text = consent_text(walk.language)
    return walk.result("consent_text", text=text.text, what_is_shared=text.what_is_shared, version=text.version,
                       current=current)  # fmt: skip


# --- the flows -------------------------------------------------------------------------------------------------


def answer_remaining(walk: Walk) -> None:
    """Answer whatever question is shown until the review (one invalid reply on the way)."""
    walk.type("99")
    while walk.state is not None and walk.state.node == "question":
        walk.type("2")
    assert walk.state is not None and walk.state.node == "review"


def survey_flow(walk: Walk) -> None:
    draft = {"answers": {"1": 3}, "started_at": "12 Mar 2026", "scorecard_id": "KEN-2024"}
    walk.start(clients=(JANE, OTIENO), draft=draft)
    assert walk.state is not None and walk.state.node == "who"
    walk.type("9", "1", "x", "1")
    assert walk.state.node == "resume"
    walk.type("7", "1")
    assert walk.state.node == "question" and walk.state.question == 0
    walk.type("98")  # the county list pages on USSD and SMS; on Telegram "98" says there is no more
    if walk.state.page > 0:
        walk.type("0")
    walk.type("47")
    answer_remaining(walk)
    walk.type("2", "0", "2", "11", "3", "1")
    assert walk.state.node == "review"
    walk.type("1")
    walk.result("survey_failed")
    assert walk.state.node == "review"
    walk.type("1")
    walk.result("survey_submitted", band=BAND, headline_score=31)
    # A draft restarted from scratch, then the survey changes under the dialogue.
    walk.start(draft=draft)
    walk.type("1", "2")
    assert walk.state is not None and walk.state.node == "question"
    changed = SurveyScript("KEN-2025", kenya_survey(walk.language).questions)
    walk.send(UserInput("1"), survey=changed)
    walk.start(survey=None)
    walk.type("1")
    walk.start(survey=kenya_survey(walk.language))
    walk.type("1", "2", "x", "x", "x")  # too many invalid replies inside the survey


def pin_flow(walk: Walk) -> None:
    walk.start()
    walk.type("2", "12", "4826")
    walk.result("pin_wrong", attempts_left=2)
    walk.type("4826")
    walk.result("pin_wrong", attempts_left=1)
    walk.type("4826")
    walk.result("pin_wrong")
    walk.type("4826")
    walk.result("pin_ok")
    walk.result("lines", lines=balances(walk.language))
    assert walk.state is not None and walk.state.node == "info"
    walk.type("5", "0", "3")
    walk.result("lines", lines=statement(walk.language))
    walk.type("00", "4")
    walk.result("lines", lines=progress(walk.language))
    walk.type("0", "4")
    walk.result("lines", lines=[])
    walk.type("0", "2")
    walk.result("service_unavailable")
    walk.type("7")
    for reason in (pins.REASON_NOT_FOUR_DIGITS, pins.REASON_REPEATED, pins.REASON_SEQUENCE, pins.REASON_PHONE, None):
        walk.type("1111")
        walk.result("pin_rejected", **({"reason_msgid": reason} if reason else {}))
    walk.type("4826")
    walk.result("pin_staged")
    walk.type("4827")
    walk.result("pin_mismatch")
    walk.type("4826")
    walk.result("pin_staged")
    walk.type("4826")
    walk.result("pin_set")
    assert walk.state is not None and walk.state.node == "menu"
    for minutes in (1, 15):
        walk.start()
        walk.type("2", "4826")
        walk.result("pin_locked", minutes=minutes)
    walk.start(pin_status="pin_locked")
    walk.type("2")


def activation_flow(walk: Walk) -> None:
    walk.start(pin_status="pin_needs_activation")
    walk.type("7", "!", "ABCD-1234")
    walk.result("activation_bad")
    walk.type("ABCD-1234")
    walk.result("activation_ok")
    walk.type("4826")
    walk.result("pin_staged")
    walk.type("4826")
    walk.result("pin_set")
    assert walk.state is not None and walk.state.node == "menu"
    walk.start(pin_status="pin_needs_activation")
    walk.type("2", "ABCD-1234")
    walk.result("activation_ok")
    walk.type("4826")
    walk.result("pin_staged")
    walk.type("4826")
    walk.result("pin_set")
    walk.result("lines", lines=balances(walk.language))


def preferences_flow(walk: Walk) -> None:
    walk.start()
    for current, choice in ((True, "2"), (False, "1"), (None, "1")):
        walk.type("5")
        consent_result(walk, current)
        walk.type("9", "3", "5", "0", choice, "0")
    walk.type("5")
    walk.result("service_unavailable")
    walk.type("6", "9", "2")
    walk.result("language_set")
    walk.type("98", "0")
    walk.start(languages=())
    walk.type("6", "x", "x", "x")  # too many invalid replies at the menu
    walk.start(clients=())


def officer_flow(walk: Walk) -> None:
    walk.start(role="officer", clients=())
    walk.type("5", "1", "0", "1", "C0002")
    walk.result("client_not_found")
    walk.type("C0002")
    walk.result("client_found", id=JANE.id, masked_name="Ja** Wa***", draft={"answers": {"0": 47}})
    walk.type("3", "2", "C0002")
    walk.result("client_found", id=JANE.id, masked_name="Ja** Wa***", draft={"answers": {"0": 47}})
    walk.type("1", "1")
    answer_remaining(walk)
    walk.type("1")
    walk.result("survey_submitted", band=BAND, headline_score=31)
    walk.start(role="officer", clients=())
    walk.type("1", "/")


FLOWS: dict[str, Callable[[Walk], None]] = {
    "survey": survey_flow,
    "pin": pin_flow,
    "activation": activation_flow,
    "preferences": preferences_flow,
    "officer": officer_flow,
}


@cache
def screens(language: str, channel: str, flow: str) -> tuple[Shown, ...]:
    walk = new_walk(language, channel)
    FLOWS[flow](walk)
    return tuple(walk.shown)


# --- the tests -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("channel", CHANNELS)
@pytest.mark.parametrize("language", SUPPORTED)
@pytest.mark.parametrize("flow", FLOWS)
def test_every_screen_fits_and_is_translated(flow: str, language: str, channel: str) -> None:
    shown = screens(language, channel, flow)  # the walk asserts each reply fits as it goes
    if language == "en":
        return
    english = screens("en", channel, flow)
    assert len(shown) == len(english)
    untranslated = [
        ours.text
        for ours, theirs in zip(shown, english, strict=True)
        if ours.text == theirs.text and not published_english_only(ours, language)
    ]
    assert untranslated == [], f"{language} screens still in English"


@pytest.mark.parametrize("channel", CHANNELS)
@pytest.mark.parametrize("language", SUPPORTED)
def test_the_walks_reach_every_screen(language: str, channel: str) -> None:
    reached = {shown.node for flow in FLOWS for shown in screens(language, channel, flow)}
    assert SCREEN_NODES - reached == set()
    assert "end" in reached  # and the session-ending messages


def sources(*paths: str) -> Iterator[tuple[str, str | None]]:
    """(msgid, plural) for every message extracted from `paths`, so new replies there are covered too."""
    for message in extract():
        if message.id and any(location.startswith(paths) for location, _line in message.locations):
            if isinstance(message.id, list | tuple):
                yield message.id[0], message.id[1]
            else:
                yield message.id, None


SAMPLES = {"id": "C0002", "score": "31", "band": BAND, "problems": "Q3: reply 1-9 (missing)", "codes": "sw, fr"}


def render(translate: Translate, msgid: str, plural: str | None) -> list[str]:
    names = {name for name in ("id", "score", "band", "problems", "codes") if f"%({name})s" in msgid}
    params: dict[str, Any] = {name: SAMPLES[name] for name in names}
    if plural is not None:
        return [translate(msgid, plural=plural, n=n, **params) for n in (0, 1, 2, 5, 11, 100)]
    return [translate(msgid, **params)]


@pytest.mark.parametrize("language", SUPPORTED)
def test_keyword_replies_fit_two_sms_segments(language: str) -> None:
    translate = gettext_for(language)
    keyword_replies = list(sources("conversations/commands.py"))
    assert len(keyword_replies) >= 8
    for msgid, plural in keyword_replies:
        for text in render(translate, msgid, plural):
            assert encoding.segment_count(text) <= 2, f"{language}: {text!r}"
            if language != "en":
                assert text != render(gettext_for("en"), msgid, plural)[0], f"{language}: untranslated {msgid!r}"


@pytest.mark.parametrize("language", SUPPORTED)
def test_session_replies_fit_one_ussd_screen(language: str) -> None:
    """Service errors, rate limits and the unknown-caller reply end a USSD session: one screen, nothing cut."""
    translate = gettext_for(language)
    replies = list(sources("conversations/service.py", "conversations/handlers.py"))
    assert len(replies) >= 4
    for msgid, plural in replies:
        for text in render(translate, msgid, plural):
            assert encoding.fits_ussd(text), f"{language}: {text!r}"
            assert encoding.segment_count(text) <= 2, f"{language}: {text!r}"


ONE_SCREEN_NODES = frozenset(
    {"resume", "pin_entry", "activation_code", "new_pin", "confirm_pin", "change_pick", "find_client",
     "confirm_client", "officer_menu", "consent_done", "language_done", "who"}
)  # fmt: skip


@pytest.mark.parametrize("language", SUPPORTED)
def test_short_screens_fit_one_ussd_page_even_with_an_error_above(language: str) -> None:
    """A PIN prompt with its error, or a two-choice question, never makes the caller press 98 to see the choices."""
    paged = [
        shown.text
        for flow in FLOWS
        for shown in screens(language, "ussd", flow)
        if shown.node in ONE_SCREEN_NODES and "\n98 " in shown.text
    ]
    assert paged == []
