"""Twilio SMS: signed inbound webhooks, status callbacks, and sending through `twilio.rest.Client`.

Inbound message webhook (form-encoded POST with an `X-Twilio-Signature` header, channels.md §2.1):

    ToCountry=KE&SmsMessageSid=SM5f2d4c1e9b8a7f6e5d4c3b2a1f0e9d8c&NumMedia=0&From=%2B254711000111
    &SmsSid=SM5f2d4c1e9b8a7f6e5d4c3b2a1f0e9d8c&Body=SALIO&To=%2B15005550006&NumSegments=1
    &MessageSid=SM5f2d4c1e9b8a7f6e5d4c3b2a1f0e9d8c&AccountSid=AC0123456789abcdef0123456789abcdef&ApiVersion=2010-04-01

Status callback (§2.4): the same subset plus `MessageStatus=undelivered&ErrorCode=30003`.

The signature is an HMAC over the URL Twilio called plus all form fields. Behind a TLS-terminating proxy the
URL Flask sees differs from the public one, so when `public_url` (TWILIO_PUBLIC_URL) is set we rebuild it
as public base + the request's path and query. We always answer with empty TwiML: replies go through the
outbox and `send()`, so a slow conversation never hits Twilio's 15 s webhook limit.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import ClassVar
from urllib.parse import urlsplit

import requests
from twilio.base.exceptions import TwilioRestException
from twilio.http import HttpClient
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client
from twilio.twiml.messaging_response import MessagingResponse

from gateway.channels.base import (
    Forbidden,
    SendError,
    e164,
    header,
    mask_phone,
    not_configured,
    require_fields,
    sender_session,
    transport_error,
)
from gateway.encoding import normalise_for_sms
from gateway.messages import (
    DeliveryState,
    Inbound,
    Outbound,
    Reply,
    StatusUpdate,
    WebhookRequest,
    WebhookResponse,
)

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Twilio-Signature"
STATUS_MAP: dict[str, DeliveryState] = {
    "accepted": DeliveryState.QUEUED,
    "scheduled": DeliveryState.QUEUED,
    "queued": DeliveryState.QUEUED,
    "sending": DeliveryState.SENT,
    "sent": DeliveryState.SENT,
    "partially_delivered": DeliveryState.SENT,
    "delivered": DeliveryState.DELIVERED,
    "read": DeliveryState.DELIVERED,
    "undelivered": DeliveryState.FAILED,
    "failed": DeliveryState.FAILED,
    "canceled": DeliveryState.FAILED,
}


class TwilioSMS:
    slug: ClassVar[str] = "twilio-sms"
    synchronous: ClassVar[bool] = False

    def __init__(
        self,
        account_sid: str = "",
        auth_token: str = "",
        from_number: str = "",
        public_url: str = "",
        status_callback_url: str = "",
        timeout_seconds: float = 10.0,
        http_client: HttpClient | None = None,
    ) -> None:
        self._auth_token = auth_token
        self._from_number = from_number
        self._public_url = public_url.rstrip("/")
        self._status_callback_url = status_callback_url
        self._client: Client | None = None
        if account_sid and auth_token and from_number:
            self._client = Client(
                account_sid, auth_token, http_client=http_client or TwilioHttpClient(timeout=timeout_seconds)
            )

    def verify(self, request: WebhookRequest) -> None:
        if not self._auth_token:
            raise Forbidden("twilio auth token not configured; cannot check signatures")
        validator = RequestValidator(self._auth_token)
        if not validator.validate(self.signed_url(request), request.form, header(request, SIGNATURE_HEADER) or ""):
            raise Forbidden("invalid X-Twilio-Signature")

    def signed_url(self, request: WebhookRequest) -> str:
        """The URL Twilio signed: our public base URL when configured, else the URL as received."""
        if not self._public_url:
            return request.full_url()
        parts = urlsplit(request.full_url())
        return self._public_url + parts.path + (f"?{parts.query}" if parts.query else "")

    def parse(self, request: WebhookRequest) -> list[Inbound]:
        message_sid, raw_sender = require_fields(request.form, "MessageSid", "From")
        sender = e164(raw_sender, "From")
        return [
            Inbound(
                channel=self.slug,
                sender=sender,
                text=request.form.get("Body", ""),
                session_id=sender_session(self.slug, sender),
                provider_message_id=message_sid,
            )
        ]

    def parse_status(self, request: WebhookRequest) -> list[StatusUpdate]:
        message_sid, status = require_fields(request.form, "MessageSid", "MessageStatus")
        state = STATUS_MAP.get(status)
        if state is None:  # receiving/received belong to inbound messages
            return []
        reason = request.form.get("ErrorCode") or None
        return [StatusUpdate(channel=self.slug, provider_message_id=message_sid, state=state, reason=reason)]

    def respond(self, replies: Sequence[Reply]) -> WebhookResponse:
        return WebhookResponse(body=str(MessagingResponse()), content_type="text/xml")

    def send(self, message: Outbound) -> str | None:
        if self._client is None:
            raise not_configured(self.slug)
        extra = {"status_callback": self._status_callback_url} if self._status_callback_url else {}
        try:
            created = self._client.messages.create(
                to=message.recipient, from_=self._from_number, body=normalise_for_sms(message.text), **extra
            )
        except TwilioRestException as exc:
            raise _send_error(exc, message.recipient) from exc
        except (requests.Timeout, requests.ConnectionError) as exc:
            raise transport_error("twilio-sms", exc) from exc
        sid: str | None = created.sid
        return sid


def _send_error(exc: TwilioRestException, recipient: str) -> SendError:
    """429 and 5xx are worth retrying; any other 4xx (bad number, unsubscribed, bad credentials) is not."""
    retryable = exc.status == 429 or exc.status >= 500
    log.info("Twilio refused SMS to %s: HTTP %s code %s", mask_phone(recipient), exc.status, exc.code)
    return SendError(f"twilio-sms: HTTP {exc.status} code {exc.code}: {exc.msg}", retryable=retryable)
