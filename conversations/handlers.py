"""The shell's side of each effect, and what the shell knows about the caller.

`apply` dispatches an engine effect to the service that owns it (surveys, accounts, consent) through one explicit
table; each handler returns the `EffectResult` the engine waits for, or None for fire-and-forget effects. All of it
runs inside the hop's single database transaction.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from accounts import pins
from accounts import service as accounts
from accounts.limiter import build_limiter
from accounts.models import ChatLink, Client, Staff
from bootstrap import Services
from conversations import effects as fx
from conversations import menus
from conversations.dialogue import Context, EffectResult, State
from conversations.repository import DraftRepository
from conversations.scripts import SurveyScript, survey_script
from conversations.survey import SURVEY_NODES
from db import as_utc
from feeds.schedule import survey_changed
from gateway.messages import Choice, Inbound, Reply
from gateway.models import SeenMessage
from locales import NATIVE_NAMES, SUPPORTED, Translate, gettext_for
from scoring.loader import load_for_reader
from settings import comma_names
from surveys import service as surveys
from surveys.models import SUBMISSION_KEY_LENGTH

if TYPE_CHECKING:
    from conversations.service import Caller, _EffectRunner

logger = logging.getLogger(__name__)

CHANNEL_KIND = {"at-ussd": "ussd", "at-sms": "sms", "twilio-sms": "sms", "console": "sms", "telegram": "telegram"}
PIN_STAGE_SECONDS = 300


# --- who is calling -------------------------------------------------------------------------------------------


def identify(session: Session, inbound: Inbound, now: datetime, default_region: str) -> Caller:
    from conversations.service import Caller

    phone = _phone_of(session, inbound, now)
    if phone is None:
        return Caller(phone=None, role="unknown")
    staff = accounts.staff_on_phone(session, phone, default_region=default_region)
    if staff is not None:
        return Caller(phone=phone, role="officer", staff_id=staff.id)
    clients = accounts.clients_on_phone(session, phone, default_region=default_region)
    if clients:
        ids = tuple(client.id for client in clients)
        return Caller(phone=phone, role="client", client_ids=ids, rows=tuple(clients))
    return Caller(phone=phone, role="unknown")


def _phone_of(session: Session, inbound: Inbound, now: datetime) -> str | None:
    """The caller's phone: the sender itself, or for Telegram the phone linked to the chat."""
    if not inbound.sender.startswith("tg:"):
        return inbound.sender
    if inbound.contact_phone:
        link = session.scalar(select(ChatLink).where(ChatLink.address == inbound.sender))
        if link is None:
            session.add(ChatLink(address=inbound.sender, phone=inbound.contact_phone, linked_at=now))
        else:
            link.phone = inbound.contact_phone
        session.flush()
        return inbound.contact_phone
    return session.scalar(select(ChatLink.phone).where(ChatLink.address == inbound.sender))


def unknown_caller_replies(services: Services, session: Session, inbound: Inbound, caller: Caller) -> list[Reply]:
    translate = gettext_for(services.settings.default_locale)
    if inbound.sender.startswith("tg:") and caller.phone is None:
        return [
            Reply(
                translate("Welcome! Please share your phone number so we can find your account."),
                request_contact=True,
                choices=(Choice("contact", translate("Share my phone number")),),  # the button's label
            )
        ]
    return [
        Reply(translate("Sorry, this phone number is not registered. Please contact your loan officer."), final=True)
    ]


def first_time(session: Session, inbound: Inbound) -> bool:
    """Record the provider message id; False when it was seen before (a retried webhook)."""
    if not inbound.provider_message_id:
        return True
    try:
        with session.begin_nested():
            session.execute(
                insert(SeenMessage).values(channel=inbound.channel, provider_message_id=inbound.provider_message_id)
            )
    except IntegrityError:
        return False
    return True


def rate_key(sender: str, now: datetime) -> str:
    """A fixed one-minute window per sender, so one number flooding hops cannot slow the others."""
    return f"rate:sender:{sender}:{int(now.timestamp()) // 60}"


def over_rate_limit(services: Services, count: int | None) -> bool:
    return count is not None and count > services.settings.rate_limit_per_phone_per_minute


# --- what the engine needs to know ----------------------------------------------------------------------------


def active_client_id(caller: Caller, state: State | None) -> int | None:
    if state is not None and state.client_id is not None:
        return state.client_id
    if caller.role == "client" and len(caller.client_ids) == 1:
        return caller.client_ids[0]
    return None


def translator(session: Session, services: Services, caller: Caller, state: State | None) -> Translate:
    return gettext_for(language_of(session, services, caller, state))


def language_of(
    session: Session,
    services: Services,
    caller: Caller,
    state: State | None,
    *,
    client_row: Callable[[int], Client | None] | None = None,
) -> str:
    """The client's language, else the officer's, else their office's default, else the MFI's default.
    `client_row` reads a client (the conversation's runner passes its own, which keeps the rows of the hop)."""
    default = services.settings.default_locale
    person: Client | Staff | None
    if caller.role == "officer" and caller.staff_id is not None:
        person = session.get(Staff, caller.staff_id)
    else:
        client_id = active_client_id(caller, state)
        if client_id is None and caller.client_ids:
            client_id = caller.client_ids[0]
        read = client_row or (lambda cid: session.get(Client, cid))
        person = read(client_id) if client_id is not None else None
    return accounts.person_language(session, person, default)


def build_context(runner: _EffectRunner, state: State | None, *, starting: bool = False) -> Context:
    """What the engine needs for this round. A running survey carries its answers in the state, so its hops do not
    read the draft: a survey hop reads no row. Nor does a round that starts the dialogue (`starting`: a `Start`
    event): its first screen, the menu or "who is speaking?", shows no draft, and the input that follows is handled
    in a round of its own, with it. The PIN status is read only when a service asks for the PIN (`CheckPinStatus`)."""
    caller, services = runner.caller, runner.services
    config = runner.ppi_config()
    client_id = active_client_id(caller, state)
    language = runner.language(state)
    script = None
    if config is not None and config.status == "active":
        script = _survey_script(config.scorecard_id, language)
    mode = "officer" if caller.role == "officer" else "self"
    reads_no_rows = starting or (state is not None and state.node in SURVEY_NODES)
    draft = runner.drafts.find(client_id, mode, runner.now) if client_id is not None and not reads_no_rows else None
    return Context(
        channel=CHANNEL_KIND.get(runner.inbound.channel, "sms"),
        role=caller.role,
        clients=runner.client_refs(),
        survey=script,
        draft=_draft_view(draft, language, services) if draft is not None else None,
        show_band_to_client=bool(config and config.show_band_to_client),
        languages=tuple((code, NATIVE_NAMES[code]) for code in SUPPORTED),
        features=_menu_features(services.settings.menu_off),
        sms_max_segments=services.settings.sms_max_segments,
    )


@functools.lru_cache(maxsize=8)
def _menu_features(menu_off: str) -> dict[str, bool]:
    """`Context.features` for the MENU_OFF setting (its names were checked when the settings were read)."""
    return menus.switched_off(comma_names(menu_off))


@functools.lru_cache(maxsize=64)
def _survey_script(scorecard_id: str, language: str) -> SurveyScript:
    """Scorecards never change once published, so their script per language is built once per process."""
    return survey_script(load_for_reader(scorecard_id, language))


def _draft_view(draft: Any, language: str, services: Services) -> dict[str, Any]:
    from babel.dates import format_date

    started = as_utc(draft.started_at).astimezone(ZoneInfo(services.settings.timezone))
    return {
        "answers": dict(draft.answers or {}),
        "scorecard_id": draft.scorecard_id,
        "started_at": format_date(started.date(), format="d MMM", locale=language),
    }


def names_to_choose_from(names: list[str]) -> list[str]:
    """How the clients sharing a phone are named on "who is speaking?": by first name, with the last name's initial
    where first names collide ("Jane W.", "Jane O."), and in full where even that collides."""
    chosen = []
    for name in names:
        for form in (_first_name, _first_name_and_initial, _full_name):
            label = form(name)
            if sum(form(other) == label for other in names) == 1:
                break
        chosen.append(label)
    return chosen


def _first_name(name: str) -> str:
    return name.split()[0] if name.split() else name


def _first_name_and_initial(name: str) -> str:
    parts = name.split()
    return f"{parts[0]} {parts[-1][0]}." if len(parts) > 1 else _first_name(name)


def _full_name(name: str) -> str:
    return " ".join(name.split()) or name


def masked_name(name: str) -> str:
    """'Jane Wanjiru' -> 'Ja** Wa*****', 'Jo Li' -> 'J* L*': enough for an officer to confirm, not enough to leak
    a name (a part of three letters or fewer shows only its first)."""
    return " ".join(part[: 1 if len(part) <= 3 else 2].ljust(len(part), "*") for part in name.split())


# --- effects --------------------------------------------------------------------------------------------------


def apply(runner: _EffectRunner, effect: fx.Effect, state: State) -> EffectResult | None:
    handler = HANDLERS.get(effect.kind)
    if handler is None:
        raise LookupError(f"no handler for effect {effect.kind!r}")
    return handler(runner, effect)


def _save_answer(runner: _EffectRunner, effect: Any) -> EffectResult | None:
    runner.drafts.save_answer(
        client_id=effect.client_id,
        mode=effect.mode,
        scorecard_id=effect.scorecard_id,
        question_index=effect.question_index,
        option_position=effect.option_position,
        officer_id=runner.caller.staff_id,
        now=runner.now,
        ttl_days=runner.services.settings.draft_ttl_days,
    )
    return None


def _discard_draft(runner: _EffectRunner, effect: Any) -> EffectResult | None:
    runner.drafts.discard(effect.client_id, effect.mode)
    return None


def _submit_survey(runner: _EffectRunner, effect: Any) -> EffectResult:
    local_today = runner.now.astimezone(ZoneInfo(runner.services.settings.timezone)).date()
    try:
        response = surveys.create_survey(
            runner.session,
            effect.client_id,
            list(effect.answers),
            date_collected=local_today,
            mode=effect.mode,
            channel=runner.inbound.channel,
            officer_id=runner.caller.staff_id if effect.mode == "officer" else None,
            now=runner.now,
            scorecard_id=effect.scorecard_id or None,
            timezone=runner.services.settings.timezone,
            config=runner.ppi_config(),
            submission_key=_ussd_submission_key(runner, effect.client_id),
        )
    except surveys.SurveyError as exc:
        logger.warning("survey not saved: %s", exc)
        return EffectResult("service_unavailable")
    survey_saved(runner.services, runner.drafts, effect.client_id, effect.mode)
    return EffectResult("survey_submitted", {"band": response.band, "headline_score": response.headline_score})


def _ussd_submission_key(runner: _EffectRunner, client_id: int) -> str | None:
    """A USSD session submits a client's survey once: a submit hop run again (its reply was lost with Redis before
    the live state was saved) returns the survey saved the first time. SMS and Telegram sessions are per sender and
    last a day, so they have no such key."""
    if runner.inbound.channel != "at-ussd":
        return None
    key = f"{runner.inbound.channel}:{runner.inbound.session_id}:{client_id}"
    return key if len(key) <= SUBMISSION_KEY_LENGTH else "at-ussd:" + hashlib.sha256(key.encode()).hexdigest()


def survey_saved(services: Services, drafts: DraftRepository, client_id: int, mode: str) -> None:
    """What follows a survey saved from a conversation (the dialogue's or the officer's one-shot SMS form): its draft
    is done with, and the portal feed is rebuilt, debounced."""
    drafts.discard(client_id, mode)
    survey_changed(services)


def _find_client(runner: _EffectRunner, effect: Any) -> EffectResult:
    """The officer's client by external id, with the officer-assisted draft a dropped session left for them."""
    client = accounts.client_by_external_id(runner.session, effect.external_id)
    if client is None:
        return EffectResult("client_not_found")
    found: dict[str, Any] = {"id": client.id, "masked_name": f"{masked_name(client.name)} ({client.external_id})"}
    draft = runner.drafts.find(client.id, "officer", runner.now)
    if draft is not None:
        found["draft"] = _draft_view(draft, runner.language(None), runner.services)
    return EffectResult("client_found", found)


def _check_pin_status(runner: _EffectRunner, effect: Any) -> EffectResult:
    client = runner.client_row(effect.client_id)
    if client is None or not client.pin_hash:
        return EffectResult("pin_needs_activation")
    minutes = accounts.minutes_locked(client, runner.now)
    return EffectResult("pin_locked", {"minutes": minutes}) if minutes else EffectResult("pin_active")


def _verify_pin(runner: _EffectRunner, effect: Any) -> EffectResult:
    check = accounts.verify_pin(
        runner.session,
        build_limiter(runner.services),
        effect.client_id,
        effect.pin,
        phone=runner.caller.phone or "",
        now=runner.now,
        settings=runner.services.settings,
    )
    if check.ok:
        return EffectResult("pin_ok")
    if check.needs_activation:
        return EffectResult("pin_needs_activation")
    if check.locked_minutes:
        return EffectResult("pin_locked", {"minutes": check.locked_minutes})
    return EffectResult("pin_wrong", {"attempts_left": check.attempts_left})


def _activate(runner: _EffectRunner, effect: Any) -> EffectResult:
    timezone = runner.services.settings.timezone
    ok = accounts.activate(runner.session, effect.client_id, effect.code, now=runner.now, timezone=timezone)
    return EffectResult("activation_ok" if ok else "activation_bad")


def _stage_key(client_id: int) -> str:
    return f"pin-stage:{client_id}"


def _stage_pin(runner: _EffectRunner, effect: Any) -> EffectResult:
    """Check the new PIN and keep only a short-lived hash until it is confirmed: never the PIN itself."""
    reason = pins.weak_pin_reason(effect.pin, phone=runner.caller.phone or "")
    if reason is not None:
        return EffectResult("pin_rejected", {"reason_msgid": reason})
    runner.services.redis.set(_stage_key(effect.client_id), pins.hash_secret(effect.pin), ex=PIN_STAGE_SECONDS)
    return EffectResult("pin_staged")


def _set_pin(runner: _EffectRunner, effect: Any) -> EffectResult:
    staged = runner.services.redis.get(_stage_key(effect.client_id))
    if staged is None:
        return EffectResult("pin_stage_expired")
    if not pins.secret_matches(staged.decode(), effect.pin):
        return EffectResult("pin_mismatch")
    reason = accounts.set_pin(
        runner.session, effect.client_id, effect.pin, phone=runner.caller.phone or "", now=runner.now
    )
    runner.services.redis.delete(_stage_key(effect.client_id))
    if reason is not None:
        return EffectResult("pin_rejected", {"reason_msgid": reason})
    return EffectResult("pin_set")


def _lines(runner: _EffectRunner, effect: Any, kind: str) -> EffectResult:
    from accounts import presenter
    from accounts.corebanking import CoreBankingUnavailable, build_core_banking

    client = runner.session.get(Client, effect.client_id)
    if client is None:
        return EffectResult("service_unavailable")
    language = accounts.person_language(runner.session, client, runner.services.settings.default_locale)
    translate = gettext_for(language)
    currency = runner.services.settings.currency
    # The MFI's country formats money and dates: English in Kenya reads "3 Dec" and "Ksh1,500.00".
    locale = presenter.babel_locale(language, runner.services.settings.default_region)
    if kind == "progress":
        history = surveys.client_surveys(runner.session, client.id)
        config = runner.ppi_config()
        show_band = bool(config and config.show_band_to_client)  # the MFI's choice, as at the end of a survey
        lines = presenter.progress_lines(history, translate, locale, show_band=show_band)
        return EffectResult("lines", {"lines": lines})
    try:
        banking = build_core_banking(runner.services, runner.session)
        if kind == "balances":
            zone = runner.services.settings.timezone
            lines = presenter.balance_lines(banking.balances(client), translate, locale, currency, timezone=zone)
        else:
            lines = presenter.statement_lines(banking.statement(client, limit=5), translate, locale, currency)
    except CoreBankingUnavailable:
        return EffectResult("service_unavailable")
    return EffectResult("lines", {"lines": lines})


def _consent_text(runner: _EffectRunner, effect: Any) -> EffectResult:
    from consent import service as consent

    client = runner.session.get(Client, effect.client_id)
    language = accounts.person_language(runner.session, client, runner.services.settings.default_locale)
    text = consent.consent_text(language)
    current = consent.is_sharing(runner.session, effect.client_id)
    return EffectResult(
        "consent_text",
        {"text": text.text, "what_is_shared": text.what_is_shared, "version": text.version, "current": current},
    )


def _record_consent(runner: _EffectRunner, effect: Any) -> EffectResult:
    from consent import service as consent

    client = runner.session.get(Client, effect.client_id)
    consent.record(
        runner.session,
        effect.client_id,
        granted=effect.granted,
        text_version=effect.version,
        language=accounts.person_language(runner.session, client, runner.services.settings.default_locale),
        channel=runner.inbound.channel,
        provider_message_id=runner.inbound.provider_message_id,
        officer_id=runner.caller.staff_id,
        now=runner.now,
    )
    return EffectResult("consent_recorded")


def _set_language(runner: _EffectRunner, effect: Any) -> EffectResult:
    client = runner.session.get(Client, effect.client_id)
    if client is not None and effect.code in SUPPORTED:
        client.language = effect.code
        runner.forget_languages()
    return EffectResult("language_set")


HANDLERS: dict[str, Callable[[Any, Any], EffectResult | None]] = {
    fx.SaveAnswer.kind: _save_answer,
    fx.DiscardDraft.kind: _discard_draft,
    fx.SubmitSurvey.kind: _submit_survey,
    fx.FindClient.kind: _find_client,
    fx.CheckPinStatus.kind: _check_pin_status,
    fx.VerifyPin.kind: _verify_pin,
    fx.ActivateAccount.kind: _activate,
    fx.StagePin.kind: _stage_pin,
    fx.SetPin.kind: _set_pin,
    fx.ChangePin.kind: _set_pin,
    fx.FetchBalances.kind: lambda runner, effect: _lines(runner, effect, "balances"),
    fx.FetchStatement.kind: lambda runner, effect: _lines(runner, effect, "statement"),
    fx.FetchProgress.kind: lambda runner, effect: _lines(runner, effect, "progress"),
    fx.FetchConsentText.kind: _consent_text,
    fx.RecordConsent.kind: _record_consent,
    fx.SetLanguage.kind: _set_language,
}
