"""Africa's Talking USSD: a synchronous channel, the reply goes back in the webhook response.

AT POSTs `application/x-www-form-urlencoded` on every hop of a session (channels.md §1.1):

    sessionId=ATUid_3b1c8e2f0a9d4c6b&serviceCode=%2A384%2A1234%23&phoneNumber=%2B254711000111
    &networkCode=63902&text=1%2A2%2AJane+Wanjiru

`text` is "" on the first hop and then the whole session's input joined with `*` ("1", "1*2", ...).
We pass the FULL `text` through as `Inbound.text`, unsplit: the conversation service knows how much of it
it has already consumed (by length), so a free-text answer that itself contains `*` still works. The
flip side: a PIN typed earlier in the session is repeated in every later `text`, so never log it.

The answer is `text/plain`, starting with `CON ` (wait for input) or `END ` (close the session). AT ends
the session on any 4xx or a body without that prefix, so the view should render errors with `END`.
AT signs nothing: the callback URL carries `?token=<at_webhook_token>` (checked when configured).

AT can also post an end-of-session notification to a second URL (channels.md §1.4, from third-party sources only):
`sessionId, serviceCode, networkCode, phoneNumber, status, cost, durationInMillis, hopsCount, input,
lastAppResponse, errorMessage, date`. Only `sessionId` is required here; the others are read when present and
`input` never is (it repeats any PIN the caller typed).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import ClassVar

from accounts.phones import normalise_phone
from gateway.channels.base import BadRequest, SendError, e164, require_fields, verify_query_token
from gateway.encoding import fits_ussd, normalise_for_sms
from gateway.messages import Inbound, Outbound, Reply, SessionEnd, WebhookRequest, WebhookResponse

log = logging.getLogger(__name__)

REQUIRED_FIELDS = ("sessionId", "serviceCode", "phoneNumber", "networkCode", "text")


class AfricasTalkingUSSD:
    slug: ClassVar[str] = "at-ussd"
    synchronous: ClassVar[bool] = True

    def __init__(self, webhook_token: str = "") -> None:
        self._webhook_token = webhook_token

    def verify(self, request: WebhookRequest) -> None:
        verify_query_token(request, self._webhook_token)

    def parse(self, request: WebhookRequest) -> list[Inbound]:
        session_id, _service_code, phone, _network, text = require_fields(request.form, *REQUIRED_FIELDS)
        if not session_id:
            raise BadRequest("empty field 'sessionId'")
        return [Inbound(channel=self.slug, sender=e164(phone, "phoneNumber"), text=text, session_id=session_id)]

    def parse_end(self, request: WebhookRequest) -> list[SessionEnd]:
        form = request.form
        session_id = (form.get("sessionId") or "").strip()
        if not session_id:
            raise BadRequest("missing field 'sessionId'")
        raw_phone = form.get("phoneNumber")
        return [
            SessionEnd(
                channel=self.slug,
                session_id=session_id,
                phone=normalise_phone(raw_phone) if raw_phone else None,  # for the log line only: never refused
                status=(form.get("status") or "unknown").strip()[:20],
                hops=_count(form.get("hopsCount")),
                duration_ms=_count(form.get("durationInMillis")),
                error=" ".join((form.get("errorMessage") or "").split())[:120] or None,
            )
        ]

    def respond(self, replies: Sequence[Reply]) -> WebhookResponse:
        text = normalise_for_sms("\n".join(reply.text for reply in replies))
        final = not replies or replies[-1].final
        if not fits_ussd(text):
            log.warning("USSD screen over budget (%d characters); the network may cut it", len(text))
        return WebhookResponse(body=("END " if final else "CON ") + text, content_type="text/plain; charset=utf-8")

    def send(self, message: Outbound) -> str | None:
        raise SendError("at-ussd cannot push messages; send them by SMS", retryable=False)


def _count(raw: str | None) -> int | None:
    """A non-negative whole number AT reports, or None when it is missing or not a number (a notice is a hint)."""
    try:
        value = int(float(raw)) if raw else None
    except (ValueError, OverflowError):
        return None
    return value if value is not None and value >= 0 else None
