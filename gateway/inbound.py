"""What every message webhook does once the HTTP request is read, without Flask: authenticate it with its channel,
parse it, run each message through the conversation service, and give the channel's response.

Two front ends call it with the same `WebhookRequest`: the Flask views (`gateway.views`) for every message channel,
and the plain WSGI handler of the USSD webhook (`gateway.ussd_wsgi`). Errors map here and only here: a forged
request is 403, a malformed one 400, a message the provider should send again 503.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from bootstrap import Services
from conversations.service import BackingServiceDown, handle_inbound
from gateway.channels import BadRequest, Forbidden
from gateway.jobs import answer_button
from gateway.messages import Reply, WebhookRequest, WebhookResponse

logger = logging.getLogger(__name__)
T = TypeVar("T")


def error_response(status: int, message: str) -> WebhookResponse:
    return WebhookResponse(body=message + "\n", status=status)


def verified(
    channel: Any, parse: Callable[[WebhookRequest], list[T]], webhook: WebhookRequest
) -> list[T] | WebhookResponse:
    """Authenticate the request with the channel, then parse it; a forged request is 403, a malformed one 400."""
    try:
        channel.verify(webhook)
        return parse(webhook)
    except Forbidden:
        return error_response(403, "forbidden")
    except BadRequest as exc:
        return error_response(400, str(exc))


def receive_messages(services: Services, slug: str, webhook: WebhookRequest) -> WebhookResponse:
    """The response to one message webhook of channel `slug`."""
    if slug == "console" and services.settings.is_production:
        return error_response(404, "not found")  # the console trusts its sender: for development and the simulator
    channel = services.channels[slug]
    messages = verified(channel, channel.parse, webhook)
    if isinstance(messages, WebhookResponse):
        return messages
    replies: list[Reply] = []
    for message in messages:
        try:
            replies = handle_inbound(services, message)
        except BackingServiceDown:
            return error_response(503, "temporarily unavailable, retry later")
        _acknowledge_button(services, channel, message)
    return channel.respond(replies if channel.synchronous else [])  # type: ignore[no-any-return]


def _acknowledge_button(services: Services, channel: Any, message: Any) -> None:
    """Telegram shows a spinner on a pressed button until the callback query is answered: an RQ job answers it, so
    the webhook does not wait on Telegram's API (a web worker is held for the whole request)."""
    callback_id = getattr(message, "callback_id", None)
    if not callback_id or not hasattr(channel, "answer_callback"):
        return
    try:
        services.enqueue(answer_button, channel.slug, callback_id)
    except Exception as exc:  # noqa: BLE001 - a missed acknowledgement must not lose the message
        logger.info("could not queue the answer to a callback query: %s", type(exc).__name__)
