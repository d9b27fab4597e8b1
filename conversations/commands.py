"""SMS and Telegram keywords handled before the dialogue: HELP, STOP/START, LANG, consent YES/NO, and the loan
officer's structured `PPI <client-id> 3 1 2 ...` form with its `YES` confirmation.

Returns None when the message is not a keyword, so the dialogue takes it.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from accounts.models import Client, Staff
from accounts.service import client_by_external_id, person_language
from bootstrap import Services
from conversations.dialogue import Start, UserInput
from conversations.keywords import parse_keyword
from conversations.repository import DraftRepository
from conversations.survey import SURVEY_NODES
from gateway.encoding import normalise_for_sms, segment_count
from gateway.messages import Inbound, Reply
from locales import SUPPORTED, Translate, gettext_for, normalise_locale
from surveys import service as surveys

if TYPE_CHECKING:
    from conversations.service import Caller

logger = logging.getLogger(__name__)

PENDING_TTL_SECONDS = 15 * 60
OFFICER_MENU_SURVEY_KEY = "1"  # "1 Survey for a client" in conversations/officer.py


# Where the open dialogue itself asks a yes/no question (a PPI question "1 Yes / 2 No", its own consent screen): a
# "Yes" typed there answers the dialogue, and is never taken as a data-sharing consent.
DIALOGUE_ANSWERS_YES_NO = SURVEY_NODES | {"consent", "consent_shared"}


def keyword_replies(
    services: Services,
    session: Session,
    inbound: Inbound,
    caller: Caller,
    now: datetime,
    *,
    dialogue_node: str | None = None,
) -> list[Reply] | None:
    """Replies to a keyword message, or None for the dialogue; `dialogue_node` is where the open dialogue waits."""
    from conversations.handlers import language_of

    translate = gettext_for(language_of(session, services, caller, None))
    keyword = parse_keyword(inbound.text)
    if keyword is None:
        if caller.role != "officer" and dialogue_node in DIALOGUE_ANSWERS_YES_NO:
            return None
        return _consent_or_confirmation(services, session, inbound, caller, now)
    if caller.role == "officer":
        _drop_pending_form(services, caller)
    if keyword.name == "help":
        return [
            Reply(
                translate(
                    "Reply with a menu number. PPI <client id> starts a survey (officers). "
                    "LANG <code> changes language. STOP ends messages, START resumes them."
                )
            )
        ]
    if keyword.name in ("stop", "start"):
        for client in _clients(session, caller):
            client.message_opt_out = keyword.name == "stop"
        if keyword.name == "stop":
            return [Reply(translate("You will receive no more messages. Reply START to receive them again."))]
        return [Reply(translate("Messages are on again. Reply HELP for help."))]
    if keyword.name == "lang":
        return _change_language(session, caller, keyword.args, translate)
    if keyword.name == "ppi" and caller.role == "officer":
        sms_budget = None if inbound.channel == "telegram" else services.settings.sms_max_segments
        return _officer_form(services, session, caller, keyword.args, translate, sms_budget)
    return None


def shortcut_events(inbound: Inbound, caller: Caller, text: str) -> list[Any] | None:
    """Keywords that move the dialogue itself. `MENU` (SMS, Telegram) starts it again from the main menu, whatever
    screen it is on.
    `PPI <client-id>` from an officer walks the officer menu to "1 Survey for a client" and enters the id, so the
    question-by-question survey by SMS is the same dialogue as on USSD."""
    ussd = inbound.channel == "at-ussd"
    if ussd and caller.role != "officer":  # USSD has "00" for the menu: most hops need no parse
        return None
    keyword = parse_keyword(text)  # on USSD this hop's input, not Africa's Talking's whole history
    if keyword is None:
        return None
    if keyword.name == "menu" and not ussd:
        return [Start()]
    if caller.role != "officer" or keyword.name != "ppi" or len(keyword.args) != 1:
        return None
    return [Start(), UserInput(OFFICER_MENU_SURVEY_KEY), UserInput(keyword.args[0])]


def _clients(session: Session, caller: Caller) -> list[Client]:
    return [client for cid in caller.client_ids if (client := session.get(Client, cid)) is not None]


def _change_language(session: Session, caller: Caller, args: tuple[str, ...], translate: Translate) -> list[Reply]:
    code = normalise_locale(args[0] if args else None, "")
    if code not in SUPPORTED:
        return [Reply(translate("Reply LANG followed by one of: %(codes)s", codes=", ".join(SUPPORTED)))]
    if caller.role == "officer" and caller.staff_id is not None:
        staff = session.get(Staff, caller.staff_id)
        if staff is not None:
            staff.language = code
    for client in _clients(session, caller):
        client.language = code
    _ = gettext_for(code)  # confirmed in the new language
    return [Reply(_("Language changed."))]


def _pending_key(caller: Caller) -> str:
    return f"ppi-confirm:{caller.phone}"


def _drop_pending_form(services: Services, caller: Caller) -> None:
    """A one-shot form waits for the officer's very next message: anything else than YES or NO drops it, so a "Yes"
    typed later on a dialogue screen cannot save a form the officer previewed minutes before."""
    services.redis.delete(_pending_key(caller))


def _officer_form(
    services: Services,
    session: Session,
    caller: Caller,
    args: tuple[str, ...],
    translate: Translate,
    sms_budget: int | None,
) -> list[Reply] | None:
    """`PPI C0002` alone is the dialogue's job; with answers it is the one-shot form, checked and confirmed."""
    _ = translate
    if not args:
        return [Reply(_("Send PPI followed by the client id, e.g. PPI C0002."))]
    if len(args) == 1:
        return None
    client = client_by_external_id(session, args[0])
    if client is None:
        return [Reply(_("No client with id %(id)s.", id=args[0]))]
    config = surveys.get_config(session)
    if config is None or config.status != "active":
        return [Reply(_("PPI surveys are not active."))]
    preview = surveys.preview(config, [_as_int(value) for value in args[1:]])
    if preview.problems:
        return [Reply(_problems_reply(preview.problems, translate, sms_budget))]
    answers = [int(value) for value in args[1:]]
    pending = {"client_id": client.id, "answers": answers, "scorecard_id": config.scorecard_id}
    services.redis.set(_pending_key(caller), json.dumps(pending), ex=PENDING_TTL_SECONDS)
    band = preview.band or "-"
    return [
        Reply(
            _(
                "%(id)s: score %(score)s, %(band)s. Reply YES to save.",
                id=client.external_id,
                score=preview.headline_score,
                band=band,
            )
        )
    ]


def _problems_reply(problems: tuple[str, ...], translate: Translate, sms_budget: int | None) -> str:
    """'Not saved.' with as many of the form's problems as fit the SMS budget (in segments), then '...': the officer
    fixes those and sends the form again. Telegram (no budget) gets them all."""
    shown = list(problems)
    while True:
        listed = "; ".join(shown) + ("; ..." if len(shown) < len(problems) else "")
        text = translate("Not saved. %(problems)s", problems=listed)
        if sms_budget is None or len(shown) == 1 or segment_count(normalise_for_sms(text)) <= sms_budget:
            return text
        shown.pop()


def _as_int(value: str) -> int:
    return int(value) if value.isdigit() else -1


def _consent_or_confirmation(
    services: Services, session: Session, inbound: Inbound, caller: Caller, now: datetime
) -> list[Reply] | None:
    from consent.keywords import parse_consent_reply

    answer = parse_consent_reply(inbound.text)
    if answer is None:
        if caller.role == "officer":
            _drop_pending_form(services, caller)
        return None
    if caller.role == "officer":
        return _confirm_officer_form(services, session, inbound, caller, now, answer)
    if len(caller.client_ids) != 1:
        return None  # a shared phone must say who is speaking: the dialogue asks
    return _record_consent_reply(services, session, inbound, caller, now, answer)


def _confirm_officer_form(
    services: Services, session: Session, inbound: Inbound, caller: Caller, now: datetime, answer: bool
) -> list[Reply] | None:
    from conversations.handlers import language_of, survey_saved

    translate = gettext_for(language_of(session, services, caller, None))
    raw = services.redis.getdel(_pending_key(caller))
    if raw is None:
        return None
    if not answer:
        return [Reply(translate("Not saved."))]
    pending = json.loads(raw)
    config = surveys.get_config(session)
    if config is None or not config.active:  # switched off since the preview
        return [Reply(translate("PPI surveys are not active."))]
    if config.scorecard_id != pending.get("scorecard_id"):  # the answers were to the questions of another scorecard
        return [Reply(translate("Not saved.") + " " + translate("This survey has changed. Please start again."))]
    today = now.astimezone(ZoneInfo(services.settings.timezone)).date()
    try:
        response = surveys.create_survey(
            session,
            pending["client_id"],
            pending["answers"],
            date_collected=today,
            mode="officer",
            channel=inbound.channel,
            officer_id=caller.staff_id,
            now=now,
            submission_key=f"sms:{inbound.provider_message_id}" if inbound.provider_message_id else None,
            timezone=services.settings.timezone,
            config=config,
        )
    except surveys.SurveyError:  # the client or the scorecard went away since the preview
        logger.warning("a one-shot officer survey was not saved")
        return [Reply(translate("Not saved."))]
    survey_saved(services, DraftRepository(session), pending["client_id"], "officer")
    return [
        Reply(translate("Saved: score %(score)s, %(band)s.", score=response.headline_score, band=response.band or "-"))
    ]


def _record_consent_reply(
    services: Services, session: Session, inbound: Inbound, caller: Caller, now: datetime, granted: bool
) -> list[Reply]:
    from consent import service as consent

    client = session.get(Client, caller.client_ids[0])
    language = person_language(session, client, services.settings.default_locale)
    text = consent.consent_text(language)
    consent.record(
        session,
        caller.client_ids[0],
        granted=granted,
        text_version=text.version,
        language=language,
        channel=inbound.channel,
        provider_message_id=inbound.provider_message_id,
        now=now,
    )
    translate = gettext_for(language)
    if granted:
        return [Reply(translate("Thank you. You agreed to share your data with lenders. Reply NO to withdraw."))]
    return [Reply(translate("Your data will not be shared with lenders. Reply YES to agree again."))]
