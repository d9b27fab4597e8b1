"""Twilio SMS: signature checks with Twilio's own validator, inbound/status parsing, and sending via the SDK.

Sending runs the real `twilio.rest.Client` with an `http_client` that rewrites api.twilio.com to the loopback
fake, so the SDK's request building and error handling are exercised.
"""

from __future__ import annotations

from typing import Any

import pytest
from channel_fakes import FakeProvider, fixture_form, fixture_text, form_request
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator

from gateway.channels.base import BadRequest, Forbidden, SendError
from gateway.channels.twilio_sms import TwilioSMS
from gateway.messages import DeliveryState, Outbound, Reply

AUTH_TOKEN = "12345678901234567890123456789012"
ACCOUNT_SID = "AC0123456789abcdef0123456789abcdef"
PUBLIC_URL = "https://connect.example.org"
OUTBOUND = Outbound("twilio-sms", "+254711000111", "Salio: Ksh\u00a01,500.00", "outbox-1")


def signed(url: str, form: dict[str, str], token: str = AUTH_TOKEN) -> str:
    return str(RequestValidator(token).compute_signature(url, form))


class LoopbackHttpClient(TwilioHttpClient):  # type: ignore[misc]
    def __init__(self, base_url: str, timeout: float = 2.0) -> None:
        super().__init__(timeout=timeout)
        self.base_url = base_url

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        return super().request(method, url.replace("https://api.twilio.com", self.base_url), *args, **kwargs)


def loopback_channel(fake: FakeProvider, timeout: float = 2.0, **kw: Any) -> TwilioSMS:
    return TwilioSMS(
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        from_number="+15005550006",
        http_client=LoopbackHttpClient(fake.base_url, timeout),
        **kw,
    )


DIRECT = "https://connect.example.org/webhooks/twilio/sms"
INTERNAL = "http://10.0.0.5:8000/webhooks/twilio/sms"
SIGNATURE_HEADER = "X-Twilio-Signature"
SIGNATURE_TABLE = [
    # (received url, public url configured, url Twilio signed, header name, accepted)
    ("direct", DIRECT, "", None, SIGNATURE_HEADER, True),
    ("header name case-insensitive", DIRECT, "", None, SIGNATURE_HEADER.lower(), True),
    ("behind proxy with public url", INTERNAL, PUBLIC_URL, None, SIGNATURE_HEADER, True),
    ("behind proxy without public url", INTERNAL, "", DIRECT, SIGNATURE_HEADER, False),
    ("query string is signed too", INTERNAL + "?tenant=ke", PUBLIC_URL, None, SIGNATURE_HEADER, True),
]


@pytest.mark.parametrize(
    ("received_url", "public_url", "twilio_url", "header_name", "accepted"),
    [r[1:] for r in SIGNATURE_TABLE],
    ids=[r[0] for r in SIGNATURE_TABLE],
)
def test_verify_uses_the_url_twilio_called(
    received_url: str, public_url: str, twilio_url: str | None, header_name: str, accepted: bool
) -> None:
    form = fixture_form("twilio_inbound.form")
    channel = TwilioSMS(auth_token=AUTH_TOKEN, public_url=public_url)
    url_twilio_called = twilio_url or (channel.signed_url(form_request(form, url=received_url)))
    request = form_request(form, url=received_url, headers={header_name: signed(url_twilio_called, form)})

    if accepted:
        channel.verify(request)
    else:
        with pytest.raises(Forbidden):
            channel.verify(request)


TAMPER_TABLE = [
    ("body changed", lambda form: form | {"Body": "STOP"}, AUTH_TOKEN),
    ("field dropped", lambda form: {k: v for k, v in form.items() if k != "NumSegments"}, AUTH_TOKEN),
    ("signed with another token", lambda form: form, "00000000000000000000000000000000"),
]


@pytest.mark.parametrize(("tamper", "signing_token"), [r[1:] for r in TAMPER_TABLE], ids=[r[0] for r in TAMPER_TABLE])
def test_verify_rejects_forged_requests(tamper: Any, signing_token: str) -> None:
    url = PUBLIC_URL + "/webhooks/twilio/sms"
    form = fixture_form("twilio_inbound.form")
    signature = signed(url, form, signing_token)
    request = form_request(tamper(form), url=url, headers={"X-Twilio-Signature": signature})

    with pytest.raises(Forbidden):
        TwilioSMS(auth_token=AUTH_TOKEN).verify(request)


def test_verify_rejects_a_missing_signature() -> None:
    with pytest.raises(Forbidden):
        TwilioSMS(auth_token=AUTH_TOKEN).verify(form_request(fixture_form("twilio_inbound.form")))


def test_verify_refuses_everything_when_no_auth_token_is_configured() -> None:
    url = PUBLIC_URL + "/webhooks/twilio/sms"
    form = fixture_form("twilio_inbound.form")
    request = form_request(form, url=url, headers={"X-Twilio-Signature": signed(url, form, "")})

    with pytest.raises(Forbidden, match="not configured"):
        TwilioSMS().verify(request)


def test_parse_inbound_message() -> None:
    [inbound] = TwilioSMS().parse(form_request(fixture_form("twilio_inbound.form")))

    assert inbound.channel == "twilio-sms"
    assert inbound.sender == "+254711000111"
    assert inbound.text == "SALIO"
    assert inbound.provider_message_id == "SM5f2d4c1e9b8a7f6e5d4c3b2a1f0e9d8c"
    assert inbound.session_id == "twilio-sms:+254711000111"


@pytest.mark.parametrize(("field", "value"), [("MessageSid", None), ("From", None), ("From", "whatsapp:abc")])
def test_parse_rejects_missing_or_unusable_fields(field: str, value: str | None) -> None:
    form = fixture_form("twilio_inbound.form")
    form = {k: v for k, v in form.items() if k != field} if value is None else form | {field: value}

    with pytest.raises(BadRequest, match=field):
        TwilioSMS().parse(form_request(form))


def test_message_without_body_is_empty_text() -> None:
    form = {k: v for k, v in fixture_form("twilio_inbound.form").items() if k != "Body"}

    assert TwilioSMS().parse(form_request(form))[0].text == ""


STATUS_TABLE = [
    ("undelivered with error code", "twilio_status_undelivered.form", {}, DeliveryState.FAILED, "30003"),
    ("delivered", "twilio_status_delivered.form", {}, DeliveryState.DELIVERED, None),
    ("sent", "twilio_status_delivered.form", {"MessageStatus": "sent"}, DeliveryState.SENT, None),
    ("failed", "twilio_status_delivered.form", {"MessageStatus": "failed", "ErrorCode": "21610"}, DeliveryState.FAILED,
     "21610"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("fixture", "override", "state", "reason"), [r[1:] for r in STATUS_TABLE], ids=[r[0] for r in STATUS_TABLE]
)
def test_parse_status_callback(
    fixture: str, override: dict[str, str], state: DeliveryState, reason: str | None
) -> None:
    [update] = TwilioSMS().parse_status(form_request(fixture_form(fixture) | override))

    assert update.provider_message_id == "SM9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d"
    assert (update.state, update.reason) == (state, reason)


def test_status_callback_missing_status_is_bad_request() -> None:
    form = {k: v for k, v in fixture_form("twilio_status_delivered.form").items() if k != "MessageStatus"}

    with pytest.raises(BadRequest, match="MessageStatus"):
        TwilioSMS().parse_status(form_request(form))


@pytest.mark.parametrize("replies", [[], [Reply("Salio: KES 1,500")]], ids=["no replies", "replies go via outbox"])
def test_respond_is_empty_twiml(replies: list[Reply]) -> None:
    response = TwilioSMS().respond(replies)

    assert response.body == '<?xml version="1.0" encoding="UTF-8"?><Response />'
    assert response.content_type == "text/xml"


def test_send_without_credentials_is_a_permanent_error() -> None:
    with pytest.raises(SendError, match="not configured") as caught:
        TwilioSMS(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN).send(OUTBOUND)

    assert caught.value.retryable is False


def twilio_error(status: int, code: int, message: str) -> str:
    return f'{{"code": {code}, "message": "{message}", "status": {status}}}'


def test_send_retries_through_500_and_429_then_succeeds(fake_provider: FakeProvider) -> None:
    fake_provider.then(500, twilio_error(500, 20500, "Internal Server Error"))
    fake_provider.then(429, twilio_error(429, 20429, "Too Many Requests"))
    fake_provider.then(201, fixture_text("twilio_message_created.json"))
    channel = loopback_channel(fake_provider, status_callback_url=PUBLIC_URL + "/webhooks/twilio/status")

    outcomes: list[object] = []
    for _ in range(3):
        try:
            outcomes.append(channel.send(OUTBOUND))
        except SendError as exc:
            outcomes.append(exc.retryable)

    assert outcomes == [True, True, "SM9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d"]
    sent = fake_provider.requests[-1]
    assert sent.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    assert sent.form() == {
        "To": "+254711000111",
        "From": "+15005550006",
        "Body": "Salio: Ksh 1,500.00",
        "StatusCallback": PUBLIC_URL + "/webhooks/twilio/status",
    }


SEND_FAILURE_TABLE = [
    ("invalid number", 400, twilio_error(400, 21211, "The To number is not a valid phone number."), False, "21211"),
    (
        "recipient unsubscribed",
        400,
        twilio_error(400, 21610, "Attempt to send to unsubscribed recipient"),
        False,
        "21610",
    ),
    ("bad credentials", 401, twilio_error(401, 20003, "Authenticate"), False, "20003"),
    ("service unavailable", 503, twilio_error(503, 20503, "Service Unavailable"), True, "503"),
]


@pytest.mark.parametrize(
    ("status", "body", "retryable", "reason"),
    [r[1:] for r in SEND_FAILURE_TABLE],
    ids=[r[0] for r in SEND_FAILURE_TABLE],
)
def test_send_failures_carry_reason_and_retry_policy(
    fake_provider: FakeProvider, status: int, body: str, retryable: bool, reason: str
) -> None:
    fake_provider.then(status, body)

    with pytest.raises(SendError, match=reason) as caught:
        loopback_channel(fake_provider).send(OUTBOUND)

    assert caught.value.retryable is retryable


def test_send_times_out_instead_of_hanging(fake_provider: FakeProvider) -> None:
    fake_provider.then_hang()

    with pytest.raises(SendError, match="Timeout") as caught:
        loopback_channel(fake_provider, timeout=0.2).send(OUTBOUND)

    assert caught.value.maybe_sent is True and caught.value.retryable is False  # sent, unanswered: not resent


def test_default_http_client_has_a_timeout() -> None:
    channel = TwilioSMS(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, from_number="+15005550006", timeout_seconds=7)

    assert channel._client is not None
    assert channel._client.http_client.timeout == 7
