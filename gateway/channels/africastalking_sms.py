"""Africa's Talking SMS: inbound messages, delivery reports, and sending through the `africastalking` SDK.

Inbound SMS callback (form-encoded POST, channels.md §1.5):

    from=%2B254711000111&to=22384&text=SALIO&date=2025-04-14+09%3A31%3A07
    &id=ATXid_7f9c2a4e1b3d5c6a&linkId=SampleLinkId123

Delivery report callback (§1.6):

    id=ATXid_f4b2e0c7d9a1&status=Failed&phoneNumber=%2B254711000111&networkCode=63902
    &failureReason=UserInBlackList&retryCount=0

`send()` uses `africastalking.SMS.SMSService` built from our own credentials (not the module-level
`initialize()` globals); constructing it makes no network call. The SDK answers (channels.md §1.7):

    {"SMSMessageData": {"Message": "Sent to 1/1 Total Cost: KES 0.8000",
      "Recipients": [{"statusCode": 101, "number": "+254711000111", "status": "Success",
                      "cost": "KES 0.8000", "messageId": "ATXid_f4b2e0c7d9a1"}]}}

Errors: the SDK raises `AfricasTalkingException(response_text)` for any non-2xx and drops the status code,
so HTTP failures are classified by their text: "The supplied authentication is invalid" (401) and other
"invalid"/"missing" answers are permanent, anything else (429, 5xx pages) is retried. Timeouts and
connection errors come from `requests` and are retried. The SDK hard-codes its hosts (no base URL
option), so tests inject a service object (or an SDK subclass pointed at a loopback server).
AT signs nothing: callback URLs carry `?token=<at_webhook_token>` (checked when configured).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any, ClassVar, Protocol

import requests
from africastalking.Service import AfricasTalkingException
from africastalking.SMS import SMSService

from gateway.channels.base import (
    SendError,
    e164,
    mask_phone,
    not_configured,
    parse_provider_time,
    require_fields,
    sender_session,
    transport_error,
    verify_query_token,
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

STATUS_MAP: dict[str, DeliveryState] = {
    "Sent": DeliveryState.SENT,
    "Submitted": DeliveryState.SENT,
    "Buffered": DeliveryState.SENT,
    "Success": DeliveryState.DELIVERED,
    "Rejected": DeliveryState.FAILED,
    "Failed": DeliveryState.FAILED,
    "Expired": DeliveryState.FAILED,
}

# Per-recipient statusCode in the send response: accepted, or (reason, retryable).
ACCEPTED_CODES = frozenset({100, 101, 102})  # Processed, Sent, Queued
RECIPIENT_ERRORS: dict[int, tuple[str, bool]] = {
    401: ("RiskHold", False),
    402: ("InvalidSenderId", False),
    403: ("InvalidPhoneNumber", False),
    404: ("UnsupportedNumberType", False),
    405: ("InsufficientBalance", True),  # succeeds once the account is topped up
    406: ("UserInBlacklist", False),
    407: ("CouldNotRoute", False),
    409: ("DoNotDisturbRejection", False),
    500: ("InternalServerError", True),
    501: ("GatewayError", True),
    502: ("RejectedByGateway", False),
}
PERMANENT_HTTP_HINTS = ("invalid", "missing required")


class SmsSender(Protocol):
    """The part of the SDK's `SMSService` we use; tests pass a fake."""

    def send(self, message: str, recipients: list[str], sender_id: str | None = ..., **kwargs: Any) -> Any: ...


class AfricasTalkingSMS:
    slug: ClassVar[str] = "at-sms"
    synchronous: ClassVar[bool] = False

    def __init__(
        self,
        username: str = "",
        api_key: str = "",
        sender_id: str = "",
        webhook_token: str = "",
        timeout_seconds: float = 10.0,
        sms_service: SmsSender | None = None,
    ) -> None:
        if sms_service is None and username and api_key:
            sms_service = SMSService(username, api_key)
        self._service = sms_service
        self._sender_id = sender_id or None
        self._webhook_token = webhook_token
        self._timeout = timeout_seconds

    def verify(self, request: WebhookRequest) -> None:
        verify_query_token(request, self._webhook_token)

    def parse(self, request: WebhookRequest) -> list[Inbound]:
        raw_sender, text, message_id = require_fields(request.form, "from", "text", "id")
        sender = e164(raw_sender, "from")
        return [
            Inbound(
                channel=self.slug,
                sender=sender,
                text=text,
                session_id=sender_session(self.slug, sender),
                provider_message_id=message_id or None,
                received_at=parse_provider_time(request.form.get("date")),
            )
        ]

    def parse_status(self, request: WebhookRequest) -> list[StatusUpdate]:
        message_id, status = require_fields(request.form, "id", "status")
        state = STATUS_MAP.get(status)
        if state is None:
            log.warning("ignoring Africa's Talking delivery status %r", status)
            return []
        reason = request.form.get("failureReason") or None
        return [StatusUpdate(channel=self.slug, provider_message_id=message_id, state=state, reason=reason)]

    def respond(self, replies: Sequence[Reply]) -> WebhookResponse:
        return WebhookResponse(body="")  # replies go through the outbox

    def send(self, message: Outbound) -> str | None:
        if self._service is None:
            raise not_configured(self.slug)
        response = self._call_sdk(self._service, message)
        return _message_id_from(response, message.recipient)

    def _call_sdk(self, service: SmsSender, message: Outbound) -> Any:
        try:
            return service.send(
                normalise_for_sms(message.text),
                [message.recipient],
                sender_id=self._sender_id,
                timeout=self._timeout,
            )
        except ValueError as exc:  # the SDK's own phone-number check
            raise SendError(f"at-sms: {exc}", retryable=False) from exc
        except (requests.Timeout, requests.ConnectionError) as exc:
            raise transport_error("at-sms", exc) from exc
        except AfricasTalkingException as exc:
            text = str(exc)
            permanent = any(hint in text.lower() for hint in PERMANENT_HTTP_HINTS)
            raise SendError(f"at-sms: {text[:200]}", retryable=not permanent) from exc


def _message_id_from(response: Any, recipient: str) -> str:
    """The `messageId` for our one recipient, or `SendError` with AT's reason."""
    try:
        data = json.loads(response) if isinstance(response, str | bytes) else response
        result = data["SMSMessageData"]
        recipients = result.get("Recipients") or []
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        # AT answered 2xx, so the message may have gone out: retrying risks a duplicate SMS.
        raise SendError("at-sms: unreadable response", retryable=False) from exc
    if not recipients:
        raise SendError(f"at-sms: {result.get('Message', 'no recipients accepted')}", retryable=False)
    first = recipients[0]
    code = int(first.get("statusCode", 0))
    if code in ACCEPTED_CODES:
        return str(first["messageId"])
    reason, retryable = RECIPIENT_ERRORS.get(code, (str(first.get("status", code)), False))
    log.info("Africa's Talking refused SMS to %s: %s", mask_phone(recipient), reason)
    raise SendError(f"at-sms: {reason}", retryable=retryable)
