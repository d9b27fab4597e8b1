"""Africa's Talking SMS: inbound messages, delivery reports, and sending through the real SDK.

The SDK hard-codes api.africastalking.com, so the loopback tests use an `SMSService` subclass whose
`_init_service` points it at the fake server; everything else in the SDK (form encoding, status handling,
exceptions) runs for real.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from africastalking.SMS import SMSService
from channel_fakes import FakeProvider, fixture_form, fixture_text, form_request

from gateway.channels.africastalking_sms import AfricasTalkingSMS
from gateway.channels.base import BadRequest, Forbidden, SendError
from gateway.messages import DeliveryState, Outbound, Reply

OUTBOUND = Outbound("at-sms", "+254711000111", "Salio: Ksh\u00a01,500.00", "outbox-1")


class LoopbackSMSService(SMSService):  # type: ignore[misc]
    def __init__(self, base_url: str) -> None:
        self._loopback = base_url
        super().__init__("impact", "test-api-key")

    def _init_service(self) -> None:
        super()._init_service()
        self._baseUrl = self._loopback + "/version1"


def loopback_channel(fake: FakeProvider) -> AfricasTalkingSMS:
    return AfricasTalkingSMS(sender_id="IMPACT", sms_service=LoopbackSMSService(fake.base_url), timeout_seconds=2)


INBOUND_TABLE = [
    ("space separated date", "at_sms_inbound.form", "SALIO", "ATXid_7f9c2a4e1b3d5c6a"),
    ("iso date with Z", "at_sms_inbound_iso_date.form", "Ndiyo, asante", "ATXid_0a1b2c3d4e5f"),
]


@pytest.mark.parametrize(
    ("fixture", "text", "message_id"), [r[1:] for r in INBOUND_TABLE], ids=[r[0] for r in INBOUND_TABLE]
)
def test_parse_inbound_sms(fixture: str, text: str, message_id: str) -> None:
    [inbound] = AfricasTalkingSMS().parse(form_request(fixture_form(fixture)))

    assert inbound.channel == "at-sms"
    assert inbound.sender == "+254711000111"
    assert inbound.text == text
    assert inbound.provider_message_id == message_id
    assert inbound.session_id == "at-sms:+254711000111"
    assert inbound.received_at == datetime(2025, 4, 14, 9, 31, 7, tzinfo=UTC)


@pytest.mark.parametrize("missing", ["from", "text", "id"])
def test_parse_inbound_rejects_missing_field(missing: str) -> None:
    form = fixture_form("at_sms_inbound.form")
    del form[missing]

    with pytest.raises(BadRequest, match=missing):
        AfricasTalkingSMS().parse(form_request(form))


DELIVERY_TABLE = [
    ("delivered", "at_sms_delivery_success.form", DeliveryState.DELIVERED, None),
    ("failed with reason", "at_sms_delivery_failed.form", DeliveryState.FAILED, "UserInBlackList"),
    ("buffered at the telco", "at_sms_delivery_buffered.form", DeliveryState.SENT, None),
]


@pytest.mark.parametrize(
    ("fixture", "state", "reason"), [r[1:] for r in DELIVERY_TABLE], ids=[r[0] for r in DELIVERY_TABLE]
)
def test_parse_delivery_report(fixture: str, state: DeliveryState, reason: str | None) -> None:
    [update] = AfricasTalkingSMS().parse_status(form_request(fixture_form(fixture)))

    assert update.provider_message_id == "ATXid_f4b2e0c7d9a1"
    assert update.state is state
    assert update.reason == reason


def test_unknown_delivery_status_is_ignored_not_guessed() -> None:
    form = fixture_form("at_sms_delivery_success.form") | {"status": "SomethingNew"}

    assert AfricasTalkingSMS().parse_status(form_request(form)) == []


@pytest.mark.parametrize("missing", ["id", "status"])
def test_delivery_report_missing_field_is_bad_request(missing: str) -> None:
    form = fixture_form("at_sms_delivery_failed.form")
    del form[missing]

    with pytest.raises(BadRequest, match=missing):
        AfricasTalkingSMS().parse_status(form_request(form))


def test_respond_is_an_empty_acknowledgement() -> None:
    response = AfricasTalkingSMS().respond([Reply("ignored")])

    assert (response.status, response.body) == (200, "")


@pytest.mark.parametrize(
    ("query", "accepted"),
    [({"token": "t0k"}, True), ({"token": "nope"}, False), ({}, False)],
    ids=["right", "wrong", "missing"],
)
def test_verify_checks_the_callback_token(query: dict[str, str], accepted: bool) -> None:
    channel = AfricasTalkingSMS(webhook_token="t0k")
    request = form_request(fixture_form("at_sms_inbound.form"), query=query)

    if accepted:
        channel.verify(request)
    else:
        with pytest.raises(Forbidden):
            channel.verify(request)


def test_send_without_credentials_is_a_permanent_error() -> None:
    with pytest.raises(SendError, match="not configured") as caught:
        AfricasTalkingSMS().send(OUTBOUND)

    assert caught.value.retryable is False


def test_send_retries_through_500_and_429_then_succeeds(fake_provider: FakeProvider) -> None:
    fake_provider.then(500, "Internal Server Error", "text/plain").then(429, "Too Many Requests", "text/plain")
    fake_provider.then(201, fixture_text("at_sms_send_accepted.json"))
    channel = loopback_channel(fake_provider)

    outcomes: list[object] = []
    for _ in range(3):
        try:
            outcomes.append(channel.send(OUTBOUND))
        except SendError as exc:
            outcomes.append(exc.retryable)

    assert outcomes == [True, True, "ATXid_f4b2e0c7d9a1"]
    sent = fake_provider.requests[-1]
    assert sent.path == "/version1/messaging"
    assert sent.headers["apiKey"] == "test-api-key"
    assert sent.form() == {
        "username": "impact",
        "to": "+254711000111",
        "message": "Salio: Ksh 1,500.00",
        "bulkSMSMode": "1",
        "from": "IMPACT",
    }


SEND_FAILURE_TABLE = [
    ("bad credentials", 401, "The supplied authentication is invalid", "text/plain", False, "authentication"),
    ("invalid number", 201, fixture_text("at_sms_send_invalid_number.json"), "application/json", False, "InvalidPhone"),
    ("out of credit", 201, fixture_text("at_sms_send_insufficient_balance.json"), "application/json", True, "Balance"),
    (
        "no recipient accepted",
        201,
        fixture_text("at_sms_send_no_recipients.json"),
        "application/json",
        False,
        "SenderId",
    ),
    (
        "json without json content type",
        201,
        fixture_text("at_sms_send_invalid_number.json"),
        "text/plain",
        False,
        "Invalid",
    ),
    ("html 2xx body", 200, "<html>oops</html>", "text/html", False, "unreadable"),
]


@pytest.mark.parametrize(
    ("status", "body", "content_type", "retryable", "reason"),
    [r[1:] for r in SEND_FAILURE_TABLE],
    ids=[r[0] for r in SEND_FAILURE_TABLE],
)
def test_send_failures_carry_reason_and_retry_policy(
    fake_provider: FakeProvider, status: int, body: str, content_type: str, retryable: bool, reason: str
) -> None:
    fake_provider.then(status, body, content_type)

    with pytest.raises(SendError, match=reason) as caught:
        loopback_channel(fake_provider).send(OUTBOUND)

    assert caught.value.retryable is retryable


class RaisingService:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def send(self, message: str, recipients: list[str], sender_id: str | None = None, **kwargs: Any) -> Any:
        raise self.error


@pytest.mark.parametrize(
    ("error", "retryable", "maybe_sent"),
    [
        (requests.ReadTimeout("read timed out"), False, True),  # AT may have the message: never sent twice
        (requests.ConnectTimeout("connect timed out"), True, False),
        (requests.ConnectionError("connection refused"), True, False),
        (ValueError("Invalid phone number: 0711000111"), False, False),
    ],
    ids=["read timeout", "connect timeout", "connection error", "sdk rejects number"],
)
def test_sdk_exceptions_map_to_send_errors(error: Exception, retryable: bool, maybe_sent: bool) -> None:
    channel = AfricasTalkingSMS(sms_service=RaisingService(error))

    with pytest.raises(SendError) as caught:
        channel.send(OUTBOUND)

    assert (caught.value.retryable, caught.value.maybe_sent) == (retryable, maybe_sent)


def test_send_times_out_instead_of_hanging(fake_provider: FakeProvider) -> None:
    fake_provider.then_hang()
    channel = AfricasTalkingSMS(sms_service=LoopbackSMSService(fake_provider.base_url), timeout_seconds=0.2)

    with pytest.raises(SendError, match="Timeout") as caught:
        channel.send(OUTBOUND)

    assert caught.value.maybe_sent is True and caught.value.retryable is False  # sent, unanswered: not resent
