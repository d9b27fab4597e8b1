"""The conversation shell: load state, call the pure engine, apply its effects in one transaction, save, reply.

Every channel comes through `handle_inbound`. USSD replies go back in the HTTP response; SMS and Telegram replies
are queued in the outbox by the caller. Failures of Redis or the database end a USSD session politely: the durable
draft already holds every answer, so the client resumes on the next dial.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import redis
from sqlalchemy import bindparam, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from accounts.models import Client
from bootstrap import Services
from conversations import account as account_nodes
from conversations import commands, handlers
from conversations.dialogue import ClientRef, Context, EffectResult, Start, State, UserInput
from conversations.engine import advance
from conversations.repository import DraftRepository, HeldSession, LiveSession, LiveSessionStore, input_digest
from db import utcnow
from gateway import outbox
from gateway.messages import Choice, Inbound, Reply, SessionEnd
from locales import gettext_for
from logs import mask_phone
from scoring.scorecard import Band
from surveys import service as surveys

logger = logging.getLogger(__name__)

MAX_EFFECT_ROUNDS = 12
BUTTON_STAMP = "~"  # between a Telegram button's stamp and its choice key in the callback data
_ACCOUNT_NODES = frozenset(node.name for node in account_nodes.NODES)
MESSAGE_SESSION_TTL_SECONDS = 24 * 3600
# A verified PIN holds while an SMS or Telegram session (they last a day) is in use: after this long without a
# message it is asked again, so a phone left on a table does not show balances to whoever picks it up.
PIN_IDLE_SECONDS = 300


class BackingServiceDown(Exception):
    """Redis or the database failed while handling a message that the provider can deliver again later."""


@dataclass
class Caller:
    """Who is on the line, resolved from the phone number."""

    phone: str | None
    role: str  # client | officer | unknown
    client_ids: tuple[int, ...] = ()
    staff_id: int | None = None
    # The client rows read while identifying the caller, kept for the rest of this hop (never saved with the session).
    rows: tuple[Client, ...] = field(default=(), compare=False, repr=False)


def handle_inbound(services: Services, inbound: Inbound, *, now: datetime | None = None) -> list[Reply]:
    """Run one incoming message through the dialogue and return the replies to show or send."""
    now = now or utcnow()
    try:
        return _handle(services, inbound, now)
    except (redis.exceptions.RedisError, OperationalError) as exc:
        logger.warning("backing service unavailable on %s: %s", inbound.channel, type(exc).__name__)
        if not services.channels[inbound.channel].synchronous:
            raise BackingServiceDown(inbound.channel) from exc  # refuse it, so the provider sends it again
        translate = gettext_for(services.settings.default_locale)
        return [Reply(translate("Service unavailable, please try again later. Your answers are saved."), final=True)]
    except Exception:
        correlation_id = uuid.uuid4().hex[:12]
        logger.exception(
            "conversation failed on %s for %s [correlation %s]",
            inbound.channel,
            mask_phone(inbound.sender),
            correlation_id,
        )
        translate = gettext_for(services.settings.default_locale)
        return [Reply(translate("Sorry, something went wrong. Please try again later."), final=True)]


def end_session(services: Services, end: SessionEnd) -> None:
    """The provider says a session is over: its live state goes now rather than at its TTL (the durable draft keeps
    every answer for the next dial), and its outcome is logged without its input, which repeats any PIN typed."""
    store = LiveSessionStore(services.redis, services.settings.ussd_session_ttl_seconds)
    held = store.acquire(f"{end.channel}:{end.session_id}")
    try:
        store.wait(held)  # a hop still running finishes first, so it cannot write the state back afterwards
        held.discard()
    finally:
        store.release(held)
    level = logging.INFO if end.status.lower() == "success" else logging.WARNING
    logger.log(
        level,
        "USSD session ended for %s: %s, %s hops, %s ms%s",
        mask_phone(end.phone),
        end.status,
        "?" if end.hops is None else end.hops,
        "?" if end.duration_ms is None else end.duration_ms,
        f" ({end.error})" if end.error else "",
    )


def _handle(services: Services, inbound: Inbound, now: datetime) -> list[Reply]:
    ussd = inbound.channel == "at-ussd"
    store = LiveSessionStore(
        services.redis, services.settings.ussd_session_ttl_seconds if ussd else MESSAGE_SESSION_TTL_SECONDS
    )
    session_key = f"{inbound.channel}:{inbound.session_id}"
    held = store.acquire(session_key, rate_key=handlers.rate_key(inbound.sender, now))
    try:
        if handlers.over_rate_limit(services, held.rate_count):
            translate = gettext_for(services.settings.default_locale)
            return [Reply(translate("Too many requests. Please wait a minute and try again."), final=True)]
        store.wait(held)
        return _hop(services, inbound, held, ussd, now)
    finally:
        store.release(held)


def _hop(services: Services, inbound: Inbound, held: HeldSession, ussd: bool, now: datetime) -> list[Reply]:
    """One message under the session's lock; what to write back to the live state is left on `held`."""
    live = held.live
    if ussd and live is not None and live.last_response is not None and _not_new(held.session_key, inbound, live):
        return [_reply_from_json(item) for item in live.last_response]  # a retry or a late copy: no effects
    pressed = _pressed_button(inbound, live)
    with services.lazy_transaction() as session:
        if not handlers.first_time(session, inbound):
            return []  # a provider message id seen before is not processed again
        if pressed is None:  # a button of an earlier message (a double tap, an old screen): it answers nothing now
            translate = gettext_for(_sender_language(services, session, inbound, live, now))
            replies = [Reply(translate("That button belongs to an earlier message. Please use the latest one."))]
        else:
            replies, live = _converse(services, session, pressed, live, now)
        if inbound.channel == "telegram" and live is not None and any(reply.choices for reply in replies):
            live.buttons += 1
            replies = _stamped(replies, live.buttons)
        if replies and not services.channels[inbound.channel].synchronous:
            outbox.queue_replies(
                session,
                services,
                channel=outbox.reply_channel(services, inbound.channel),
                recipient=inbound.sender,
                replies=replies,
                key_prefix=f"{inbound.channel}:{inbound.provider_message_id or uuid.uuid4().hex}",
            )
    if live is None:
        held.discard()
    else:  # an ended USSD session keeps its last screen until the TTL, for a gateway's retry of the last hop
        live.last_input_digest = input_digest(held.session_key, inbound.text)
        live.last_response = [_reply_to_json(reply) for reply in replies]
        held.keep(live)
    return replies


def _not_new(session_key: str, inbound: Inbound, live: LiveSession) -> bool:
    """True when a USSD hop brings no new input: a gateway's retry of the last hop (the same `text`), or a late copy
    of an earlier one (a `text` that does not extend the one last answered). Africa's Talking only ever adds to the
    history, so applying such a hop would take old input for new and answer a question twice."""
    if live.last_input_digest is None:
        return False
    answered = inbound.text[: live.consumed]
    return len(inbound.text) <= live.consumed or input_digest(session_key, answered) != live.last_input_digest


def _sender_language(
    services: Services, session: Session, inbound: Inbound, live: LiveSession | None, now: datetime
) -> str:
    """The language of the person on the chat, for a reply outside the dialogue (read only on that rare path)."""
    caller = _caller(services, session, inbound, live, now)
    state = State.from_json(live.state) if live is not None and live.state else None
    return handlers.language_of(session, services, caller, state)


def _converse(
    services: Services, session: Session, inbound: Inbound, live: LiveSession | None, now: datetime
) -> tuple[list[Reply], LiveSession | None]:
    caller = _caller(services, session, inbound, live, now)
    if caller.role == "unknown":
        return handlers.unknown_caller_replies(services, session, inbound, caller), None
    if inbound.channel != "at-ussd":
        node = str(live.state.get("node") or "") if live is not None and live.state else None
        handled = commands.keyword_replies(services, session, inbound, caller, now, dialogue_node=node)
        if handled is not None:
            return handled, live
    typed = _this_input(inbound, live)
    events = commands.shortcut_events(inbound, caller, typed) or _events(inbound, live, typed)
    if live is None:
        live = LiveSession(state={})
    if inbound.channel == "at-ussd":
        live.consumed = len(inbound.text)
        live.caller = {
            "phone": caller.phone,
            "role": caller.role,
            "client_ids": list(caller.client_ids),
            "staff_id": caller.staff_id,
        }
    state = State.from_json(live.state) if live.state else None
    if inbound.channel != "at-ussd":  # a USSD session ends within minutes by itself
        state = _forget_idle_pin(state, live, now) if state is not None else None
        live.touched_at = now.timestamp()
    replies: list[Reply] = []
    runner = _EffectRunner(services, session, inbound, caller, now)
    if inbound.channel == "at-ussd":
        runner.ppi_from_json(live.ppi)
        runner.people_from_json(live.people)
    finished = False
    for event in events:
        # Only the last event's screen is shown: a hop answers with one screen, and one SMS reply per message.
        state, replies, finished = runner.run(state, event)
        if finished:
            break
    live.state = state.to_json() if state is not None and not finished else {}
    if inbound.channel == "at-ussd":
        live.ppi = runner.ppi_to_json()
        live.people = runner.people_to_json()
    if finished and inbound.channel != "at-ussd":
        return replies, None
    return replies, live


def _pressed_button(inbound: Inbound, live: LiveSession | None) -> Inbound | None:
    """A Telegram button press as the choice it stands for, or None when the button is not on the latest message:
    each message's buttons carry a stamp (`_stamped`), so a second tap or a tap on an older message cannot answer
    the question on screen now."""
    if inbound.callback_id is None:
        return inbound
    stamp, separator, key = inbound.text.partition(BUTTON_STAMP)
    if not separator:
        return inbound  # a button sent before buttons were stamped
    if live is None or stamp != str(live.buttons):
        return None
    return replace(inbound, text=key)


def _stamped(replies: list[Reply], stamp: int) -> list[Reply]:
    return [
        replace(reply, choices=tuple(Choice(f"{stamp}{BUTTON_STAMP}{c.key}", c.label) for c in reply.choices))
        if reply.choices
        else reply
        for reply in replies
    ]


def _forget_idle_pin(state: State, live: LiveSession, now: datetime) -> State | None:
    """After PIN_IDLE_SECONDS without a message the PIN is asked again, and a PIN screen or an account screen left
    open (a new PIN half chosen, balances on show) is closed: the next message gets the main menu."""
    idle = live.touched_at is None or now.timestamp() - live.touched_at > PIN_IDLE_SECONDS
    if not idle:
        return state
    if state.node in _ACCOUNT_NODES:
        return None
    return state.evolve(pin_ok=False) if state.pin_ok else state


def _caller(services: Services, session: Session, inbound: Inbound, live: LiveSession | None, now: datetime) -> Caller:
    """Who is calling: resolved from the phone on a USSD session's first hop and kept in its live state (a session
    lasts minutes), resolved on every message elsewhere."""
    if inbound.channel == "at-ussd" and live is not None and live.caller is not None:
        try:
            cached = live.caller
            return Caller(
                phone=cached["phone"],
                role=cached["role"],
                client_ids=tuple(int(cid) for cid in cached["client_ids"]),
                staff_id=cached["staff_id"],
            )
        except (KeyError, TypeError, ValueError):
            pass  # an older or damaged record: resolve again
    return handlers.identify(session, inbound, now, services.settings.default_region)


def _events(inbound: Inbound, live: LiveSession | None, typed: str) -> list[Any]:
    """The engine events for this hop. Africa's Talking repeats the whole input history in `text` (`1*2*3`), so
    the new input (`typed`, from `_this_input`) is what follows the characters already consumed, not the last `*`
    segment: a free-text answer that contains `*` survives."""
    if inbound.channel != "at-ussd":
        if live is None or not live.state:
            return [Start()] if _is_greeting(inbound.text) else [Start(), UserInput(inbound.text)]
        return [UserInput(inbound.text)]
    if live is None or not live.state:
        if "*" in inbound.text:
            # The session's live state was lost (Redis restarted, the key expired, the session was ended): its
            # history cannot be replayed safely (through a resume offer it would start the survey again, and a
            # repeated submit would save it twice), so the caller gets the main menu; every answer is in the draft.
            return [Start(interrupted=True)]
        # A direct dial (`*384*123*1#` sends "1") opens the menu and chooses from it.
        return [Start(), UserInput(inbound.text)] if inbound.text else [Start()]
    return [UserInput(typed)]


def _this_input(inbound: Inbound, live: LiveSession | None) -> str:
    """What the user typed on this hop: on USSD what follows the characters already consumed."""
    if inbound.channel != "at-ussd" or live is None or not live.state:
        return inbound.text
    fresh = inbound.text[live.consumed :]  # `_not_new` has answered any text that does not extend the history
    return fresh[1:] if fresh.startswith("*") else fresh


def _is_greeting(text: str) -> bool:
    """On SMS and Telegram the first message opens the menu; a number in it is taken as the first choice."""
    stripped = text.strip()
    return not stripped.isdigit()


class _EffectRunner:
    """Calls the engine, applies the effects it asks for, and feeds results back until it waits for the user."""

    def __init__(self, services: Services, session: Session, inbound: Inbound, caller: Caller, now: datetime) -> None:
        self.services = services
        self.session = session
        self.inbound = inbound
        self.caller = caller
        self.now = now
        self.drafts = DraftRepository(session, autocommit=services.autocommit_engine)
        self._ppi_config: tuple[surveys.PpiConfig | None] | None = None
        self._languages: dict[int | None, str] = {}
        self._client_refs: tuple[ClientRef, ...] | None = None
        # The session's identity map holds rows weakly: keeping the rows read here for the hop lets every later
        # `session.get` in this hop find them instead of selecting them again.
        self._rows: dict[int, Client | None] = {row.id: row for row in caller.rows}

    def ppi_config(self) -> surveys.PpiConfig | None:
        """The MFI's PPI settings, read once per hop (the engine may be called several times in one hop)."""
        if self._ppi_config is None:
            self._ppi_config = (surveys.get_config(self.session),)
        return self._ppi_config[0]

    def ppi_to_json(self) -> dict[str, Any] | None:
        """The settings this hop used, for the USSD live state: a USSD session (a few minutes at most) keeps the
        settings of its first hop, so a settings change reaches every session that starts after it."""
        if self._ppi_config is None:
            return None
        config = self._ppi_config[0]
        if config is None:
            return {"configured": False}
        bands = [[band.low, band.high, band.label] for band in config.bands] if config.bands else None
        return {
            "configured": True,
            "scorecard_id": config.scorecard_id,
            "status": config.status,
            "headline_line": config.headline_line,
            "bands": bands,
            "show_band_to_client": config.show_band_to_client,
        }

    def ppi_from_json(self, data: dict[str, Any] | None) -> None:
        if not data:
            return
        try:
            if not data["configured"]:
                self._ppi_config = (None,)
                return
            bands = tuple(Band(int(low), int(high), str(label)) for low, high, label in data["bands"] or ())
            config = surveys.PpiConfig(
                scorecard_id=str(data["scorecard_id"]),
                status=str(data["status"]),
                headline_line=str(data["headline_line"]),
                bands=bands or None,
                show_band_to_client=bool(data["show_band_to_client"]),
            )
        except (KeyError, TypeError, ValueError):
            return  # an older or damaged record: read the settings again
        self._ppi_config = (config,)

    def client_refs(self) -> tuple[ClientRef, ...]:
        """The clients registered on the calling phone, named to tell them apart: read on first use, then kept in a USSD
        session's live state, so a survey hop reads no client row."""
        if self._client_refs is None:
            rows = [row for row in (self.client_row(cid) for cid in self.caller.client_ids) if row is not None]
            names = handlers.names_to_choose_from([row.name for row in rows])
            self._client_refs = tuple(ClientRef(row.id, name) for row, name in zip(rows, names, strict=True))
        return self._client_refs

    def client_row(self, client_id: int) -> Client | None:
        """A client's row, read once per hop (with a statement built once: `Session.get` builds its query anew)."""
        if client_id not in self._rows:
            self._rows[client_id] = self.session.scalars(_CLIENT_ROW, {"client_id": client_id}).first()
        return self._rows[client_id]

    def forget_languages(self) -> None:
        """A client changed their language: work it out again on the next use."""
        self._languages.clear()

    def people_to_json(self) -> dict[str, Any]:
        """What this session has learnt of the people on the line, for the USSD live state: the caller's clients'
        first names and each person's language. Both change only through this session (a language change forgets
        the languages) or hardly ever (a name), and a USSD session lasts minutes."""
        refs = None if self._client_refs is None else [[ref.id, ref.display_name] for ref in self._client_refs]
        return {"clients": refs, "languages": [[key, code] for key, code in self._languages.items()]}

    def people_from_json(self, data: dict[str, Any] | None) -> None:
        if not data:
            return
        try:
            refs = data.get("clients")
            if refs is not None:
                self._client_refs = tuple(ClientRef(int(cid), str(name)) for cid, name in refs)
            self._languages = {
                (None if key is None else int(key)): str(code) for key, code in data.get("languages") or ()
            }
        except (TypeError, ValueError):  # an older or damaged record: read them again
            self._client_refs, self._languages = None, {}

    def run(self, state: State | None, event: Any) -> tuple[State, list[Reply], bool]:
        replies: list[Reply] = []
        for _ in range(MAX_EFFECT_ROUNDS):
            context = self.context(state, starting=isinstance(event, Start))
            translate = gettext_for(self.language(state))
            step = advance(state, event, context, translate)
            state = step.state
            replies.extend(step.replies)
            result: EffectResult | None = None
            for effect in step.effects:
                outcome = handlers.apply(self, effect, state)
                if effect.needs_result and outcome is not None:
                    result = outcome
            if step.finished or result is None:
                return state, replies, step.finished
            event = result
        raise RuntimeError("the engine asked for too many effects in one hop")

    def context(self, state: State | None, *, starting: bool = False) -> Context:
        return handlers.build_context(self, state, starting=starting)

    def language(self, state: State | None) -> str:
        """The caller's language, worked out once per hop for each client the state can point at."""
        key = handlers.active_client_id(self.caller, state)
        if key not in self._languages:
            self._languages[key] = handlers.language_of(
                self.session, self.services, self.caller, state, client_row=self.client_row
            )
        return self._languages[key]


_CLIENT_ROW = select(Client).where(Client.id == bindparam("client_id"))


def _reply_to_json(reply: Reply) -> dict[str, Any]:
    return {
        "text": reply.text,
        "final": reply.final,
        "choices": [[choice.key, choice.label] for choice in reply.choices],
        "request_contact": reply.request_contact,
    }


def _reply_from_json(data: dict[str, Any]) -> Reply:
    return Reply(
        text=str(data.get("text", "")),
        final=bool(data.get("final")),
        choices=tuple(Choice(str(key), str(label)) for key, label in data.get("choices") or ()),
        request_contact=bool(data.get("request_contact")),
    )
