"""The webhooks: the only Flask code of the gateway. Each route hands the request to its channel adapter, runs the
messages through the conversation service, and renders the adapter's response.

Errors map here and only here: a forged request is 403, a malformed one 400. A live USSD session never sees a
5xx: the conversation service turns failures into a polite `END`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import redis
from flask import Blueprint, Response, current_app, request

from bootstrap import Services
from conversations.service import BackingServiceDown, end_session, handle_inbound
from gateway.channels import BadRequest, Forbidden
from gateway.jobs import apply_status
from gateway.messages import WebhookRequest, WebhookResponse

logger = logging.getLogger(__name__)
T = TypeVar("T")
blueprint = Blueprint("gateway", __name__, url_prefix="/webhooks")

MESSAGE_ROUTES = {
    "/africastalking/ussd": "at-ussd",
    "/africastalking/sms": "at-sms",
    "/twilio/sms": "twilio-sms",
    "/telegram": "telegram",
    "/console/sms": "console",
}
STATUS_ROUTES = {"/africastalking/delivery": "at-sms", "/twilio/status": "twilio-sms"}


def _services() -> Services:
    return current_app.extensions["services"]  # type: ignore[no-any-return]


def _webhook_request() -> WebhookRequest:
    """The request as the adapters see it. Werkzeug's own mappings are passed, not copied (copying them was a tenth
    of a USSD hop's work); only Twilio's signature needs the full URL, so it is built on demand."""
    return WebhookRequest(
        headers=request.headers,
        form=request.form,
        query=request.args,
        body=request.get_data(cache=True),
        url_of=lambda: request.url,
    )


def _render(response: WebhookResponse) -> Response:
    return Response(response.body, status=response.status, content_type=response.content_type)


def _error(status: int, message: str) -> Response:
    return Response(message + "\n", status=status, content_type="text/plain; charset=utf-8")


def _verified(channel: Any, parse: Callable[[WebhookRequest], list[T]]) -> list[T] | Response:
    """Authenticate the request with the channel, then parse it; a forged request is 403, a malformed one 400."""
    webhook = _webhook_request()
    try:
        channel.verify(webhook)
        return parse(webhook)
    except Forbidden:
        return _error(403, "forbidden")
    except BadRequest as exc:
        return _error(400, str(exc))


def _messages_view(slug: str):  # type: ignore[no-untyped-def]
    def view() -> Response:
        services = _services()
        if slug == "console" and services.settings.is_production:
            return _error(404, "not found")  # the console trusts its sender: for development and the simulator only
        channel = services.channels[slug]
        messages = _verified(channel, channel.parse)
        if isinstance(messages, Response):
            return messages
        replies = []
        for message in messages:
            try:
                replies = handle_inbound(services, message)
            except BackingServiceDown:
                return _error(503, "temporarily unavailable, retry later")
            _acknowledge_button(channel, message)
        return _render(channel.respond(replies if channel.synchronous else []))

    view.__name__ = f"inbound_{slug.replace('-', '_')}"
    return view


def _acknowledge_button(channel: object, message: object) -> None:
    """Telegram shows a spinner on a pressed button until the callback query is answered."""
    callback_id = getattr(message, "callback_id", None)
    answer = getattr(channel, "answer_callback", None)
    if callback_id and answer is not None:
        try:
            answer(callback_id)
        except Exception as exc:  # noqa: BLE001 - a missed acknowledgement must not lose the message
            logger.info("could not answer callback query: %s", type(exc).__name__)


def _status_view(slug: str):  # type: ignore[no-untyped-def]
    def view() -> Response:
        services = _services()
        channel = services.channels[slug]
        updates = _verified(channel, channel.parse_status)
        if isinstance(updates, Response):
            return updates
        apply_status(services, updates)
        return _render(channel.respond([]))

    view.__name__ = f"status_{slug.replace('-', '_')}"
    return view


@blueprint.post("/africastalking/ussd/end")
def ussd_session_end() -> Response:
    """Africa's Talking's end-of-session notification (configured as its own callback URL in AT's dashboard)."""
    services = _services()
    channel = services.channels["at-ussd"]
    ends = _verified(channel, channel.parse_end)
    if isinstance(ends, Response):
        return ends
    for end in ends:
        try:
            end_session(services, end)
        except redis.exceptions.RedisError as exc:  # the live state's TTL clears it in minutes anyway
            logger.warning("could not clear an ended USSD session: %s", type(exc).__name__)
            return _error(503, "temporarily unavailable, retry later")
    return Response("ok\n", status=200, content_type="text/plain; charset=utf-8")


for _path, _slug in MESSAGE_ROUTES.items():
    blueprint.add_url_rule(_path, view_func=_messages_view(_slug), methods=["POST"])
for _path, _slug in STATUS_ROUTES.items():
    blueprint.add_url_rule(_path, view_func=_status_view(_slug), methods=["POST"])
