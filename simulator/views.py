"""The phone simulator page: a USSD handset and an SMS thread in the browser, for demos and officer training.

The page talks to the real webhooks (the Africa's Talking USSD one and the console SMS one), so what it shows is
exactly what a feature phone would see. The SMS thread reads the outbox through `GET /simulator/messages`, which
exposes message texts: the whole simulator answers 404 in production.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, abort, current_app, jsonify, render_template, request, url_for
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.channels import BadRequest
from gateway.channels.base import e164
from gateway.models import OutboxMessage
from locales import N_, NATIVE_NAMES, SUPPORTED, gettext_for, normalise_locale
from settings import Settings

blueprint = Blueprint("simulator", __name__, url_prefix="/simulator", template_folder="templates")

SERVICE_CODE = "*384*123#"
NETWORK_CODE = "63902"  # Safaricom, as in Africa's Talking's sandbox
POLL_MILLISECONDS = 2000
HISTORY_SIZE = 50
PAGE_SIZE = 200
RIGHT_TO_LEFT = {"ar"}

DEMO_CLIENTS = tuple(f"+2547000000{number:02d}" for number in range(1, 11))
DEMO_OFFICERS = tuple(f"+2547110000{number:02d}" for number in range(1, 5))

# Page strings live here rather than in the template so that `python -m locales.check` extracts them.
TEXT = {
    "title": N_("Phone simulator"),
    "intro": N_("Try the service as a client or a loan officer would. Nothing is sent to a real phone."),
    "phone_label": N_("Phone number"),
    "phone_hint": N_("Pick a demo phone or type a number in international format, like +254700000002."),
    "demo_client": N_("Demo client"),
    "loan_officer": N_("Loan officer"),
    "language_label": N_("Page language"),
    "change_language": N_("Change"),
    "ussd_heading": N_("USSD"),
    "screen_label": N_("Phone screen"),
    "idle_screen": N_("Press Dial to start a session."),
    "dial": N_("Dial %(code)s"),
    "keypad_label": N_("Dial pad"),
    "reply_label": N_("Your reply"),
    "send": N_("Send"),
    "delete": N_("Delete"),
    "hang_up": N_("Hang up"),
    "waiting": N_("Waiting for the network…"),
    "session_ended": N_("Session ended. Dial again to start a new one."),
    "session_active": N_("Session open: type your reply and press Send."),
    "hung_up": N_("You hung up."),
    "no_session": N_("No session is open. Press Dial first."),
    "bad_phone": N_("Enter a phone number in international format, like +254700000002."),
    "request_failed": N_("The request failed (%(status)s)."),
    "unreachable": N_("Could not reach the server."),
    "sms_heading": N_("SMS"),
    "thread_label": N_("Messages between this phone and the service"),
    "sms_empty": N_("No messages yet. Send any text, for example HELP."),
    "sms_label": N_("Message"),
    "sms_send": N_("Send SMS"),
    "from_phone": N_("You"),
    "from_service": N_("Service"),
}

# Unicode bidi isolates, so that "*384*123#" keeps its order inside right-to-left text.
LEFT_TO_RIGHT_ISOLATE, POP_ISOLATE = "\u2066", "\u2069"


@blueprint.before_request
def _hidden_in_production() -> None:
    if _settings().is_production:
        abort(404)


@blueprint.get("", strict_slashes=False)
def page() -> str:
    """The simulator page, in the language of `?lang=` (English by default)."""
    locale = normalise_locale(request.args.get("lang"), "en")
    translate = gettext_for(locale)
    return render_template(
        "simulator/phone.html",
        _=translate,
        T=TEXT,
        locale=locale,
        direction="rtl" if locale in RIGHT_TO_LEFT else "ltr",
        languages=[(code, NATIVE_NAMES[code]) for code in SUPPORTED],
        demo_clients=DEMO_CLIENTS,
        demo_officers=DEMO_OFFICERS,
        config=_page_config(translate),
        isolated_service_code=LEFT_TO_RIGHT_ISOLATE + SERVICE_CODE + POP_ISOLATE,
    )


@blueprint.get("/messages")
def messages() -> Response | tuple[Response, int]:
    """Outbox rows sent to `?phone=`, oldest first: the last ones, or only those after `?after=<id>`."""
    try:
        phone = e164(request.args.get("phone", ""), "phone")
    except BadRequest as exc:
        return jsonify(error=str(exc)), 400
    after = request.args.get("after", type=int)
    services = current_app.extensions["services"]
    with services.transaction() as session:
        rows = _outbox_rows(session, phone, after)
        return jsonify(phone=phone, messages=[_message_json(row) for row in rows])


def _outbox_rows(session: Session, phone: str, after: int | None) -> list[OutboxMessage]:
    query = select(OutboxMessage).where(OutboxMessage.recipient == phone)
    if after is not None:
        return list(session.scalars(query.where(OutboxMessage.id > after).order_by(OutboxMessage.id).limit(PAGE_SIZE)))
    newest_first = session.scalars(query.order_by(OutboxMessage.id.desc()).limit(HISTORY_SIZE))
    return list(reversed(list(newest_first)))


def _message_json(row: OutboxMessage) -> dict[str, object]:
    return {
        "id": row.id,
        "text": row.text,
        "channel": row.channel,
        "status": row.status,
        "created_at": row.created_at.isoformat() if row.created_at else None,
    }


def _page_config(translate: Any) -> dict[str, object]:
    """What the page's script needs: URLs, the service code and its translated messages."""
    return {
        "ussdUrl": ussd_webhook_url(_settings()),
        "smsUrl": url_for("gateway.inbound_console"),
        "messagesUrl": url_for("simulator.messages"),
        "serviceCode": SERVICE_CODE,
        "networkCode": NETWORK_CODE,
        "pollMilliseconds": POLL_MILLISECONDS,
        "text": {key: translate(msgid) for key, msgid in TEXT.items() if key != "dial"},
    }


def ussd_webhook_url(settings: Settings) -> str:
    """The AT USSD webhook path, with `?token=` when the deployment checks one (as AT's callback URL would)."""
    path = url_for("gateway.inbound_at_ussd")
    if settings.at_webhook_token:
        return f"{path}?{urlencode({'token': settings.at_webhook_token})}"
    return path


def _settings() -> Settings:
    return current_app.extensions["settings"]  # type: ignore[no-any-return]
