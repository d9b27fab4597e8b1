"""The webhooks' Flask routes: each reads the request into a `WebhookRequest`, hands it to `gateway.inbound`
(authenticate, parse, converse, respond) and renders the response. The USSD webhook's ordinary requests are
answered before Flask by `gateway.ussd_wsgi`, with the same `gateway.inbound`; its route here takes the rest.

A live USSD session never sees a 5xx: the conversation service turns failures into a polite `END`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import redis
from flask import Blueprint, Response, current_app, request

from bootstrap import Services
from conversations.service import end_session
from gateway import inbound
from gateway.jobs import apply_status
from gateway.messages import WebhookRequest, WebhookResponse

logger = logging.getLogger(__name__)
T = TypeVar("T")
blueprint = Blueprint("gateway", __name__, url_prefix="/webhooks")

USSD_ROUTE = "/africastalking/ussd"  # its ordinary hops are answered before Flask (gateway/ussd_wsgi.py)
MESSAGE_ROUTES = {
    USSD_ROUTE: "at-ussd",
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


def _verified(channel: Any, parse: Callable[[WebhookRequest], list[T]]) -> list[T] | Response:
    parsed = inbound.verified(channel, parse, _webhook_request())
    return _render(parsed) if isinstance(parsed, WebhookResponse) else parsed


def _messages_view(slug: str):  # type: ignore[no-untyped-def]
    def view() -> Response:
        return _render(inbound.receive_messages(_services(), slug, _webhook_request()))

    view.__name__ = f"inbound_{slug.replace('-', '_')}"
    return view


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
            return _render(inbound.error_response(503, "temporarily unavailable, retry later"))
    return Response("ok\n", status=200, content_type="text/plain; charset=utf-8")


for _path, _slug in MESSAGE_ROUTES.items():
    blueprint.add_url_rule(_path, view_func=_messages_view(_slug), methods=["POST"])
for _path, _slug in STATUS_ROUTES.items():
    blueprint.add_url_rule(_path, view_func=_status_view(_slug), methods=["POST"])
